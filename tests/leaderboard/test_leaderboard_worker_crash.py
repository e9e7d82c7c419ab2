"""A worker killed with SIGKILL mid-job: its lease expires, a second worker finishes the job, and
exactly one result is stored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from lb_jobs import queue_selftest_jobs
from lb_support import REPO
from sqlalchemy import func, select, update

from leaderboard.db import make_engine, session_scope
from leaderboard.models import Job, Score
from leaderboard.status import JobStatus


def _worker(url: str, log) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "grader.cli", "worker", "--database", url, "--lease", "2",
        "--poll", "0.2", "--max-jobs", "1", "--allow-test-jobs", "--no-pre-fork",
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def _wait_for(predicate, timeout: float, what: str, log_path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.1)


# Worker subprocesses take several seconds each to start on a loaded machine: the default run
# covers the multi-machine backend, the SQLite variant runs with -m slow (claims on SQLite are
# covered in-process by test_leaderboard_db.py).
@pytest.mark.parametrize(
    "database_url", [pytest.param("sqlite", marks=pytest.mark.slow), "postgresql"], indirect=True
)
def test_killed_worker_job_is_finished_once_by_another(database_url, tmp_path, make_predictions):
    engine = make_engine(database_url)
    (job_id,) = queue_selftest_jobs(engine, make_predictions(1500), seconds=300)
    log_path = tmp_path / "workers.log"

    def job() -> Job:
        with session_scope(engine) as session:
            return session.get(Job, job_id)

    with open(log_path, "ab") as log:
        first = _worker(database_url, log)
        try:
            _wait_for(
                lambda: job().status is JobStatus.RUNNING and f":{first.pid}:" in job().lease_owner,
                60,
                "the first worker to claim the job",
                log_path,
            )
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
        finally:
            if first.poll() is None:
                first.kill()
        assert first.returncode == -signal.SIGKILL
        with session_scope(engine) as session:  # the retry need not wait five minutes
            payload = {**session.get(Job, job_id).payload, "seconds": 0.5}
            session.execute(update(Job).where(Job.id == job_id).values(payload=payload))
        second = _worker(database_url, log)
        try:
            assert second.wait(timeout=90) == 0, log_path.read_text()[-3000:]
        finally:
            if second.poll() is None:
                second.kill()

    finished = job()
    assert finished.status is JobStatus.DONE
    assert finished.attempts == 2
    assert f":{second.pid}:" in finished.lease_owner
    with session_scope(engine) as session:
        scores = session.scalars(select(Score)).all()
        assert session.scalar(select(func.count(Score.id))) == 1
        assert scores[0].submission_id == finished.submission_id
        assert 0.8 < scores[0].public_accuracy < 0.9
    engine.dispose()
