"""Box uids that no two grader processes on a machine share.

Every job runs as a fresh unprivileged uid, so one student's processes can never count against,
signal or read another's. Uids come in ranges: a process takes a whole range by holding an
exclusive ``flock`` on the range's lock file for as long as it lives (the kernel releases it when
the process ends, however it ends), and hands out the uids of its range one job at a time. Two
graders on one machine -- a leaderboard worker and an instructor's ``grader check`` -- therefore
box their students under different uids.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

FIRST_UID = 200_000
RANGE_SIZE = 2_000
RANGES = 400
LOCK_DIR = Path("/run/grader-uids")
LOCK_DIR_ENV = "GRADER_UID_LOCK_DIR"


class UidsExhausted(RuntimeError):
    """Every uid range of this machine is held by a running grader process."""


class UidRange:
    """One exclusively held range of box uids; :meth:`take` gives the next free one."""

    def __init__(self, lock_dir: Path | None = None) -> None:
        folder = Path(lock_dir or os.environ.get(LOCK_DIR_ENV) or LOCK_DIR)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.index, self._fd = self._lock_a_range(folder)
        self.pid = os.getpid()
        self.first = FIRST_UID + self.index * RANGE_SIZE
        self._next = 0
        self._busy: set[int] = set()
        self._lock = threading.Lock()

    @staticmethod
    def _lock_a_range(folder: Path) -> tuple[int, int]:
        for index in range(RANGES):
            fd = os.open(
                folder / f"range-{index}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return index, fd
        raise UidsExhausted(f"all {RANGES} uid ranges under {folder} are held by grader processes")

    def take(self) -> int:
        """A uid of this range that no job of this process is using; give it back with
        :meth:`release` once every process of the job is gone."""
        with self._lock:
            for _ in range(RANGE_SIZE):
                uid = self.first + self._next
                self._next = (self._next + 1) % RANGE_SIZE
                if uid not in self._busy:
                    self._busy.add(uid)
                    return uid
        raise UidsExhausted(f"all {RANGE_SIZE} uids of range {self.index} are in use")

    def release(self, uid: int) -> None:
        """Return ``uid`` for later jobs."""
        with self._lock:
            self._busy.discard(uid)

    def __contains__(self, uid: int) -> bool:
        return self.first <= uid < self.first + RANGE_SIZE


_RANGE: UidRange | None = None
_RANGE_LOCK = threading.Lock()


def process_uids() -> UidRange:
    """This process's uid range, taken on first use and held until the process ends."""
    global _RANGE
    with _RANGE_LOCK:
        if _RANGE is not None and _RANGE.pid != os.getpid():
            # A forked child shares its parent's lock: it needs a range of its own.
            os.close(_RANGE._fd)
            _RANGE = None
        if _RANGE is None:
            _RANGE = UidRange()
        return _RANGE
