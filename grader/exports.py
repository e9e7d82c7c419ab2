"""Grades for learning-management systems: Canvas, Moodle, Gradescope and a plain table.

One writer for ``grader check --lms`` and the leaderboard's ``/instructor/grades.csv``. Its input
is a list of :class:`GradeRow` (a student of the roster and their outcome) and a
:class:`GradeItem` (the assignment as the gradebook names it), so it depends on neither the batch
grader nor the server.

- **Canvas** (gradebook import): ``Student,ID,SIS User ID,SIS Login ID,Section,<Title>`` (the
  title carries ``(<Canvas assignment id>)`` when it is known, else Canvas creates the column),
  then a ``Points Possible`` row. Canvas matches students by ID, SIS User ID, SIS Login ID, then
  name; a blank cell is "no score".
- **Moodle** (grade import, CSV): one identity column (``Email address``, ``ID number`` or
  ``Username``: the first that every student has) and one column for the grade item; ``-`` is
  "no grade". The item's maximum is set in Moodle itself.
- **Gradescope**-style: ``Name,SID,Email,<Title>,<Title> - Max Points``.
- **plain**: every field, flags and messages included (for the instructor, never for an LMS).

Points for an ``invalid`` submission and for a student with none follow :class:`MissingGrade`;
a grader ``error`` is always left blank (it is the grader's fault, not a zero). Every text cell
that a spreadsheet would evaluate as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or
a carriage return) is neutralised with a leading ``'``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pandas as pd

from grader.grading.status import GradeStatus
from grader.roster import Person, lookup

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MISSING = "missing"
"""The plain table's status of a roster student without a submission."""


class ExportFormat(str, Enum):
    """The gradebook formats the writer knows."""

    CANVAS = "canvas"
    MOODLE = "moodle"
    GRADESCOPE = "gradescope"
    PLAIN = "plain"


class MissingGrade(str, Enum):
    """What an invalid or missing submission gets in an export."""

    ZERO = "zero"
    BLANK = "blank"


@dataclass(frozen=True)
class GradeItem:
    """The assignment as a gradebook column."""

    name: str
    title: str = ""
    max_points: float = 0.0
    lms_id: str = ""
    """The Canvas assignment id, when the assignment already exists in Canvas."""

    @property
    def column(self) -> str:
        """The title of the grade column."""
        return self.title or self.name


@dataclass(frozen=True)
class GradeRow:
    """One student's line of an export."""

    person: Person
    status: GradeStatus | None
    """How grading ended; None when the student has no submission."""
    points: float | None = None
    public_accuracy: float | None = None
    private_accuracy: float | None = None
    flags: tuple[str, ...] = ()
    message: str = ""
    submissions: int | None = None
    late: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    """More columns for the plain table only (e.g. the optional metrics of a board)."""


def neutralise(value: object) -> object:
    """``value`` with a leading ``'`` when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def grade_value(row: GradeRow, missing: MissingGrade) -> float | None:
    """The number the gradebook gets for ``row``, or None for a blank cell."""
    if row.status is GradeStatus.OK:
        return row.points
    if row.status is GradeStatus.ERROR:
        return None
    return 0.0 if missing is MissingGrade.ZERO else None


def rows_from_results(
    results: Iterable[Any], people: Sequence[Person] | None = None
) -> list[GradeRow]:
    """Export rows from ``grader check``'s results (``.student``, ``.status``, ``.points``, ...).

    With a roster, each result is matched to its person by student id, login id, SIS id or email,
    and roster students without a submission get a ``missing`` row; results nobody on the roster
    matches keep their folder name as the student id.
    """
    table = lookup(list(people or []))
    rows: list[GradeRow] = []
    matched: set[str] = set()
    for result in results:
        person = table.get(result.student) or Person(student=result.student)
        matched.add(person.student)
        rows.append(
            GradeRow(
                person=person,
                status=GradeStatus(result.status),
                points=result.points,
                public_accuracy=result.public_accuracy,
                private_accuracy=result.private_accuracy,
                flags=tuple(result.flags),
                message=result.message,
            )
        )
    for person in people or []:
        if person.student not in matched:
            rows.append(GradeRow(person=person, status=None))
    return rows


def write_export(
    rows: Sequence[GradeRow],
    item: GradeItem,
    fmt: ExportFormat | str,
    *,
    missing: MissingGrade | str = MissingGrade.ZERO,
) -> str:
    """The CSV text of ``rows`` in ``fmt``."""
    fmt, missing = ExportFormat(fmt), MissingGrade(missing)
    frame = {
        ExportFormat.CANVAS: _canvas,
        ExportFormat.MOODLE: _moodle,
        ExportFormat.GRADESCOPE: _gradescope,
        ExportFormat.PLAIN: _plain,
    }[fmt](rows, item, missing)
    return frame.to_csv(index=False, lineterminator="\n")


def _name(person: Person) -> str:
    return neutralise(person.name or person.student)


def _text(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    for column in columns:
        frame[column] = frame[column].map(neutralise)
    return frame


def _canvas(rows: Sequence[GradeRow], item: GradeItem, missing: MissingGrade) -> pd.DataFrame:
    column = f"{item.column} ({item.lms_id})" if item.lms_id else item.column
    info = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    records = [{**dict.fromkeys(info, ""), "Student": "Points Possible",
                column: _number(item.max_points)}]  # fmt: skip
    for row in rows:
        p = row.person
        records.append(
            {
                "Student": p.name or p.student,
                "ID": p.canvas_id,
                "SIS User ID": p.sis_id,
                "SIS Login ID": p.login_id or (p.student if not p.sis_id else ""),
                "Section": p.section,
                column: _number(grade_value(row, missing)),
            }
        )
    return _text(pd.DataFrame.from_records(records, columns=[*info, column]), info)


def _moodle(rows: Sequence[GradeRow], item: GradeItem, missing: MissingGrade) -> pd.DataFrame:
    people = [r.person for r in rows]
    if people and all(p.email for p in people):
        header, key = "Email address", "email"
    elif people and all(p.sis_id for p in people):
        header, key = "ID number", "sis_id"
    else:
        header, key = "Username", "login_id"
    records = []
    for row in rows:
        ident = getattr(row.person, key) or row.person.student
        value = grade_value(row, missing)
        records.append({header: neutralise(ident), item.column: "-" if value is None else value})
    frame = pd.DataFrame.from_records(records, columns=[header, item.column])
    frame[item.column] = frame[item.column].map(lambda v: v if v == "-" else _number(v))
    return frame


def _gradescope(rows: Sequence[GradeRow], item: GradeItem, missing: MissingGrade) -> pd.DataFrame:
    columns = ["Name", "SID", "Email", item.column, f"{item.column} - Max Points"]
    records = [
        {
            "Name": r.person.name or r.person.student,
            "SID": r.person.sis_id or r.person.student,
            "Email": r.person.email,
            item.column: _number(grade_value(r, missing)),
            f"{item.column} - Max Points": _number(item.max_points),
        }
        for r in rows
    ]
    return _text(pd.DataFrame.from_records(records, columns=columns), ["Name", "SID", "Email"])


PLAIN_COLUMNS = (
    "student", "name", "email", "sis_id", "login_id", "section", "status", "public_accuracy",
    "private_accuracy", "points", "max_points", "submissions", "late", "flags", "message",
)  # fmt: skip


PLAIN_NUMBERS = frozenset(
    {"public_accuracy", "private_accuracy", "points", "max_points", "submissions", "late"}
)


def _plain(rows: Sequence[GradeRow], item: GradeItem, missing: MissingGrade) -> pd.DataFrame:
    extra_columns = list(dict.fromkeys(k for r in rows for k in r.extra))
    records = []
    for r in rows:
        p = r.person
        records.append(
            {
                "student": p.student,
                "name": p.name,
                "email": p.email,
                "sis_id": p.sis_id,
                "login_id": p.login_id,
                "section": p.section,
                "status": r.status.value if r.status is not None else MISSING,
                "public_accuracy": _round(r.public_accuracy),
                "private_accuracy": _round(r.private_accuracy),
                "points": _number(grade_value(r, missing)),
                "max_points": _number(item.max_points),
                "submissions": "" if r.submissions is None else r.submissions,
                "late": r.late,
                "flags": "; ".join(r.flags),
                "message": r.message,
                **r.extra,
            }
        )
    frame = pd.DataFrame.from_records(records, columns=[*PLAIN_COLUMNS, *extra_columns])
    return _text(frame, [c for c in frame.columns if c not in PLAIN_NUMBERS])


def _number(value: float | None) -> str:
    """A grade as the gradebook reads it: ``9``, ``7.5``, or blank."""
    if value is None:
        return ""
    return f"{float(value):g}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)
