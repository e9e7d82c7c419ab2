"""The tasks a box's children can run, and the generic protocol of a trusted task (INSIDE a box).

A job names its task. The model-grading stages (:data:`TASKS`) are functions of a
:class:`JobContext` that write their own output files. Any other ``grader.<module>:<function>``
is a *trusted task* in the generic protocol of :func:`run_trusted_task`: it is called with a
:class:`TaskContext` in which the student's module is already imported, returns a JSON-able dict,
saves arrays with :meth:`TaskContext.save_array`, and the wrapper writes ``report.json``. The
student's code shares that process, so the host treats every value of ``report.json`` as
untrusted data: it checks them, or compares arrays with values it computed itself.
"""

from __future__ import annotations

import importlib
import json
import os
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grader.sandbox.inside.student import StudentError, describe_error, import_student_module

TASKS: dict[str, str] = {
    "capture": "grader.models.inside.capture:capture_task",
    "evaluate": "grader.models.inside.evaluate:evaluate_task",
    "unverified": "grader.models.inside.unverified:unverified_task",
    "train": "grader.models.inside.training:train_task",
}
"""Short names of the model-grading stages -> "module:function"."""
REPORT_NAME = "report.json"
INPUTS_DIR = "inputs"


@dataclass
class JobContext:
    """What a task gets in the child: its private folders, its args and the box's images."""

    work: Path
    """The private copy of the staged files; the current directory."""
    out: Path
    """Files written here are handed back to the host (flat, size-capped)."""
    args: dict[str, Any]
    images: np.ndarray | None
    """The box's test images (uint8, N x C x H x W), read-only; None when it holds none."""


@dataclass
class TaskContext:
    """What a trusted task of the generic protocol gets."""

    work_dir: Path
    output_dir: Path
    args: dict[str, Any]
    inputs: dict[str, np.ndarray]
    """Arrays the host staged for this job (``.npy``, never pickled)."""
    module: types.ModuleType | None
    """The student's imported module (``args["module"]``, default ``model.py``), if present."""
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def save_array(self, name: str, array: np.ndarray) -> None:
        """Hand ``array`` back to the host as ``TaskResult.arrays[name]``."""
        if not name.isidentifier():
            raise ValueError(f"array name {name!r} must be a Python identifier")
        self.arrays[name] = np.asarray(array)


def load_task(name: str) -> Callable[[JobContext], None]:
    """The task function for a job's task name (a stage name, or a trusted grader task)."""
    target = TASKS.get(name, name)
    module_name, _, attr = target.partition(":")
    if not module_name.startswith("grader.") or not attr:
        raise ValueError(f"task {name!r} is not grader code")
    function = getattr(importlib.import_module(module_name), attr)
    if name in TASKS:
        return function
    return lambda ctx: run_trusted_task(function, ctx)


def preload(warm_up: dict[str, Any]) -> float:
    """Import every stage and let each warm up (torch's lazy kernels, the exporter), so that
    no child pays for it; returns the time at which the imports were done."""
    import torch

    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set
    import pyseccomp  # noqa: F401  (the children load their filter with it)

    modules = [importlib.import_module(t.partition(":")[0]) for t in TASKS.values()]
    imported = time.perf_counter()
    for module in modules:
        hook = getattr(module, "warm_up", None)
        if callable(hook):
            hook(warm_up)
    return imported


def reset_threads_after_fork() -> None:
    """Rebuild torch's thread pool in a freshly forked child, in its main thread.

    torch replaces a forked child's thread pool on first use; when that first use comes from two
    threads at once (the autograd engine starts one on the first backward) one of them can find
    no pool and abort the process. Setting the thread count here, before any other thread
    exists, makes the first use single-threaded.
    """
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))


def run_trusted_task(function: Callable[[TaskContext], dict[str, Any]], job: JobContext) -> None:
    """Run a generic trusted task and write its ``report.json`` (status ok, invalid or error)."""
    ctx = TaskContext(job.work, job.out, job.args, {}, None)
    status, message, result = "ok", "", {}
    try:
        ctx.inputs = _load_inputs(job.work / INPUTS_DIR)
        module_file = str(job.args.get("module", "model.py"))
        if (job.work / module_file).is_file():
            ctx.module = import_student_module(job.work, module_file)
        result = function(ctx)
    except StudentError as exc:
        status, message = "invalid", str(exc)
    except MemoryError:
        status, message = "invalid", "the submission ran out of memory inside the sandbox"
    except SystemExit as exc:
        status, message = "invalid", f"the submission called exit() ({describe_error(exc)})"
    except BaseException as exc:  # the task's own failure becomes a report, never a crash
        status, message = "error", f"the check failed: {describe_error(exc)}"
    arrays = sorted(ctx.arrays) if status == "ok" else []
    for name in arrays:
        np.save(job.out / f"{name}.npy", ctx.arrays[name], allow_pickle=False)
    report = {"status": status, "message": message, "result": result, "arrays": arrays}
    tmp = job.out / f"{REPORT_NAME}.part"
    tmp.write_text(json.dumps(report, default=_json_default), encoding="utf-8")
    tmp.replace(job.out / REPORT_NAME)


def import_task(ctx: TaskContext) -> dict[str, Any]:
    """The lightest trusted task: the student's module is imported (by the wrapper); report it."""
    return {"imported": ctx.module is not None}


def _load_inputs(folder: Path) -> dict[str, np.ndarray]:
    if not folder.is_dir():
        return {}
    return {p.stem: np.load(p, allow_pickle=False) for p in sorted(folder.glob("*.npy"))}


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
