"""Grades as the server stores them: the one mapping from a :class:`~grader.grading.grade.Grade`
to the database's rows, and back.

The grade is completed against the answer key on the server only (a worker posts label-free
evidence), stored whole and versioned (:class:`leaderboard.models.GradeRecord`), and copied into
the :class:`leaderboard.models.Score` row the boards rank by. Pages, the API and the exports read
the stored grade: nothing here or downstream recomputes its points or flags.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import delete
from sqlalchemy.orm import Session

from grader.assignment import Assignment
from grader.grading.answer_key import AnswerKey
from grader.grading.evidence import Evidence
from grader.grading.grade import GRADE_VERSION, Grade, GradeRecordError
from grader.grading.status import GradeStatus, SubmissionKind
from leaderboard.models import GradeRecord, Score, Submission


def answer_key(spec: Assignment, data_dir: Path | None = None) -> AnswerKey:
    """The answer key the server completes grades of ``spec`` with (loaded once per process)."""
    return AnswerKey(spec, data_dir)


def store_grade(
    session: Session, submission: Submission, grade: Grade, evidence: Evidence | None = None
) -> None:
    """Keep ``grade`` (and the worker's ``evidence``) as the submission's grade, replacing any
    earlier one, and its score row when it ranks; the caller commits."""
    session.execute(delete(Score).where(Score.submission_id == submission.id))
    session.execute(delete(GradeRecord).where(GradeRecord.submission_id == submission.id))
    session.flush()
    session.add(
        GradeRecord(
            submission_id=submission.id,
            status=grade.status,
            points=grade.points,
            held=grade.held,
            version=GRADE_VERSION,
            record=grade.to_record(labels=False),
            evidence=None if evidence is None else evidence.to_record(),
        )
    )
    row = score_row(submission.id, grade)
    if row is not None:
        session.add(row)


def score_row(submission_id: int, grade: Grade) -> Score | None:
    """The board's row of a graded submission (None for one that does not rank: not graded,
    or an ``ops.py``, which has no accuracy)."""
    if not grade.graded or grade.kind is SubmissionKind.OPS or not grade.scores:
        return None
    labels = None
    if grade.labels is not None:
        labels = np.asarray(grade.labels).astype(np.uint8).tobytes()
    return Score(
        submission_id=submission_id,
        public_accuracy=grade.public_accuracy,
        public_macro_f1=grade.scores["public"].get("macro_f1"),
        private_accuracy=grade.private_accuracy,
        private_macro_f1=grade.scores["private"].get("macro_f1"),
        all_accuracy=grade.all_accuracy,
        points=grade.points or 0.0,
        labels=labels,
        total_params=grade.total_params,
        flops=grade.flops,
        weights_sha256=grade.weights_sha256,
        verified=grade.verified,
    )


def stored_grade(submission: Submission) -> Grade | None:
    """The submission's stored grade (its predicted labels from the score row), or None when it
    has none or the record is from another grader version (rescore to renew it)."""
    record = submission.grade
    if record is None:
        return None
    try:
        grade = Grade.from_record(record.record)
    except GradeRecordError:
        return None
    score = submission.score
    if score is not None and score.labels is not None:
        grade.labels = np.frombuffer(score.labels, dtype=np.uint8).astype(np.int64)
    return grade


def stored_evidence(submission: Submission) -> Evidence | None:
    """The evidence a worker posted for the submission, if it was kept."""
    record = submission.grade
    if record is None or record.evidence is None:
        return None
    return Evidence.from_record(record.evidence)


def error_grade(kind: SubmissionKind, message: str) -> Grade:
    """The grade of a submission the server could not grade (its own fault, not the student's)."""
    return Grade(status=GradeStatus.ERROR, kind=kind, message=message)
