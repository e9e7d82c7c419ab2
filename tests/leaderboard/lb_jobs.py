"""Queue test jobs: a student, a stored predictions file and a ``selftest`` job scoring it."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import Engine

from leaderboard.db import session_scope
from leaderboard.models import Job, Student, Submission


def queue_selftest_jobs(
    engine: Engine, folder: Path, content: bytes, count: int = 1, seconds: float = 0.0
) -> list[int]:
    """Queue ``count`` selftest jobs for one new student; return the job ids."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    with session_scope(engine) as session:
        tag = uuid.uuid4().hex[:8]
        student = Student(student=f"s-{tag}", name="Worker Test", display_name=f"w-{tag}")
        session.add(student)
        session.flush()
        for _ in range(count):
            path = folder / f"{uuid.uuid4().hex}.csv"
            path.write_bytes(content)
            submission = Submission(
                student_id=student.id,
                assignment="cifar10",
                kind="predictions",
                status="queued",
                stored_path=str(path),
            )
            session.add(submission)
            session.flush()
            job = Job(
                submission_id=submission.id,
                kind="selftest",
                payload={"seconds": seconds, "assignment": "cifar10"},
            )
            session.add(job)
            session.flush()
            ids.append(job.id)
    return ids
