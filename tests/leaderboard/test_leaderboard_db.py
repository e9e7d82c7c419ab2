"""The database layer and the job queue on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import threading
import time

import pytest
from lb_jobs import model_evidence, queue_jobs
from lb_support import Submitter, enrol
from sqlalchemy import func, select

from grader.assignment import load_assignment
from grader.data import load_dataset
from grader.grading import GradeStatus, SubmissionKind
from leaderboard.db import make_engine, session_scope
from leaderboard.grading import GradingConfig
from leaderboard.jobs import MAX_ATTEMPTS, Stored, claim_job, claim_next, store_result
from leaderboard.models import GradeRecord, Job, Score, Submission
from leaderboard.status import JobQueue, JobStatus, SubmissionStatus
from leaderboard.worker import WorkerConfig, process_one, run_worker

SPEC = load_assignment("simplenn")
MODEL = {"model.py": b"import torch\n", "model.pt": b"weights"}


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def image_labels(data_dir):
    return load_dataset("cifar10", "test", data_dir).labels


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


def test_claims_are_exclusive_under_concurrency(engine):
    job_ids = queue_jobs(engine, MODEL, count=12)
    claimed: list[int] = []
    lock = threading.Lock()

    def claimer(owner: str) -> None:
        while (claim := claim_next(engine, owner, lease_s=60)) is not None:
            with lock:
                claimed.append(claim.job_id)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == job_ids
    with session_scope(engine) as session:
        jobs = session.scalars(select(Job)).all()
        assert {j.status for j in jobs} == {JobStatus.RUNNING} and {j.attempts for j in jobs} == {1}


def test_a_result_is_stored_once_per_attempt(engine, image_labels):
    (job_id,) = queue_jobs(engine, MODEL)
    stale = claim_next(engine, "stale", lease_s=0.2)
    time.sleep(0.4)
    fresh = claim_next(engine, "fresh", lease_s=60)  # the lease expired: a new attempt
    assert (stale.job_id, fresh.job_id, stale.attempt, fresh.attempt) == (job_id, job_id, 1, 2)
    evidence = model_evidence(image_labels, wrong=10)

    def store(claim, key=None):
        return store_result(engine, job_id, claim.attempt, key or claim.key, evidence,
                            spec_of=lambda _name: SPEC)  # fmt: skip

    assert store(stale) is Stored.STALE  # an older attempt is refused
    assert store(fresh, key="forged-key") is Stored.FORGED
    assert store(fresh) is Stored.STORED
    assert store(fresh) is Stored.DUPLICATE  # idempotent: a repeated post changes nothing
    with session_scope(engine) as session:
        assert session.scalar(select(func.count(Score.id))) == 1
        assert session.scalar(select(func.count(GradeRecord.id))) == 1
        job = session.get(Job, job_id)
        assert (job.status, job.attempts, job.lease_owner) == (JobStatus.DONE, 2, "fresh")
        submission = session.get(Submission, job.submission_id)
        assert submission.status is SubmissionStatus.GRADED
        assert submission.score.public_accuracy > 0.98
        assert submission.grade.points == submission.score.points == 10  # the top tier


def test_worker_processes_queue_and_fails_a_job_of_the_wrong_kind(engine):
    wrong = queue_jobs(engine, {"ops.py": b"x = 1\n"}, kind=SubmissionKind.OPS)
    no_weights = queue_jobs(engine, {"model.py": b"import torch\n"})
    config = WorkerConfig(database_url="unused", grading=GradingConfig(pre_fork=False))
    assert process_one(engine, config) is True
    assert process_one(engine, config) is True
    assert process_one(engine, config) is False
    with session_scope(engine) as session:
        first, second = session.get(Job, wrong[0]), session.get(Job, no_weights[0])
        assert first.status is JobStatus.FAILED and "which takes model" in first.error
        assert first.submission.status is SubmissionStatus.FAILED
        assert second.status is JobStatus.DONE  # graded: the submission is at fault
        assert second.submission.status is SubmissionStatus.INVALID
        assert "no weights file" in second.submission.message


def test_job_given_up_after_repeated_worker_deaths(engine):
    (job_id,) = queue_jobs(engine, MODEL)
    for attempt in range(MAX_ATTEMPTS):
        assert claim_next(engine, f"dying-{attempt}", lease_s=0.05).job_id == job_id
        time.sleep(0.1)
    assert claim_next(engine, "last", lease_s=60) is None
    assert claim_job(engine, job_id, "broker", 60).value == "finished"
    with session_scope(engine) as session:
        job = session.get(Job, job_id)
        assert job.status is JobStatus.FAILED and "stopped 3 times" in job.error
        assert "ask the instructor" in job.submission.message


def test_a_broker_redelivery_takes_the_job_over(engine, image_labels):
    (job_id,) = queue_jobs(engine, MODEL)
    first = claim_job(engine, job_id, "w1", 60)
    second = claim_job(engine, job_id, "w2", 60)  # redelivered while "running": a new attempt
    assert (first.attempt, second.attempt) == (1, 2) and first.key != second.key
    evidence = model_evidence(image_labels)
    spec_of = {"simplenn": SPEC}.get
    assert store_result(engine, job_id, 1, first.key, evidence, spec_of=spec_of) is Stored.STALE
    assert store_result(engine, job_id, 2, second.key, evidence, spec_of=spec_of) is Stored.STORED
    assert claim_job(engine, job_id, "w3", 60).value == "finished"


def test_evidence_of_the_wrong_kind_is_a_grader_error(engine, image_labels):
    (job_id,) = queue_jobs(engine, MODEL)
    claim = claim_next(engine, "w", lease_s=60)
    evidence = model_evidence(image_labels)
    evidence.kind = SubmissionKind.OPS
    assert store_result(engine, job_id, 1, claim.key, evidence, spec_of=lambda _n: SPEC).value == (
        "stored"
    )
    with session_scope(engine) as session:
        submission = session.get(Job, job_id).submission
        assert submission.status is SubmissionStatus.FAILED and submission.score is None
        assert submission.grade.status is GradeStatus.ERROR


def test_queues_keep_gpu_jobs_for_gpu_workers(engine):
    (cpu_job,) = queue_jobs(engine, MODEL, queue=JobQueue.CPU)
    (gpu_job,) = queue_jobs(engine, MODEL, queue=JobQueue.GPU)
    assert claim_next(engine, "cpu-worker", 60, queues=[JobQueue.GPU]).job_id == gpu_job
    assert claim_next(engine, "cpu-worker", 60, queues=[JobQueue.GPU]) is None
    assert claim_next(engine, "cpu-worker", 60, queues=[JobQueue.CPU]).job_id == cpu_job


def test_idle_worker_wakes_when_a_job_is_queued(database_url, engine):
    """An idle worker polling only every 60 s grades a new job within seconds: the commit that
    queues it wakes the worker (SQLite's data version, PostgreSQL's NOTIFY)."""
    config = WorkerConfig(
        database_url=database_url,
        grading=GradingConfig(pre_fork=False),
        poll_s=60.0,
        max_jobs=1,
    )
    stop = threading.Event()
    done: list[int] = []
    worker = threading.Thread(target=lambda: done.append(run_worker(config, stop=stop)))
    worker.start()
    try:
        time.sleep(0.5)  # the worker found the queue empty and is waiting
        (job_id,) = queue_jobs(
            engine, {"model.py": b"import torch\n"}
        )  # graded at once: no weights
        worker.join(timeout=20)  # far below the 60 s poll: only the signal can explain it
        assert done == [1], "the worker did not wake for the queued job"
    finally:
        stop.set()
        worker.join(timeout=30)
    with session_scope(engine) as session:
        assert session.get(Job, job_id).status is JobStatus.DONE
