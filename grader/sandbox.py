"""Run untrusted student code in a bubblewrap box with limits, and bring back its results.

The grader (root) starts ``bwrap`` with new pid/net/ipc/uts/cgroup namespaces, a read-only root
made of the system's ``/usr``, the Python installation and the virtual environment, the
submission COPIED into a private directory, a sized tmpfs at ``/tmp`` and a cleared environment.
Inside, ``prlimit`` sets the rlimits and ``setpriv`` drops to an unprivileged uid (one per
``slot``, so parallel boxes do not share a process count) before Python starts. The trusted
harness (:mod:`grader.harness`) then loads a seccomp filter, pins threads, imports a trusted task
function and the student's ``model.py``, and writes JSON + ``.npy`` files to an output directory.
A wall-clock timeout kills the whole box; the pid namespace takes any leftover daemon with it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from grader.assignment import ModelSpec

Status = Literal["ok", "invalid", "error", "timeout", "killed"]

BOX_ROOT = "/box"
BOX_WORK = f"{BOX_ROOT}/work"
BOX_INPUT = f"{BOX_ROOT}/in"
BOX_OUTPUT = f"{BOX_ROOT}/out"
BOX_LIB = f"{BOX_ROOT}/lib"
BASE_UID = 60000
"""Uid of slot 0 inside the box; slot ``n`` runs as ``BASE_UID + n``."""
MAX_LOG_BYTES = 64 * 1024
"""How much of the box's stdout/stderr is kept (head and tail); the rest is read and dropped."""
TRUSTED_PACKAGES = ("grader", "reference")
WEIGHT_SUFFIXES = (".pt", ".pth", ".safetensors")


class SandboxUnavailable(RuntimeError):
    """Model grading was asked for on a machine without bubblewrap."""

    def __init__(self) -> None:
        super().__init__(
            "model submissions run only inside the sandbox: install bubblewrap "
            "(apt-get install bubblewrap) and run the grader as root"
        )


@dataclass(frozen=True)
class Limits:
    """Resource limits of one box."""

    wall_s: float = 120.0
    """Wall-clock time for the whole box, start-up included; then everything in it is killed."""
    memory_mb: int = 4096
    """Address-space limit (RLIMIT_AS) of every process in the box."""
    cpu_s: int = 600
    """CPU seconds per process (RLIMIT_CPU)."""
    nproc: int = 64
    """Processes and threads of the box's uid (RLIMIT_NPROC)."""
    fsize_mb: int = 256
    """Largest file the box may write (RLIMIT_FSIZE); also the size of its ``/tmp``."""
    nofile: int = 256
    """Open file descriptors per process (RLIMIT_NOFILE)."""
    threads: int = 1
    """Intra-op threads for torch/OpenMP/BLAS."""
    output_mb: int = 256
    """Total size of the files the box may hand back."""

    @classmethod
    def from_model_spec(cls, model: ModelSpec, **overrides: Any) -> Limits:
        """Limits for grading a model under ``model``'s time and memory limits."""
        values: dict[str, Any] = {
            "wall_s": float(model.time_limit_s),
            "memory_mb": int(model.memory_limit_mb),
            "cpu_s": max(int(model.time_limit_s) * 2, 30),
        }
        values.update(overrides)
        return cls(**values)


@dataclass
class TaskResult:
    """What came back from one box."""

    status: Status
    message: str
    result: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    wall_s: float = 0.0
    log: str = ""
    """The start and end of the box's stdout/stderr, for instructors."""


def bubblewrap_path() -> str | None:
    """Path of the ``bwrap`` executable, or None."""
    return shutil.which("bwrap")


def bubblewrap_available() -> bool:
    """Whether boxes can be started here: ``bwrap``, ``setpriv`` and ``prlimit`` exist, as root."""
    return (
        bubblewrap_path() is not None
        and shutil.which("setpriv") is not None
        and shutil.which("prlimit") is not None
        and os.geteuid() == 0
    )


def run_task(
    submission_dir: Path,
    *,
    task: str,
    args: dict[str, Any],
    limits: Limits,
    inputs: dict[str, np.ndarray] | None = None,
    slot: int = 0,
) -> TaskResult:
    """Run the trusted ``task`` ("module:function") on the submission in ``submission_dir``.

    The function is called inside the box with a :class:`grader.harness.TaskContext`; it returns a
    JSON-able dict (``TaskResult.result``) and may save arrays (``TaskResult.arrays``). ``inputs``
    reach it as ``.npy`` files. Raises :class:`SandboxUnavailable` when there is no bubblewrap.
    """
    if not bubblewrap_available():
        raise SandboxUnavailable()
    submission_dir = Path(submission_dir)
    if not submission_dir.is_dir():
        raise FileNotFoundError(f"{submission_dir}: no such submission folder")
    uid = BASE_UID + int(slot)
    with tempfile.TemporaryDirectory(prefix="grader-box-") as tmp:
        box = Path(tmp)
        _prepare_box(box, submission_dir, task=task, args=args, inputs=inputs or {}, uid=uid)
        command = _bwrap_command(box, limits=limits, uid=uid)
        started = time.perf_counter()
        returncode, timed_out, log = _run_with_timeout(command, limits.wall_s)
        wall = time.perf_counter() - started
        return _collect(box / "out", returncode, timed_out, log, wall, limits)


# --- preparing the box ---------------------------------------------------------------------------


def _prepare_box(
    box: Path,
    submission_dir: Path,
    *,
    task: str,
    args: dict[str, Any],
    inputs: dict[str, np.ndarray],
    uid: int,
) -> None:
    work, inp, out = box / "work", box / "in", box / "out"
    # Copy, never bind: the student's original files stay out of reach of the code that runs.
    # Symlinks are left behind: one could point at the labels or another student's files.
    shutil.copytree(submission_dir, work, ignore=_symlinks)
    inp.mkdir()
    out.mkdir()
    for name, array in inputs.items():
        if not name.isidentifier():
            raise ValueError(f"input name {name!r} must be a Python identifier")
        np.save(inp / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
    (inp / "task.json").write_text(
        json.dumps({"task": task, "args": args, "inputs": sorted(inputs)}), encoding="utf-8"
    )
    for path in (box, work, inp, *work.rglob("*"), *inp.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    os.chown(out, uid, uid)
    out.chmod(0o700)


def _symlinks(folder: str, names: list[str]) -> list[str]:
    return [n for n in names if os.path.islink(os.path.join(folder, n))]


def _mount_points() -> list[tuple[str, str]]:
    """(host path, box path) pairs bound read-only: Python, the venv and the trusted packages."""
    pairs: list[tuple[str, str]] = []
    for prefix in {sys.base_prefix, sys.prefix, str(Path(sys.executable).resolve().parents[1])}:
        if prefix and not prefix.startswith("/usr") and Path(prefix).is_dir():
            pairs.append((prefix, prefix))
    root = Path(__file__).resolve().parents[1]
    for package in TRUSTED_PACKAGES:
        if (root / package / "__init__.py").is_file():
            pairs.append((str(root / package), f"{BOX_LIB}/{package}"))
    return sorted(set(pairs))


def _parents(path: str) -> list[str]:
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def jail_args(capabilities: Sequence[str]) -> list[str]:
    """bwrap arguments every box shares: new namespaces, a cleared environment, ``capabilities``
    kept (bwrap drops the rest), and the system directories read-only."""
    cmd = [
        bubblewrap_path() or "bwrap",
        "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup",
        "--die-with-parent", "--new-session", "--clearenv", "--hostname", "box",
        "--ro-bind", "/usr", "/usr",
    ]  # fmt: skip
    for cap in capabilities:
        cmd += ["--cap-add", cap]
    for link in ("/bin", "/lib", "/lib64", "/sbin", "/lib32", "/libx32"):
        if os.path.islink(link):
            cmd += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            cmd += ["--ro-bind", link, link]
    cmd += ["--perms", "0755", "--dir", "/etc"]
    if os.path.exists("/etc/ld.so.cache"):
        cmd += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    return cmd


def read_only_binds(
    mounts: Sequence[tuple[str, str]], other_targets: Sequence[str], made: Iterable[str]
) -> list[str]:
    """Read-only binds of ``mounts``, after making every parent of them and of ``other_targets``
    (mounted later by the caller) traversable; ``made`` are directories that already exist."""
    cmd: list[str] = []
    made = {"/etc", *made}
    for target in [t for _h, t in mounts] + list(other_targets):
        # bwrap creates missing parents as 0700, which the dropped uid could not traverse.
        for parent in _parents(target):
            if parent not in made:
                made.add(parent)
                cmd += ["--perms", "0755", "--dir", parent]
    for host, target in mounts:
        cmd += ["--ro-bind", host, target]
    return cmd


def _bwrap_command(box: Path, *, limits: Limits, uid: int) -> list[str]:
    cmd = jail_args(("CAP_SETUID", "CAP_SETGID"))
    # The scratch tmpfs goes first: a checkout or venv that lives under /tmp is bound on top of it.
    tmp_bytes = str(limits.fsize_mb * 1024 * 1024)
    cmd += ["--perms", "1777", "--size", tmp_bytes, "--tmpfs", "/tmp"]
    mounts = _mount_points() + [
        (str(box / "work"), BOX_WORK),
        (str(box / "in"), BOX_INPUT),
    ]
    cmd += read_only_binds(mounts, [BOX_OUTPUT], made={"/tmp"})
    cmd += ["--bind", str(box / "out"), BOX_OUTPUT]
    cmd += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/", "--chdir", BOX_WORK]
    env = {
        "HOME": "/tmp",
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TMPDIR": "/tmp",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": str(limits.threads),
        "MKL_NUM_THREADS": str(limits.threads),
        "OPENBLAS_NUM_THREADS": str(limits.threads),
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }
    for key, value in env.items():
        cmd += ["--setenv", key, value]
    mb = 1024 * 1024
    cmd += [
        "--",
        shutil.which("prlimit") or "/usr/bin/prlimit",
        f"--as={limits.memory_mb * mb}",
        f"--cpu={limits.cpu_s}",
        f"--nproc={limits.nproc}",
        f"--fsize={limits.fsize_mb * mb}",
        f"--nofile={limits.nofile}",
        "--core=0",
        "--",
        shutil.which("setpriv") or "/usr/bin/setpriv",
        f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
        "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs",
        "--",
        sys.executable, "-I", "-c",
        f"import sys; sys.path.insert(0, {BOX_LIB!r}); "
        "from grader.harness import main; sys.exit(main())",
    ]  # fmt: skip
    return cmd


# --- running it ----------------------------------------------------------------------------------


class _CappedLog:
    """Keeps the first and last ``MAX_LOG_BYTES / 2`` bytes of a stream, dropping the middle."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def feed(self, chunk: bytes) -> None:
        half = MAX_LOG_BYTES // 2
        room = half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail += chunk
        if len(self.tail) > half:
            self.dropped += len(self.tail) - half
            del self.tail[: len(self.tail) - half]

    def text(self) -> str:
        middle = f"\n[... {self.dropped} bytes dropped ...]\n" if self.dropped else ""
        return (bytes(self.head).decode(errors="replace") + middle
                + bytes(self.tail).decode(errors="replace"))  # fmt: skip


def _drain(stream: Any, log: _CappedLog) -> None:
    for chunk in iter(lambda: stream.read1(65536), b""):
        log.feed(chunk)


def _run_with_timeout(command: list[str], wall_s: float) -> tuple[int, bool, str]:
    log = _CappedLog()
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    reader = threading.Thread(target=_drain, args=(proc.stdout, log), daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=wall_s)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        # Killing bwrap ends its pid namespace (--die-with-parent), daemons included.
        if proc.poll() is None:
            _kill_group(proc.pid)
        proc.wait()
    reader.join(timeout=5)
    proc.stdout.close()
    return proc.returncode, timed_out, log.text()


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --- collecting results --------------------------------------------------------------------------


def _collect(
    out: Path, returncode: int, timed_out: bool, log: str, wall: float, limits: Limits
) -> TaskResult:
    if timed_out:
        return TaskResult(
            "timeout",
            f"stopped after the wall-clock limit of {limits.wall_s:g} s",
            {},
            {},
            wall,
            log,
        )
    total = sum(p.lstat().st_size for p in out.rglob("*"))
    if total > limits.output_mb * 1024 * 1024:
        return TaskResult(
            "invalid", f"the box wrote {total} bytes of output, over {limits.output_mb} MB",
            {}, {}, wall, log,
        )  # fmt: skip
    status_file = out / "status.json"
    report = _read_json(status_file)
    if report is None:
        killed = returncode < 0 or returncode > 128
        status: Status = "killed" if killed else "invalid"
        return TaskResult(status, _death_message(returncode, limits), {}, {}, wall, log)
    status = report.get("status")
    if status not in ("ok", "invalid", "error"):
        return TaskResult("error", "the box reported an unknown status", {}, {}, wall, log)
    result = report.get("result") if isinstance(report.get("result"), dict) else {}
    arrays: dict[str, np.ndarray] = {}
    for name in report.get("arrays", []) if status == "ok" else []:
        path = out / f"{name}.npy"
        if not (isinstance(name, str) and name.isidentifier()) or path.is_symlink():
            return TaskResult(
                "error", f"output array {name!r} is not a file", result, {}, wall, log
            )
        if not path.is_file():
            return TaskResult("error", f"output array {name!r} is missing", result, {}, wall, log)
        try:
            arrays[name] = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            return TaskResult("error", f"output array {name!r}: {exc}", result, {}, wall, log)
    return TaskResult(status, str(report.get("message", "")), result, arrays, wall, log)


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file() or path.is_symlink():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return None
    return data if isinstance(data, dict) else None


def _death_message(returncode: int, limits: Limits) -> str:
    if returncode < 0 or returncode > 128:
        signum = -returncode if returncode < 0 else returncode - 128
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        hint = {
            "SIGKILL": f" (CPU limit {limits.cpu_s} s, or out of memory)",
            "SIGXCPU": f" (CPU limit {limits.cpu_s} s)",
            "SIGSEGV": " (a crash in native code)",
            "SIGXFSZ": f" (file size limit {limits.fsize_mb} MB)",
        }.get(name, "")
        return f"the model process was killed by {name}{hint} before it reported a result"
    return (
        f"the model process exited with code {returncode} before it reported a result "
        "(does model.py call exit()?)"
    )
