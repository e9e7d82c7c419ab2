"""The same jobs without a box, for a student's own check on a machine without bubblewrap.

:class:`LocalWorker` has :class:`grader.sandbox.pool.BoxWorker`'s ``run`` and runs the same
tasks, each in a forked process of the caller's own user (so a model that calls ``exit()``
or crashes ends only that process) -- but unconfined: no namespaces, no uid change, no limits
beyond the wall clock. Only ``grader sanity`` uses it, on the student's own code and machine,
and says so; grading never does.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from grader.sandbox.inside.supervisor import wait_for
from grader.sandbox.inside.tasks import JobContext, load_task, reset_threads_after_fork
from grader.sandbox.pool import JobResult, machine_cores
from grader.sandbox.protocol import Limits

LOG_BYTES = 64 * 1024


class LocalWorker:
    """Runs jobs in forked, unconfined processes of this user (see the module docstring)."""

    sandboxed = False

    def __init__(self, *, images: np.ndarray | None = None) -> None:
        self.images = images
        self.core_share = machine_cores()
        """Cores a job may compute with: the machine's (one job at a time)."""

    def __enter__(self) -> LocalWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def run(
        self,
        task: str,
        *,
        files: dict[str, Path],
        limits: Limits,
        args: dict[str, Any] | None = None,
        out: Path,
    ) -> JobResult:
        """Run ``task`` on a copy of ``files`` in a forked process; its outputs land in ``out``."""
        out.mkdir(parents=True, exist_ok=True)
        function = load_task(task)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="grader-local-") as tmp:
            work = Path(tmp) / "work"
            work.mkdir()
            for name, source in files.items():
                (work / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, work / name)
            log = Path(tmp) / "log.txt"
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    reset_threads_after_fork()
                    fd = os.open(log, os.O_WRONLY | os.O_CREAT, 0o600)
                    os.dup2(fd, 1)
                    os.dup2(fd, 2)
                    os.chdir(work)
                    function(JobContext(work, out, dict(args or {}), self.images))
                    code = 0
                except BaseException:  # nothing may return into the caller from the fork
                    traceback.print_exc()
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            returncode, timed_out = wait_for(pid, limits.wall_s)
            text = log.read_bytes()[:LOG_BYTES].decode(errors="replace") if log.exists() else ""
        outputs = sorted(p.name for p in out.iterdir())
        return JobResult(
            returncode, timed_out, time.perf_counter() - started, out, outputs, [], text
        )
