"""Running a trusted task on a submission in a box, and reading back what it returned.

The generic protocol of :mod:`grader.sandbox.inside.tasks`: the task is a ``grader.*`` function
that runs in the box next to the student's imported module and returns a dict and arrays. Its
process is the student's, so :class:`TaskResult` holds untrusted data: callers check the values
or compare arrays with results they compute themselves, outside the box.
"""

from __future__ import annotations

import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grader.grading.intake import IntakeError
from grader.grading.status import GradeStatus
from grader.sandbox.inside.tasks import INPUTS_DIR, REPORT_NAME
from grader.sandbox.pool import BoxPool, BoxWorker, JobResult
from grader.sandbox.protocol import Limits, ProtocolError, read_array, read_record
from grader.sandbox.staging import stage_submission

ARRAY_DTYPES = ("float32", "float64", "int64", "int32", "uint8", "bool")


@dataclass(frozen=True)
class TaskReport:
    """``report.json`` of a trusted task (written in the student's process: untrusted)."""

    status: GradeStatus
    message: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    arrays: list[str] = field(default_factory=list)


@dataclass
class TaskResult:
    """What came back from one task."""

    status: GradeStatus
    """``invalid`` too when the task ran out of time or was killed (the message says which)."""
    message: str
    result: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    wall_s: float = 0.0
    log: str = ""
    timed_out: bool = False
    """The task was stopped at the wall-clock limit before it reported."""
    killed: bool = False
    """The task's process was killed by a signal (a limit, or a crash) before it reported."""
    """The start and end of the task's stdout and stderr, for instructors."""


def run_task(
    folder: Path,
    *,
    task: str,
    args: dict[str, Any] | None = None,
    limits: Limits | None = None,
    inputs: dict[str, np.ndarray] | None = None,
    pool: BoxPool | None = None,
    worker: BoxWorker | None = None,
) -> TaskResult:
    """Run the trusted ``task`` (``grader.module:function``) on a copy of the submission in
    ``folder``, with ``inputs`` as ``.npy`` files; a box is started unless one is given."""
    started = time.perf_counter()
    limits = limits or Limits()
    with tempfile.TemporaryDirectory(prefix="grader-task-") as tmp:
        work = Path(tmp)
        try:
            stage_submission(Path(folder), work / "submission")
        except (IntakeError, OSError) as exc:
            return TaskResult(GradeStatus.INVALID, str(exc))
        (work / "submission" / INPUTS_DIR).mkdir(exist_ok=True)
        for name, array in (inputs or {}).items():
            if not name.isidentifier():
                raise ValueError(f"input name {name!r} must be a Python identifier")
            np.save(
                work / "submission" / INPUTS_DIR / f"{name}.npy",
                np.ascontiguousarray(array),
                allow_pickle=False,
            )
        root = work / "submission"
        files = {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}
        if worker is not None:
            job = worker.run(task, files=files, limits=limits, args=args, out=work / "out")
        elif pool is not None:
            with pool.worker() as borrowed:
                job = borrowed.run(task, files=files, limits=limits, args=args, out=work / "out")
        else:
            with BoxWorker() as own:
                job = own.run(task, files=files, limits=limits, args=args, out=work / "out")
        result = read_task_result(job, limits)
    result.wall_s = time.perf_counter() - started
    return result


def read_task_result(job: JobResult, limits: Limits) -> TaskResult:
    """Turn a finished job of the generic protocol into a :class:`TaskResult`."""
    if job.error:
        return TaskResult(GradeStatus.ERROR, job.error, log=job.log)
    try:
        report = read_record(job.out / REPORT_NAME, TaskReport)
    except ProtocolError as exc:
        return TaskResult(
            GradeStatus.INVALID,
            ended_message(job, limits, exc),
            log=job.log,
            timed_out=job.timed_out,
            killed=job.killed and not job.timed_out,
        )
    arrays: dict[str, np.ndarray] = {}
    for name in report.arrays if report.status is GradeStatus.OK else []:
        if not name.isidentifier():
            return TaskResult(
                GradeStatus.INVALID, f"output array {name[:40]!r} has a bad name", log=job.log
            )
        try:
            arrays[name] = read_array(
                job.out / f"{name}.npy",
                dtypes=ARRAY_DTYPES,
                max_bytes=limits.output_mb * 1024 * 1024,
            )
        except ProtocolError as exc:
            return TaskResult(GradeStatus.INVALID, f"output array {name}: {exc}", log=job.log)
    return TaskResult(
        report.status, report.message, dict(report.result), arrays, job.wall_s, job.log
    )


def ended_message(
    job: JobResult, limits: Limits, problem: Exception, what: str = "the submission's process"
) -> str:
    """Why a job wrote no usable report: out of time, killed by a limit, or ended early."""
    if job.timed_out:
        return f"{what} was stopped after the wall-clock limit of {limits.wall_s:g} s"
    code = job.returncode
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = {
            "SIGKILL": f" (CPU limit {limits.cpu_s} s, or out of memory)",
            "SIGXCPU": f" (CPU limit {limits.cpu_s} s)",
            "SIGSEGV": " (a crash in native code)",
            "SIGXFSZ": f" (file size limit {limits.fsize_mb} MB)",
        }.get(name, "")
        return f"{what} was killed by {name}{hint} before it reported a result"
    if code != 0 or "is missing" in str(problem):
        return (
            f"{what} exited (code {code}) before it reported a result: does the submission call "
            "exit() or os._exit()?"
        )
    return f"{what} wrote a malformed report ({problem})"
