"""Verified model grading vs the same checks bare: a batch of ResNet-20 submissions.

Each of ``--batch`` ResNet-20 submissions (a student's own model.py, different weights) is graded
on the real CIFAR-10 test images by

- **bare**: the two stage functions (capture, verified evaluation) called in this process, torch
  warm, no box, no fork -- the floor for exactly the same checks;
- **boxed**: :func:`grader.models.pipeline.grade_model` through one pool of jailed boxes (both
  stages in separate confined children, the artifact crossing the boundary), the pool's start-up
  included in the batch total.

Prints per-submission latencies, both totals and the ratio boxed / bare for the batch (target
<= 1.3x), and the box start-up on its own.

Usage: ``uv run python benchmarks/bench_sandbox.py [--batch 20] [--jobs 1]``
(needs root + bubblewrap and ``$GRADER_DATA_DIR``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from grader.assignment import load_assignment
from grader.data import load_dataset
from grader.models.inside.capture import capture
from grader.models.inside.evaluate import evaluate
from grader.models.pipeline import grade_model, model_pool
from grader.models.records import CaptureArgs, EvaluateArgs
from grader.sandbox.inside.tasks import JobContext

HERE = Path(__file__).resolve().parent
MODEL_PY = HERE / "resnet20_student.py"


def make_submission(folder: Path, seed: int) -> None:
    """model.py (the student's ResNet-20) + a state_dict of its weights for ``seed``."""
    import importlib.util

    folder.mkdir(parents=True)
    shutil.copy(MODEL_PY, folder / "model.py")
    spec = importlib.util.spec_from_file_location("student_resnet20", MODEL_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(seed)
    torch.save(module.Net().state_dict(), folder / "model.pt")


def bare(folder: Path, images, scratch: Path) -> float:
    """Both stages in this process: the same checks without any box."""
    started = time.perf_counter()
    out, out2 = scratch / "capture", scratch / "evaluate"
    for path in (out, out2):
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
    report = capture(JobContext(folder, out, {}, None), CaptureArgs(weights="model.pt"))
    if report.status != "exported":
        raise SystemExit(f"bare capture failed: {report.message}")
    shutil.copy(folder / "model.pt", out / "model.pt")
    record = evaluate(JobContext(out, out2, {}, images), EvaluateArgs(weights="model.pt"))
    if record.status != "ok":
        raise SystemExit(f"bare evaluation failed: {record.message}")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=20, help="submissions (default: 20)")
    parser.add_argument("--jobs", type=int, default=1, help="boxes in the pool (default: 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    spec = load_assignment("resnet20")
    images = load_dataset("cifar10", "test").images
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        root = Path(tmp)
        folders = [root / "subs" / f"s{i:02d}" for i in range(args.batch)]
        for seed, folder in enumerate(folders):
            make_submission(folder, seed)

        bare(folders[0], images, root / "warm")  # warm: the exporter's first call
        bare_times = [bare(f, images, root / "bare") for f in folders]

        started = time.perf_counter()
        with model_pool(spec, size=args.jobs) as pool:
            with pool.worker() as worker:
                worker.start()
            startup = time.perf_counter() - started
            with ThreadPoolExecutor(max_workers=args.jobs) as threads:

                def one(folder: Path) -> float:
                    began = time.perf_counter()
                    result = grade_model(folder, spec, pool=pool)
                    if result.status != "ok" or not result.verified:
                        raise SystemExit(f"{folder.name}: {result.status}: {result.message}")
                    return time.perf_counter() - began

                boxed_times = list(threads.map(one, folders))
        boxed_total = time.perf_counter() - started

    bare_total = sum(bare_times)
    print(f"ResNet-20 x {args.batch} on {len(images)} real test images, 1 thread, "
          f"{args.jobs} box(es)")  # fmt: skip
    print(f"bare (same checks in-process, warm): {bare_total:7.2f} s  "
          f"median {statistics.median(bare_times):.3f} s per submission")  # fmt: skip
    print(f"boxed (pool start-up included):      {boxed_total:7.2f} s  "
          f"median {statistics.median(boxed_times):.3f} s per submission")  # fmt: skip
    print(f"box start-up (torch import + warm-up): {startup:.2f} s")
    print(f"ratio boxed / bare, batch:          {boxed_total / bare_total:.2f}x")
    print(f"ratio boxed / bare, per submission: "
          f"{statistics.median(boxed_times) / statistics.median(bare_times):.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
