"""Scale-out on Celery with a Redis broker: the server sends a job id, a worker anywhere grades it.

A message carries only the job id. The database stays the source of truth: the worker claims
the job through the server's API (a new attempt), so a message delivered twice costs a repeated
grading at worst, never a second stored result. The settings make a killed worker's job come back:

- ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged only after the
  job ran; a worker killed mid-job leaves it unacknowledged;
- ``visibility_timeout`` above the longest job limit: a live worker's job is not handed out again;
- ``unacked_restore_interval`` 2 s with ``unacked_restore_throttle`` 1: any live worker returns
  the unacknowledged messages of a dead one to the queue within seconds of the visibility
  timeout (kombu's defaults sweep only every ~100 s);
- ``worker_prefetch_multiplier`` 1 and concurrency 1: one job at a time per worker (per GPU).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable

from leaderboard.status import JobQueue

TASK_NAME = "grader.grade_job"
DEFAULT_VISIBILITY_S = 3600.0
log = logging.getLogger(__name__)


def broker_url(url: str | None = None) -> str | None:
    """The broker to use: the argument, else ``GRADER_BROKER_URL``, else none (embedded)."""
    return url or os.environ.get("GRADER_BROKER_URL") or None


def celery_app(url: str, *, visibility_timeout_s: float = DEFAULT_VISIBILITY_S):
    """A Celery app on the broker ``url`` with the redelivery settings above."""
    from celery import Celery

    app = Celery("grader", broker=url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        task_ignore_result=True,
        task_default_queue=JobQueue.CPU.value,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        worker_enable_remote_control=False,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        broker_transport_options={
            "visibility_timeout": float(visibility_timeout_s),
            "unacked_restore_interval": 2,
            "unacked_restore_throttle": 1,
        },
    )
    return app


class JobPublisher:
    """Sends job ids to the broker from a server process (one Celery app per process)."""

    def __init__(self, url: str):
        self.url = url
        self._app = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def _current(self):
        # gunicorn forks after the app is built: a connection must not cross the fork.
        with self._lock:
            if self._app is None or self._pid != os.getpid():
                self._app = celery_app(self.url)
                # An upload must not wait for a broker that is down: fail at once, the job
                # stays queued in the database.
                options = self._app.conf.broker_transport_options
                self._app.conf.broker_transport_options = {**options, "max_retries": 0}
                self._pid = os.getpid()
            return self._app

    def send(self, job_id: int, queue: JobQueue) -> None:
        """Queue ``job_id`` on ``queue``; raises the broker's error when it cannot be reached."""
        self._current().send_task(TASK_NAME, args=[job_id], queue=queue.value, retry=False)

    def send_all(self, jobs: Iterable[tuple[int, JobQueue]]) -> int:
        """Queue every ``(job_id, queue)``; return how many were sent."""
        count = 0
        for job_id, queue in jobs:
            self.send(job_id, queue)
            count += 1
        return count
