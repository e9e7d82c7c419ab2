"""What every benchmark here needs to say about its figures: the machine and its load, CPU seconds
of a command WITH the processes it killed, and the roofline floor of a model evaluation.

- :func:`machine` names the CPU, its cores and the load average (print it beside each figure).
- :func:`run_counted` runs a command in its own cgroup and reads the cgroup's CPU total after it
  ends. A box's supervisor and children are SIGKILLed by the host rather than reaped, so the
  kernel never adds their time to any parent's ``RUSAGE_CHILDREN``; a cgroup keeps counting the
  time of every task that ever ran in it. Where no cgroup can be made (not root), a sampler reads
  ``/proc/<pid>/stat`` of every descendant every 20 ms, which misses at most the last 20 ms of
  each killed process, and says so.
- :func:`gemm_gflops` measures this machine's fp32 matrix-multiply throughput; :func:`roofline_s`
  turns FLOPs into the floor a runtime cannot beat (FLOPs / GEMM throughput).

Imported by the scripts in this folder (``python benchmarks/bench_x.py`` puts it on the path).
"""

from __future__ import annotations

import os
import platform
import subprocess
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CGROUP_V1 = Path("/sys/fs/cgroup/cpuacct")
CGROUP_V2 = Path("/sys/fs/cgroup")
TICK = os.sysconf("SC_CLK_TCK")


def machine() -> str:
    """``2 cpus (Intel Xeon ...), load 0.4/0.6/0.9``: the machine and its load now."""
    model = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    one, five, fifteen = os.getloadavg()
    return f"{os.cpu_count()} cpus ({model}), load {one:.1f}/{five:.1f}/{fifteen:.1f}"


def load_now() -> str:
    """The 1-minute load average, for a figure's line."""
    return f"load {os.getloadavg()[0]:.1f}"


@dataclass(frozen=True)
class Counted:
    """A finished command: wall seconds, CPU seconds of its whole process tree, how counted."""

    wall_s: float
    cpu_s: float
    method: str
    returncode: int
    stdout: str
    stderr: str


class _Cgroup:
    """A transient cpuacct cgroup (v1) or cgroup (v2) whose CPU total survives its tasks."""

    def __init__(self) -> None:
        name = f"grader-bench-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        if (CGROUP_V1 / "cpuacct.usage").exists():
            self.path, self.v2 = CGROUP_V1 / name, False
        elif (CGROUP_V2 / "cgroup.controllers").exists():
            self.path, self.v2 = CGROUP_V2 / name, True
        else:
            raise OSError("no cpuacct cgroup hierarchy")
        self.path.mkdir()

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def cpu_s(self) -> float:
        if self.v2:
            for line in (self.path / "cpu.stat").read_text().splitlines():
                key, value = line.split()
                if key == "usage_usec":
                    return int(value) / 1e6
            raise OSError("cpu.stat has no usage_usec")
        return int((self.path / "cpuacct.usage").read_text()) / 1e9

    def remove(self) -> None:
        for _ in range(50):  # tasks killed a moment ago may still be leaving
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def _descendants() -> dict[int, int]:
    """pid -> parent pid of every process now running."""
    parents = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            parents[int(entry.name)] = int(fields[1])
    return parents


def _cpu_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime + stime of the process itself


def _sample_tree(root: int, seen: dict[int, int], stop: threading.Event) -> None:
    while not stop.wait(0.02):
        parents = _descendants()
        tree, frontier = {root}, [root]
        while frontier:
            parent = frontier.pop()
            children = [pid for pid, ppid in parents.items() if ppid == parent]
            tree.update(children)
            frontier.extend(children)
        for pid in tree:
            ticks = _cpu_ticks(pid)
            if ticks is not None:
                seen[pid] = max(seen.get(pid, 0), ticks)


def run_counted(
    command: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Counted:
    """Run ``command`` to its end; its wall time and the CPU time of every process it started,
    killed ones included (see the module docstring)."""
    try:
        group: _Cgroup | None = _Cgroup()
    except OSError:
        group = None
    started = time.perf_counter()
    if group is not None:
        # the child joins the cgroup before exec, so everything it starts is counted
        proc = subprocess.Popen(
            command, env=env, cwd=cwd, text=True, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, preexec_fn=lambda: group.add(os.getpid()),
        )  # fmt: skip
        stdout, stderr = proc.communicate()
        wall = time.perf_counter() - started
        cpu = group.cpu_s()
        group.remove()
        method = "cgroup"
    else:
        seen: dict[int, int] = {}
        stop = threading.Event()
        proc = subprocess.Popen(
            command, env=env, cwd=cwd, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        sampler = threading.Thread(target=_sample_tree, args=(proc.pid, seen, stop), daemon=True)
        sampler.start()
        stdout, stderr = proc.communicate()
        wall = time.perf_counter() - started
        stop.set()
        sampler.join()
        cpu = sum(seen.values()) / TICK
        method = "/proc sampling every 20 ms (no cgroup: killed processes may be undercounted)"
    return Counted(wall, cpu, method, proc.returncode, stdout, stderr)


def gemm_gflops(
    threads: int = 1, size: int = 1024, repeat: int = 8, *, runtime: str = "torch"
) -> float:
    """fp32 GFLOP/s of ``size``-square matrix multiplies at ``threads`` intra-op threads (the
    best of ``repeat``: the machine's throughput, not its noise), by torch or by ONNX Runtime
    (``runtime="onnxruntime"``: its MLAS kernels, which on some CPUs reach twice torch's). At 1
    thread the time is the thread's CPU time, so other jobs on the machine do not lower the
    figure."""
    import torch

    clock = time.thread_time if threads == 1 else time.perf_counter
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(size, size), torch.randn(size, size)
        multiply = _onnx_matmul(b.numpy(), a.numpy(), threads) if runtime != "torch" else None
        call = multiply or (lambda: torch.mm(a, b))
        call()
        best = float("inf")
        for _ in range(repeat):
            began = clock()
            call()
            best = min(best, clock() - began)
    finally:
        torch.set_num_threads(before)
    return 2 * size**3 / best / 1e9


def _onnx_matmul(b, a, threads: int):
    """A call that multiplies ``a`` by ``b`` in an ONNX Runtime session of ``threads``."""
    from onnx import TensorProto, helper, numpy_helper

    from grader.models.inside.onnx_graph import IR_VERSION, OPSET
    from grader.models.inside.onnx_run import session

    shape = list(a.shape)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["y"])],
        "gemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        [numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    runner = session(model, threads=threads)
    return lambda: runner.run(None, {"a": a})


def in_fork(work, timeout_s: float = 600.0) -> dict:
    """Run ``work()`` (returning a JSON-able dict) in a fresh fork of this process, as a box's
    supervisor forks a job; its result with the child's wall and CPU seconds (every thread) and
    minor page faults. The child rebuilds torch's thread pool first, as a box child does."""
    import json
    import resource
    import tempfile

    from grader.sandbox.inside.supervisor import wait_for
    from grader.sandbox.inside.tasks import reset_threads_after_fork

    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                reset_threads_after_fork()
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


def model_flops(model, image_shape: Sequence[int]) -> int:
    """FLOPs of one image through ``model`` (torch.utils.flop_counter, eval mode)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *image_shape))
    return int(counter.get_total_flops())


def roofline_s(flops_per_image: int, images: int, gflops: float) -> float:
    """The floor: seconds to do ``images`` x ``flops_per_image`` at ``gflops`` GFLOP/s."""
    return flops_per_image * images / (gflops * 1e9)
