"""The embedded worker: claims jobs from the database on the server's own machine.

The default set-up needs no broker: ``grader worker`` beside ``grader serve`` claims the oldest
queued job (:func:`leaderboard.jobs.claim_next`), keeps its lease alive with a heartbeat thread,
grades it with :class:`leaderboard.grading.SubmissionGrader` and stores the result through the
same :func:`leaderboard.jobs.store_result` the remote workers' API uses. A worker that dies stops
heartbeating; its lease expires and the next claimer takes the job as a new attempt.

An idle worker wakes as soon as a job is queued (:mod:`leaderboard.wakeup`), and its boxes are
started when it starts, for the datasets of the model assignments the server serves
(:func:`known_datasets`), so the first upload does not wait for a box to import torch.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine, select

from grader.assignment import SpecError, parse_assignment
from grader.grading.evidence import Evidence
from grader.grading.status import GradeStatus, SubmissionKind
from leaderboard.db import SERVED_MODELS, make_engine, read_setting, session_scope
from leaderboard.grading import GradingConfig, SubmissionGrader
from leaderboard.jobs import claim_next, heartbeat, store_result
from leaderboard.models import Job
from leaderboard.protocol import Claim
from leaderboard.status import JobQueue
from leaderboard.uploads import load_files
from leaderboard.wakeup import JobSignal

log = logging.getLogger(__name__)


def worker_name() -> str:
    """A name for this worker process: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class WorkerConfig:
    """How an embedded worker runs."""

    database_url: str
    grading: GradingConfig = field(default_factory=GradingConfig)
    lease_s: float = 60.0
    """Seconds a claim lasts without a heartbeat; heartbeats come every third of it."""
    poll_s: float = 1.0
    """Seconds between two claims while idle; a newly queued job wakes the worker at once."""
    once: bool = False
    """Stop when the queue is empty instead of waiting for more jobs."""
    max_jobs: int | None = None
    queues: Sequence[JobQueue] = tuple(JobQueue)
    owner: str = field(default_factory=worker_name)


def spec_of_claim(claim: Claim):
    """The assignment spec a claim carries (parsed strictly, like any spec)."""
    return parse_assignment(claim.spec)


def run_claim(
    engine: Engine, claim: Claim, grader: SubmissionGrader, config: WorkerConfig
) -> Evidence:
    """Run the claimed job with a heartbeat running; store its grade; return the evidence."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(config.lease_s / 3):
            if not heartbeat(engine, claim.job_id, claim.attempt, claim.key, config.lease_s):
                log.warning("job %s: taken over by another attempt", claim.job_id)
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{claim.job_id}", daemon=True)
    thread.start()
    try:
        with session_scope(engine) as session:
            submission_id = _submission_of(session, claim.job_id)
            files = load_files(session, submission_id)
        try:
            spec = spec_of_claim(claim)
        except SpecError as exc:
            message = f"the job's assignment spec is broken: {exc}"
            result = Evidence(claim.kind, GradeStatus.ERROR, message)
        else:
            result = grader.grade(claim.kind, files, spec, claim.payload)
    finally:
        stop.set()
        thread.join()
    stored = store_result(
        engine,
        claim.job_id,
        claim.attempt,
        claim.key,
        result,
        spec_of=lambda _name: _spec_or_none(claim),
        data_dir=config.grading.data_dir,
    )
    log.info("job %s attempt %s: %s (%s)", claim.job_id, claim.attempt, result.status.value,
             stored.value)  # fmt: skip
    return result


def _spec_or_none(claim: Claim):
    try:
        return spec_of_claim(claim)
    except SpecError:
        return None


def _submission_of(session, job_id: int) -> int:
    return session.get(Job, job_id).submission_id


def process_one(
    engine: Engine, config: WorkerConfig, grader: SubmissionGrader | None = None
) -> bool:
    """Claim and run one job; False when the queue was empty."""
    claim = claim_next(engine, config.owner, config.lease_s, config.queues)
    if claim is None:
        return False
    log.info("job %s attempt %s claimed by %s", claim.job_id, claim.attempt, config.owner)
    own = grader is None
    grader = grader or SubmissionGrader(config.grading)
    try:
        run_claim(engine, claim, grader, config)
    finally:
        if own:
            grader.close()
    return True


def known_datasets(engine: Engine, queues: Sequence[JobQueue] = tuple(JobQueue)) -> list[str]:
    """Datasets of the model assignments this worker will likely grade: those the server last
    started with (it records them), and those of the model jobs already in the database."""
    found: list[str] = []
    wanted = {q.value for q in queues}
    with session_scope(engine) as session:
        try:
            served = json.loads(read_setting(session, SERVED_MODELS) or "{}")
        except ValueError:
            served = {}
        for queue, datasets in served.items() if isinstance(served, dict) else ():
            if queue in wanted and isinstance(datasets, list):
                found.extend(d for d in datasets if isinstance(d, str))
        recent = session.scalars(
            select(Job.payload)
            .where(Job.kind == SubmissionKind.MODEL, Job.queue.in_(list(queues)))
            .order_by(Job.id.desc())
            .limit(200)
        )
        for payload in recent:
            dataset = ((payload or {}).get("spec") or {}).get("dataset")
            if isinstance(dataset, str):
                found.append(dataset)
    return list(dict.fromkeys(found))


def run_worker(config: WorkerConfig, *, stop: threading.Event | None = None) -> int:
    """Process jobs until stopped (with ``once``: until the queue is empty); return the count."""
    engine = make_engine(config.database_url)
    stop = stop or threading.Event()
    grader = SubmissionGrader(config.grading)
    signal = JobSignal(engine)
    done = 0
    try:
        if not config.once:
            grader.warm(known_datasets(engine, config.queues))
        while not stop.is_set():
            if config.max_jobs is not None and done >= config.max_jobs:
                break
            if process_one(engine, config, grader):
                done += 1
            elif config.once:
                break
            else:
                signal.wait(config.poll_s, stop)
    finally:
        signal.close()
        grader.close()
        engine.dispose()
    return done
