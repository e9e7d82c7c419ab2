"""Instructor tools: rescore an assignment, its grades for the LMS (the stored grades' points
and the live flags), and flags imported from a ``grader check`` grades.csv."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.assignment import Assignment
from grader.exports import ExportFormat, GradeRow, MissingGrade, write_export
from grader.grading.complete import complete_grade
from grader.grading.status import GradeStatus, SubmissionKind
from grader.grading.submission import grade_submission
from grader.predictions.solution import SolutionError
from grader.roster import Person
from leaderboard.course import CourseAssignment
from leaderboard.db import bump_board_version
from leaderboard.flags import live_flags
from leaderboard.models import Event, Student, Submission
from leaderboard.rules import entrant_for
from leaderboard.scoring import answer_key, store_grade, stored_evidence, stored_grade
from leaderboard.standings import entries, own_submissions
from leaderboard.status import TRANSITIONS, SubmissionStatus, transition
from leaderboard.uploads import load_files

STATUS_OF = {
    t.submission: status for status, t in TRANSITIONS.items() if status is not GradeStatus.OK
}
"""The grade status of a submission the server could not grade (invalid, or failed)."""


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
    """Grade every graded submission of ``spec`` again (after a spec or answer-key change),
    through the same boundary: a predictions file from its stored upload, a model or an
    ``ops.py`` by completing its worker's stored evidence again. An accepted review stays
    accepted."""
    report = RescoreReport()
    key = answer_key(spec, data_dir)
    submissions = session.scalars(
        select(Submission).where(
            Submission.assignment == spec.name, Submission.status == SubmissionStatus.GRADED
        )
    ).all()
    for submission in submissions:
        old = stored_grade(submission)
        evidence = None
        try:
            if submission.kind is SubmissionKind.PREDICTIONS:
                content = load_files(session, submission.id)["predictions.csv"]
                grade = grade_submission({"predictions.csv": content}, spec, answer_key=key)
            else:
                evidence = stored_evidence(submission)
                if evidence is None:
                    raise ValueError("no stored evidence; grade the submission again")
                grade = complete_grade(evidence, spec, key)
        except (KeyError, ValueError, SolutionError) as exc:
            report.failures.append(f"submission {submission.id}: {exc}")
            continue
        if grade.status is GradeStatus.ERROR:  # the grader's fault: the stored grade stays
            report.failures.append(f"submission {submission.id}: {grade.message}")
            continue
        if old is not None and old.review is not None and not old.held and grade.held:
            grade = grade.accepted(old.review.accepted_by, old.review.accepted_at)
        states = transition(grade.status)
        submission.status, submission.message = states.submission, grade.message
        store_grade(session, submission, grade, evidence)
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
    """One row per roster student: the points of their standing submission's stored grade, or
    why there is none, and the live flags of their entry."""
    spec = assignment.spec
    standing = entries(session, spec, revealed=True)
    by_entrant = {e.entrant.key: e.submission for e in standing}
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
        mine = own_submissions(session, entrant, spec)
        chosen = by_entrant.get(entrant.key) or _best_by_points(mine, spec)
        grade = stored_grade(chosen) if chosen is not None else None
        if chosen is not None and grade is not None:  # its own status, as grader check's row
            rows.append(
                GradeRow(
                    person=person,
                    status=grade.status,
                    points=grade.points,
                    public_accuracy=grade.public_accuracy,
                    private_accuracy=grade.private_accuracy,
                    flags=tuple(flags.get(entrant.key, [])),
                    message=grade.message,
                    submissions=len(mine),
                    late=chosen.late,
                )
            )
            continue
        latest = mine[0] if mine else None
        status = STATUS_OF.get(latest.status) if latest else None
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


def _best_by_points(mine: list[Submission], spec: Assignment) -> Submission | None:
    """The standing submission of an assignment without a board (an ``ops.py``): the latest
    graded one under the ``last`` rule, else the one with the most points (earliest first)."""
    graded = [s for s in mine if s.status is SubmissionStatus.GRADED and s.grade is not None]
    if not graded:
        return None
    if spec.entry_rule == "last":
        return graded[0]
    return max(reversed(graded), key=lambda s: s.grade.points or 0.0)


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
