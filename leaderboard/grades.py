"""Instructor tools: rescore an assignment, its grades for the LMS (with the live flags), and
flags imported from a ``grader check`` grades.csv."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.assignment import Assignment
from grader.exports import ExportFormat, GradeRow, MissingGrade, RowStatus, write_export
from grader.roster import Person
from leaderboard.course import CourseAssignment
from leaderboard.db import bump_board_version
from leaderboard.flags import live_flags
from leaderboard.models import Event, Student, Submission
from leaderboard.rules import entrant_for
from leaderboard.scoring import (
    SubmissionError,
    score_model_labels,
    score_predictions,
    score_row,
)
from leaderboard.standings import entries, own_submissions
from leaderboard.status import SubmissionKind, SubmissionStatus
from leaderboard.uploads import load_files

STATUS_OF = {
    SubmissionStatus.INVALID: RowStatus.INVALID,
    SubmissionStatus.FAILED: RowStatus.ERROR,
}


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
    """Score every graded submission of ``spec`` again (after a spec or answer-key change).

    Predictions files are read again from the stored upload; models are scored from the labels
    their grading produced.
    """
    report = RescoreReport()
    submissions = session.scalars(
        select(Submission).where(
            Submission.assignment == spec.name, Submission.status == SubmissionStatus.GRADED
        )
    ).all()
    for submission in submissions:
        old = submission.score
        try:
            if submission.kind is SubmissionKind.PREDICTIONS:
                content = load_files(session, submission.id)["predictions.csv"]
                scored = score_predictions(content, spec, data_dir=data_dir)
            else:
                if old is None or old.labels is None:
                    raise ValueError("no stored labels; grade the model again")
                labels = np.frombuffer(old.labels, dtype=np.uint8)
                scored = score_model_labels(labels, spec, data_dir=data_dir)
        except (KeyError, ValueError, SubmissionError) as exc:
            report.failures.append(f"submission {submission.id}: {exc}")
            continue
        keep = {}
        if old is not None:
            keep = {
                name: getattr(old, name)
                for name in ("total_params", "flops", "weights_sha256", "verified", "flags",
                             "checks")
            }  # fmt: skip
            session.delete(old)
            session.flush()
        session.add(score_row(submission.id, scored, **keep))
        report.rescored += 1
    session.add(
        Event(
            kind="rescore",
            assignment=spec.name,
            message=f"rescored {report.rescored}, failed {len(report.failures)}",
        )
    )
    bump_board_version(session)
    return report


def grade_rows(
    session: Session, assignment: CourseAssignment, *, data_dir: Path | None = None
) -> list[GradeRow]:
    """One row per roster student: the standing entry's points, or why there is none, and the
    live flags of their entry."""
    spec = assignment.spec
    standing = entries(session, spec, revealed=True)
    by_entrant = {e.entrant.key: e for e in standing}
    flags = live_flags(session, spec, data_dir=data_dir, standing=standing)
    rows = []
    for student in session.scalars(select(Student).order_by(Student.student)):
        entrant = entrant_for(session, spec, student.id)
        person = Person(
            student=student.student,
            name=student.name,
            email=student.email,
            sis_id=student.sis_id,
            login_id=student.login_id,
            section=student.section,
            canvas_id=student.canvas_id,
            team=student.team.name if student.team is not None else "",
        )
        entry = by_entrant.get(entrant.key)
        mine = own_submissions(session, entrant, spec)
        if entry is not None:
            graded = getattr(entry.score, f"{spec.grade_split}_accuracy")
            rows.append(
                GradeRow(
                    person=person,
                    status=RowStatus.OK,
                    points=spec.points_for(graded),
                    public_accuracy=entry.score.public_accuracy,
                    private_accuracy=entry.score.private_accuracy,
                    flags=tuple(flags.get(entrant.key, [])),
                    message=entry.submission.message,
                    submissions=entry.count,
                    late=entry.submission.late,
                )
            )
            continue
        latest = mine[0] if mine else None
        status = STATUS_OF.get(latest.status, RowStatus.MISSING) if latest else RowStatus.MISSING
        message = latest.message if latest is not None else "no submission"
        if latest is not None and latest.status.pending:
            message = f"submission {latest.id} is still {latest.status.value}"
        rows.append(
            GradeRow(
                person=person,
                status=status,
                flags=tuple(flags.get(entrant.key, [])),
                message=message,
                submissions=len(mine),
            )
        )
    return rows


def export_grades(
    session: Session,
    assignment: CourseAssignment,
    fmt: ExportFormat | str = ExportFormat.PLAIN,
    *,
    missing: MissingGrade | str = MissingGrade.ZERO,
    data_dir: Path | None = None,
) -> str:
    """The assignment's grades as CSV text in ``fmt`` (the writer ``grader check --lms`` uses)."""
    rows = grade_rows(session, assignment, data_dir=data_dir)
    return write_export(rows, assignment.grade_item, fmt, missing=missing)


def import_flags(
    session: Session, spec: Assignment, content: bytes, *, name: str = "grades.csv"
) -> int:
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
        session.add(
            Event(kind="flag", student_id=student_id, assignment=spec.name, message=message)
        )
        stored += 1
    return stored
