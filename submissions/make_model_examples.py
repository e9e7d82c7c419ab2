"""Write the example MODEL submissions (``submissions/simplenn/<student>/``): model.py + weights.

Seeded and CPU-only: each SimpleNN trains for one epoch on the CIFAR-10 training images in
``$GRADER_DATA_DIR`` (the 5 x 1017 real images of the shared subset take ~10 s on 2 cores).

- ``ada``: the ECE 661 SimpleNN (82,030 parameters), weights as ``model.pt``.
- ``bao``: the same architecture with another seed, weights as ``model.safetensors``.
- ``cruz``: a structure problem -- conv2 uses 5x5 kernels, so the parameter count is off.

Usage: ``uv run python submissions/make_model_examples.py [--out submissions] [--epochs 1]``
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F

from grader.data import load_dataset

SIMPLENN = '''"""ECE 661 Lab 1 SimpleNN: conv5x5x8, pool, conv{k}x{k}x16, pool, fc120/84/10."""

import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 5)
        self.conv2 = nn.Conv2d(8, 16, {k})
        self.fc1 = nn.Linear(16 * {side} * {side}, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        # inputs are images in [0, 1]; normalise to roughly zero mean
        x = (x - 0.5) / 0.25
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.flatten(1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)
'''

EXAMPLES = {  # folder: (conv2 kernel, seed, weights file)
    "ada": (3, 0, "model.pt"),
    "bao": (3, 1, "model.safetensors"),
    "cruz": (5, 2, "model.pt"),
}


def load_module(path: Path):
    """Import ``path`` as a module."""
    spec = importlib.util.spec_from_file_location(f"example_{path.parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_one(model: torch.nn.Module, seed: int, epochs: int) -> None:
    """SGD with momentum over the training images, seeded."""
    data = load_dataset("cifar10", "train")
    images = torch.from_numpy(data.images).float().div_(255.0)
    labels = torch.from_numpy(data.labels)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)  # lr per batch of 64
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=generator)
        for start in range(0, len(order), 64):
            idx = order[start : start + 64]
            optimizer.zero_grad()
            F.cross_entropy(model(images[idx]), labels[idx]).backward()
            optimizer.step()


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    for folder, (kernel, seed, weights) in EXAMPLES.items():
        out = args.out / folder
        out.mkdir(parents=True, exist_ok=True)
        side = (14 - kernel + 1) // 2
        (out / "model.py").write_text(SIMPLENN.format(k=kernel, side=side), encoding="utf-8")
        torch.manual_seed(seed)
        model = load_module(out / "model.py").Net()
        train_one(model, seed, args.epochs)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        if weights.endswith(".safetensors"):
            from safetensors.torch import save_file

            save_file(state, str(out / weights))
        else:
            torch.save(state, out / weights)
        print(f"wrote {out / weights} ({(out / weights).stat().st_size:,} bytes)")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent / "simplenn",
        help="folder that receives the student folders (default: submissions/simplenn)",
    )
    parser.add_argument("--epochs", type=int, default=1, help="training epochs (default: 1)")
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args())
