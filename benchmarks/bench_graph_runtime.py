"""Stage 2 as it ships, against eager PyTorch and the hardware floor.

The benchmarks' student ResNet-20 (``resnet20_student.py``) is captured once as a graph artifact,
with its weights file. A parent imports and warms everything as a box's supervisor does
(:func:`grader.sandbox.inside.tasks.preload`'s warm-up hooks, torch at one thread); then each
measurement runs in a fresh fork of it, as a box child runs a job:

- **stage 2, shipped**: :func:`grader.models.inside.evaluate.evaluate` on the 1017 real test
  images with their variants (``robustness``, a secret seed), ``EvaluateArgs.threads`` = the
  thread count: loading and checking the artifact, the memory estimate, the probe's analysis
  (perturbations, skips, determinism, FLOPs), the logits of every image of the stream, the
  weights comparison. Its **logits** part (:func:`~grader.models.inside.evaluate.stream_logits`:
  the ONNX translation, the session, its agreement on the probe, every batch, the interpreter's
  cross-check of secret batches) is timed on its own inside the same run.
- **stage 2, interpreter**: the same, with ONNX Runtime refused (the fallback path).
- **eager PyTorch**: the student's own ``nn.Module`` on the same stream of images, in batches of
  the same size, at the same thread count (the bare alternative).

Median of ``--repeat`` forks per row. Printed: wall and CPU seconds (user + system of the child,
every thread), CPU seconds against the floor and against eager's, page faults, and for every
stage-2 row which runtime computed the logits. The floor: the FLOPs of every image
(torch.utils.flop_counter) over this machine's fp32 GEMM throughput per thread (the faster of
torch's and ONNX Runtime's, :func:`measure.gemm_gflops`), divided by the thread count for wall
seconds.

Usage: ``uv run python benchmarks/bench_graph_runtime.py [--repeat 3] [--threads 1,2]``
(``$GRADER_DATA_DIR``). Run it on an idle machine for figures to record; the load is printed
beside every row.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from measure import gemm_gflops, in_fork, load_now, machine, model_flops, roofline_s

from grader.data import cached_dataset
from grader.metrics.variants import evaluation_images, secret_seed
from grader.models.inside import evaluate as stage2
from grader.models.inside import onnx_run
from grader.models.inside.artifact import GRAPH_FILE
from grader.models.inside.export import export_model, write_artifact, write_tensors
from grader.models.records import EvaluateArgs
from grader.sandbox.inside.tasks import JobContext

HERE = Path(__file__).resolve().parent
WEIGHTS = "model.pt"


def student_model() -> torch.nn.Module:
    """The benchmarks' student ResNet-20, eval mode."""
    spec = importlib.util.spec_from_file_location("student", HERE / "resnet20_student.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    return module.Net().eval()


def artifact_of(model: torch.nn.Module) -> Path:
    """A folder holding ``model``'s graph artifact and weights file, as stage 1 leaves it."""
    folder = Path(tempfile.mkdtemp(prefix="bench-graph-"))
    graph = export_model(model, (3, 32, 32))
    write_tensors(write_artifact(graph, folder, graph_file=GRAPH_FILE), folder)
    torch.save(model.state_dict(), folder / WEIGHTS)
    return folder


def shipped(folder: Path, images: np.ndarray, args: EvaluateArgs, *, onnx: bool):
    """The work of one box child: ``evaluate()`` on ``images``, its logits part timed."""

    def work() -> dict:
        logits_part: dict = {}
        timed = stage2.stream_logits

        def stream_logits(*a, **k):
            began, began_cpu = time.perf_counter(), time.process_time()
            result = timed(*a, **k)
            logits_part.update(
                logits_wall_s=time.perf_counter() - began,
                logits_cpu_s=time.process_time() - began_cpu,
            )
            return result

        stage2.stream_logits = stream_logits
        if not onnx:
            onnx_run.translated = lambda *a, **k: (None, "ONNX Runtime refused by the benchmark")
        with tempfile.TemporaryDirectory() as out:
            record = stage2.evaluate(JobContext(folder, Path(out), {}, images), args)
        if record.status != "ok":
            raise RuntimeError(record.message)
        return {**logits_part, "runtime": record.runtime, "note": record.runtime_note,
                "batch": record.batch_size}  # fmt: skip

    return work


def eager(model: torch.nn.Module, stream: np.ndarray, batch: int, threads: int):
    """The work of eager PyTorch on the same stream, in the same batch size."""

    def work() -> dict:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            for start in range(0, len(stream), batch):
                chunk = np.array(stream[start : start + batch])
                model(torch.from_numpy(chunk).float().div_(255.0))
        return {}

    return work


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="forks per figure (default: 3)")
    parser.add_argument("--threads", default="1,2", help="thread counts (default: 1,2)")
    options = parser.parse_args(argv)
    thread_counts = [int(t) for t in options.threads.split(",")]

    # the parent, as a box's supervisor: one torch thread, every stage imported and warmed up
    torch.set_num_threads(1)
    images = cached_dataset("cifar10", "test").images
    model = student_model()
    folder = artifact_of(model)
    stage2.warm_up({})
    seed = secret_seed()
    stream = evaluation_images(images, seed=seed, variants=True)
    count = len(stream.images)
    flops = model_flops(model, (3, 32, 32))
    gemm = {name: gemm_gflops(1, runtime=name) for name in ("torch", "onnxruntime")}
    best = max(gemm.values())
    floor = roofline_s(flops, count, best)
    gc.collect()
    gc.freeze()

    print(
        f"Stage 2, student ResNet-20: {len(images)} test + {count - len(images)} variant images "
        f"= {count}, each row in a fresh fork of a warmed parent, median of {options.repeat}"
    )
    print(f"machine: {machine()}")
    print(
        f"FLOPs: {flops / 1e6:.1f} M per image, {flops * count / 1e9:.1f} G in all; fp32 GEMM per "
        f"thread: torch {gemm['torch']:.0f} GFLOP/s, ONNX Runtime {gemm['onnxruntime']:.0f} "
        f"GFLOP/s; floor = FLOPs / {best:.0f} GFLOP/s = {floor:.3f} CPU s "
        f"({roofline_s(flops, count, gemm['torch']):.3f} against torch's GEMM alone)\n"
    )
    header = (
        f"{'threads':>7}  {'what':<34} {'wall s':>7} {'CPU s':>6} {'x floor':>8} "
        f"{'vs eager':>8} {'faults':>7}  runtime"
    )
    print(header)
    for threads in thread_counts:
        args = EvaluateArgs(weights=WEIGHTS, robustness=True, seed=seed, threads=threads)
        rows = {
            "eager PyTorch": [in_fork(eager(model, stream.images, stage2.MAX_BATCH, threads))
                              for _ in range(options.repeat)],
            "stage 2, shipped": [in_fork(shipped(folder, images, args, onnx=True))
                                 for _ in range(options.repeat)],
            "stage 2, interpreter forced": [in_fork(shipped(folder, images, args, onnx=False))
                                            for _ in range(options.repeat)],
        }  # fmt: skip
        eager_cpu = statistics.median(r["cpu_s"] for r in rows["eager PyTorch"])
        lines = []
        for name, runs in rows.items():
            parts = [("", "wall_s", "cpu_s")]
            if "logits_cpu_s" in runs[0]:
                parts.append(("  logits of the stream", "logits_wall_s", "logits_cpu_s"))
            for suffix, wall_key, cpu_key in parts:
                wall = statistics.median(r[wall_key] for r in runs)
                cpu = statistics.median(r[cpu_key] for r in runs)
                faults = statistics.median(r["faults"] for r in runs) if not suffix else 0
                what = f"{name}{':' if suffix else ''}{suffix}"[:34]
                runtime = runs[0].get("runtime", "")
                note = f" ({runs[0]['note']})" if runs[0].get("note") and suffix else ""
                lines.append(
                    f"{threads:>7}  {what:<34} {wall:7.3f} {cpu:6.3f} {cpu / floor:7.2f}x "
                    f"{cpu / eager_cpu:7.2f}x {faults:7.0f}  {runtime}{note}"
                )
        print("\n".join(lines))
        wall_floor = floor / threads
        logits_wall = statistics.median(r["logits_wall_s"] for r in rows["stage 2, shipped"])
        print(
            f"{'':>9}{load_now()}; the shipped logits' wall time against the {threads}-thread "
            f"floor ({wall_floor:.3f} s): {logits_wall / wall_floor:.2f}x"
        )


if __name__ == "__main__":
    main()
