"""A pre-forked jailed worker: one bubblewrap box per batch, one forked child per submission.

:func:`grader.sandbox.run_task` starts a box per submission and each box pays a cold
``import torch``. A :class:`Zygote` starts ONE box (same namespaces, read-only root, cleared
environment, no network) whose trusted worker (:mod:`grader.zygote_box`) imports torch and the
task once and keeps the test images in memory; each submission then costs a fork. Each child
runs under its own uid (never reused within a worker), in a private 0700 directory on the box's
tmpfs, with the same rlimits, seccomp filter and check task as a per-submission box, and a
wall-clock timeout after which every process of its uid is killed. Labels never enter the box.

The host stages a COPY of the submission (symlinks left behind) in a 0700 folder bound into the
box, sends one JSON line per job and reads one back; results are read from the job's folder with
the same size and symlink checks as :mod:`grader.sandbox`.
"""

from __future__ import annotations

import dataclasses
import json
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from grader.sandbox import (
    BOX_LIB,
    Limits,
    SandboxUnavailable,
    TaskResult,
    _CappedLog,
    _collect,
    _drain,
    _kill_group,
    _mount_points,
    _symlinks,
    bubblewrap_available,
    jail_args,
    read_only_binds,
)

ZYGOTE_BASE_UID = 100000
"""Uid of the first child of slot 0's worker; children of slot ``s`` use the next UIDS_PER_SLOT."""
UIDS_PER_SLOT = 10000
CAPABILITIES = ("CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER",
                "CAP_KILL")  # fmt: skip
"""What the worker keeps (to hand each child a uid and a folder, and to clean up after it)."""
CHILD_SETUP_FAILED = (70, 71)
"""Exit codes of a child whose confinement failed before the task started."""
GRACE_S = 60.0
"""How much longer than a job's wall-clock limit the host waits for the worker's answer."""


class ZygoteError(RuntimeError):
    """The worker could not start; the message holds its reason and the end of its log."""


class Zygote:
    """One jailed worker that grades submissions one after another by forking.

    ``warm_up`` (the check's args, :func:`grader.modelgrade.model_spec_args`) names the
    assignment's reference model: the worker runs it once at start so that each child finds
    the CPU kernels and fingerprints of a submission of that shape ready.

    Use as a context manager, or call :meth:`close`. Not for concurrent use: give each thread
    of a batch its own worker (its own ``slot``).
    """

    def __init__(
        self,
        *,
        task: str = "grader.modelcheck:check_task",
        images: np.ndarray | None = None,
        slot: int = 0,
        warm_up: dict[str, Any] | None = None,
        tmpfs_mb: int = 1024,
        startup_s: float = 600.0,
    ) -> None:
        self.task, self.images, self.slot = task, images, int(slot)
        self.warm_up = warm_up
        self.tmpfs_mb, self.startup_s = tmpfs_mb, startup_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._answers: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._log = _CappedLog()
        self._jobs = 0
        self._base_vm_mb = 0
        self.startup: dict[str, float] = {}
        """Seconds the worker spent importing (``import_s``) and warming up (``warm_up_s``)."""
        self._lock = threading.Lock()

    def __enter__(self) -> Zygote:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        """Whether the worker's box is up."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the box and wait until the worker has imported torch; ZygoteError if it fails."""
        if not bubblewrap_available():
            raise SandboxUnavailable()
        if self.running:
            return
        self._tmp = tempfile.TemporaryDirectory(prefix="grader-zygote-")
        root = Path(self._tmp.name)
        (root / "in").mkdir()
        (root / "jobs").mkdir(mode=0o700)
        if self.images is not None:
            np.save(root / "in" / "images.npy", np.ascontiguousarray(self.images))
        config = {"task": self.task, "images": self.images is not None, "warm_up": self.warm_up}
        (root / "in" / "zygote.json").write_text(json.dumps(config), encoding="utf-8")
        for path in (root, root / "in", *(root / "in").iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        self._log = _CappedLog()
        self._answers = queue.SimpleQueue()
        self._proc = subprocess.Popen(
            self._command(root),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env={"PATH": "/usr/bin:/bin"},
        )
        threading.Thread(target=self._read_answers, args=(self._proc.stdout,), daemon=True).start()
        threading.Thread(target=_drain, args=(self._proc.stderr, self._log), daemon=True).start()
        ready = self._answer(self.startup_s)
        if not ready or not ready.get("ready"):
            reason = (ready or {}).get("error", "the worker did not start")
            self.close()
            raise ZygoteError(f"{reason}\n{self._log.text()[-4000:]}")
        self._base_vm_mb = int(ready.get("vm_mb", 0))
        self.startup = {k: v for k, v in ready.items() if k.endswith("_s")}

    def run(self, submission_dir: Path, *, args: dict[str, Any], limits: Limits) -> TaskResult:
        """Run the worker's task on a COPY of ``submission_dir`` in a fresh child.

        The same contract as :func:`grader.sandbox.run_task`; the worker is (re)started when
        needed, and a worker that stops answering becomes an ``error`` result and is restarted
        for the next job.
        """
        submission_dir = Path(submission_dir)
        if not submission_dir.is_dir():
            raise FileNotFoundError(f"{submission_dir}: no such submission folder")
        with self._lock:
            self.start()
            if self._tmp is None or self._proc is None or self._proc.stdin is None:
                raise ZygoteError("the pre-forked worker is not running")
            self._jobs += 1
            name = str(self._jobs)
            uid = ZYGOTE_BASE_UID + self.slot * UIDS_PER_SLOT + self._jobs % UIDS_PER_SLOT
            job_dir = Path(self._tmp.name) / "jobs" / name
            try:
                shutil.copytree(submission_dir, job_dir / "sub", ignore=_symlinks)
                (job_dir / "out").mkdir()
                request = {
                    "job": name,
                    "uid": uid,
                    "args": args,
                    "limits": {**dataclasses.asdict(limits), "base_vm_mb": self._base_vm_mb},
                }
                self._proc.stdin.write((json.dumps(request) + "\n").encode())
                self._proc.stdin.flush()
                answer = self._answer(limits.wall_s + GRACE_S)
                if answer is None or answer.get("job") != name:
                    log = self._log.text()
                    self.close()
                    return TaskResult(
                        "error", "the pre-forked worker stopped answering; it is restarted for "
                        "the next submission", {}, {}, limits.wall_s, log,
                    )  # fmt: skip
                if "error" in answer:
                    return TaskResult("error", str(answer["error"]), {}, {}, 0.0, "")
                return self._result(job_dir / "out", answer, limits)
            except (BrokenPipeError, OSError) as exc:
                log = self._log.text()
                self.close()
                return TaskResult("error", f"the pre-forked worker failed: {exc}", {}, {}, 0.0, log)
            finally:
                shutil.rmtree(job_dir, ignore_errors=True)

    def close(self) -> None:
        """Stop the box (every child with it) and remove its folders."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                _kill_group(proc.pid)
            proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    try:
                        stream.close()
                    except BrokenPipeError:
                        pass  # the box is gone already
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # --- internals -------------------------------------------------------------------------------

    def _read_answers(self, stream: Any) -> None:
        for line in stream:
            try:
                message = json.loads(line)
            except ValueError:
                continue  # not a protocol line
            if isinstance(message, dict):
                self._answers.put(message)
        self._answers.put(None)  # end of stream: the worker is gone

    def _answer(self, timeout: float) -> dict[str, Any] | None:
        try:
            return self._answers.get(timeout=timeout)
        except queue.Empty:
            return None

    def _result(self, out: Path, answer: dict[str, Any], limits: Limits) -> TaskResult:
        log_path = out / "log.txt"
        log = ""
        if log_path.is_file() and not log_path.is_symlink():
            log = log_path.read_bytes().decode(errors="replace")
            log_path.unlink()
        returncode, timed_out = int(answer["returncode"]), bool(answer["timed_out"])
        wall = float(answer["wall_s"])
        if returncode in CHILD_SETUP_FAILED and not (out / "status.json").exists():
            return TaskResult("error", "the sandboxed child could not be confined; the "
                              "submission did not run", {}, {}, wall, log)  # fmt: skip
        return _collect(out, returncode, timed_out, log, wall, limits)

    def _command(self, root: Path) -> list[str]:
        cmd = jail_args(CAPABILITIES)
        mounts = _mount_points() + [(str(root / "in"), "/box/in")]
        # A bytecode cache outside the venv (PYTHONPYCACHEPREFIX) spares the worker compiling
        # torch from source; the box reads it and writes nothing.
        pycache = sys.pycache_prefix
        if pycache and Path(pycache).is_dir():
            mounts.append((pycache, pycache))
        cmd += read_only_binds(mounts, ["/box/jobs", "/box/children"], made=())
        cmd += ["--bind", str(root / "jobs"), "/box/jobs"]
        size = str(self.tmpfs_mb * 1024 * 1024)
        cmd += ["--perms", "0711", "--size", size, "--tmpfs", "/box/children"]
        cmd += ["--perms", "0755", "--dir", "/tmp"]
        cmd += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/", "--chdir", "/box/children"]
        env = {
            "HOME": "/box/children", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
            "TMPDIR": "/box/children",
            "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONHASHSEED": "0",
        }  # fmt: skip
        for key, value in env.items():
            cmd += ["--setenv", key, value]
        cmd += [
            "--", sys.executable, "-I",
            *(["-X", f"pycache_prefix={pycache}"] if pycache and Path(pycache).is_dir() else []),
            "-c",
            f"import sys; sys.path.insert(0, {BOX_LIB!r}); "
            "from grader.zygote_box import main; sys.exit(main())",
        ]  # fmt: skip
        return cmd


class ZygotePool:
    """One lazily started :class:`Zygote` per batch slot, all closed by :meth:`close`."""

    def __init__(
        self,
        *,
        task: str = "grader.modelcheck:check_task",
        images: np.ndarray | None = None,
        warm_up: dict[str, Any] | None = None,
    ) -> None:
        self.task, self.images, self.warm_up = task, images, warm_up
        self._workers: dict[int, Zygote] = {}
        self._lock = threading.Lock()

    def get(self, slot: int) -> Zygote:
        """The worker of ``slot`` (created on first use; it starts on its first job)."""
        with self._lock:
            if slot not in self._workers:
                self._workers[slot] = Zygote(
                    task=self.task, images=self.images, slot=slot, warm_up=self.warm_up
                )
            return self._workers[slot]

    def close(self) -> None:
        """Stop every worker."""
        with self._lock:
            for worker in self._workers.values():
                worker.close()
            self._workers.clear()
