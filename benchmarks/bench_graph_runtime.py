"""Stage 2's logits by each runtime, as a box child computes them, against the hardware floor.

The verified evaluation computes the logits of the 1017 test images and of the 616 robustness
variant images (14 variants x 44 images) in a child freshly forked from a warmed supervisor:
cold allocator, nothing cached. This benchmark does the same for the student ResNet-20 of
``resnet20_student.py``: a parent imports and warms everything once (as the box's supervisor
does), then each measurement runs in a fresh fork of it:

- **interpreter**: what ships today -- :func:`load_program`, then ``all_logits`` on the test
  images and on each variant (batches of 256, one call per variant);
- **ONNX Runtime**: :func:`load_program`, the translation :func:`to_onnx` (paid per submission,
  included), a session, and every image in one stream of batches;
- **eager PyTorch**: the student's own ``nn.Module`` on the same batches (the bare baseline).

Each at 1 and 2 threads, median of ``--repeat`` forks. Printed per row: wall seconds, CPU
seconds (user + system of the child, all its threads), the ratio to the floor and to eager, and
the logits' largest difference from the 1-thread interpreter (scaled by the largest logit).

The floor: FLOPs (torch.utils.flop_counter, 81.1 MFLOP per ResNet-20 image) divided by the
machine's fp32 GEMM throughput at that thread count -- the faster of torch's and ONNX Runtime's
1024x1024 matrix multiply (on AMD CPUs torch's MKL reaches half of what the cores do).

Usage: ``uv run python benchmarks/bench_graph_runtime.py [--repeat 3] [--threads 1,2]``
(``$GRADER_DATA_DIR``). Run it on an idle machine for figures to record; the load is printed.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from grader.data import cached_dataset
from grader.metrics import make_variants
from grader.models.inside.artifact import GRAPH_FILE, load_program
from grader.models.inside.evaluate import all_logits
from grader.models.inside.export import export_model, write_artifact, write_tensors
from grader.models.inside.onnx_graph import to_onnx
from grader.models.inside.onnx_run import (
    DEFAULT_BATCH,
    logits,
    max_scaled_difference,
    same_predictions,
    session,
)
from grader.models.inside.onnx_run import warm_up as warm_up_onnx
from grader.sandbox.inside.supervisor import wait_for

HERE = Path(__file__).resolve().parent
SHIPPED_BATCH = 256
"""The model spec's default batch size, with which the interpreter runs today."""
NUM_CLASSES = 10


def student_model() -> torch.nn.Module:
    """The benchmarks' student ResNet-20, eval mode."""
    spec = importlib.util.spec_from_file_location("student", HERE / "resnet20_student.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    return module.Net().eval()


def machine() -> str:
    """The CPU, its cores and the load average now."""
    model = platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    one, five, fifteen = os.getloadavg()
    return f"{os.cpu_count()} cpus ({model}), load {one:.1f}/{five:.1f}/{fifteen:.1f}"


def in_fork(work: Callable[[], dict], timeout_s: float = 600.0) -> dict:
    """Run ``work`` in a fresh fork of this process; its JSON result, timed in the child."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                before = resource.getrusage(resource.RUSAGE_SELF)
                started = time.perf_counter()
                result = work()
                wall = time.perf_counter() - started
                after = resource.getrusage(resource.RUSAGE_SELF)
                cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
                faults = after.ru_minflt - before.ru_minflt
                Path(out.name).write_text(
                    json.dumps({**result, "wall_s": wall, "cpu_s": cpu, "faults": faults})
                )
                code = 0
            finally:
                os._exit(code)
        returncode, timed_out = wait_for(pid, timeout_s)
        if returncode != 0 or timed_out:
            raise RuntimeError(f"the measuring child failed: exit {returncode}, {timed_out=}")
        return json.loads(Path(out.name).read_text())


def gemm_gflops(size: int = 1024, repeat: int = 8) -> dict[str, float]:
    """fp32 GFLOP/s of one thread on a ``size``-square matrix multiply, by torch and by ONNX
    Runtime: the best of ``repeat`` per CPU second (what a core does, however loaded the
    machine) and per wall second (the same on an idle machine). Measured in a fresh fork."""

    def measure() -> dict:
        from onnx import TensorProto, helper, numpy_helper

        a = torch.randn(size, size)
        b = torch.randn(size, size)
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["image", "b"], ["y"])],
            "gemm",
            [helper.make_tensor_value_info("image", TensorProto.FLOAT, [size, size])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])],
            [numpy_helper.from_array(b.numpy(), "b")],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        model.ir_version = 8
        runner = session(model, threads=1)
        calls = {
            "torch": lambda: torch.mm(a, b),
            "onnxruntime": lambda: runner.run(None, {"image": a.numpy()}),
        }
        result = {}
        for name, call in calls.items():
            call()
            cpu = wall = float("inf")
            for _ in range(repeat):
                began, began_cpu = time.perf_counter(), time.process_time()
                call()
                cpu = min(cpu, time.process_time() - began_cpu)
                wall = min(wall, time.perf_counter() - began)
            result[name] = 2 * size**3 / cpu / 1e9
            result[f"{name}_wall"] = 2 * size**3 / wall / 1e9
        return result

    return in_fork(measure)


def model_flops(model: torch.nn.Module) -> int:
    """FLOPs of one image through ``model`` (torch.utils.flop_counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 32, 32))
    return int(counter.get_total_flops())


def save(array: np.ndarray) -> dict:
    path = tempfile.NamedTemporaryFile(suffix=".npy", delete=False).name
    np.save(path, array)
    return {"logits": path}


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="forks per figure (default: 3)")
    parser.add_argument("--threads", default="1,2", help="thread counts (default: 1,2)")
    batch_help = f"ONNX Runtime's and eager's batch (default: {DEFAULT_BATCH})"
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help=batch_help)
    args = parser.parse_args(argv)
    thread_counts = [int(t) for t in args.threads.split(",")]

    # the parent, as a box's supervisor: one thread, everything imported and warmed up once
    torch.set_num_threads(1)
    images = cached_dataset("cifar10", "test").images
    started = time.process_time()
    variants = list(make_variants(images).values())
    variants_cpu = time.process_time() - started
    every = [images, *variants]
    count = sum(len(a) for a in every)
    model = student_model()
    flops = model_flops(model)
    folder = Path(tempfile.mkdtemp(prefix="bench-graph-"))
    write_tensors(
        write_artifact(export_model(model, (3, 32, 32)), folder, graph_file=GRAPH_FILE), folder
    )
    warm_up_onnx()
    gc.collect()
    gc.freeze()

    def interpreter(threads: int) -> Callable[[], dict]:
        def work() -> dict:
            torch.set_num_threads(threads)
            program = load_program(folder, device=torch.device("cpu"))
            out = [all_logits(program, a, SHIPPED_BATCH, NUM_CLASSES) for a in every]
            return save(np.concatenate(out))

        return work

    def onnx_runtime(threads: int) -> Callable[[], dict]:
        def work() -> dict:
            began = time.process_time()
            program = load_program(folder, device=torch.device("cpu"))
            model_proto = to_onnx(program)
            translated = time.process_time()
            runner = session(model_proto, threads=threads)
            ready = time.process_time()
            out = logits(runner, every, batch_size=args.batch)
            return {
                **save(np.concatenate(out)),
                "translate_s": translated - began,
                "session_s": ready - translated,
            }

        return work

    def eager(threads: int) -> Callable[[], dict]:
        def work() -> dict:
            torch.set_num_threads(threads)
            out = []
            with torch.inference_mode():
                for array in every:
                    for start in range(0, len(array), args.batch):
                        batch = np.array(array[start : start + args.batch])
                        out.append(model(torch.from_numpy(batch).float().div_(255.0)).numpy())
            return save(np.concatenate(out))

        return work

    runtimes = [
        ("interpreter (shipped)", interpreter),
        ("ONNX Runtime", onnx_runtime),
        ("eager PyTorch", eager),
    ]
    print(
        f"Stage 2's logits, student ResNet-20: {len(images)} test + {count - len(images)} "
        f"variant images = {count}, each run in a fresh fork of a warmed parent, median of "
        f"{args.repeat}"
    )
    print(f"machine: {machine()}")
    print(
        f"FLOPs: {flops / 1e6:.1f} M per image, {flops * count / 1e9:.1f} G in all; making the "
        f"variants (not timed below) {variants_cpu:.2f} CPU s"
    )
    gemm = gemm_gflops()
    per_thread = max(gemm["torch"], gemm["onnxruntime"])
    total = flops * count / 1e9
    print(
        f"fp32 GEMM, one thread, per CPU second: torch {gemm['torch']:.0f} GFLOP/s, ONNX "
        f"Runtime {gemm['onnxruntime']:.0f} GFLOP/s (per wall second {gemm['torch_wall']:.0f} "
        f"and {gemm['onnxruntime_wall']:.0f})"
    )
    cpu_floor = total / per_thread
    floors = ", ".join(f"{t} thread(s) {cpu_floor / t:.3f} s" for t in thread_counts)
    print(f"floor = FLOPs / (threads x the faster GEMM): {floors}; {cpu_floor:.3f} CPU s")
    print(f"(against torch's GEMM alone: {total / gemm['torch']:.3f} s at one thread)\n")
    print(
        f"{'threads':>7}  {'runtime':<22} {'wall s':>7} {'(min)':>7} {'CPU s':>6} "
        f"{'x floor':>7} {'x CPU floor':>11} {'vs eager':>8} {'faults':>7}  logits"
    )
    reference = None
    for t in thread_counts:
        floor = cpu_floor / t
        measured = {name: [in_fork(make(t)) for _ in range(args.repeat)] for name, make in runtimes}
        eager_wall = statistics.median(r["wall_s"] for r in measured["eager PyTorch"])
        for name, runs in measured.items():
            out = np.load(runs[-1]["logits"])
            for run in runs:
                os.unlink(run["logits"])
            reference = out if reference is None else reference
            same = "same" if same_predictions(out, reference) else "DIFFERS"
            ties = int((out.argmax(1) != reference.argmax(1)).sum())
            same += f" ({ties} tie{'s' * (ties != 1)})" if ties else ""
            wall = statistics.median(r["wall_s"] for r in runs)
            cpu = statistics.median(r["cpu_s"] for r in runs)
            faults = statistics.median(r["faults"] for r in runs)
            note = ""
            if "translate_s" in runs[0]:
                translate = statistics.median(r["translate_s"] for r in runs)
                note = f"; translation {translate:.3f} CPU s, session "
                note += f"{statistics.median(r['session_s'] for r in runs):.3f} CPU s"
            difference = max_scaled_difference(out, reference)
            print(
                f"{t:>7}  {name:<22} {wall:7.3f} {min(r['wall_s'] for r in runs):7.3f} "
                f"{cpu:6.2f} {wall / floor:6.2f}x {cpu / cpu_floor:10.2f}x "
                f"{eager_wall / wall:7.2f}x {faults:7.0f}  "
                f"max diff {difference:.1e}, argmax {same}{note}"
            )
        print(f"{'':>9}({machine().split(', ')[-1]})")


if __name__ == "__main__":
    main()
