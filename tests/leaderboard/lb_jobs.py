"""Queue real grading jobs for the queue's tests: a student, a stored submission and its job.

A job is what production queues (a model, or an ``ops.py``); a test that needs a slow job queues
a model whose import sleeps, under a spec with a short time limit, so its box stops it.
"""

from __future__ import annotations

import dataclasses
import uuid

import numpy as np
from sqlalchemy import Engine

from grader.assignment import Assignment, assignment_table, load_assignment
from grader.grading import Evidence, GradeStatus, SubmissionKind, spec_kind
from grader.models.result import ModelResult
from leaderboard.db import session_scope
from leaderboard.models import Job, Student, Submission
from leaderboard.status import JobQueue, SubmissionStatus
from leaderboard.uploads import store_files

SLEEPING_MODEL = b"""
import time

import torch.nn as nn

time.sleep(600)  # longer than the spec's time limit: the box stops it


class Net(nn.Module):
    pass
"""


def slow_spec(seconds: float = 3.0, name: str = "simplenn") -> Assignment:
    """The simplenn spec under a time limit of ``seconds`` (a job's attempt takes that long)."""
    spec = load_assignment("simplenn")
    model = dataclasses.replace(spec.model, time_limit_s=seconds)
    return dataclasses.replace(spec, name=name, model=model)


def queue_jobs(
    engine: Engine,
    files: dict[str, bytes],
    *,
    spec: Assignment | None = None,
    kind: SubmissionKind | None = None,
    count: int = 1,
    queue: JobQueue = JobQueue.CPU,
) -> list[int]:
    """Queue ``count`` jobs of ``kind`` (default: what ``spec`` takes; spec default simplenn)
    on ``files`` for one new student; return the job ids."""
    spec = spec or load_assignment("simplenn")
    kind = kind or spec_kind(spec)
    ids = []
    with session_scope(engine) as session:
        tag = uuid.uuid4().hex[:8]
        student = Student(student=f"s-{tag}", name="Worker Test", display_name=f"w-{tag}")
        session.add(student)
        session.flush()
        for _ in range(count):
            submission = Submission(
                student_id=student.id,
                assignment=spec.name,
                kind=kind,
                status=SubmissionStatus.QUEUED,
            )
            session.add(submission)
            session.flush()
            store_files(session, submission.id, files)
            job = Job(
                submission_id=submission.id,
                kind=kind,
                queue=queue,
                payload={"assignment": spec.name, "spec": assignment_table(spec)},
            )
            session.add(job)
            session.flush()
            ids.append(job.id)
    return ids


def model_evidence(labels: np.ndarray, wrong: int = 0) -> Evidence:
    """What a worker posts for a model that predicts ``labels`` (the first ``wrong`` shifted)."""
    predicted = np.asarray(labels).copy()
    predicted[:wrong] = (predicted[:wrong] + 1) % 10
    logits = np.eye(10, dtype=np.float32)[predicted] * 5
    result = ModelResult(GradeStatus.OK, "all checks passed", True, logits, total_params=82030)
    return Evidence(SubmissionKind.MODEL, model=result)
