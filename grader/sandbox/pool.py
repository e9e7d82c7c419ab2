"""Boxes on the host side: a jailed worker per box, and a pool of them kept warm between jobs.

A :class:`BoxWorker` starts ONE bubblewrap box (:mod:`grader.sandbox.jail`) whose supervisor
(:mod:`grader.sandbox.inside.supervisor`) imports torch once and forks a confined child per job.
For a job the host stages the input files in a root-only folder, sends one
:class:`~grader.sandbox.protocol.JobRequest` line, and reads one
:class:`~grader.sandbox.protocol.JobAnswer` line back; the files the child handed back are then
moved to a folder the caller owns. Every job runs as a uid of this process's range
(:mod:`grader.sandbox.uids`), never used by another grader process on the machine.

A :class:`BoxPool` lends workers to threads (one job at a time per worker) and keeps them
running until it is closed, so a batch or a leaderboard worker pays the box start once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from grader.sandbox.jail import (
    BoxLayout,
    SandboxUnavailable,
    box_command,
    bubblewrap_available,
)
from grader.sandbox.protocol import (
    JobAnswer,
    JobRequest,
    Limits,
    ProtocolError,
    Ready,
    encode_line,
    parse_json,
    parse_record,
    read_bytes,
)
from grader.sandbox.uids import process_uids

if TYPE_CHECKING:
    from grader.sandbox.gpu import GpuDevice

logger = logging.getLogger(__name__)
GRACE_S = 60.0
"""How much longer than a job's wall-clock limit the host waits for the supervisor's answer."""
STARTUP_S = 600.0
LOG_NAME = "log.txt"
MAX_LOG_BYTES = 96 * 1024
MAX_LINE_BYTES = 1 << 20


def machine_cores(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """The cores this process may run on (its CPU affinity, within a cgroup's CPU quota): the
    number of boxes that keep the machine busy without making them take turns."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, _cgroup_cpu_quota(cgroup_root) or cores))


def _cgroup_cpu_quota(root: Path) -> int | None:
    """Whole cores a cgroup's CPU limit allows (v2 ``cpu.max``, v1 ``cfs_quota_us``), if any."""
    candidates = (
        (root / "cpu.max", None),
        (root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us"),
    )
    for quota_file, period_file in candidates:
        try:
            text = quota_file.read_text().split()
            quota = text[0]
            period = text[1] if period_file is None else period_file.read_text().strip()
        except (OSError, IndexError):
            continue
        if quota in ("max", "-1"):
            return None
        try:
            return max(1, int(int(quota) // int(period)))
        except (ValueError, ZeroDivisionError):
            return None
    return None


class BoxError(RuntimeError):
    """A box could not start or stopped answering; the message holds the end of its log."""


@dataclass
class JobResult:
    """How one job ended, and the folder holding the files its child handed back."""

    returncode: int
    timed_out: bool
    wall_s: float
    out: Path
    """The handed-back files (``outputs``); owned by the caller from now on."""
    outputs: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    log: str = ""
    """The start and end of the child's stdout and stderr."""
    error: str = ""
    """Set when the box could not run the job (the submission is not at fault)."""

    @property
    def killed(self) -> bool:
        """Whether the child was killed by a signal (a limit, or a crash in native code)."""
        return self.returncode < 0


class BoxWorker:
    """One jailed supervisor that runs jobs one after another, each in a fresh child.

    ``images`` (uint8, N x C x H x W) are loaded once into the box; ``warm_up`` (JSON-able)
    tells the stages what to warm up. Use as a context manager, or call :meth:`close`. One job
    at a time: a :class:`BoxPool` gives each thread its own worker.
    """

    sandboxed = True

    def __init__(
        self,
        *,
        images: np.ndarray | None = None,
        warm_up: dict[str, Any] | None = None,
        children_mb: int = 2048,
        gpu: GpuDevice | None = None,
        threads: int = 1,
        startup_s: float = STARTUP_S,
    ) -> None:
        self.images, self.warm_up = images, warm_up or {}
        self.children_mb, self.gpu, self.threads = children_mb, gpu, threads
        self.startup_s = startup_s
        self.core_share = 1
        """Cores a job may compute with (a pool sets its boxes' fair share of the machine);
        the box's own thread settings (``threads``) stay as they are."""
        self.ready: Ready | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._answers: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._log = bytearray()
        self._jobs = 0
        self._lock = threading.Lock()
        self._retired = False

    def __enter__(self) -> BoxWorker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        """Whether the box is up."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the box and wait until its supervisor is warm; BoxError when it cannot."""
        if not bubblewrap_available():
            raise SandboxUnavailable()
        if self._retired:
            raise BoxError("the pool holding this box was closed")
        if self.running:
            return
        self.close()  # a box that stopped: its process and folder go before the new one starts
        began = time.perf_counter()
        self._tmp = tempfile.TemporaryDirectory(prefix="grader-box-")
        root = Path(self._tmp.name)
        inputs, jobs = root / "in", root / "jobs"
        inputs.mkdir()
        jobs.mkdir(mode=0o700)
        if self.images is not None:
            np.save(inputs / "images.npy", np.ascontiguousarray(self.images), allow_pickle=False)
        (inputs / "supervisor.json").write_bytes(encode_line({"warm_up": self.warm_up}))
        for path in (root, inputs, *inputs.iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        layout = BoxLayout(inputs=inputs, jobs=jobs, children_mb=self.children_mb)
        command = box_command(
            layout,
            entry="from grader.sandbox.inside.supervisor import main; sys.exit(main())",
            threads=self.threads,
            gpu=self.gpu,
        )
        self._log = bytearray()
        self._answers = queue.SimpleQueue()
        self._proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env={"PATH": "/usr/bin:/bin"},
        )
        if self._retired:  # closed while this box was being started: stop it again
            self.close()
            raise BoxError("the pool holding this box was closed")
        threading.Thread(target=self._read_answers, args=(self._proc.stdout,), daemon=True).start()
        threading.Thread(target=self._read_log, args=(self._proc.stderr,), daemon=True).start()
        line = self._answer(self.startup_s)
        try:
            ready = parse_record(parse_json(line or b"{}", name="box start"), Ready, name="box")
        except ProtocolError as exc:
            ready = Ready(False, error=str(exc))
        if not ready.ready:
            log = self.log_tail()
            self.close()
            raise BoxError(f"{ready.error or 'the box did not start'}\n{log}")
        self.ready = ready
        logger.info("box started in %.1f s", time.perf_counter() - began)

    def run(
        self,
        task: str,
        *,
        files: dict[str, Path],
        limits: Limits,
        args: dict[str, Any] | None = None,
        out: Path,
    ) -> JobResult:
        """Run ``task`` in a fresh child on a copy of ``files`` (name in the box -> host path,
        staged by the caller: plain files checked by :mod:`grader.sandbox.staging`).

        The handed-back files land in the new folder ``out``. A box that stops answering
        becomes a result with ``error`` set and is restarted for the next job.
        """
        with self._lock:
            try:
                self.start()
            except BoxError as exc:  # the grader's failure, reported as this job's
                return JobResult(-1, False, 0.0, _empty(out), error=f"the box did not start: {exc}")
            if self._tmp is None or self._proc is None or self._proc.stdin is None:
                raise BoxError("the box is not running")
            self._jobs += 1
            name = str(self._jobs)
            staged = Path(self._tmp.name) / "jobs" / name
            uid = process_uids().take()
            try:
                _stage_files(files, staged / "in")
                (staged / "out").mkdir()
                request = JobRequest(name, task, uid, limits, dict(args or {}))
                self._proc.stdin.write(encode_line(request))
                self._proc.stdin.flush()
                line = self._answer(limits.wall_s + GRACE_S)
                answer = self._parse_answer(line, name)
                if answer is None:
                    log = self.log_tail()
                    self.close()
                    return JobResult(
                        -1,
                        False,
                        limits.wall_s,
                        _empty(out),
                        log=log,
                        error="the box stopped answering; it is restarted for the next job",
                    )
                if answer.error:
                    return JobResult(-1, False, 0.0, _empty(out), error=answer.error)
                return self._result(answer, staged / "out", out)
            except (BrokenPipeError, OSError) as exc:
                log = self.log_tail()
                self.close()
                return JobResult(
                    -1, False, 0.0, _empty(out), log=log, error=f"the box failed: {exc}"
                )
            finally:
                process_uids().release(uid)
                shutil.rmtree(staged, ignore_errors=True)

    def warm(self) -> None:
        """Start the box now and stay with it until it stops (call it in a thread of its own).

        bubblewrap's ``--die-with-parent`` ends the box when the *thread* that started it ends,
        so the starting thread waits for the box. A box that fails to start is left for the next
        job to report (see :meth:`run`).
        """
        with self._lock:
            try:
                self.start()
            except (BoxError, SandboxUnavailable, OSError):
                return
            proc = self._proc
        if proc is not None:
            proc.wait()

    def retire(self) -> None:
        """Stop the box for good: a later start (a warm-up still under way) refuses."""
        self._retired = True
        self.close()

    def close(self) -> None:
        """Stop the box (every child with it) and remove its folders; the next job starts it
        again."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
            proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    with contextlib.suppress(BrokenPipeError, OSError):
                        stream.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def log_tail(self) -> str:
        """The end of the supervisor's own stderr (start-up failures)."""
        return bytes(self._log[-4000:]).decode(errors="replace")

    # --- internals -------------------------------------------------------------------------------

    def _read_answers(self, stream: Any) -> None:
        # close() may close the pipe under this thread: that ends the stream too
        with contextlib.suppress(ValueError, OSError):
            for line in iter(lambda: stream.readline(MAX_LINE_BYTES), b""):
                self._answers.put(line)
        self._answers.put(None)  # end of stream: the box is gone

    def _read_log(self, stream: Any) -> None:
        with contextlib.suppress(ValueError, OSError):
            for chunk in iter(lambda: stream.read1(65536), b""):
                self._log += chunk
                del self._log[:-MAX_LOG_BYTES]

    def _answer(self, timeout: float) -> bytes | None:
        try:
            return self._answers.get(timeout=timeout)
        except queue.Empty:
            return None

    @staticmethod
    def _parse_answer(line: bytes | None, name: str) -> JobAnswer | None:
        if line is None:
            return None
        try:
            answer = parse_record(parse_json(line, name="job answer"), JobAnswer, name="answer")
        except ProtocolError:
            return None
        return answer if answer.job == name else None

    def _result(self, answer: JobAnswer, staged_out: Path, out: Path) -> JobResult:
        out = _empty(out)
        log = ""
        if (staged_out / LOG_NAME).is_file():
            try:
                log = read_bytes(staged_out / LOG_NAME, max_bytes=MAX_LOG_BYTES).decode(
                    errors="replace"
                )
            except ProtocolError:
                log = ""
        outputs = []
        for name in answer.outputs:
            source = staged_out / name
            if "/" in name or not source.is_file() or source.is_symlink():
                continue
            shutil.move(source, out / name)
            outputs.append(name)
        return JobResult(
            answer.returncode, answer.timed_out, answer.wall_s, out, outputs, answer.dropped, log
        )


def _empty(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _stage_files(files: dict[str, Path], target: Path) -> None:
    target.mkdir(parents=True)
    for name, source in files.items():
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"staged name {name!r} must be a relative path inside the job")
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, destination)  # same file system: no copy
        except OSError:
            shutil.copyfile(source, destination)
    for folder, dirs, names in os.walk(target):
        for entry in (folder, *(os.path.join(folder, n) for n in dirs + names)):
            os.chmod(entry, 0o755 if os.path.isdir(entry) else 0o644)


class BoxPool:
    """Up to ``size`` :class:`BoxWorker` s holding the same images, lent one per thread.

    Workers start on first use (or all at once, in the background, with :meth:`warm`) and keep
    running between jobs until :meth:`close`. Once warmed, a worker whose box stopped (a job that
    killed it) is started again in the background as soon as it is handed back.
    """

    def __init__(
        self,
        *,
        size: int = 1,
        images: np.ndarray | None = None,
        warm_up: dict[str, Any] | None = None,
        gpu: GpuDevice | None = None,
        children_mb: int = 2048,
    ) -> None:
        self.size = max(1, int(size))
        self.images, self.warm_up, self.gpu = images, warm_up, gpu
        self.children_mb = children_mb
        self._idle: queue.SimpleQueue[BoxWorker] = queue.SimpleQueue()
        self._all: list[BoxWorker] = []
        self._lock = threading.Lock()
        self._keep_warm = False
        self._closed = False
        share = max(1, machine_cores() // self.size)
        for _ in range(self.size):
            worker = BoxWorker(images=images, warm_up=warm_up, gpu=gpu, children_mb=children_mb)
            worker.core_share = share
            self._all.append(worker)
            self._idle.put(worker)

    def __enter__(self) -> BoxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def worker(self) -> Iterator[BoxWorker]:
        """Borrow a worker for a sequence of jobs (e.g. the stages of one submission)."""
        worker = self._idle.get()
        try:
            yield worker
        finally:
            if self._keep_warm and not self._closed and not worker.running:
                self._start_in_background(worker)
            self._idle.put(worker)

    @property
    def running(self) -> int:
        """How many of the pool's boxes are up."""
        return sum(worker.running for worker in self._all)

    def warm(self) -> None:
        """Start every worker's box now, in background threads, and keep them started."""
        self._keep_warm = True
        for worker in self._all:
            if not worker.running:
                self._start_in_background(worker)

    def _start_in_background(self, worker: BoxWorker) -> None:
        threading.Thread(target=worker.warm, name="box-warm-up", daemon=True).start()

    def close(self) -> None:
        """Stop every worker's box."""
        with self._lock:
            self._closed = True
            for worker in self._all:
                worker.retire()
