"""The trusted supervisor that runs INSIDE a box and forks one confined child per job.

Started by :class:`grader.sandbox.pool.BoxWorker` as root-in-box with only the capabilities of
:data:`grader.sandbox.jail.SUPERVISOR_CAPABILITIES`. It imports torch and every task ONCE and
warms them up, loads the test images, then reads one :class:`JobRequest` per line on stdin. For
each job it copies the staged files to a private 0700 folder on the box's tmpfs owned by the
job's uid and forks:

- a **child** that confines itself (:func:`grader.sandbox.inside.confine.confine`) and runs the
  task, its stdout and stderr going into a pipe;
- a **log reader** that keeps the first and last 32 KiB of that pipe and drops the middle, so a
  model that prints forever neither fills a disk nor hits a file-size limit.

The supervisor waits with a wall-clock timeout, kills every process of the uid, copies the
child's regular output files (flat, size-capped, never through a link) to the job's staging
folder, removes the child's folder (``rm -rf``, which copes with any depth) and answers one
:class:`JobAnswer` line. It never reads a submission's files or outputs into its own memory (the
kernel copies them), so a later child, which starts as a copy of this process, finds no trace
of an earlier one.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from grader.sandbox.inside.confine import confine
from grader.sandbox.inside.tasks import JobContext, load_task, preload, reset_threads_after_fork
from grader.sandbox.jail import BOX_CHILDREN, BOX_IN, BOX_JOBS
from grader.sandbox.protocol import (
    JobAnswer,
    JobRequest,
    ProtocolError,
    Ready,
    encode_line,
    parse_json,
    parse_record,
)

LOG_HALF = 32 * 1024
LOG_NAME = "log.txt"
OUTPUT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_OUTPUTS = 64
CHILD_SETUP_FAILED = 70
TASK_CRASHED = 71
_STARTED = time.perf_counter()


def _respond(record: Any) -> None:
    sys.stdout.buffer.write(encode_line(record))
    sys.stdout.flush()


def main() -> int:
    """Serve jobs from stdin until it closes; exit code 0."""
    config = json.loads((Path(BOX_IN) / "supervisor.json").read_text(encoding="utf-8"))
    try:
        imported = preload(config.get("warm_up") or {})
        images_path = Path(BOX_IN) / "images.npy"
        images = np.load(images_path, allow_pickle=False) if images_path.is_file() else None
        if images is not None:
            images.setflags(write=False)
    except Exception as exc:  # the grader's own set-up failed: report it, serve nothing
        _respond(Ready(False, error=f"box set-up failed: {type(exc).__name__}: {exc}"))
        return 0
    warm = time.perf_counter()
    base_vm_mb = _vm_size_mb()
    _respond(Ready(True, vm_mb=base_vm_mb, import_s=imported - _STARTED, warm_up_s=warm - imported))
    for line in sys.stdin.buffer:
        try:
            job = parse_record(parse_json(line, name="job request"), JobRequest, name="job")
        except ProtocolError as exc:
            _respond(JobAnswer(job="?", error=f"malformed job request: {exc}"))
            continue
        _respond(_serve(job, images, base_vm_mb))
    return 0


def _vm_size_mb() -> int:
    for row in Path("/proc/self/status").read_text().splitlines():
        if row.startswith("VmSize:"):
            return int(row.split()[1]) // 1024
    return 0


def _serve(job: JobRequest, images: np.ndarray | None, base_vm_mb: int) -> JobAnswer:
    staged = Path(BOX_JOBS) / job.job
    private = Path(BOX_CHILDREN) / job.job
    started = time.perf_counter()
    try:
        task = load_task(job.task)
    except (ValueError, ImportError, AttributeError) as exc:
        return JobAnswer(job=job.job, error=f"unknown task {job.task!r}: {exc}")
    try:
        try:
            _make_private_copy(staged / "in", private, job.uid)
        except OSError as exc:  # e.g. the box's tmpfs is full: this job fails, the box serves on
            return JobAnswer(
                job=job.job, error=f"copying the submission into the box failed: {exc}"
            )
        read_end, write_end = os.pipe()
        reader = os.fork()
        if reader == 0:  # the log reader: never returns
            os.close(write_end)
            _read_log(read_end, staged / "out" / LOG_NAME)
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_end)
            _child(private, job, task, images, write_end, base_vm_mb)
        os.close(read_end)
        os.close(write_end)
        returncode, timed_out = _wait(pid, job.limits.wall_s)
        _kill_uid(job.uid)  # daemons the child left behind, and with them the pipe's last writer
        _wait(reader, 10.0)
        outputs, dropped = _copy_outputs(private / "out", staged / "out", job.limits.output_mb)
    finally:
        _kill_uid(job.uid)
        _remove(private)
    return JobAnswer(
        job=job.job,
        returncode=returncode,
        timed_out=timed_out,
        wall_s=time.perf_counter() - started,
        outputs=outputs,
        dropped=dropped,
    )


def _make_private_copy(source: Path, private: Path, uid: int) -> None:
    # Staged files were checked by the host (regular files only); copied, never linked.
    shutil.copytree(source, private / "work", symlinks=True)
    (private / "out").mkdir()
    (private / "tmp").mkdir()
    for folder, dirs, files in os.walk(private):
        for entry in (folder, *(os.path.join(folder, n) for n in dirs + files)):
            os.chown(entry, uid, uid, follow_symlinks=False)
            if not os.path.islink(entry):
                os.chmod(entry, 0o700 if os.path.isdir(entry) else 0o600)


def _wait(pid: int, wall_s: float) -> tuple[int, bool]:
    """The exit code of ``pid`` (negative: killed by that signal), and whether it ran out of
    time (it is then killed)."""
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
    """Whether a process of ``uid`` still runs in this box (zombies do not count)."""
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue  # ended while we looked
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        state = fields.get("State", "").split()[:1]
        if fields.get("Uid", "").split()[:1] == [str(uid)] and state not in (["Z"], ["X"]):
            return True
    return False


def _remove(path: Path) -> None:
    """Remove a child's folder whatever it made in it (GNU rm copes with any depth)."""
    if os.path.lexists(path):
        subprocess.run(["/usr/bin/rm", "-rf", "--one-file-system", "--", str(path)], check=False)


def _copy_outputs(source: Path, target: Path, output_mb: int) -> tuple[list[str], list[str]]:
    """Copy the child's regular files (flat; no links, devices or folders) within the cap."""
    budget = output_mb * 1024 * 1024
    copied: list[str] = []
    dropped: list[str] = []
    try:
        with os.scandir(source) as entries:
            listed = [
                (entry.stat(follow_symlinks=False).st_size, entry.name)
                for _, entry in zip(range(MAX_OUTPUTS * 4), entries, strict=False)
            ]
    except OSError:
        return copied, dropped
    # Smallest first: a task's report is never crowded out by a large file the job wrote.
    names = [name for _size, name in sorted(listed)]
    for name in names:
        if not OUTPUT_NAME.match(name) or name == LOG_NAME or len(copied) >= MAX_OUTPUTS:
            dropped.append(name[:80])
            continue
        size = _copy_file(source / name, target / name, budget)
        if size < 0:
            dropped.append(name)
            continue
        budget -= size
        copied.append(name)
    return copied, dropped


def _copy_file(source: Path, target: Path, most: int) -> int:
    """Copy a regular file of at most ``most`` bytes in the kernel; its size, or -1 (refused)."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return -1  # a link or a vanished file
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > most:
            return -1
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            sent = 0
            while sent < info.st_size:
                n = os.sendfile(out, fd, sent, info.st_size - sent)
                if n == 0:
                    break
                sent += n
        finally:
            os.close(out)
        return sent
    finally:
        os.close(fd)


# --- the log reader -------------------------------------------------------------------------------


def _read_log(fd: int, target: Path) -> None:
    """Keep the head and tail of everything written to ``fd``; write them to ``target``."""
    code = 0
    try:
        os.closerange(3, fd)
        os.closerange(fd + 1, 65536)
        head, tail, dropped = bytearray(), bytearray(), 0
        while chunk := os.read(fd, 65536):
            room = LOG_HALF - len(head)
            if room > 0:
                head += chunk[:room]
                chunk = chunk[room:]
            tail += chunk
            if len(tail) > LOG_HALF:
                dropped += len(tail) - LOG_HALF
                del tail[: len(tail) - LOG_HALF]
        middle = f"\n[... {dropped:,} bytes of output dropped ...]\n".encode() if dropped else b""
        target.write_bytes(bytes(head) + middle + bytes(tail))
    except BaseException:  # nothing may return into the supervisor's loop from a fork
        code = 1
    os._exit(code)


# --- the child ------------------------------------------------------------------------------------


def _child(
    private: Path, job: JobRequest, task: Any, images: Any, log_fd: int, base_vm_mb: int
) -> None:
    code = CHILD_SETUP_FAILED
    try:
        os.setsid()  # own session and process group: the supervisor's signals stay away
        devnull = os.open("/dev/null", os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.closerange(3, 65536)  # the supervisor's pipes and files stay out of reach
        reset_threads_after_fork()
        confine(job.uid, job.limits, base_vm_mb=base_vm_mb)
        os.environ.update({"HOME": str(private / "tmp"), "TMPDIR": str(private / "tmp")})
        os.chdir(private / "work")
        code = TASK_CRASHED
        ctx = JobContext(private / "work", private / "out", job.args, images)
        task(ctx)
        code = 0
    except BaseException:  # nothing may return into the supervisor's loop from a child
        traceback.print_exc()  # into the job's log, for the instructor
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()  # the job's prints, for the log
            except BaseException:  # a closed or replaced stream: its output is lost, not fatal
                pass
        os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
