"""A worker killed with SIGKILL mid-job: its lease expires, a second worker finishes the job, and
exactly one result is stored. The job is a real one: a model whose import outlasts the time
limit of its (test-only) spec, so each attempt takes that long and ends with the box stopping it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from lb_jobs import SLEEPING_MODEL, queue_jobs, slow_spec
from lb_support import REPO
from sqlalchemy import func, select

from leaderboard.db import make_engine, session_scope
from leaderboard.models import GradeRecord, Job
from leaderboard.status import JobStatus, SubmissionStatus


def _worker(url: str, log) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "grader.cli", "worker", "--database", url, "--lease", "2",
        "--poll", "0.2", "--max-jobs", "1", "--no-pre-fork",
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
def test_killed_worker_job_is_finished_once_by_another(database_url, tmp_path, data_dir):
    engine = make_engine(database_url)
    files = {"model.py": SLEEPING_MODEL, "model.pt": b"weights"}
    (job_id,) = queue_jobs(engine, files, spec=slow_spec(3))
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
        assert session.scalar(select(func.count(GradeRecord.id))) == 1
        submission = session.get(Job, job_id).submission
        assert submission.grade.status.value == "invalid"  # the box stopped the sleeper
        assert submission.status is SubmissionStatus.INVALID
        assert "wall-clock limit of 3 s" in submission.message
    engine.dispose()
