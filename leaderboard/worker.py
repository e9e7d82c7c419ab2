"""The job worker: claim a job atomically, keep its lease alive, grade, store the result once.

Claiming uses ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL and ``BEGIN IMMEDIATE`` on
SQLite. A heartbeat thread extends ``lease_until`` while the job runs; a worker that dies stops
heartbeating, its lease expires and another worker claims the job again. The result is written in
one transaction that first checks the job is still leased to this worker, so a stale worker can
never store a second result.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.orm import Session

from grader.assignment import load_assignment
from leaderboard.db import bump_board_version, make_engine
from leaderboard.models import Job, Submission, utcnow

if TYPE_CHECKING:
    from leaderboard.grading import Scored

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3


@dataclass
class WorkerConfig:
    """How a worker runs."""

    database_url: str
    lease_s: float = 60.0
    """Seconds a claim lasts without a heartbeat; heartbeats come every third of it."""
    poll_s: float = 1.0
    """Seconds to wait when no job is queued."""
    once: bool = False
    """Stop when the queue is empty instead of waiting for more jobs."""
    max_jobs: int | None = None
    data_dir: Path | None = None
    allow_test_jobs: bool = False
    """Run ``selftest`` jobs (a delayed predictions scoring used to test crash recovery)."""
    pools: dict = field(default_factory=dict)
    """Warm sandbox pools, one per assignment, kept between jobs."""
    owner: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    )

    def boxes(self, spec):
        """The warm pool of sandbox boxes for ``spec``'s models (started on first use)."""
        if spec.name not in self.pools:
            from grader.models.pipeline import model_pool

            self.pools[spec.name] = model_pool(spec, data_dir=self.data_dir)
        return self.pools[spec.name]

    def close(self) -> None:
        """Stop the sandbox boxes this worker kept warm."""
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()


@dataclass
class JobResult:
    """The outcome of running one job."""

    status: str
    """done (scored), invalid (the submission is not gradable) or failed (the grader failed)."""
    message: str = ""
    scored: Scored | None = None
    total_params: int | None = None
    flops: int | None = None


def claim(engine: Engine, owner: str, lease_s: float) -> int | None:
    """Take the oldest queued job (or one whose lease expired); return its id or None."""
    now = utcnow()
    options = {"sqlite_begin": "IMMEDIATE"} if engine.dialect.name == "sqlite" else {}
    with engine.connect().execution_options(**options) as conn, Session(bind=conn) as session:
        query = (
            select(Job)
            .where(
                or_(
                    Job.status == "queued",
                    (Job.status == "running") & (Job.lease_until < now),
                )
            )
            .order_by(Job.id)
            .limit(1)
        )
        if engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        job = session.scalar(query)
        if job is None:
            session.rollback()
            return None
        submission = session.get(Submission, job.submission_id)
        if job.attempts >= MAX_ATTEMPTS:
            job.status = "failed"
            job.error = f"the worker stopped {job.attempts} times while grading this submission"
            job.finished_at = now
            submission.status = "failed"
            submission.message = job.error + "; ask the instructor"
            session.commit()
            return None
        job.status = "running"
        job.lease_owner = owner
        job.lease_until = now + dt.timedelta(seconds=lease_s)
        job.attempts += 1
        job.started_at = now
        submission.status = "running"
        job_id = job.id
        session.commit()
        return job_id


def heartbeat(engine: Engine, job_id: int, owner: str, lease_s: float) -> bool:
    """Extend the lease; False when the job is no longer this worker's."""
    with Session(engine) as session, session.begin():
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.lease_owner == owner, Job.status == "running")
            .values(lease_until=utcnow() + dt.timedelta(seconds=lease_s))
        )
        return result.rowcount == 1


def finish(engine: Engine, job_id: int, owner: str, result: JobResult) -> bool:
    """Store the result if the job is still leased to ``owner``; True when it was stored."""
    options = {"sqlite_begin": "IMMEDIATE"} if engine.dialect.name == "sqlite" else {}
    with engine.connect().execution_options(**options) as conn, Session(bind=conn) as session:
        now = utcnow()
        guarded = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.lease_owner == owner, Job.status == "running")
            .values(
                status="failed" if result.status == "failed" else "done",
                finished_at=now,
                error=result.message if result.status == "failed" else "",
            )
        )
        if guarded.rowcount != 1:
            session.rollback()
            log.warning("job %s: lease lost before the result was stored; result dropped", job_id)
            return False
        job = session.get(Job, job_id)
        submission = session.get(Submission, job.submission_id)
        submission.status = result.status
        submission.message = result.message
        if result.scored is not None:
            from leaderboard.submitting import score_row

            session.add(
                score_row(
                    submission.id,
                    result.scored,
                    total_params=result.total_params,
                    flops=result.flops,
                )
            )
            bump_board_version(session)
        session.commit()
        return True


def run_job(engine: Engine, job_id: int, config: WorkerConfig) -> JobResult:
    """Grade the job's submission; every failure becomes a result with its reason."""
    # Scoring pulls in pandas; imported here so a worker claims its first job without the wait.
    from leaderboard.grading import SubmissionError, score_predictions

    with Session(engine) as session:
        job = session.get(Job, job_id)
        submission = session.get(Submission, job.submission_id)
        kind, payload = job.kind, dict(job.payload or {})
        folder = Path(submission.stored_path)
        assignment = payload.get("assignment") or submission.assignment
    try:
        spec = load_assignment(assignment)
        if kind == "model":
            return _grade_model(folder, spec, config)
        if kind == "selftest" and config.allow_test_jobs:
            time.sleep(float(payload.get("seconds", 0)))
            return JobResult(
                "done",
                scored=score_predictions(folder.read_bytes(), spec, data_dir=config.data_dir),
            )
        return JobResult("failed", f"unknown job kind {kind!r}; this worker cannot run it")
    except SubmissionError as exc:
        return JobResult("invalid", "; ".join(exc.errors))
    except Exception as exc:  # noqa: BLE001 - any grader crash becomes a failed job with its reason
        log.exception("job %s failed", job_id)
        return JobResult("failed", f"grading failed: {type(exc).__name__}: {exc}")


def _grade_model(folder: Path, spec, config: WorkerConfig) -> JobResult:
    import numpy as np

    from leaderboard.grading import score_logits

    try:
        from grader.models.pipeline import grade_model
    except ImportError:
        return JobResult(
            "failed", "model grading is not available on this server (grader.models missing)"
        )
    grade = grade_model(folder, spec, data_dir=config.data_dir, pool=config.boxes(spec))
    failed = [f"{check.name}: {check.message}" for check in grade.failed_checks]
    notes = [*failed, *grade.flags]
    if not grade.verified and grade.status == "ok":
        notes.insert(0, "unverified: the accuracy comes from the model's own process")
    if grade.status == "invalid":
        return JobResult("invalid", "; ".join(dict.fromkeys([grade.message, *notes])))
    if grade.status != "ok" or grade.logits is None:
        return JobResult("failed", grade.message or "the model check returned no logits")
    logits = np.asarray(grade.logits)
    np.save(folder / "logits.npy", logits)
    return JobResult(
        "done",
        message="; ".join(notes),
        scored=score_logits(logits, spec, data_dir=config.data_dir),
        total_params=grade.total_params,
        flops=grade.flops,
    )


def process_one(engine: Engine, config: WorkerConfig) -> bool:
    """Claim and run one job with a heartbeat; False when the queue was empty."""
    job_id = claim(engine, config.owner, config.lease_s)
    if job_id is None:
        return False
    log.info("job %s claimed by %s", job_id, config.owner)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(config.lease_s / 3):
            if not heartbeat(engine, job_id, config.owner, config.lease_s):
                log.warning("job %s: lease taken by another worker", job_id)
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{job_id}", daemon=True)
    thread.start()
    try:
        result = run_job(engine, job_id, config)
    finally:
        stop.set()
        thread.join()
    stored = finish(engine, job_id, config.owner, result)
    log.info("job %s: %s (%s)", job_id, result.status, "stored" if stored else "dropped")
    return True


def run_worker(config: WorkerConfig, *, stop: threading.Event | None = None) -> int:
    """Process jobs until stopped (with ``once``: until the queue is empty); return the count."""
    engine = make_engine(config.database_url)
    stop = stop or threading.Event()
    done = 0
    try:
        while not stop.is_set():
            if config.max_jobs is not None and done >= config.max_jobs:
                break
            if process_one(engine, config):
                done += 1
            elif config.once:
                break
            else:
                stop.wait(config.poll_s)
    finally:
        config.close()
        engine.dispose()
    return done
