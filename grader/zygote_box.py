"""The trusted pre-forked worker that runs INSIDE one bubblewrap box for a whole batch.

Started by :mod:`grader.zygote` as root-in-box with only CAP_SETUID, CAP_SETGID, CAP_CHOWN,
CAP_DAC_OVERRIDE, CAP_FOWNER and CAP_KILL. It imports torch, the harness and the task ONCE, loads
the test images, then reads one JSON job per line on stdin. For each job it copies the staged
submission to a private 0700 directory on the box's tmpfs owned by the job's uid and forks; the
child sets rlimits, drops to that uid (no capabilities left), sets no_new_privs, loads the seccomp
filter and runs the task exactly as :func:`grader.harness.main` does. The worker waits with a
wall-clock timeout, kills every process of that uid, copies the child's regular output files
(size-capped, never following links) to the job's staging folder and answers one JSON line.

The worker never reads a submission's files or outputs into its own memory (files are copied by
the kernel with ``sendfile``): a later child, which starts as a copy of this process, finds no
trace of an earlier one.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import select
import shutil
import signal
import stat
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from grader import harness
from grader.harness import TaskContext, describe_error

BOX_IN = Path("/box/in")
BOX_JOBS = Path("/box/jobs")
WORK_ROOT = Path("/box/children")
PR_SET_NO_NEW_PRIVS = 38
LOG_BYTES = 64 * 1024
"""How much of a child's stdout/stderr comes back (its start)."""
DENIED_IPC_SYSCALLS = ("shmget", "msgget", "semget", "mq_open")
"""System V / POSIX IPC objects would outlive a child and reach the next one: refused."""


_STARTED = time.perf_counter()
_TIMINGS: dict[str, float] = {}


def _preload(task: str, warm_up: dict[str, Any]) -> Any:
    """Import everything a child needs, so no child imports trusted code after dropping its uid.

    torchvision is left out: the fingerprint imports it only for a submission whose parameter
    count equals a zoo model's, and importing it here would cost every batch seconds.
    """
    import pyseccomp  # noqa: F401
    import safetensors.torch  # noqa: F401
    import torch.utils.flop_counter  # noqa: F401
    import torchinfo  # noqa: F401

    import grader.fingerprint  # noqa: F401
    import grader.weights  # noqa: F401

    try:
        import reference.models  # noqa: F401
    except ImportError:
        pass  # a grader without the reference models: fingerprints skip them
    harness.pin_threads()
    fn = harness.load_task(task)
    imported = time.perf_counter()
    _warm_up(fn)
    _warm_up_reference(warm_up)
    _TIMINGS.update(import_s=imported - _STARTED, warm_up_s=time.perf_counter() - imported)
    return fn


def _warm_up(task: Any) -> None:
    """Run the task once on a small trusted model: torch's lazy kernels, torchinfo and the
    FLOP counter initialise here once instead of in every child."""
    import types

    import torch
    from torch import nn

    class WarmUp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(4)
            self.fc = nn.Linear(4, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.bn(self.conv(x)))
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y + y, 1), 1))

    module = types.ModuleType("warm_up")
    module.Net = WarmUp  # type: ignore[attr-defined]
    args = {"entry": "Net", "input_shape": [3, 32, 32], "num_classes": 10, "rules": [],
            "require_weights": False, "batch_size": 8}  # fmt: skip
    images = np.zeros((8, 3, 32, 32), np.uint8)
    ctx = TaskContext(WORK_ROOT, WORK_ROOT, args, {"images": images}, module, None)
    task(ctx)


def _warm_up_reference(spec: dict[str, Any]) -> None:
    """Run the assignment's reference model at the grading batch size and fingerprint its
    parameter count: the CPU kernels for those shapes and the public-model fingerprints that a
    submission of the expected size is compared with are then ready in every child."""
    name = spec.get("reference")
    if not name:
        return
    import torch

    from grader.fingerprint import known_fingerprints

    try:
        from reference.models import get_model

        model = get_model(name).eval()
    except (ImportError, ValueError, TypeError, RuntimeError):
        return  # no such reference model here: the children warm up on their own
    x = torch.zeros((max(1, int(spec.get("batch_size", 256))), *spec["input_shape"]))
    with torch.inference_mode():
        for _ in range(2):
            model(x)
    known_fingerprints(int(spec.get("num_classes", 10)), sum(p.numel() for p in model.parameters()))


def _respond(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> int:
    """Serve jobs from stdin until it closes; exit code 0."""
    config = json.loads((BOX_IN / "zygote.json").read_text(encoding="utf-8"))
    try:
        task = _preload(config["task"], config.get("warm_up") or {})
        images = np.load(BOX_IN / "images.npy") if config["images"] else None
    except Exception as exc:  # the grader's own set-up failed: report it, serve nothing
        _respond({"ready": False, "error": f"worker set-up failed: {describe_error(exc)}"})
        return 0
    inputs = {"images": images} if images is not None else {}
    _respond({"ready": True, "vm_mb": _vm_size_mb(), **_TIMINGS})
    for line in sys.stdin:
        job = json.loads(line)
        _respond(_serve(job, task, inputs))
    return 0


def _vm_size_mb() -> int:
    for row in Path("/proc/self/status").read_text().splitlines():
        if row.startswith("VmSize:"):
            return int(row.split()[1]) // 1024
    return 0


def _serve(job: dict[str, Any], task: Any, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    name, uid = str(job["job"]), int(job["uid"])
    staged = BOX_JOBS / name
    work = WORK_ROOT / name
    started = time.perf_counter()
    try:
        try:
            _make_private_copy(staged / "sub", work, uid)
        except OSError as exc:  # e.g. the box's tmpfs is full: this job fails, the worker serves on
            return {"job": name, "error": f"copying the submission into the box failed: {exc}"}
        pid = os.fork()
        if pid == 0:  # the child: never returns
            _child(work, uid, job, task, inputs)
        returncode, timed_out = _wait(pid, float(job["limits"]["wall_s"]))
        _kill_uid(uid)  # daemons the child left behind
        _copy_outputs(work / "out", staged / "out", int(job["limits"]["output_mb"]))
        _copy_file(work / "log.txt", staged / "out" / "log.txt", LOG_BYTES)
    finally:
        _kill_uid(uid)
        shutil.rmtree(work, ignore_errors=True)
    wall = time.perf_counter() - started
    return {"job": name, "returncode": returncode, "timed_out": timed_out, "wall_s": wall}


def _make_private_copy(source: Path, work: Path, uid: int) -> None:
    shutil.copytree(source, work / "sub", symlinks=True)
    (work / "out").mkdir()
    (work / "tmp").mkdir()
    for folder, dirs, files in os.walk(work):
        for entry in (folder, *(os.path.join(folder, n) for n in dirs + files)):
            os.chown(entry, uid, uid, follow_symlinks=False)
            if not os.path.islink(entry):
                os.chmod(entry, 0o700 if os.path.isdir(entry) else 0o600)


def _wait(pid: int, wall_s: float) -> tuple[int, bool]:
    """The child's exit code (negative: killed by that signal) and whether it ran out of time."""
    fd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([fd], [], [], wall_s)
        timed_out = not ready
        if timed_out:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return os.waitstatus_to_exitcode(status), timed_out


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid``: a helper that becomes ``uid`` and signals all it may."""
    for _ in range(100):  # more rounds only while a fork bomb races the kill
        pid = os.fork()
        if pid == 0:
            try:
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
                os.kill(-1, signal.SIGKILL)  # as uid: exactly that uid's processes
            except OSError:
                pass  # ESRCH: none left
            os._exit(0)
        os.waitpid(pid, 0)
        if not _alive(uid):
            return
        time.sleep(0.01)


def _alive(uid: int) -> bool:
    """Whether a process of ``uid`` still runs in this box (zombies, already dead, do not count)."""
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
            )
        except OSError:
            continue  # ended while we looked
        if fields.get("Uid", "").split()[:1] == [str(uid)] and fields.get("State", "").split()[
            :1
        ] not in (["Z"], ["X"]):
            return True
    return False


def _copy_outputs(source: Path, target: Path, output_mb: int) -> None:
    """Copy the child's regular files (no links, no devices) up to ``output_mb`` in total."""
    budget = output_mb * 1024 * 1024
    try:
        names = sorted(os.listdir(source))
    except OSError:
        return
    for name in names:
        if not (name == "status.json" or (name.endswith(".npy") and name[:-4].isidentifier())):
            continue
        copied = _copy_file(source / name, target / name, budget, whole=True)
        if copied < 0:
            return  # over the cap: the host sees the remaining outputs as missing
        budget -= copied


def _copy_file(source: Path, target: Path, most: int, *, whole: bool = False) -> int:
    """Copy at most ``most`` bytes of a regular file in the kernel; bytes copied, -1 when
    ``whole`` and the file is larger, 0 for links and anything that is not a regular file."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return 0  # a link or a vanished file: the host reports the output missing
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return 0
        if whole and info.st_size > most:
            return -1
        size = min(info.st_size, most)
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            sent = 0
            while sent < size:
                n = os.sendfile(out, fd, sent, size - sent)
                if n == 0:
                    break
                sent += n
        finally:
            os.close(out)
        return sent
    finally:
        os.close(fd)


# --- the child -----------------------------------------------------------------------------------


def _child(work: Path, uid: int, job: dict[str, Any], task: Any, inputs: dict) -> None:
    code = 70
    try:
        _confine(work, uid, job["limits"])
        code = _run(work, job["args"], task, inputs)
    except BaseException:  # nothing may return into the worker's loop from a child
        code = 71
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()  # the student's prints, for the log
            except BaseException:  # a closed or replaced stream: its output is lost, not fatal
                pass
        os._exit(code)


def _confine(work: Path, uid: int, limits: dict[str, Any]) -> None:
    os.setsid()  # own session and process group: the worker's terminal signals stay away
    devnull = os.open("/dev/null", os.O_RDONLY)
    log = os.open(work / "log.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.closerange(3, 65536)  # the worker's pipes and files stay out of reach
    os.chown(work / "log.txt", uid, uid)
    mb = 1024 * 1024
    # RLIMIT_AS counts what the forked worker already maps (torch): the limit is on top of it.
    extra = int(limits["memory_mb"]) * mb
    resource.setrlimit(resource.RLIMIT_AS, (int(limits["base_vm_mb"]) * mb + extra,) * 2)
    resource.setrlimit(resource.RLIMIT_CPU, (int(limits["cpu_s"]),) * 2)
    resource.setrlimit(resource.RLIMIT_NPROC, (int(limits["nproc"]),) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(limits["fsize_mb"]) * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(limits["nofile"]),) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)  # all uids non-zero: every capability is gone
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    harness.apply_seccomp()
    _deny_ipc()
    os.environ.update({"HOME": str(work / "tmp"), "TMPDIR": str(work / "tmp")})
    os.chdir(work / "sub")


def _deny_ipc() -> None:
    import pyseccomp as seccomp

    filt = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in DENIED_IPC_SYSCALLS:
        filt.add_rule(seccomp.ERRNO(errno.EPERM), name)
    filt.load()


def _run(work: Path, args: dict[str, Any], task: Any, inputs: dict) -> int:
    """What :func:`grader.harness.main` does after its set-up, with this child's folders."""
    harness.run_student_task(task, work=work / "sub", out=work / "out", args=args, inputs=inputs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
