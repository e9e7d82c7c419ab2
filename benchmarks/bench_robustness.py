"""Cost of the robustness and consistency metrics per model submission.

A reference ResNet-20 (in-process, 1 intra-op thread) evaluated on the 1017 real CIFAR-10 test
images: plain (logits + accuracy, what grading a model needs today) against plain plus every
variant of :func:`grader.metrics.make_variants` (4 corruptions x 3 severities, flip, 2-pixel
shift: building the variants, the model on them, and :func:`grader.metrics.model_metrics`).
Target: < 2x the plain evaluation. Also shows the cost with every variant of every image
(``budget=None``), which the default subset avoids.

    GRADER_DATA_DIR=../shared/data uv run python benchmarks/bench_robustness.py
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from grader.data import load_dataset
from grader.metrics import VARIANT_NAMES, make_variants, model_metrics, variant_subset
from grader.metrics.variants import DEFAULT_BUDGET
from reference.models import get_model

BATCH = 256  # the sandbox's evaluation batch size (ModelSpec.batch_size)
REPEATS = 3


def logits_of(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), BATCH):
            x = torch.from_numpy(images[start : start + BATCH]).float().div_(255)
            out.append(model(x).numpy())
    return np.concatenate(out)


def plain(model, images, labels) -> float:
    start = time.perf_counter()
    accuracy = float((logits_of(model, images).argmax(1) == labels).mean())
    assert 0 <= accuracy <= 1
    return time.perf_counter() - start


def with_variants(model, images, labels, budget) -> tuple[float, float]:
    start = time.perf_counter()
    logits = logits_of(model, images)
    made = time.perf_counter()
    variants = make_variants(images, budget=budget)
    made = time.perf_counter() - made
    names = list(variants)
    stacked = np.concatenate([variants[n] for n in names])
    all_logits = np.split(logits_of(model, stacked), len(names))
    metrics = model_metrics(labels, logits, dict(zip(names, all_logits, strict=True)))
    assert metrics.corruption_accuracy is not None
    return time.perf_counter() - start, made


def main() -> None:
    torch.set_num_threads(1)
    test = load_dataset("cifar10", "test")
    images, labels = np.ascontiguousarray(test.images), test.labels
    model = get_model("resnet20").eval()
    plain(model, images[:256], labels[:256])  # warm-up: first-call allocations
    make_variants(images[:64])  # imports scipy.ndimage and Pillow once
    runs: dict[str, list[float]] = {"plain": [], "variants": [], "build": [], "full": []}
    for _ in range(REPEATS):
        runs["plain"].append(plain(model, images, labels))
        total, build = with_variants(model, images, labels, budget=DEFAULT_BUDGET)
        runs["variants"].append(total)
        runs["build"].append(build)
    runs["full"].append(with_variants(model, images, labels, budget=None)[0])
    base = statistics.median(runs["plain"])
    per_variant = len(variant_subset(len(images)))
    extra = statistics.median(runs["variants"])
    print(f"ResNet-20, {len(images)} test images, 1 thread, median of {REPEATS}:")
    print(f"  plain evaluation:            {base:.2f} s")
    print(
        f"  with every variant (default subset, {len(VARIANT_NAMES)} x {per_variant} images): "
        f"{extra:.2f} s "
        f"-> ratio {extra / base:.2f}x (target < 2x); building the variants "
        f"{statistics.median(runs['build']):.2f} s"
    )
    full = runs["full"][0]
    print(f"  every variant of every image (budget=None): {full:.2f} s -> {full / base:.1f}x")


if __name__ == "__main__":
    main()
