"""Grading jobs in the database, the source of truth for their status.

Each claim starts a new attempt with a fresh secret key (only its hash is stored). A result is
stored only when it names the current attempt and carries its key, and only once: a second post
of the same result is answered as a duplicate, a post for an older attempt is stale, a post with
a wrong key is forged. After :data:`MAX_ATTEMPTS` claims a job is given up, so a submission that
kills every worker cannot loop for ever.

Two ways to claim: :func:`claim_next` (the embedded queue: the oldest queued job, or one whose
worker stopped heartbeating) and :func:`claim_job` (a job named by a broker message; it takes the
job over whatever attempt ran before, because the broker redelivers only what was never acked).
Claims use ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL and ``BEGIN IMMEDIATE`` on SQLite.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.orm import Session

from grader.assignment import Assignment
from grader.grading.complete import complete_grade
from grader.grading.evidence import Evidence
from grader.grading.grade import Grade
from grader.grading.status import GradeStatus, SubmissionKind
from grader.predictions.solution import SolutionError
from leaderboard.db import bump_board_version
from leaderboard.models import Job, Submission, utcnow
from leaderboard.protocol import Claim
from leaderboard.scoring import answer_key, error_grade, store_grade
from leaderboard.status import JobQueue, JobStatus, SubmissionStatus, transition

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3
LEASE_S = 60.0
"""Seconds a claim lasts without a heartbeat (workers beat every third of it)."""


class Refusal(str, Enum):
    """Why a job was not handed out."""

    NOT_FOUND = "not-found"
    FINISHED = "finished"
    GIVEN_UP = "given-up"


class Stored(str, Enum):
    """What became of a posted result."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    """The same attempt's result was stored before; nothing changed."""
    STALE = "stale"
    """The job has moved on to a later attempt."""
    FORGED = "forged"
    """The key is not the attempt's."""
    NOT_FOUND = "not-found"


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@contextmanager
def _write_session(engine: Engine) -> Iterator[Session]:
    """A session whose transactions are ``BEGIN IMMEDIATE`` on SQLite (they write)."""
    options = {"sqlite_begin": "IMMEDIATE"} if engine.dialect.name == "sqlite" else {}
    with (
        engine.connect().execution_options(**options) as conn,
        Session(bind=conn, expire_on_commit=False) as session,
    ):
        yield session


def _start_attempt(session: Session, job: Job, owner: str, lease_s: float) -> Claim | Refusal:
    """Give ``job`` a new attempt (or give it up); the caller commits."""
    now = utcnow()
    submission = session.get(Submission, job.submission_id)
    if job.attempts >= MAX_ATTEMPTS:
        job.status = JobStatus.FAILED
        job.error = f"the worker stopped {job.attempts} times while grading this submission"
        job.finished_at = now
        job.attempt_key_hash = None
        submission.status = SubmissionStatus.FAILED
        submission.message = job.error + "; ask the instructor"
        return Refusal.GIVEN_UP
    key = secrets.token_urlsafe(24)
    job.status = JobStatus.RUNNING
    job.lease_owner = owner[:120]
    job.lease_until = now + dt.timedelta(seconds=lease_s)
    job.attempts += 1
    job.attempt_key_hash = _key_hash(key)
    job.started_at = now
    submission.status = SubmissionStatus.RUNNING
    payload = dict(job.payload or {})
    return Claim(
        job_id=job.id,
        attempt=job.attempts,
        key=key,
        kind=job.kind,
        assignment=payload.get("assignment") or submission.assignment,
        spec=payload.get("spec") or {},
        payload={k: v for k, v in payload.items() if k not in {"assignment", "spec"}},
    )


def claim_next(
    engine: Engine,
    owner: str,
    lease_s: float,
    queues: Sequence[JobQueue] = tuple(JobQueue),
) -> Claim | None:
    """Take the oldest queued job of ``queues`` (or one whose lease expired); None when none."""
    while True:
        with _write_session(engine) as session:
            now = utcnow()
            query = (
                select(Job)
                .where(
                    Job.queue.in_(list(queues)),
                    or_(
                        Job.status == JobStatus.QUEUED,
                        (Job.status == JobStatus.RUNNING) & (Job.lease_until < now),
                    ),
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
            claim = _start_attempt(session, job, owner, lease_s)
            session.commit()
        if isinstance(claim, Claim):
            return claim
        log.warning("job %s given up after %s attempts", job.id, MAX_ATTEMPTS)


def claim_job(engine: Engine, job_id: int, owner: str, lease_s: float) -> Claim | Refusal:
    """Start a new attempt of ``job_id`` (a broker delivered it); a Refusal says why not."""
    with _write_session(engine) as session:
        query = select(Job).where(Job.id == job_id)
        if engine.dialect.name == "postgresql":
            query = query.with_for_update()
        job = session.scalar(query)
        if job is None:
            return Refusal.NOT_FOUND
        if job.status.finished:
            return Refusal.FINISHED
        claim = _start_attempt(session, job, owner, lease_s)
        session.commit()
        return claim


def heartbeat(engine: Engine, job_id: int, attempt: int, key: str, lease_s: float) -> bool:
    """Extend the attempt's lease; False when the job is no longer that attempt's."""
    with Session(engine) as session, session.begin():
        result = session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.attempts == attempt,
                Job.attempt_key_hash == _key_hash(key),
                Job.status == JobStatus.RUNNING,
            )
            .values(lease_until=utcnow() + dt.timedelta(seconds=lease_s))
        )
        return result.rowcount == 1


def _check_attempt(job: Job | None, attempt: int, key: str) -> Stored | None:
    """Why a post for ``attempt`` with ``key`` cannot be stored, or None when it can."""
    if job is None:
        return Stored.NOT_FOUND
    if attempt != job.attempts:
        return Stored.STALE
    if job.attempt_key_hash is None or not hmac.compare_digest(
        job.attempt_key_hash, _key_hash(key)
    ):
        return Stored.FORGED
    if job.status.finished:
        return Stored.DUPLICATE
    return None


def attempt_holds(engine: Engine, job_id: int, attempt: int, key: str) -> Stored | None:
    """None when ``attempt``/``key`` is the job's running attempt, else why not."""
    with Session(engine) as session:
        return _check_attempt(session.get(Job, job_id), attempt, key)


def store_result(
    engine: Engine,
    job_id: int,
    attempt: int,
    key: str,
    evidence: Evidence,
    *,
    spec_of: Callable[[str], Assignment | None],
    data_dir: Path | None = None,
) -> Stored:
    """Complete and store the grade of one attempt's evidence, once; the returned value says
    what happened.

    ``spec_of(name)`` gives the assignment the server grades against (never the worker's); the
    grade is completed here, against the server's answer key
    (:func:`grader.grading.complete_grade`).
    """
    with Session(engine) as session:
        job = session.get(Job, job_id)
        refusal = _check_attempt(job, attempt, key)
        if refusal is not None:
            return refusal
        kind = job.kind
        assignment = session.get(Submission, job.submission_id).assignment
    grade = _completed(evidence, kind, spec_of(assignment), data_dir)
    states = transition(grade.status)
    with _write_session(engine) as session:
        guarded = session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.attempts == attempt,
                Job.attempt_key_hash == _key_hash(key),
                Job.status == JobStatus.RUNNING,
            )
            .values(
                status=states.job,
                finished_at=utcnow(),
                error=grade.message if grade.status is GradeStatus.ERROR else "",
            )
        )
        if guarded.rowcount != 1:  # another post for this attempt won the race
            session.rollback()
            return _check_attempt(session.get(Job, job_id), attempt, key) or Stored.STALE
        job = session.get(Job, job_id)
        submission = session.get(Submission, job.submission_id)
        submission.status = states.submission
        submission.message = grade.message
        store_grade(session, submission, grade, evidence)
        if grade.graded:
            bump_board_version(session)
        session.commit()
    return Stored.STORED


def _completed(
    evidence: Evidence, kind: SubmissionKind, spec: Assignment | None, data_dir: Path | None
) -> Grade:
    """The grade of a worker's evidence (an error grade when it cannot be completed)."""
    if spec is None:
        return error_grade(kind, "the assignment is no longer served; ask the instructor")
    if evidence.kind is not kind:
        return error_grade(kind, f"the worker sent {evidence.kind} evidence for a {kind} job")
    try:
        return complete_grade(evidence, spec, answer_key(spec, data_dir))
    except SolutionError as exc:
        return error_grade(kind, f"the server cannot load the answer key: {exc}")


def requeue_waiting(session: Session) -> list[tuple[int, JobQueue]]:
    """The jobs still queued (to be sent to the broker again), oldest first."""
    return [
        (job.id, job.queue)
        for job in session.scalars(
            select(Job).where(Job.status == JobStatus.QUEUED).order_by(Job.id)
        )
    ]
