"""Queue test jobs: a student, a stored predictions file and a ``selftest`` job scoring it."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine

from grader.assignment import assignment_table, load_assignment
from leaderboard.db import session_scope
from leaderboard.models import Job, Student, Submission
from leaderboard.status import JobKind, JobQueue, SubmissionKind, SubmissionStatus
from leaderboard.uploads import store_files


def queue_selftest_jobs(
    engine: Engine,
    content: bytes,
    count: int = 1,
    seconds: float = 0.0,
    queue: JobQueue = JobQueue.CPU,
) -> list[int]:
    """Queue ``count`` selftest jobs for one new student; return the job ids."""
    spec = load_assignment("cifar10")
    ids = []
    with session_scope(engine) as session:
        tag = uuid.uuid4().hex[:8]
        student = Student(student=f"s-{tag}", name="Worker Test", display_name=f"w-{tag}")
        session.add(student)
        session.flush()
        for _ in range(count):
            submission = Submission(
                student_id=student.id,
                assignment="cifar10",
                kind=SubmissionKind.PREDICTIONS,
                status=SubmissionStatus.QUEUED,
            )
            session.add(submission)
            session.flush()
            store_files(session, submission.id, {"predictions.csv": content})
            job = Job(
                submission_id=submission.id,
                kind=JobKind.SELFTEST,
                queue=queue,
                payload={"seconds": seconds, "assignment": "cifar10",
                         "spec": assignment_table(spec)},
            )  # fmt: skip
            session.add(job)
            session.flush()
            ids.append(job.id)
    return ids
