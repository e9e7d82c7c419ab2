"""Cost of the batch-norm experiments' gradient probes, against plain training steps.

Trains quarter-width VGG-A-BN on random CIFAR-sized batches twice in this process: once recording
only the loss (the baseline) and once probing the gradient at every point of the eta grid along it,
every step (what ``probe_every=1`` costs). Prints seconds per step of each and their ratio.

Usage: ``uv run python benchmarks/bench_bn.py [--steps 20] [--width 0.25] [--batch-size 32]``
"""

from __future__ import annotations

import argparse
import time

import measure
import numpy as np
import torch

from reference.experiments.bn import SMALL, batch_order, train_curves
from reference.models.vgg import vgg_a


def seconds_per_step(probe_steps: tuple[float, ...], args: argparse.Namespace) -> float:
    """Mean wall time of one training step (after one warm-up run)."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(256, 3, 32, 32, generator=generator)
    labels = torch.randint(0, 10, (256,), generator=generator)
    order = batch_order(256, steps=args.steps, batch_size=args.batch_size, seed=0)
    timings = []
    for _ in range(2):  # the first run pays one-time kernel set-up
        torch.manual_seed(0)
        model = vgg_a(batch_norm=True, width=args.width)
        started = time.perf_counter()
        train_curves(model, images, labels, order, lr=1e-3, probe_steps=probe_steps)
        timings.append((time.perf_counter() - started) / args.steps)
    return timings[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per run (default 20)")
    parser.add_argument("--width", type=float, default=0.25, help="channel multiplier (0.25)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    args = parser.parse_args()
    plain = seconds_per_step((), args)
    probed = seconds_per_step(SMALL.probe_steps, args)
    print(f"machine: {measure.machine()}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, numpy {np.__version__}")
    print(f"training step               : {plain * 1e3:8.1f} ms")
    print(f"step + {len(SMALL.probe_steps)} gradient probes     : {probed * 1e3:8.1f} ms")
    print(f"ratio probed / plain        : {probed / plain:8.2f}x")


if __name__ == "__main__":
    main()
