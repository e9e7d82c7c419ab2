"""Training throughput on a CUDA GPU: our recipe vs a plain DataLoader pipeline, and % of bf16 peak.

    GRADER_DATA_DIR=../shared/data uv run python benchmarks/bench_train_gpu.py
    ... --smoke            # a few hundred images, seconds; what the GPU test runs

For ResNet-20 and the ResNet-18-style net, the training images are replicated to a full epoch's
size (50,000 by default) and trained for one epoch each way at the same batch size:
- baseline: torchvision ``DataLoader`` over PIL transforms (``RandomCrop``, horizontal flip,
  ``ToTensor``, ``Normalize``), ``--workers`` processes, pinned memory, fp32, NCHW;
- recipe: uint8 images resident on the GPU, batch crop + flip there, channels_last, bf16 autocast.
Prints images/s of each and the ratio (target: >= 3x), and the recipe's achieved FLOP/s (from
``torch.utils.flop_counter`` on one training step) as a fraction of the GPU's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import dataloader_batches, recipe_batches, run_epoch  # noqa: E402

from grader.data import load_cifar10  # noqa: E402
from reference.models import get_model  # noqa: E402
from reference.train import autocast  # noqa: E402

# dense bf16 tensor-core peak in TFLOP/s by device-name fragment (vendor data sheets)
BF16_PEAK_TFLOPS: dict[str, float] = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 80GB HBM3": 989.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10G": 70.0,
    "RTX 4090": 165.0,
}


def peak_tflops(name: str, override: float | None) -> float | None:
    """The bf16 peak of device ``name`` (first matching fragment), unless ``override`` is set."""
    if override is not None:
        return override
    for fragment, value in BF16_PEAK_TFLOPS.items():
        if fragment in name:
            return value
    return None


def train_flops_per_image(model: nn.Module, batch: torch.Tensor) -> float:
    """FLOPs of one forward + backward pass, divided by the batch size."""
    with FlopCounterMode(display=False) as counter:
        with autocast(batch.device):
            loss = model(batch).float().logsumexp(1).mean()
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(batch)


def measure(
    name: str, images: np.ndarray, labels: np.ndarray, args: argparse.Namespace
) -> dict[str, float | str | None]:
    """Throughput of both pipelines and the recipe's fraction of peak for model ``name``."""
    device = torch.device(args.device)
    images_t = torch.from_numpy(images).to(device)
    labels_t = torch.from_numpy(labels).to(device)

    model = get_model(name).to(device, memory_format=torch.channels_last)
    warm_count = 4 * args.batch_size
    warm = recipe_batches(images_t[:warm_count], labels_t[:warm_count], args.batch_size)
    run_epoch(model, warm, device, channels_last=True)  # cuDNN autotuning, allocator warm-up
    seen, seconds = run_epoch(
        model, recipe_batches(images_t, labels_t, args.batch_size), device, channels_last=True
    )
    recipe_rate = seen / seconds

    sample = torch.randn(args.batch_size, 3, 32, 32, device=device)
    flops = train_flops_per_image(model, sample.contiguous(memory_format=torch.channels_last))

    count = min(args.baseline_images, len(labels))
    baseline_model = get_model(name).to(device)
    seen_b, seconds_b = run_epoch(
        baseline_model,
        dataloader_batches(images[:count], labels[:count], args.batch_size, device, args.workers),
        device,
        channels_last=False,
        mixed_precision=False,  # the plain pipeline: fp32, NCHW
    )
    baseline_rate = seen_b / seconds_b

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = peak_tflops(gpu, args.peak_tflops)
    achieved = flops * recipe_rate / 1e12
    return {
        "model": name,
        "device": gpu,
        "batch_size": args.batch_size,
        "epoch_images": int(seen),
        "recipe_img_s": round(recipe_rate, 1),
        "dataloader_img_s": round(baseline_rate, 1),
        "ratio": round(recipe_rate / baseline_rate, 2),
        "train_gflop_per_image": round(flops / 1e9, 4),
        "achieved_tflops": round(achieved, 2),
        "peak_bf16_tflops": peak,
        "fraction_of_peak": round(achieved / peak, 4) if peak else None,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the measurement for each model and print one line per model plus JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet18_cifar"])
    parser.add_argument("--batch-size", type=int, default=512, help="default: 512")
    parser.add_argument("--epoch-images", type=int, default=50_000, help="default: 50000")
    parser.add_argument(
        "--baseline-images", type=int, default=20_000, help="DataLoader images (default: 20000)"
    )
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the bf16 peak")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for the GPU test")
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of the code path")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_train_gpu: no CUDA device; run benchmarks/bench_train.py on CPU")
    if args.smoke:
        args.epoch_images, args.baseline_images, args.batch_size = 1024, 512, 128
        args.workers = min(args.workers, 2)
    torch.backends.cudnn.benchmark = args.device == "cuda"
    torch.manual_seed(0)
    train = load_cifar10("train")
    repeats = -(-args.epoch_images // len(train))  # ceiling division
    images = np.concatenate([train.images] * repeats)[: args.epoch_images]
    labels = np.concatenate([train.labels] * repeats)[: args.epoch_images]
    print(f"{len(train)} real images ({train.source}) replicated to {len(labels)}")
    results = []
    for name in args.models:
        result = measure(name, images, labels, args)
        results.append(result)
        print(
            f"{name:<15} recipe {result['recipe_img_s']:>9} img/s  dataloader "
            f"{result['dataloader_img_s']:>8} img/s  ratio {result['ratio']}x  "
            f"{result['achieved_tflops']} TFLOP/s = {result['fraction_of_peak']} of bf16 peak"
        )
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
