"""The database layer and the job queue on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import threading
import time

import pytest
from lb_jobs import queue_selftest_jobs
from lb_support import Submitter, enrol
from sqlalchemy import func, select

from leaderboard.db import make_engine, session_scope
from leaderboard.models import Job, Score, Submission
from leaderboard.worker import JobResult, WorkerConfig, claim, finish, process_one, run_job


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_roster_submit_and_board(database_url, make_app, make_predictions):
    app = make_app(database_url=database_url, daily_limit=2)
    actions = Submitter(app.test_client(), enrol(app))
    assert actions.api("alice", make_predictions(1000)).status_code == 200
    assert actions.api("bob", make_predictions(3000)).status_code == 200
    assert actions.api("bob", make_predictions(2000)).status_code == 200
    assert actions.api("bob", make_predictions(0)).status_code == 429
    rows = actions.client.get("/api/v1/leaderboard").get_json()["rows"]
    assert [(r["name"], r["submissions"]) for r in rows] == [("Alice", 1), ("Bob", 2)]
    app.extensions["leaderboard_engine"].dispose()


def test_claims_are_exclusive_under_concurrency(engine, tmp_path, make_predictions):
    job_ids = queue_selftest_jobs(engine, tmp_path / "up", make_predictions(), count=12)
    claimed: list[int] = []
    lock = threading.Lock()

    def claimer(owner: str) -> None:
        while (job_id := claim(engine, owner, lease_s=60)) is not None:
            with lock:
                claimed.append(job_id)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == job_ids
    with session_scope(engine) as session:
        jobs = session.scalars(select(Job)).all()
        assert {j.status for j in jobs} == {"running"} and {j.attempts for j in jobs} == {1}


def test_stale_worker_cannot_store_a_second_result(engine, tmp_path, make_predictions):
    (job_id,) = queue_selftest_jobs(engine, tmp_path / "up", make_predictions(10))
    assert claim(engine, "stale", lease_s=0.2) == job_id
    time.sleep(0.4)
    assert claim(engine, "fresh", lease_s=60) == job_id  # the lease expired: taken again
    config = WorkerConfig(database_url="unused", allow_test_jobs=True)
    result = run_job(engine, job_id, config)
    assert result.status == "done" and result.scored.public_accuracy > 0.99
    assert finish(engine, job_id, "stale", result) is False
    assert finish(engine, job_id, "fresh", result) is True
    assert finish(engine, job_id, "fresh", result) is False  # not running any more
    with session_scope(engine) as session:
        assert session.scalar(select(func.count(Score.id))) == 1
        job = session.get(Job, job_id)
        assert (job.status, job.attempts, job.lease_owner) == ("done", 2, "fresh")
        assert session.get(Submission, job.submission_id).status == "done"


def test_worker_processes_queue_and_fails_unknown_kinds(engine, tmp_path, make_predictions):
    ids = queue_selftest_jobs(engine, tmp_path / "up", make_predictions(2500), count=2)
    config = WorkerConfig(database_url="unused", allow_test_jobs=False)
    assert process_one(engine, config) is True  # test jobs not allowed here: fails with a reason
    config.allow_test_jobs = True
    assert process_one(engine, config) is True
    assert process_one(engine, config) is False
    with session_scope(engine) as session:
        first, second = (session.get(Job, i) for i in ids)
        assert first.status == "failed" and "cannot run" in first.error
        assert first.submission.status == "failed"
        assert second.status == "done"
        assert 0.7 < second.submission.score.public_accuracy < 0.8


def test_job_given_up_after_repeated_worker_deaths(engine, tmp_path, make_predictions):
    (job_id,) = queue_selftest_jobs(engine, tmp_path / "up", make_predictions())
    for attempt in range(3):
        assert claim(engine, f"dying-{attempt}", lease_s=0.05) == job_id
        time.sleep(0.1)
    assert claim(engine, "last", lease_s=60) is None
    with session_scope(engine) as session:
        job = session.get(Job, job_id)
        assert job.status == "failed" and "stopped 3 times" in job.error
        assert "ask the instructor" in job.submission.message


def test_invalid_result_costs_no_quota(engine, tmp_path):
    (job_id,) = queue_selftest_jobs(engine, tmp_path / "up", b"Id,Category\n0,cat\n")
    result = run_job(engine, job_id, WorkerConfig(database_url="unused", allow_test_jobs=True))
    assert result.status == "invalid" and "missing" in result.message
    claim(engine, "w", lease_s=60)
    assert finish(engine, job_id, "w", JobResult("invalid", result.message))
    with session_scope(engine) as session:
        assert session.get(Job, job_id).submission.status == "invalid"
