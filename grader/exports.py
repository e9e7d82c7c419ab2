"""Grades for learning-management systems: Canvas, Moodle, Gradescope and a plain table.

One writer for ``grader check --lms`` and the leaderboard's ``/instructor/grades.csv``. Its input
is a list of :class:`GradeRow` (a student of the roster and their outcome) and a
:class:`GradeItem` (the assignment as the gradebook names it), so it depends on neither the batch
grader nor the server. Each format is laid out as the LMS imports it:

- **Canvas** (Grades > Import): ``Student,ID,SIS User ID,SIS Login ID,Section,<Title> (<column
  id>)``, then a ``Points Possible`` row. With the column id Canvas updates that column; without
  it, Canvas creates a new one. Canvas matches students by ID (its user id), SIS User ID, SIS
  Login ID, then name; a blank cell is "no score".
- **Moodle** gradebook (Grades > Import > CSV file): the identity columns every row has
  (``ID number``, ``Email address``, ``Username``; map one of them to the user field of the same
  name) and one column for the grade item; ``-`` is "no grade". One unknown user aborts a Moodle
  import, so rows without the identity are left out (and named by :func:`export_problems`).
- **Moodle grading worksheet** (the assignment's "Upload grading worksheet"): ``Identifier``
  (``Participant <id>``, the number in the bulk download's folder names), ``Full name``,
  ``Email address``, ``Grade``, ``Maximum Grade``, ``Last modified (grade)``.
- **Gradescope**: the columns of Gradescope's grade export, ``First Name,Last Name,SID,Email,
  Sections,<Title>,<Title> - Max Points``.
- **plain**: every field, flags and messages included (for the instructor, never for an LMS).

Points for an ``invalid`` submission and for a student with none follow :class:`MissingGrade`;
a grader ``error`` is always left blank (it is the grader's fault, not a zero). Every CSV the
grader writes goes through :func:`formula_safe`: a text cell that a spreadsheet would evaluate as
a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) gets a leading
``'``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pandas as pd

from grader.grading.status import GradeStatus
from grader.roster import Person, RosterMatch, Submitter, match_submissions

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MISSING = "missing"
"""The plain table's status of a roster student without a submission."""


class ExportFormat(str, Enum):
    """The gradebook formats the writer knows."""

    CANVAS = "canvas"
    MOODLE = "moodle"
    MOODLE_WORKSHEET = "moodle-worksheet"
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
    """The Canvas gradebook column's id (the assignment id), when the column exists in Canvas:
    the export's header ``<Title> (<id>)`` then updates it instead of creating a new column."""

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


def formula_safe(frame: pd.DataFrame, *, keep: Iterable[str] = ()) -> pd.DataFrame:
    """``frame`` with every text cell neutralised (:func:`neutralise`), except in ``keep``."""
    kept = set(keep)
    for column in frame.columns:
        if column not in kept and not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].map(neutralise)
    return frame


def grade_value(row: GradeRow, missing: MissingGrade) -> float | None:
    """The number the gradebook gets for ``row``, or None for a blank cell."""
    if row.status is GradeStatus.OK:
        return row.points
    if row.status is GradeStatus.ERROR:
        return None
    return 0.0 if missing is MissingGrade.ZERO else None


def rows_from_results(
    results: Iterable[Any],
    people: Sequence[Person] | None = None,
    *,
    match: RosterMatch | None = None,
) -> list[GradeRow]:
    """Export rows from ``grader check``'s results (``.student``, ``.status``, ``.points``, ...).

    ``match`` (a batch's :attr:`roster`) says which roster students each result belongs to;
    without it, results are matched to ``people`` by their folder names. With a roster there is
    one row per roster student, in the roster's order (every member of a group gets the group's
    row; a student without a submission gets a ``missing`` row) and a result nobody on the roster
    matches has no row: :meth:`RosterMatch.messages` lists it. Without a roster, each result's
    row names the student as the download did (a Canvas user id, a Moodle participant id, a
    Gradescope SID and email).
    """
    results = list(results)
    if match is None:
        match = match_submissions(((r.student, [Submitter(folder=r.student)]) for r in results),
                                  people)  # fmt: skip
    by_key = {r.student: r for r in results}
    if match.people is None:
        return [
            _row(person, result)
            for result in results
            for person in _people_of(result.student, match.submitters.get(result.student, ()))
        ]
    of_person: dict[int, Any] = {}
    for key, found in match.matched.items():
        for person, _how in found:
            if key in by_key:
                of_person[id(person)] = by_key[key]
    rows = []
    for person in match.people:
        result = of_person.get(id(person))
        if result is None:
            rows.append(GradeRow(person=person, status=None, message="no submission"))
        else:
            rows.append(_row(person, result))
    return rows


def _people_of(key: str, submitters: Sequence[Submitter]) -> list[Person]:
    """Without a roster: the people a submission names, as rows an LMS can match."""
    people = []
    for s in submitters or (Submitter(folder=key),):
        people.append(
            Person(
                student=key if len(submitters) < 2 else (s.email or s.sis_id or s.name or key),
                name=s.name or (s.folder if s.folder != key else ""),
                email=s.email,
                sis_id=s.sis_id,
                login_id=s.login_id,
                canvas_id=s.lms_id if s.lms == "canvas" else "",
                moodle_id=s.lms_id if s.lms == "moodle" else "",
            )
        )
    return people


def _row(person: Person, result: Any) -> GradeRow:
    return GradeRow(
        person=person,
        status=GradeStatus(result.status),
        points=result.points,
        public_accuracy=result.public_accuracy,
        private_accuracy=result.private_accuracy,
        flags=tuple(result.flags),
        message=result.message,
        late=bool(getattr(result, "late", False)),
    )


# --- what an LMS can take -------------------------------------------------------------------------

MOODLE_IDENTITIES = (("ID number", "sis_id"), ("Email address", "email"), ("Username", "login_id"))


def _canvas_ids(person: Person) -> tuple[str, str, str]:
    """(ID, SIS User ID, SIS Login ID) as the Canvas row has them."""
    login = person.login_id or (person.student if not (person.sis_id or person.canvas_id) else "")
    return person.canvas_id, person.sis_id, login


def _moodle_identity(rows: Sequence[GradeRow]) -> tuple[str, str]:
    """The Moodle identity column to map: the first every row has, else the most complete."""
    people = [r.person for r in rows]
    counts = [(sum(bool(getattr(p, key)) for p in people), header, key)
              for header, key in MOODLE_IDENTITIES]  # fmt: skip
    for count, header, key in counts:
        if people and count == len(people):
            return header, key
    _count, header, key = max(counts, key=lambda c: c[0]) if people else counts[-1]
    return header, key


def export_problems(rows: Sequence[GradeRow], fmt: ExportFormat | str) -> list[str]:
    """The rows ``fmt``'s LMS could not match to a student, one line each: they are left out of
    the export (a row an LMS cannot place is at best a warning, in Moodle an aborted import)."""
    return [why for _row, why in _unplaceable(rows, ExportFormat(fmt))]


def _unplaceable(rows: Sequence[GradeRow], fmt: ExportFormat) -> list[tuple[GradeRow, str]]:
    found = []
    if fmt is ExportFormat.MOODLE:
        header, key = _moodle_identity(rows)
    for row in rows:
        p = row.person
        who = p.name or p.student
        if fmt is ExportFormat.CANVAS and not any(_canvas_ids(p)):
            why = "no Canvas ID, SIS User ID or SIS Login ID"
        elif fmt is ExportFormat.MOODLE and not getattr(p, key):
            why = f"no {header} (Moodle aborts an import on one unknown user)"
        elif fmt is ExportFormat.MOODLE_WORKSHEET and not p.moodle_id:
            why = "no Moodle participant identifier (use the assignment's grading worksheet as "
            why += "the roster, or grade the Moodle download)"
        elif fmt is ExportFormat.GRADESCOPE and not (p.email or p.sis_id):
            why = "no email or SID"
        else:
            continue
        found.append((row, f"{who}: {why}; left out of the {fmt.value} file"))
    return found


# --- the writers ----------------------------------------------------------------------------------


def write_export(
    rows: Sequence[GradeRow],
    item: GradeItem,
    fmt: ExportFormat | str,
    *,
    missing: MissingGrade | str = MissingGrade.ZERO,
    now: dt.datetime | None = None,
) -> str:
    """The CSV text of ``rows`` in ``fmt``, less the rows its LMS could not place
    (:func:`export_problems`). ``now`` stamps the Moodle worksheet's grades."""
    fmt, missing = ExportFormat(fmt), MissingGrade(missing)
    left_out = {id(row) for row, _why in _unplaceable(rows, fmt)}
    kept = [r for r in rows if id(r) not in left_out]
    if fmt is ExportFormat.MOODLE:
        frame = _moodle(kept, item, missing, _moodle_identity(rows))
    elif fmt is ExportFormat.MOODLE_WORKSHEET:
        frame = _moodle_worksheet(kept, item, missing, now or dt.datetime.now(dt.timezone.utc))
    else:
        writer = {
            ExportFormat.CANVAS: _canvas,
            ExportFormat.GRADESCOPE: _gradescope,
            ExportFormat.PLAIN: _plain,
        }[fmt]
        frame = writer(kept, item, missing)
    return frame.to_csv(index=False, lineterminator="\n")


def _canvas(rows: Sequence[GradeRow], item: GradeItem, missing: MissingGrade) -> pd.DataFrame:
    column = f"{item.column} ({item.lms_id})" if item.lms_id else item.column
    info = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    records = [{**dict.fromkeys(info, ""), "Student": "Points Possible",
                column: _number(item.max_points)}]  # fmt: skip
    for row in rows:
        p = row.person
        canvas_id, sis_id, login_id = _canvas_ids(p)
        records.append(
            {
                "Student": p.name or p.student,
                "ID": canvas_id,
                "SIS User ID": sis_id,
                "SIS Login ID": login_id,
                "Section": p.section,
                column: _number(grade_value(row, missing)),
            }
        )
    frame = pd.DataFrame.from_records(records, columns=[*info, column])
    return formula_safe(frame, keep=[column])


def _moodle(
    rows: Sequence[GradeRow], item: GradeItem, missing: MissingGrade, identity: tuple[str, str]
) -> pd.DataFrame:
    people = [r.person for r in rows]
    columns = [
        (header, key)
        for header, key in MOODLE_IDENTITIES
        if (header, key) == identity or (people and all(getattr(p, key) for p in people))
    ]
    records = []
    for row in rows:
        value = grade_value(row, missing)
        record = {header: getattr(row.person, key) for header, key in columns}
        record[item.column] = "-" if value is None else _number(value)
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=[h for h, _ in columns] + [item.column])
    return formula_safe(frame, keep=[item.column])


def _moodle_worksheet(
    rows: Sequence[GradeRow], item: GradeItem, missing: MissingGrade, now: dt.datetime
) -> pd.DataFrame:
    stamp = now.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    records = [
        {
            "Identifier": f"Participant {r.person.moodle_id}",
            "Full name": r.person.name or r.person.student,
            "Email address": r.person.email,
            "Grade": _number(grade_value(r, missing)),
            "Maximum Grade": _number(item.max_points),
            "Last modified (grade)": stamp,
        }
        for r in rows
    ]
    columns = ["Identifier", "Full name", "Email address", "Grade", "Maximum Grade",
               "Last modified (grade)"]  # fmt: skip
    return formula_safe(pd.DataFrame.from_records(records, columns=columns), keep=["Grade"])


def _gradescope(rows: Sequence[GradeRow], item: GradeItem, missing: MissingGrade) -> pd.DataFrame:
    columns = ["First Name", "Last Name", "SID", "Email", "Sections", item.column,
               f"{item.column} - Max Points"]  # fmt: skip
    records = []
    for r in rows:
        first, last = r.person.given_and_family
        records.append(
            {
                "First Name": first,
                "Last Name": last,
                "SID": r.person.sis_id,
                "Email": r.person.email,
                "Sections": r.person.section,
                item.column: _number(grade_value(r, missing)),
                f"{item.column} - Max Points": _number(item.max_points),
            }
        )
    frame = pd.DataFrame.from_records(records, columns=columns)
    return formula_safe(frame, keep=columns[-2:])


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
    return formula_safe(frame, keep=PLAIN_NUMBERS)


def _number(value: float | None) -> str:
    """A grade as the gradebook reads it: ``9``, ``7.5``, or blank."""
    if value is None:
        return ""
    return f"{float(value):g}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)
