"""Train the weights of the example MODEL submissions (``submissions/<assignment>/<student>/``).

Each folder's ``model.py`` is written by hand, as a student would; this script trains it briefly
(seeded, CPU, real images from ``$GRADER_DATA_DIR``) and saves the ``state_dict`` next to it. The
weights stay small: a few hundred kilobytes each; the VGG-16 examples (15M parameters) come with
no weights at all. What each example shows:

- ``simplenn``: ``ada`` and ``bao`` (safetensors) are the ECE 661 SimpleNN; ``cruz`` uses 5x5
  kernels in conv2, so its parameter count is off.
- ``simplenn-dev``: ``gwen`` has BatchNorm and a hand-written Swish; ``hugo`` is still lab 1's net.
- ``pj2-cifar10``: ``ivy`` has every component (residual, BatchNorm, dropout); ``jack`` only the
  required ones; ``kim`` copied the ECE 661 SimpleNN, a public model.
- ``alexnet-cifar10``: ``lena`` (BatchNorm on) and ``mo`` (off), both AlexNet-style.
- ``tp4-cifar10``: ``nora`` has dropout, pooling and BatchNorm; ``omar`` has no BatchNorm.
- ``vgg16-cifar10``: ``pax`` and ``quin`` (with BatchNorm), model.py only.
- ``lenet-mnist``: ``ruth`` is LeNet-5; ``sol`` has 32 filters in conv2.
- ``dessilbi-lenet``: ``tess`` trained with DessiLBI and pruned to Gamma's support (safetensors);
  ``uma`` trained with SGD, dense.

Usage: ``uv run python submissions/make_model_examples.py [--only ASSIGNMENT ...] [--out DIR]``
"""

from __future__ import annotations

import argparse
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from grader.data import load_dataset
from reference.experiments.loop import batch_order, make_optimizer, run_steps

Recipe = Literal["sgd", "adam", "dessilbi", "none"]
HERE = Path(__file__).parent


@dataclass(frozen=True)
class Example:
    """One example submission and how its weights are made."""

    assignment: str
    student: str
    recipe: Recipe
    seed: int = 0
    epochs: int = 1
    lr: float = 0.02
    """SGD's (momentum 0.9) or Adam's learning rate, or DessiLBI's step size."""
    images: int | None = None
    """Train on the first N training images (None: all)."""
    weights: str = "model.pt"
    entry: str = "Net"


EXAMPLES: tuple[Example, ...] = (
    Example("simplenn", "ada", "sgd", seed=0),
    Example("simplenn", "bao", "sgd", seed=1, weights="model.safetensors"),
    Example("simplenn", "cruz", "sgd", seed=2),
    Example("simplenn-dev", "gwen", "sgd", seed=3, epochs=2, lr=0.05),
    Example("simplenn-dev", "hugo", "sgd", seed=4, epochs=2),
    Example("pj2-cifar10", "ivy", "adam", seed=5, epochs=2, lr=1e-3),
    Example("pj2-cifar10", "jack", "adam", seed=6, epochs=2, lr=1e-3),
    Example("pj2-cifar10", "kim", "sgd", seed=7),
    Example("alexnet-cifar10", "lena", "adam", seed=8, epochs=2, lr=1e-3),
    Example("alexnet-cifar10", "mo", "adam", seed=9, epochs=2, lr=1e-3),
    Example("tp4-cifar10", "nora", "adam", seed=10, epochs=2, lr=1e-3,
            entry="MyConvolutionalNetwork"),
    Example("tp4-cifar10", "omar", "adam", seed=11, epochs=2, lr=1e-3,
            entry="MyConvolutionalNetwork"),
    Example("vgg16-cifar10", "pax", "none", entry="VGG16"),
    Example("vgg16-cifar10", "quin", "none", entry="VGG16"),
    Example("lenet-mnist", "ruth", "adam", seed=12, epochs=2, lr=1e-3, images=30_000),
    Example("lenet-mnist", "sol", "adam", seed=13, epochs=2, lr=1e-3, images=30_000),
    Example("dessilbi-lenet", "tess", "dessilbi", seed=14, epochs=10, lr=1.0, images=8192,
            weights="model.safetensors"),
    Example("dessilbi-lenet", "uma", "sgd", seed=15, epochs=2, lr=0.05, images=30_000),
)  # fmt: skip

DATASETS = {"lenet-mnist": "mnist", "dessilbi-lenet": "mnist"}


def load_module(path: Path):
    """Import ``path`` as a module."""
    spec = importlib.util.spec_from_file_location(f"example_{path.parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train(model: torch.nn.Module, example: Example) -> torch.nn.Module:
    """Train ``model`` on [0, 1] images (the models normalise their input), batch 64."""
    data = load_dataset(DATASETS.get(example.assignment, "cifar10"), "train")
    count = example.images or len(data)
    images = torch.from_numpy(data.images[:count].copy()).float().div_(255.0)
    labels = torch.from_numpy(data.labels[:count].copy())
    order = batch_order(count, steps=example.epochs * (count // 64), batch_size=64,
                        seed=example.seed)  # fmt: skip
    if example.recipe == "dessilbi":
        from reference.dessilbi import DessiLBI, prune_by_gamma, sparse_param_groups

        optimizer = DessiLBI(sparse_param_groups(model), lr=example.lr)
        run_steps(model, images, labels, order, optimizer)
        prune_by_gamma(model, optimizer)  # keep only the weights in Gamma's support
        return model
    optimizer = make_optimizer(example.recipe, model, example.lr)
    run_steps(model, images, labels, order, optimizer)
    return model


def make(example: Example, out: Path) -> None:
    """Train one example and write its weights beside its model.py."""
    folder = out / example.assignment / example.student
    torch.manual_seed(example.seed)
    model = getattr(load_module(folder / "model.py"), example.entry)()
    if example.recipe == "none":
        print(f"{folder}: model.py only (no weights)")
        return
    train(model, example).eval()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    path = folder / example.weights
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    chosen = [e for e in EXAMPLES if not args.only or e.assignment in args.only]
    if not chosen:
        known = sorted({e.assignment for e in EXAMPLES})
        raise SystemExit(f"no examples for {args.only}: use one of {', '.join(known)}")
    for example in chosen:
        make(example, args.out)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=HERE, help="folder of the assignment folders (default: here)"
    )
    parser.add_argument(
        "--only", action="append", default=[], help="only this assignment (repeatable)"
    )
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args())
