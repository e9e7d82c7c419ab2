"""The one result type of model grading: what the boxes find about a model, before any label.

:class:`ModelResult` travels from a worker to the server field by field
(:class:`grader.grading.evidence.Evidence`): a field added here reaches the server's grade with no
protocol change.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grader.grading.status import GradeStatus
from grader.models.graph import Layer
from grader.records import to_data


@dataclass(frozen=True)
class Check:
    """One pass/fail line of a model check, with its reason (and points, where a rubric gives
    points for it)."""

    name: str
    passed: bool
    message: str
    points: float | None = None


@dataclass
class ExperimentOutcome:
    """An experiment run with the submission (e.g. the batch-norm loss band)."""

    name: str
    summary: str
    values: dict[str, Any] = field(default_factory=dict)
    plot: str | None = None
    """File name of its figure, when one was written."""


@dataclass
class ModelResult:
    """The outcome of grading one model submission."""

    status: GradeStatus
    message: str
    verified: bool = False
    """Whether every number below comes from the verified evaluation of the captured graph."""
    logits: np.ndarray | None = None
    """(N, num_classes) float32 on the test images, in the dataset's order."""
    variant_logits: dict[str, np.ndarray] = field(default_factory=dict)
    """Logits on each image variant, made with :attr:`variant_seed`."""
    variant_seed: int | None = None
    """The grading's secret seed the variants were drawn from (the host scores them with it:
    :func:`grader.metrics.model_metrics`'s ``seed``)."""
    total_params: int | None = None
    """Values in the parameters the logits depend on (torchvision's convention)."""
    buffers: int | None = None
    """Values in the batch-norm statistics the logits depend on."""
    other_tensors: int | None = None
    """Values in every other tensor the logits depend on (buffers that are not batch-norm
    statistics, constants); the parameter budgets apply to these as well."""
    capacity: int | None = None
    """Every value the logits depend on: parameters, batch-norm statistics and other tensors."""
    unused: list[str] = field(default_factory=list)
    """Parameters, buffers and constants no operation of the logits reads (not counted)."""
    flops: int | None = None
    """Forward FLOPs for one image."""
    checks: list[Check] = field(default_factory=list)
    """Required checks (``points`` None) and checklist items worth points."""
    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the grader did to the submission that the student should know (which cells of a
    notebook made ``model.py``)."""
    layers: list[Layer] = field(default_factory=list)
    output_shape: list[int] | None = None
    images: int = 0
    """Number of test images evaluated."""
    images_per_s: float | None = None
    runtime: str = ""
    """What computed the logits of the test images, in one line: ONNX Runtime (its threads and
    its agreement with the interpreter) or the graph interpreter (and why)."""
    weights_sha256: str | None = None
    parameter_digest: str | None = None
    fingerprint_match: str | None = None
    needs_review: bool = False
    """Graded, but held (0 points, flagged) until an instructor accepts it: an unverified model
    under ``unverified = "review"``."""
    experiment: ExperimentOutcome | None = None
    sandboxed: bool = True
    """Whether the stages ran in the sandbox (False only for a student's unconfined local check)."""
    wall_s: float = 0.0
    log: str = ""
    """The start and end of what the student's code printed, for instructors."""

    weight_density: float | None = None
    """Non-zero share of the convolution and linear weights (sparsity)."""

    @property
    def failed_checks(self) -> list[Check]:
        """The required checks that did not pass (checklist items only cost their points)."""
        return [c for c in self.checks if not c.passed and c.points is None]

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict without the logits (the ``grader sanity --json`` contract)."""
        data = {
            f.name: to_data(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.name not in ("logits", "variant_logits")
        }
        data["variants"] = sorted(self.variant_logits)
        return data
