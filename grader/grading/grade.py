"""The grade of one submission: the one record every front-end stores, renders and exports.

A :class:`Grade` is what :func:`grader.grading.grade_submission` returns for a predictions file,
a model or an ``ops.py``: its status, the scores per split, every check, the flags, the metrics,
the points line by line (rubric tier, checklist items, sparsity, ops) and where it came from.
``grader check`` writes it (``results.json``, the cache, the student pages), the course server
stores it (:meth:`Grade.to_record`, versioned) and renders its pages from it; nothing downstream
recomputes points or flags.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grader.grading.status import GradeStatus, SubmissionKind
from grader.metrics.robustness import Metrics
from grader.models.graph import Layer
from grader.models.result import Check, ExperimentOutcome
from grader.records import RecordError, from_data, to_data

GRADE_FORMAT = "grader.grade"
GRADE_VERSION = 1
"""Version of :meth:`Grade.to_record`'s layout: bumped when a field changes meaning or type."""
SPLITS = ("public", "private", "all")


class PointSource(str, enum.Enum):
    """Where a line of points comes from."""

    RUBRIC = "rubric"
    """The accuracy rubric: the tier the graded split's accuracy reached."""
    CHECKLIST = "checklist"
    """A structure rule of the handout's checklist that holds."""
    SPARSITY = "sparsity"
    """The sparsity level the weights reached."""
    OPS = "ops"
    """A hand-written operation that matches its reference."""


@dataclass(frozen=True)
class PointLine:
    """One line of a grade's points: what could be earned, what was, and why."""

    source: PointSource
    name: str
    earned: float
    possible: float
    detail: str = ""
    """In words: the accuracy and tier reached and the next tier, the rule's verdict, ..."""


@dataclass(frozen=True)
class Review:
    """A grade held for an instructor: no points until someone accepts it."""

    reason: str
    accepted_by: str = ""
    accepted_at: str = ""
    """UTC time of the acceptance, ISO 8601 (empty while held)."""

    @property
    def held(self) -> bool:
        """Whether the grade still waits for an instructor."""
        return not self.accepted_by


@dataclass(frozen=True)
class Provenance:
    """What a grade depended on: the spec, the answer key, the grader and when."""

    assignment: str
    spec_sha256: str
    answer_key_sha256: str
    """sha256 of the answer key's ids and labels (little-endian int64, ids first); empty when
    no labels were used (an ``ops.py``, a ``grader sanity`` run)."""
    grader_version: str
    graded_at: str
    """UTC time grading started, ISO 8601."""

    @classmethod
    def now(cls, *, assignment: str, spec_sha256: str, answer_key_sha256: str) -> Provenance:
        """Provenance of grading that starts now, with this grader's version."""
        from grader.version import grader_version

        started = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        return cls(
            assignment, spec_sha256, answer_key_sha256, grader_version(), started.isoformat()
        )


@dataclass
class Grade:
    """The grade of one submission, whichever door it came through."""

    status: GradeStatus
    kind: SubmissionKind
    message: str = ""
    """What happened, in words: the problems of an invalid submission, or a graded one's note."""
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    """Split (public, private, all) -> metric (accuracy, macro_f1) -> value."""
    counts: dict[str, int] = field(default_factory=dict)
    """Split -> number of test images scored."""
    confusion: dict[str, list[list[int]]] = field(default_factory=dict)
    """Split -> confusion matrix (rows the true class, columns the predicted one)."""
    per_class: dict[str, float] = field(default_factory=dict)
    """Class name -> accuracy on the whole test set."""
    metrics: Metrics | None = None
    """Calibration, robustness, flip/shift consistency and the memoriser evidence."""
    checks: list[Check] = field(default_factory=list)
    """Every check: required ones (``points`` None), checklist items and ops (with points)."""
    flags: list[str] = field(default_factory=list)
    """What an instructor should look at (unverified, public model, memoriser, held, ...)."""
    notes: list[str] = field(default_factory=list)
    """What the grader did with the files, for the student (which notebook cells became
    model.py, what a checkpoint was unwrapped from)."""
    point_lines: list[PointLine] = field(default_factory=list)
    points: float | None = None
    """The points of the grade: the sum of ``point_lines``, 0 while held for review, None when
    the submission was not graded (invalid, error, or a model without weights)."""
    max_points: float = 0.0
    """The most the assignment gives (:attr:`grader.assignment.Assignment.max_points`)."""
    review: Review | None = None
    verified: bool | None = None
    """For a model: whether every number comes from the verified evaluation of its graph."""
    total_params: int | None = None
    buffers: int | None = None
    other_tensors: int | None = None
    """Values of the other tensors the graph reads as weights (buffers beyond batch-norm
    statistics, constants): the parameter limits count them too."""
    flops: int | None = None
    """Forward FLOPs for one image."""
    unused: list[str] = field(default_factory=list)
    weight_density: float | None = None
    """Non-zero share of the convolution and linear weights (sparsity)."""
    layers: list[Layer] = field(default_factory=list)
    output_shape: list[int] | None = None
    images: int = 0
    """Test images the model was evaluated on."""
    runtime: str = ""
    """What computed the model's logits, in one line (for instructors)."""
    weights_sha256: str | None = None
    """The parameters' digest (or the weights file's): identical-weights flags."""
    predictions_sha256: str | None = None
    fingerprint_match: str | None = None
    experiment: ExperimentOutcome | None = None
    labels: np.ndarray | None = field(default=None, repr=False, compare=False)
    """The predicted class of every test image, in the answer key's order (copy flags, the
    gallery of wrong images, rescoring)."""
    sandboxed: bool | None = None
    wall_s: float = 0.0
    provenance: Provenance | None = None
    log: str = ""
    """The start and end of what the student's code printed (for instructors)."""

    @property
    def graded(self) -> bool:
        """Whether the submission was graded (its points count)."""
        return self.status is GradeStatus.OK and self.points is not None

    @property
    def earned(self) -> float:
        """The sum of the point lines, whether or not the grade is held."""
        return float(sum(line.earned for line in self.point_lines))

    @property
    def held(self) -> bool:
        """Whether the points wait for an instructor's review."""
        return self.review is not None and self.review.held

    def accuracy(self, split: str) -> float | None:
        """Accuracy on ``split`` (public, private or all), if scored."""
        value = self.scores.get(split, {}).get("accuracy")
        return None if value is None else float(value)

    @property
    def public_accuracy(self) -> float | None:
        """Accuracy on the public split."""
        return self.accuracy("public")

    @property
    def private_accuracy(self) -> float | None:
        """Accuracy on the private split."""
        return self.accuracy("private")

    @property
    def all_accuracy(self) -> float | None:
        """Accuracy on the whole test set."""
        return self.accuracy("all")

    @property
    def failed_checks(self) -> list[Check]:
        """The required checks that did not pass."""
        return [c for c in self.checks if not c.passed and c.points is None]

    def accepted(self, by: str, at: str | None = None) -> Grade:
        """This grade with its review accepted by ``by``: the points it earned count."""
        if self.review is None:
            return self
        when = at or dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
        review = dataclasses.replace(self.review, accepted_by=by, accepted_at=when)
        points = self.earned if self.points is not None else None
        flags = [f for f in self.flags if not f.startswith(HELD_FLAG)]
        return dataclasses.replace(self, review=review, points=points, flags=flags)

    def to_record(self, *, labels: bool = True, log: bool = True) -> dict[str, Any]:
        """The versioned JSON-able record (arrays as base64 tables; see :mod:`grader.records`)."""
        values = to_data(self)
        if not labels:
            values["labels"] = None
        if not log:
            values["log"] = ""
        return {"format": GRADE_FORMAT, "version": GRADE_VERSION, "grade": values}

    @classmethod
    def from_record(cls, record: Any) -> Grade:
        """The inverse of :meth:`to_record`; :class:`GradeRecordError` for a foreign record."""
        if not isinstance(record, dict) or record.get("format") != GRADE_FORMAT:
            raise GradeRecordError("not a grade record")
        if record.get("version") != GRADE_VERSION:
            raise GradeRecordError(
                f"grade record version {record.get('version')!r}; this grader reads version "
                f"{GRADE_VERSION}: grade the submission again (rescore)"
            )
        return from_data(cls, record.get("grade"), "grade", error=GradeRecordError)


HELD_FLAG = "held for instructor review"


class GradeRecordError(RecordError):
    """A stored grade record this grader cannot read; the message says why."""


def not_graded(kind: SubmissionKind, message: str, *, error: bool = False, **values) -> Grade:
    """The grade of a submission that could not be graded (invalid, or the grader's error)."""
    status = GradeStatus.ERROR if error else GradeStatus.INVALID
    return Grade(status=status, kind=kind, message=message, **values)
