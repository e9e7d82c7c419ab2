"""A course: the assignments one server hosts, each with its board, limits and job queue.

A course comes from repeated ``--assignment`` options, or from a course TOML file::

    title = "ECE 661: Deep learning"
    missing_grade = "zero"            # or "blank": exports of invalid / missing submissions

    [[assignment]]
    spec = "cifar10"                  # a built-in spec, or a .toml path relative to this file
    daily_limit = 10                  # course rules may be set here, over the spec's
    deadline = 2026-12-15T23:59:00Z

    [[assignment]]
    spec = "specs/resnet20.toml"
    queue = "gpu"                     # model jobs wait for a worker started with --queue gpu
    lms_title = "Lab 2"               # the gradebook column's title (default: the spec's title)
    lms_column_id = "4411"            # its Canvas id: the Canvas import updates that column

The course rules a course file may set are :data:`COURSE_RULES`; anything else about grading
belongs in the spec. The first assignment is the one the unversioned API serves.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.assignment import Assignment, SpecError, load_assignment
from grader.exports import GradeItem, MissingGrade
from grader.grading.kinds import spec_kind
from grader.grading.status import SubmissionKind
from leaderboard.status import JobQueue

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

COURSE_RULES = frozenset(
    {"title", "daily_limit", "deadline", "late_policy", "entry_rule", "final_submissions", "teams"}
)
ENTRY_KEYS = frozenset({"spec", "queue", "lms_title", "lms_column_id", "canvas_id"}) | COURSE_RULES
"""``canvas_id`` is the older spelling of ``lms_column_id``."""
COURSE_KEYS = frozenset({"title", "missing_grade", "assignment"})


class CourseError(ValueError):
    """A course that cannot be served; the message names the file, the entry and the key."""


@dataclass(frozen=True)
class CourseAssignment:
    """One assignment as the course runs it."""

    spec: Assignment
    queue: JobQueue = JobQueue.CPU
    canvas_id: str = ""
    """The Canvas id of the gradebook column (the assignment id): the Canvas export's header
    names it, so that the import updates the column instead of creating one."""
    lms_title: str = ""
    """The gradebook column's title (default: the spec's title, else its name)."""

    @property
    def name(self) -> str:
        """The assignment's name (its URL segment)."""
        return self.spec.name

    @property
    def kind(self) -> SubmissionKind:
        """What the assignment takes: predictions, a model or an ``ops.py``."""
        return spec_kind(self.spec)

    @property
    def grade_item(self) -> GradeItem:
        """The assignment as a gradebook column."""
        return GradeItem(
            name=self.spec.name,
            title=self.lms_title or self.spec.title,
            max_points=self.spec.max_points,
            lms_id=self.canvas_id,
        )


@dataclass(frozen=True)
class Course:
    """The assignments of one server, in the order the index lists them."""

    assignments: tuple[CourseAssignment, ...]
    title: str = ""
    missing_grade: MissingGrade = MissingGrade.ZERO
    source: Path | None = None

    def __post_init__(self) -> None:
        if not self.assignments:
            raise CourseError(f"{self.source or 'course'}: no assignments")
        names = [a.name for a in self.assignments]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise CourseError(
                f"{self.source or 'course'}: assignment(s) {', '.join(twice)} listed twice; "
                "every assignment needs its own name"
            )

    @property
    def first(self) -> CourseAssignment:
        """The assignment the unversioned API (``/api/v1/submissions``) serves."""
        return self.assignments[0]

    @property
    def names(self) -> list[str]:
        """Every assignment's name."""
        return [a.name for a in self.assignments]

    def get(self, name: str) -> CourseAssignment | None:
        """The assignment called ``name``, or None."""
        return next((a for a in self.assignments if a.name == name), None)

    def spec(self, name: str) -> Assignment | None:
        """The spec of the assignment called ``name``, or None."""
        found = self.get(name)
        return found.spec if found is not None else None


def course_of(assignments: Sequence[str | Path | Assignment], *, title: str = "") -> Course:
    """A course of built-in names, spec paths or specs, each on the CPU queue."""
    entries = []
    for item in assignments:
        spec = item if isinstance(item, Assignment) else load_assignment(item)
        entries.append(CourseAssignment(spec=spec))
    return Course(assignments=tuple(entries), title=title)


def load_course(path: Path) -> Course:
    """Read a course TOML file; every problem is a :class:`CourseError` naming the key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CourseError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CourseError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(raw) - COURSE_KEYS)
    if unknown:
        raise CourseError(
            f"{path}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(COURSE_KEYS))}"
        )
    entries = raw.get("assignment")
    if not isinstance(entries, list) or not entries:
        raise CourseError(f"{path}: no [[assignment]] tables; add one per assignment")
    try:
        missing = MissingGrade(raw.get("missing_grade", "zero"))
    except ValueError:
        raise CourseError(
            f"{path}: missing_grade = {raw['missing_grade']!r}; use 'zero' or 'blank'"
        ) from None
    title = raw.get("title", "")
    if not isinstance(title, str):
        raise CourseError(f"{path}: title must be a string")
    assignments = tuple(_entry(path, i, e) for i, e in enumerate(entries, start=1))
    return Course(assignments=assignments, title=title, missing_grade=missing, source=path)


def _entry(path: Path, number: int, entry: Any) -> CourseAssignment:
    where = f"{path}: assignment {number}"
    if not isinstance(entry, dict):
        raise CourseError(f"{where}: expected a table")
    unknown = sorted(set(entry) - ENTRY_KEYS)
    if unknown:
        raise CourseError(
            f"{where}: {', '.join(map(repr, unknown))} cannot be set in a course file; allowed: "
            f"{', '.join(sorted(ENTRY_KEYS))} (the rest of grading belongs in the spec)"
        )
    spec_name = entry.get("spec")
    if not isinstance(spec_name, str) or not spec_name:
        raise CourseError(f'{where}: needs spec = "NAME" (built-in) or a path to a .toml')
    candidate = Path(spec_name)
    if candidate.suffix == ".toml" and not candidate.is_absolute():
        candidate = path.parent / candidate
    overrides = {k: v for k, v in entry.items() if k in COURSE_RULES}
    try:
        spec = load_assignment(candidate if candidate.suffix == ".toml" else spec_name, overrides)
    except SpecError as exc:
        raise CourseError(f"{where}: {exc}") from None
    try:
        queue = JobQueue(entry.get("queue", "cpu"))
    except ValueError:
        raise CourseError(f"{where}: queue = {entry['queue']!r}; use 'cpu' or 'gpu'") from None
    if "lms_column_id" in entry and "canvas_id" in entry:
        raise CourseError(f"{where}: give lms_column_id or its older spelling canvas_id, not both")
    column_id = entry.get("lms_column_id", entry.get("canvas_id", ""))
    if not isinstance(column_id, (str, int)) or isinstance(column_id, bool):
        raise CourseError(f"{where}: lms_column_id must be the Canvas id of the gradebook column")
    title = entry.get("lms_title", "")
    if not isinstance(title, str):
        raise CourseError(f"{where}: lms_title must be the gradebook column's title (a string)")
    return CourseAssignment(spec=spec, queue=queue, canvas_id=str(column_id), lms_title=title)
