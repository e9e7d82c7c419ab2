"""The records of a batch: one :class:`StudentResult` per student, the :class:`BatchResult`, and
``grades.csv``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from grader.predictions.flags import join_flags

Status = Literal["ok", "invalid", "error"]
Kind = Literal["predictions", "model", "none"]
GRADES_COLUMNS = (
    "student",
    "status",
    "public_accuracy",
    "private_accuracy",
    "points",
    "flags",
    "message",
)


@dataclass
class StudentResult:
    """The outcome for one student folder."""

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
    labels: np.ndarray | None = field(default=None, repr=False)
    """Predicted label per test image in id order (for the near-identical check)."""


@dataclass
class BatchResult:
    """Every student's result plus where the grades and report were written."""

    results: list[StudentResult]
    grades_csv: Path
    report_html: Path
    assignment: str
    elapsed_s: float
    cache_hits: int

    @property
    def counts(self) -> dict[str, int]:
        """Number of rows per status."""
        out = {"ok": 0, "invalid": 0, "error": 0}
        for r in self.results:
            out[r.status] += 1
        return out


def write_grades(results: list[StudentResult], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        [
            {
                "student": r.student,
                "status": r.status,
                "public_accuracy": _round(r.public_accuracy),
                "private_accuracy": _round(r.private_accuracy),
                "points": r.points,
                "flags": join_flags(r.flags),
                "message": r.message,
            }
            for r in results
        ],
        columns=list(GRADES_COLUMNS),
    )
    tmp = path.with_suffix(".csv.tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
