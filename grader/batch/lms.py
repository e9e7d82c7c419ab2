"""A graded batch as a gradebook file: ``grader check --lms`` and what it says about the round trip.

The rows come from the batch's roster match (:attr:`BatchResult.roster`), so every submitter's
points land on their own roster row; nothing unmatched becomes an orphan row. The gradebook
column is named by ``--lms-title`` / ``--lms-column-id``; with a Canvas gradebook export as the
roster, the column id is found there by its title.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from grader.assignment import Assignment
from grader.batch.results import BatchResult
from grader.exports import (
    ExportFormat,
    GradeItem,
    MissingGrade,
    export_problems,
    rows_from_results,
    write_export,
)
from grader.roster import Roster


@dataclass
class LmsExport:
    """The file written and what the instructor should know before importing it."""

    path: Path
    rows: int
    notes: list[str] = field(default_factory=list)
    """How the column is named and how to import."""
    problems: list[str] = field(default_factory=list)
    """Rows left out because the LMS could not place them."""


def grade_item(
    spec: Assignment,
    roster: Roster | None = None,
    *,
    title: str | None = None,
    column_id: str | None = None,
    canvas: bool = False,
) -> tuple[GradeItem, list[str]]:
    """The gradebook column for ``spec`` and notes on how it was chosen.

    The title is ``title``, else the spec's title, else its name. Without ``column_id``, a
    Canvas roster's column of that title (any case) gives the id.
    """
    chosen = title or spec.title or spec.name
    notes: list[str] = []
    columns = roster.columns if roster is not None else {}
    if canvas and not column_id and not columns:
        notes.append(f"the column {chosen!r} has no Canvas id: Canvas creates a new column on "
                     "import; pass --lms-column-id (or a Canvas gradebook export as --roster) to "
                     "update the existing one")  # fmt: skip
    if canvas and not column_id and columns:
        by_title = {t.casefold(): (t, i) for t, i in columns.items()}
        found = by_title.get(chosen.casefold())
        if found is not None:
            chosen, column_id = found
            notes.append(f"Canvas column {chosen!r} ({column_id}) found in the roster: the import "
                         "updates it")  # fmt: skip
        else:
            listed = ", ".join(f"{t} ({i})" for t, i in columns.items())
            notes.append(
                f"no column titled {chosen!r} in the roster's gradebook ({listed}): Canvas will "
                "create a new column; pass --lms-title (or --lms-column-id) to update one"
            )
    item = GradeItem(name=spec.name, title=chosen, max_points=spec.max_points,
                     lms_id=column_id or "")  # fmt: skip
    return item, notes


def write_lms_export(
    batch: BatchResult,
    spec: Assignment,
    fmt: ExportFormat | str,
    out_dir: Path,
    *,
    roster: Roster | None = None,
    title: str | None = None,
    column_id: str | None = None,
    missing: MissingGrade | str = MissingGrade.ZERO,
) -> LmsExport:
    """Write ``OUT/grades-<fmt>.csv`` for ``batch``."""
    fmt = ExportFormat(fmt)
    item, notes = grade_item(spec, roster, title=title, column_id=column_id,
                             canvas=fmt is ExportFormat.CANVAS)  # fmt: skip
    rows = rows_from_results(batch.results, match=batch.roster)
    problems = export_problems(rows, fmt)
    path = Path(out_dir) / f"grades-{fmt.value}.csv"
    path.write_text(write_export(rows, item, fmt, missing=missing), encoding="utf-8")
    return LmsExport(path, len(rows) - len(problems), notes, problems)
