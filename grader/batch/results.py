"""The records of a batch: one :class:`StudentResult` per student, the :class:`BatchResult`, its
:class:`Provenance`, and the files other tools read: ``grades.csv`` and ``results.json``."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from grader.exports import formula_safe
from grader.metrics.robustness import Metrics
from grader.predictions.flags import join_flags

if TYPE_CHECKING:
    from grader.predictions.flags import CopyCluster
    from grader.roster import RosterMatch

Status = Literal["ok", "invalid", "error"]
Kind = Literal["predictions", "model", "ops", "none"]
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
    "flags",
    "message",
    "kind",
    "lms_id",
    "late",
    "verified",
    *METRIC_COLUMNS,
    *PROVENANCE_COLUMNS,
)
RESULTS_FORMAT = 1
"""Version of the results.json layout."""


@dataclass(frozen=True)
class CheckResult:
    """One pass/fail check of a model submission, with its reason (and the points it earned,
    for a checklist item)."""

    name: str
    passed: bool
    message: str
    points: float | None = None


@dataclass(frozen=True)
class Layer:
    """One row of a model's layer table."""

    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    depth: int = 1

    @classmethod
    def from_mapping(cls, row: Any) -> Layer:
        """From the layer records of the model grader (mappings or objects with these names)."""

        def get(key: str, default: Any = None) -> Any:
            return row.get(key, default) if isinstance(row, dict) else getattr(row, key, default)

        return cls(
            name=str(get("name", "") or ""),
            type=str(get("type", "")),
            output_shape=tuple(int(d) for d in (get("output_shape", ()) or ())),
            params=int(get("params", 0) or 0),
            depth=int(get("depth", 1) if get("depth", 1) is not None else 1),
        )


@dataclass
class StudentResult:
    """The outcome for one student (a folder, or an LMS download's files)."""

    student: str
    status: Status
    kind: Kind
    message: str = ""
    public_accuracy: float | None = None
    private_accuracy: float | None = None
    all_accuracy: float | None = None
    points: float | None = None
    per_class: dict[str, float] | None = None
    """Per-class accuracy on the whole test set."""
    total_params: int | None = None
    flops: int | None = None
    predictions_sha256: str | None = None
    weights_sha256: str | None = None
    flags: list[str] = field(default_factory=list)
    cached: bool = False
    """Taken from the cache of an earlier run."""
    labels: np.ndarray | None = field(default=None, repr=False)
    """Predicted label per test image in id order (near-identical check, pages, cohort)."""
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    """Split -> metric -> value, as :class:`grader.predictions.scoring.Score` has them."""
    counts: dict[str, int] = field(default_factory=dict)
    """Split -> number of test images scored."""
    confusion: dict[str, list[list[int]]] = field(default_factory=dict)
    """Split -> confusion matrix (rows true class, columns predicted)."""
    metrics: Metrics | None = None
    """Calibration, robustness, consistency (models; predictions with probabilities)."""
    checks: list[CheckResult] = field(default_factory=list)
    layers: list[Layer] = field(default_factory=list)
    verified: bool | None = None
    """Whether a model's numbers come from the grader's own evaluation of its graph."""
    files: list[str] = field(default_factory=list)
    """The submission's files that were graded."""
    ignored: list[str] = field(default_factory=list)
    """The submission's other files (listed in the report, never graded)."""
    lms_id: str | None = None
    """The LMS's id of the student (Canvas user id, Moodle participant id)."""
    late: bool = False
    """The LMS marked the submission late (Canvas ``LATE``)."""
    experiment_plots: list[str] = field(default_factory=list)
    """Plots of an experiment run with the submission, relative to the output folder."""

    @property
    def page_name(self) -> str:
        """File name of the student's feedback page under ``students/``."""
        from grader.grading.intake import safe_name

        return f"{safe_name(self.student)}.html"

    def to_record(self) -> dict[str, Any]:
        """Everything, JSON-ready (the cache's format; labels as base64 uint8)."""
        record = dataclasses.asdict(dataclasses.replace(self, labels=None, metrics=None))
        record["metrics"] = None if self.metrics is None else self.metrics.to_json()
        if self.labels is not None:
            record["labels"] = base64.b64encode(self.labels.astype(np.uint8).tobytes()).decode()
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> StudentResult:
        """The inverse of :meth:`to_record`; TypeError/KeyError/ValueError for a foreign one."""
        values = dict(record)
        labels = values.pop("labels", None)
        metrics = values.pop("metrics", None)
        values["checks"] = [CheckResult(**c) for c in values.get("checks", [])]
        values["layers"] = [Layer.from_mapping(layer) for layer in values.get("layers", [])]
        result = cls(**values)
        if metrics is not None:
            result.metrics = Metrics.from_json(metrics)
        if labels is not None:
            raw = base64.b64decode(labels)
            result.labels = np.frombuffer(raw, dtype=np.uint8).astype(np.int64)
        return result

    def to_json(self) -> dict[str, Any]:
        """The public record of results.json: no predicted labels, no internal digests."""
        out: dict[str, Any] = {
            "student": self.student,
            "status": self.status,
            "kind": self.kind,
            "message": self.message,
            "lms_id": self.lms_id,
            "late": self.late,
            "points": self.points,
            "scores": self.scores,
            "counts": self.counts,
            "flags": list(self.flags),
            "files": list(self.files),
            "ignored": list(self.ignored),
            "cached": self.cached,
        }
        if self.kind == "model":
            out |= {
                "total_params": self.total_params,
                "flops": self.flops,
                "verified": self.verified,
                "checks": [dataclasses.asdict(c) for c in self.checks],
                "experiment_plots": list(self.experiment_plots),
            }
        if self.metrics is not None or self.kind == "model":
            out["metrics"] = None if self.metrics is None else self.metrics.to_json()
        return out


@dataclass(frozen=True)
class Provenance:
    """What a grading run depended on, recorded in the report, grades.csv and results.json."""

    assignment: str
    spec_sha256: str
    answer_key_sha256: str
    """sha256 of the answer key's ids and labels (little-endian int64, ids first)."""
    grader_version: str
    graded_at: str
    """UTC time the run started, ISO 8601."""

    @classmethod
    def now(cls, *, assignment: str, spec_sha256: str, answer_key_sha256: str) -> Provenance:
        """Provenance of a run starting now, with this grader's version."""
        from grader.version import grader_version

        started = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        version = grader_version()
        return cls(assignment, spec_sha256, answer_key_sha256, version, started.isoformat())


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
        out = {"ok": 0, "invalid": 0, "error": 0}
        for r in self.results:
            out[r.status] += 1
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
        metrics = r.metrics.columns() if r.metrics is not None else {}
        rows.append(
            {
                "student": r.student,
                "status": r.status,
                "public_accuracy": _round(r.public_accuracy),
                "private_accuracy": _round(r.private_accuracy),
                "points": r.points,
                "flags": join_flags(r.flags),
                "message": r.message,
                "kind": r.kind,
                "lms_id": r.lms_id,
                "late": r.late,
                "verified": r.verified,
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
