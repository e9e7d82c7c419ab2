"""One training epoch of ResNet-20 on the CIFAR-10 subset: our recipe vs a plain DataLoader.

    GRADER_DATA_DIR=../shared/data uv run python benchmarks/bench_train.py [--model resnet20]

Both sides train the same model with the same optimizer and batch size on the same 5,085 real
images; they differ only in the input pipeline:
- baseline: a torchvision ``Dataset`` of PIL images with ``RandomCrop(32, padding=4)``,
  ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize`` and a ``DataLoader`` (per-image Python);
- recipe: uint8 tensors on the device, batch crop + flip (``reference.augment``), channels_last.
Prints images/s of each and their ratio, for the whole epoch and for the input pipeline alone.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator

import measure
import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from grader.data import get_dataset, load_cifar10
from reference.augment import augment_batch
from reference.models import get_model
from reference.train import normalize

RECIPE = get_dataset("cifar10")


class PilCifar(Dataset):
    """CIFAR-10 images as PIL images through torchvision transforms, as course code does it."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = images.transpose(0, 2, 3, 1)  # (N, H, W, C) for PIL
        self.labels = labels
        self.transform = transforms.Compose(
            [
                transforms.RandomCrop(32, padding=4),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                transforms.Normalize(RECIPE.mean, RECIPE.std),
            ]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def dataloader_batches(
    images: np.ndarray, labels: np.ndarray, batch_size: int, device: torch.device, workers: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The baseline input pipeline: DataLoader over PIL transforms, batches copied to device."""
    loader = DataLoader(
        PilCifar(images, labels),
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    for x, y in loader:
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def recipe_batches(
    images: torch.Tensor, labels: torch.Tensor, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Our input pipeline: uint8 tensors already on the device, augmented a batch at a time."""
    order = torch.randperm(len(labels), device=images.device)
    for start in range(0, len(labels), batch_size):
        index = order[start : start + batch_size]
        yield normalize(augment_batch(images[index], RECIPE.crop_pad, True), RECIPE), labels[index]


def run_epoch(
    model: nn.Module | None,
    batches: Iterator,
    device: torch.device,
    channels_last: bool,
    mixed_precision: bool = True,
) -> tuple[int, float]:
    """Train ``model`` one pass over ``batches`` (None: only draw them); (images, seconds)."""
    optimizer = None
    if model is not None:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
        model.train()
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    seen = 0
    _sync(device)
    start = time.perf_counter()
    for x, y in batches:
        if model is not None and len(y) > 1:
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            use_bf16 = mixed_precision and device.type == "cuda"
            with torch.autocast(device.type, torch.bfloat16, enabled=use_bf16):
                loss = criterion(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        seen += len(y)
    _sync(device)
    return seen, time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    """Print images/s of both pipelines and the ratio recipe / baseline."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet20", help="default: resnet20")
    parser.add_argument("--batch-size", type=int, default=256, help="default: 256")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (default: 0)")
    args = parser.parse_args()
    device = torch.device("cpu")
    torch.manual_seed(0)
    train = load_cifar10("train")
    images_t = torch.from_numpy(train.images.copy())
    labels_t = torch.from_numpy(train.labels.copy())
    print(f"machine: {measure.machine()}")
    print(f"device: cpu, {torch.get_num_threads()} threads; {len(train)} images ({train.source})")
    flops = measure.model_flops(get_model(args.model), train.images.shape[1:])
    gflops = measure.gemm_gflops(torch.get_num_threads())

    def baseline() -> Iterator:
        return dataloader_batches(train.images, train.labels, args.batch_size, device, args.workers)

    def ours() -> Iterator:
        return recipe_batches(images_t, labels_t, args.batch_size)

    for label, model_kind in (("input pipeline only", None), (f"{args.model} epoch", args.model)):
        rates = {}
        for name, batches, channels_last in (
            ("dataloader", baseline, False),
            ("recipe", ours, True),
        ):
            model = get_model(model_kind) if model_kind else None
            if model is not None and channels_last:
                model = model.to(memory_format=torch.channels_last)
            seen, seconds = run_epoch(model, batches(), device, channels_last)
            rates[name] = seen / seconds
            # a training step costs about 3 forward passes (forward, and backward twice that)
            floor = measure.roofline_s(3 * flops, seen, gflops) if model_kind else None
            print(
                f"{label:<22} {name:<10} {seen} images in {seconds:7.2f} s: "
                f"{rates[name]:9.1f} img/s"
                + (f"; roofline {floor:.2f} s ({seconds / floor:.2f}x)" if floor else "")
                + f" ({measure.load_now()})"
            )
        print(
            f"{label:<22} ratio recipe / dataloader: {rates['recipe'] / rates['dataloader']:.2f}x"
        )


if __name__ == "__main__":
    main()
