"""Instructor tools: rescore every submission, export grades, import flags from ``grader check``."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.assignment import Assignment
from leaderboard.db import bump_board_version
from leaderboard.grading import SubmissionError, score_logits, score_predictions
from leaderboard.models import Event, Score, Student, Submission
from leaderboard.standings import standings
from leaderboard.submitting import score_row


class GradesFileError(ValueError):
    """An imported grades file that cannot be used; the message names the problem."""


@dataclass
class RescoreReport:
    """What a rescore did."""

    rescored: int = 0
    failures: list[str] = field(default_factory=list)


def rescore_all(
    session: Session, spec: Assignment, *, data_dir: Path | None = None
) -> RescoreReport:
    """Score every stored submission of ``spec`` again (after a spec or answer-key change)."""
    report = RescoreReport()
    submissions = session.scalars(
        select(Submission).where(
            Submission.assignment == spec.name, Submission.status.in_(("scored", "done"))
        )
    ).all()
    for submission in submissions:
        try:
            if submission.kind == "predictions":
                content = Path(submission.stored_path).read_bytes()
                scored = score_predictions(content, spec, data_dir=data_dir)
            else:
                logits = np.load(Path(submission.stored_path) / "logits.npy")
                scored = score_logits(logits, spec, data_dir=data_dir)
        except (OSError, ValueError, SubmissionError) as exc:
            report.failures.append(f"submission {submission.id}: {exc}")
            continue
        old = submission.score
        extra = {}
        if old is not None:
            extra = {"total_params": old.total_params, "flops": old.flops}
            session.delete(old)
            session.flush()
        session.add(score_row(submission.id, scored, **extra))
        report.rescored += 1
    session.add(
        Event(
            kind="rescore",
            message=f"rescored {report.rescored}, failed {len(report.failures)}",
        )
    )
    bump_board_version(session)
    return report


def grades_frame(session: Session, spec: Assignment) -> pd.DataFrame:
    """One row per roster student: the entry the rule picks, its scores, points and flags."""
    rows = {r.student_id: r for r in standings(session, spec, revealed=True, pseudonyms=False)}
    flags = _flags(session)
    records = []
    for student in session.scalars(select(Student).order_by(Student.student)):
        row = rows.get(student.id)
        graded = None
        if row is not None:
            graded = row.private_accuracy if spec.grade_split == "private" else row.public_accuracy
        records.append(
            {
                "student": student.student,
                "name": student.name,
                "email": student.email,
                "public_accuracy": None if row is None else row.public_accuracy,
                "private_accuracy": None if row is None else row.private_accuracy,
                "points": 0.0 if graded is None else spec.points_for(graded),
                "max_points": spec.max_points,
                "submissions": 0 if row is None else row.submissions,
                "late": False if row is None else row.late,
                "flags": "; ".join(flags.get(student.id, [])),
            }
        )
    return pd.DataFrame.from_records(
        records,
        columns=[
            "student",
            "name",
            "email",
            "public_accuracy",
            "private_accuracy",
            "points",
            "max_points",
            "submissions",
            "late",
            "flags",
        ],
    )


def grades_csv(session: Session, spec: Assignment) -> str:
    """The grades table as CSV text for the LMS."""
    return grades_frame(session, spec).to_csv(index=False)


def import_flags(session: Session, content: bytes, *, name: str = "grades.csv") -> int:
    """Store the flags of a ``grader check`` grades CSV (columns ``student`` and ``flags``)."""
    try:
        frame = pd.read_csv(io.BytesIO(content), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise GradesFileError(f"{name}: cannot read as CSV: {exc}") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = {"student", "flags"} - set(frame.columns)
    if missing:
        raise GradesFileError(
            f"{name}: missing column(s) {', '.join(sorted(missing))}; "
            "use the grades.csv that `grader check` writes"
        )
    ids = {s.student: s.id for s in session.scalars(select(Student))}
    stored = 0
    for row_number, record in enumerate(frame.to_dict("records"), start=2):
        text = record["flags"].strip()
        if not text:
            continue
        student_id = ids.get(record["student"].strip())
        message = (
            text if student_id is not None else f"row {row_number}: {record['student']}: {text}"
        )
        session.add(Event(kind="flag", student_id=student_id, message=message))
        stored += 1
    return stored


def _flags(session: Session) -> dict[int, list[str]]:
    flags: dict[int, list[str]] = {}
    for event in session.scalars(select(Event).where(Event.kind == "flag")):
        if event.student_id is not None:
            flags.setdefault(event.student_id, []).append(event.message)
    return flags


def flag_events(session: Session) -> list[Event]:
    """Every imported flag, newest first."""
    return list(
        session.scalars(select(Event).where(Event.kind == "flag").order_by(Event.id.desc()))
    )


__all__ = ["Score", "grades_csv", "grades_frame", "import_flags", "rescore_all"]
