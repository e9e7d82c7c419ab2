"""The records of a batch: one :class:`StudentResult` per student (who, which files, and their
:class:`~grader.grading.grade.Grade`), the :class:`BatchResult`, and the files other tools read:
``grades.csv`` and ``results.json``."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from grader.exports import formula_safe
from grader.grading.grade import GRADE_VERSION, Grade, Provenance
from grader.grading.status import GradeStatus, SubmissionKind
from grader.predictions.flags import join_flags
from grader.records import to_data

if TYPE_CHECKING:
    from grader.predictions.flags import CopyCluster
    from grader.roster import RosterMatch

METRIC_COLUMNS = (
    "ece",
    "corruption_accuracy",
    "flip_consistency",
    "shift_consistency",
    "likely_memoriser",
)
PROVENANCE_COLUMNS = ("spec_sha256", "answer_key_sha256", "grader_version", "graded_at")
GRADES_COLUMNS = (
    "student",
    "status",
    "public_accuracy",
    "private_accuracy",
    "points",
    "max_points",
    "flags",
    "message",
    "kind",
    "lms_id",
    "late",
    "verified",
    "held_for_review",
    *METRIC_COLUMNS,
    *PROVENANCE_COLUMNS,
)
RESULTS_FORMAT = 2
"""Version of the results.json layout (each result carries its versioned grade record)."""


@dataclass
class StudentResult:
    """One student of a class folder (or an LMS download): who, which files, and the
    :class:`~grader.grading.grade.Grade` of their submission."""

    student: str
    grade: Grade
    files: list[str] = field(default_factory=list)
    """The submission's files that were graded."""
    ignored: list[str] = field(default_factory=list)
    """The submission's other files (listed in the report, never graded)."""
    lms_id: str | None = None
    """The LMS's id of the student (Canvas user id, Moodle participant id)."""
    late: bool = False
    """The LMS marked the submission late (Canvas ``LATE``)."""
    cached: bool = False
    """The grade was taken from the cache of an earlier run."""
    experiment_plots: list[str] = field(default_factory=list)
    """Plots of an experiment run with the submission, relative to the output folder."""
    class_flags: list[str] = field(default_factory=list)
    """Flags that come from the whole class (copies, perfect scores) or the LMS (late)."""

    @property
    def status(self) -> GradeStatus:
        """How grading ended."""
        return self.grade.status

    @property
    def kind(self) -> SubmissionKind:
        """What was graded."""
        return self.grade.kind

    @property
    def message(self) -> str:
        """The grade's message."""
        return self.grade.message

    @property
    def points(self) -> float | None:
        """The grade's points (None when not graded)."""
        return self.grade.points

    @property
    def flags(self) -> list[str]:
        """The grade's own flags, then those of the class."""
        return [*self.grade.flags, *self.class_flags]

    @property
    def public_accuracy(self) -> float | None:
        """Accuracy on the public split (for the LMS exports' rows)."""
        return self.grade.public_accuracy

    @property
    def private_accuracy(self) -> float | None:
        """Accuracy on the private split (for the LMS exports' rows)."""
        return self.grade.private_accuracy

    @property
    def page_name(self) -> str:
        """File name of the student's feedback page under ``students/``."""
        from grader.grading.intake import safe_name

        return f"{safe_name(self.student)}.html"

    def to_json(self) -> dict[str, Any]:
        """The public record of results.json: who, the files, and every field of the grade
        (:data:`grader.grading.grade.GRADE_VERSION`), without the predicted labels and the log;
        ``flags`` holds the class's flags too."""
        grade = to_data(dataclasses.replace(self.grade, labels=None, log=""))
        del grade["labels"], grade["log"]
        return {
            "student": self.student,
            **grade,
            "grade_version": GRADE_VERSION,
            "flags": self.flags,
            "lms_id": self.lms_id,
            "late": self.late,
            "files": list(self.files),
            "ignored": list(self.ignored),
            "cached": self.cached,
            "experiment_plots": list(self.experiment_plots),
        }


@dataclass
class BatchResult:
    """Every student's result plus where the grades and report were written."""

    results: list[StudentResult]
    grades_csv: Path
    report_html: Path
    assignment: str
    elapsed_s: float
    cache_hits: int
    provenance: Provenance | None = None
    results_json: Path | None = None
    students_dir: Path | None = None
    """Folder of the students' feedback pages."""
    clusters: list[CopyCluster] = field(default_factory=list)
    """Students linked by copy evidence (connected components), one entry per group."""
    images: dict[str, int] = field(default_factory=dict)
    """Split -> number of test images in the answer key."""
    top_level_ignored: list[str] = field(default_factory=list)
    """Entries of the class folder that belong to no student."""
    roster: RosterMatch | None = None
    """Which roster student each submission belongs to, and what did not match."""

    @property
    def counts(self) -> dict[str, int]:
        """Number of rows per status."""
        out = {status.value: 0 for status in GradeStatus}
        for r in self.results:
            out[r.status.value] += 1
        return out


def write_grades(
    results: list[StudentResult], path: Path, provenance: Provenance | None = None
) -> None:
    """Write grades.csv: one row per student, metrics and the run's provenance as columns; a
    text cell a spreadsheet would run as a formula (a folder named ``=HYPERLINK(...)``) is
    neutralised."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = {} if provenance is None else {c: getattr(provenance, c) for c in PROVENANCE_COLUMNS}
    rows = []
    for r in results:
        grade = r.grade
        metrics = grade.metrics.columns() if grade.metrics is not None else {}
        rows.append(
            {
                "student": r.student,
                "status": r.status.value,
                "public_accuracy": _round(grade.public_accuracy),
                "private_accuracy": _round(grade.private_accuracy),
                "points": r.points,
                "max_points": grade.max_points,
                "flags": join_flags(r.flags),
                "message": r.message,
                "kind": r.kind.value,
                "lms_id": r.lms_id,
                "late": r.late,
                "verified": grade.verified,
                "held_for_review": grade.held,
                **{c: metrics.get(c) for c in METRIC_COLUMNS},
                **stamp,
            }
        )
    frame = formula_safe(pd.DataFrame(rows, columns=list(GRADES_COLUMNS)))
    tmp = path.with_suffix(".csv.tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)


def write_results_json(batch: BatchResult, path: Path) -> None:
    """Write results.json: the run's provenance and one object per student."""
    data = {
        "format": RESULTS_FORMAT,
        "assignment": batch.assignment,
        "provenance": None if batch.provenance is None else dataclasses.asdict(batch.provenance),
        "images": batch.images,
        "copy_clusters": [c.to_json() for c in batch.clusters],
        "ignored_at_top_level": batch.top_level_ignored,
        "roster": None if batch.roster is None else batch.roster.to_json(),
        "results": [r.to_json() for r in batch.results],
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    tmp.replace(path)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
