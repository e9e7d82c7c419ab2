"""``grader check`` of a folder of ResNet-20 model submissions against bare eager PyTorch, in CPU
seconds with the boxes counted.

``--batch`` ResNet-20 submissions (a student's own model.py, different seeded weights) are graded
on the real CIFAR-10 test images, each way as its own process:

- **grader check** (what ships): ``grader check FOLDER --assignment resnet20``: intake, both
  sandbox stages in the warm boxes (default: one per core), robustness variants, scoring, report
  and student pages;
- **bare eager** (the real alternative: the script an instructor writes without a grader): import
  each model.py, load its weights, eager forward at 1 thread over the same test images and the
  same robustness variant images, accuracy.

CPU seconds are those of each process tree, boxes included, read from a transient cgroup
(:func:`measure.run_counted`: the boxes are SIGKILLed, never reaped, so a process timer misses
them). Printed beside them: the roofline (FLOPs of every image evaluated / this machine's fp32 GEMM
throughput at 1 thread) and the load. Target: grader check <= 1.3x bare eager in CPU seconds.

Usage: ``uv run python benchmarks/bench_sandbox.py [--batch 20] [--jobs N ...]``
(needs root + bubblewrap and ``$GRADER_DATA_DIR``). ``--jobs`` (repeatable) also runs
``grader check --jobs N``, e.g. ``--jobs 1 --jobs 8`` for one box and the former default of 8.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import measure
import torch

HERE = Path(__file__).resolve().parent
MODEL_PY = HERE / "resnet20_student.py"

EAGER = """
import importlib.util, sys, time
from pathlib import Path
import numpy as np
import torch
from grader.data import load_dataset
from grader.metrics import make_variants

torch.set_num_threads(1)
images = load_dataset("cifar10", "test").images
labels = load_dataset("cifar10", "test").labels
variants = np.concatenate(list(make_variants(images).values()))
for folder in sorted(Path(sys.argv[1]).iterdir()):
    spec = importlib.util.spec_from_file_location(f"m_{folder.name}", folder / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.Net()
    net.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    net.eval()
    with torch.inference_mode():
        out = [net(torch.from_numpy(x[i:i + 256]).float().div_(255)).argmax(1)
               for x in (images, variants) for i in range(0, len(x), 256)]
    predicted = torch.cat(out)[: len(images)].numpy()
    print(folder.name, float((predicted == labels).mean()))
"""


def make_submission(folder: Path, seed: int) -> None:
    """model.py (the student's ResNet-20) + a state_dict of its weights for ``seed``."""
    folder.mkdir(parents=True)
    shutil.copy(MODEL_PY, folder / "model.py")
    spec = importlib.util.spec_from_file_location("student_resnet20", MODEL_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(seed)
    torch.save(module.Net().state_dict(), folder / "model.pt")


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=20, help="submissions (default: 20)")
    parser.add_argument("--jobs", type=int, action="append", default=[],
                        help="also run grader check --jobs N (repeatable)")  # fmt: skip
    args = parser.parse_args(argv)
    from grader.data import load_dataset
    from grader.metrics import VARIANT_NAMES, variant_subset

    images = len(load_dataset("cifar10", "test").images)
    variant_images = len(variant_subset(images)) * len(VARIANT_NAMES)
    spec = importlib.util.spec_from_file_location("student_resnet20", MODEL_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    flops = measure.model_flops(module.Net(), (3, 32, 32))
    gflops = measure.gemm_gflops(1)
    floor = measure.roofline_s(flops, args.batch * (images + variant_images), gflops)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    grader = str(Path(sys.executable).with_name("grader"))
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        root = Path(tmp)
        folders = [root / "subs" / f"s{i:02d}" for i in range(args.batch)]
        for seed, folder in enumerate(folders):
            make_submission(folder, seed)
        (root / "eager.py").write_text(EAGER)
        print(f"machine: {measure.machine()}")
        eager_command = [sys.executable, str(root / "eager.py"), str(root / "subs")]
        eagers = [measure.run_counted(eager_command, env=env)]
        runs = {}
        for jobs in [None, *args.jobs]:
            extra = [] if jobs is None else ["--jobs", str(jobs)]
            out = root / f"out-{jobs}"
            command = [grader, "check", str(root / "subs"), "--assignment", "resnet20", "--out",
                       str(out), "--quiet", *extra]  # fmt: skip
            done = measure.run_counted(command, env=env)
            if done.returncode != 0:
                raise SystemExit(f"grader check failed:\n{done.stderr[-2000:]}")
            runs["default" if jobs is None else f"--jobs {jobs}"] = (done, measure.load_now())
            # the alternative again after each run: this machine's speed drifts between runs
            eagers.append(measure.run_counted(eager_command, env=env))
        for run in eagers:
            if run.returncode != 0:
                raise SystemExit(f"bare eager failed:\n{run.stderr[-2000:]}")
        eager = eagers[0]
        eager_cpu = statistics.mean(run.cpu_s for run in eagers)
    cores = len(os.sched_getaffinity(0))
    print(f"ResNet-20 x {args.batch}: {images} test images + {variant_images} robustness variant "
          f"images each, {flops / 1e6:.1f} MFLOP per image")  # fmt: skip
    print(f"roofline (FLOPs / fp32 GEMM {gflops:.0f} GFLOP/s at 1 thread): {floor:.1f} CPU-s "
          f"for the batch, {floor / args.batch:.2f} s per model")  # fmt: skip
    print(f"CPU seconds counted by {eager.method}")
    each = ", ".join(f"{run.cpu_s:.1f}" for run in eagers)
    print(f"bare eager (process), mean of {len(eagers)} runs around the others ({each}): "
          f"{eager_cpu:.1f} CPU-s  {eager.wall_s:6.1f} s wall  "
          f"{eager_cpu / floor:.2f}x roofline")  # fmt: skip
    for label, (done, load) in runs.items():
        boxes = f"one box per core ({cores})" if label == "default" else label
        print(f"grader check, {boxes:<18} {done.cpu_s:7.1f} CPU-s  {done.wall_s:6.1f} s wall  "
              f"{done.cpu_s / eager_cpu:.2f}x bare eager  {done.cpu_s / floor:.2f}x roofline  "
              f"({load})")  # fmt: skip
    print(f"summary: grader check / bare eager = {runs['default'][0].cpu_s / eager_cpu:.2f}x "
          f"CPU seconds (target <= 1.3x); {measure.machine()}")  # fmt: skip


if __name__ == "__main__":
    main()
