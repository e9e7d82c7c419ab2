"""Cost of the robustness and consistency variants in the verified evaluation that ships.

The student's ResNet-20 (``resnet20_student.py``) is captured once as the grader's graph
artifact; then the shipped stage-2 function (:func:`grader.models.inside.evaluate.evaluate`, the
code a box child runs) evaluates it on the 1017 real CIFAR-10 test images, without and with the
image variants (``EvaluateArgs.robustness``), each call in a freshly forked child of this
process, as in a box (a warm parent, a fresh heap per job; CPU seconds from the child's rusage).
Beside it, the real alternative: eager PyTorch on the same images, plain and with every variant
in one batched pass, and the roofline (FLOPs of the images / fp32 GEMM throughput at 1 thread).

Targets: the variants cost < 2x the plain evaluation; stage 2 near the roofline.

    GRADER_DATA_DIR=../shared/data uv run python benchmarks/bench_robustness.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import measure
import numpy as np
import torch

HERE = Path(__file__).resolve().parent
BATCH = 256  # the sandbox's evaluation batch size (ModelSpec.batch_size)


def student_folder(root: Path) -> tuple[Path, torch.nn.Module]:
    """model.py + model.pt of the benchmarks' student ResNet-20, and the model itself."""
    folder = root / "student"
    folder.mkdir()
    shutil.copy(HERE / "resnet20_student.py", folder / "model.py")
    spec = importlib.util.spec_from_file_location("student", folder / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    model = module.Net().eval()
    torch.save(model.state_dict(), folder / "model.pt")
    return folder, model


def forked(function) -> tuple[float, float]:
    """Wall and CPU seconds of ``function()`` in a forked child (exit status checked)."""
    began = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            from grader.sandbox.inside.tasks import reset_threads_after_fork

            reset_threads_after_fork()
            function()
            code = 0
        finally:
            os._exit(code)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("the evaluation failed in the child")
    return wall, usage.ru_utime + usage.ru_stime


def eager(model: torch.nn.Module, *image_sets: np.ndarray) -> tuple[float, float]:
    """Wall and CPU seconds for eager logits of each set of images in batches of BATCH."""
    began, cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        for images in image_sets:
            for start in range(0, len(images), BATCH):
                model(torch.from_numpy(images[start : start + BATCH]).float().div_(255))
    return time.perf_counter() - began, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (default 3)")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    from grader.assignment import load_assignment
    from grader.data import load_dataset
    from grader.metrics import make_variants
    from grader.models.inside.capture import capture
    from grader.models.inside.evaluate import evaluate
    from grader.models.pipeline import capture_arguments, evaluate_arguments
    from grader.sandbox.inside.tasks import JobContext

    spec = load_assignment("resnet20")
    images = np.ascontiguousarray(load_dataset("cifar10", "test").images)
    variants = np.concatenate(list(make_variants(images).values()))
    print(f"machine: {measure.machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-robustness-") as tmp:
        root = Path(tmp)
        folder, model = student_folder(root)
        artifact = root / "artifact"
        artifact.mkdir()
        report = capture(JobContext(folder, artifact, {}, None),
                         capture_arguments(spec.model, "model.pt"))  # fmt: skip
        if report.status != "exported":
            raise SystemExit(f"capture failed: {report.message}")
        shutil.copy(folder / "model.pt", artifact / "model.pt")

        def stage2(robustness: bool):
            def run() -> None:
                out = root / f"out-{os.getpid()}"
                out.mkdir()
                arguments = evaluate_arguments(spec.model, "model.pt")
                arguments = type(arguments)(**{**arguments.__dict__, "robustness": robustness})
                record = evaluate(JobContext(artifact, out, {}, images), arguments)
                if record.status != "ok":
                    raise RuntimeError(record.message)

            return run

        forked(stage2(False))  # warm: the parent's first-call costs stay out of the figures
        runs: dict[str, list[tuple[float, float]]] = {"plain": [], "variants": []}
        eager_runs: dict[str, list[tuple[float, float]]] = {"plain": [], "variants": []}
        eager(model, images[:BATCH])
        for _ in range(args.repeat):
            runs["plain"].append(forked(stage2(False)))
            runs["variants"].append(forked(stage2(True)))
            eager_runs["plain"].append(eager(model, images))
            eager_runs["variants"].append(eager(model, images, variants))
    load = measure.load_now()
    flops = measure.model_flops(model, images.shape[1:])
    gflops = measure.gemm_gflops(1)
    floor = {
        "plain": measure.roofline_s(flops, len(images), gflops),
        "variants": measure.roofline_s(flops, len(images) + len(variants), gflops),
    }
    print(f"ResNet-20 ({flops / 1e6:.1f} MFLOP per image), 1 thread, median of {args.repeat}; "
          f"roofline at {gflops:.0f} GFLOP/s; ratios in CPU seconds ({load})")  # fmt: skip
    for name, count in (("plain", len(images)), ("variants", len(images) + len(variants))):
        wall = statistics.median(w for w, _ in runs[name])
        cpu = statistics.median(c for _, c in runs[name])
        base_wall = statistics.median(w for w, _ in eager_runs[name])
        base = statistics.median(c for _, c in eager_runs[name])
        label = f"{count} images" + (" (1017 + variants)" if name == "variants" else "")
        print(f"  {label:<30} stage 2 (shipped) {cpu:5.2f} CPU-s ({wall:5.2f} s wall), eager "
              f"{base:5.2f} CPU-s ({base_wall:5.2f} s), roofline {floor[name]:5.2f} s -> "
              f"{cpu / base:.2f}x eager, {cpu / floor[name]:.2f}x roofline")  # fmt: skip
    plain = statistics.median(c for _, c in runs["plain"])
    extra = statistics.median(c for _, c in runs["variants"])
    print(f"summary: variants cost {extra / plain:.2f}x the plain stage 2 (target < 2x); "
          f"stage 2 with variants {extra / floor['variants']:.2f}x the roofline; "
          f"{measure.machine()}")  # fmt: skip


if __name__ == "__main__":
    main()
