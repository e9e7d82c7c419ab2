"""Waking the embedded worker when a job is queued, instead of polling the queue every second.

- **SQLite**: ``PRAGMA data_version`` on one connection changes whenever another connection
  commits. Reading it costs microseconds and touches no table, so the worker reads it every
  :data:`SQLITE_CHECK_S` and tries a claim when it moved (an upload, a heartbeat, a score).
- **PostgreSQL**: ``LISTEN`` on :data:`CHANNEL`; every new job sends ``NOTIFY`` in the
  transaction that queues it (:func:`notify_new_job`, an ORM hook), delivered when it commits.

Either way the worker still tries a claim every ``poll_s`` (a job whose worker stopped
heartbeating comes back by the clock, not by a commit), so a missed signal costs latency, never a
job.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from sqlalchemy import Engine, event, text

from leaderboard.models import Job

log = logging.getLogger(__name__)
CHANNEL = "grader_jobs"
SQLITE_CHECK_S = 0.02
"""Seconds between two reads of SQLite's data_version while the worker is idle."""


class JobSignal:
    """Waits until a job may have been queued, or a timeout; see the module docstring."""

    def __init__(self, engine: Engine) -> None:
        self.dialect = engine.dialect.name
        self._raw = None
        try:
            self._raw = engine.raw_connection()
            if self.dialect == "sqlite":
                self._version = self._data_version()
            elif self.dialect == "postgresql":
                driver = self._raw.driver_connection
                driver.commit()
                driver.autocommit = True
                driver.execute(f"LISTEN {CHANNEL}")
        except Exception as exc:  # noqa: BLE001 - without a signal the worker polls, as before
            log.warning("no job signal on %s (%s): polling only", self.dialect, exc)
            self.close()

    def wait(self, timeout: float, stop: threading.Event | None = None) -> bool:
        """Block up to ``timeout`` seconds; True as soon as a job may be waiting, False on
        timeout or when ``stop`` is set."""
        stop = stop or threading.Event()
        deadline = time.monotonic() + timeout
        try:
            if self._raw is not None and self.dialect == "sqlite":
                return self._wait_sqlite(deadline, stop)
            if self._raw is not None and self.dialect == "postgresql":
                return self._wait_postgres(deadline, stop)
        except Exception as exc:  # noqa: BLE001 - a lost connection: fall back to polling
            log.warning("job signal lost (%s): polling only", exc)
            self.close()
        stop.wait(max(0.0, deadline - time.monotonic()))
        return False

    def close(self) -> None:
        """Release the signal's connection."""
        raw, self._raw = self._raw, None
        if raw is not None:
            with contextlib.suppress(Exception):
                raw.invalidate()  # never hand a LISTENing or autocommit connection back to the pool

    def _data_version(self) -> int:
        cursor = self._raw.cursor()
        try:
            cursor.execute("PRAGMA data_version")
            return int(cursor.fetchone()[0])
        finally:
            cursor.close()

    def _wait_sqlite(self, deadline: float, stop: threading.Event) -> bool:
        while not stop.is_set():
            version = self._data_version()
            if version != self._version:
                self._version = version
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            stop.wait(min(SQLITE_CHECK_S, left))
        return False

    def _wait_postgres(self, deadline: float, stop: threading.Event) -> bool:
        driver = self._raw.driver_connection
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            for _notice in driver.notifies(timeout=min(0.25, left), stop_after=1):
                return True
        return False


@event.listens_for(Job, "after_insert")
def notify_new_job(_mapper, connection, _job) -> None:
    """``NOTIFY`` the PostgreSQL channel in the transaction that queues a job (sent on commit;
    nothing on SQLite, where the worker watches the data version)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"NOTIFY {CHANNEL}"))
