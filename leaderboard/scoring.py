"""Scoring as the leaderboard needs it: validate and score predictions, score a model's labels.

Scoring happens on the server only: a worker sends the predicted class of every test image and
never sees the answer key. The key is loaded once per process and kept; nothing here ever puts a
true label into a message.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from grader.assignment import Assignment
from grader.data import data_dir as resolve_data_dir
from grader.predictions.read import SubmissionError, read_predictions
from grader.predictions.scoring import Score, score, score_labels
from grader.predictions.solution import load_solution
from leaderboard.models import Score as ScoreRow

_SOLUTIONS: dict[tuple, pd.DataFrame] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Scored:
    """The numbers the leaderboard stores for one submission."""

    public_accuracy: float
    public_macro_f1: float | None
    private_accuracy: float
    private_macro_f1: float | None
    all_accuracy: float
    points: float
    details: dict
    labels: np.ndarray | None = None
    """The predicted class of every test image, in id order."""

    @classmethod
    def from_score(cls, result: Score, labels: np.ndarray | None = None) -> Scored:
        """Flatten a :class:`grader.scoring.Score`."""
        splits = result.splits
        return cls(
            public_accuracy=float(splits["public"]["accuracy"]),
            public_macro_f1=_maybe(splits["public"].get("macro_f1")),
            private_accuracy=float(splits["private"]["accuracy"]),
            private_macro_f1=_maybe(splits["private"].get("macro_f1")),
            all_accuracy=float(splits["all"]["accuracy"]),
            points=float(result.points),
            details={"scores": splits, "counts": result.counts},
            labels=None if labels is None else np.asarray(labels, dtype=np.uint8),
        )

    @property
    def labels_bytes(self) -> bytes | None:
        """The labels as stored (one byte per test image)."""
        return None if self.labels is None else self.labels.astype(np.uint8).tobytes()


def solution_for(spec: Assignment, data_dir: Path | None = None) -> pd.DataFrame:
    """The answer key of ``spec`` (cached per process; a changed labels file is read again)."""
    path = spec.solution_path(resolve_data_dir(data_dir))
    stamp = path.stat().st_mtime_ns if path is not None and path.is_file() else None
    key = (spec.dataset, str(path), stamp, spec.id_column, spec.label_column, str(data_dir))
    with _LOCK:
        if key not in _SOLUTIONS:
            _SOLUTIONS[key] = load_solution(spec, data_dir)
        return _SOLUTIONS[key]


def score_predictions(
    content: bytes, spec: Assignment, *, name: str = "predictions.csv", data_dir: Path | None = None
) -> Scored:
    """Validate and score a predictions file; raises ``SubmissionError`` listing every problem."""
    solution = solution_for(spec, data_dir)
    frame = read_predictions(content, spec, expected_ids=solution["id"].to_numpy(), name=name)
    labels = frame.sort_values("id")["label"].to_numpy()
    return Scored.from_score(score(solution, frame, spec), labels)


def read_labels(
    content: bytes, spec: Assignment, *, name: str = "predictions.csv", data_dir: Path | None = None
) -> np.ndarray:
    """The predicted class per test image (id order) of a predictions file, as a worker sends it."""
    solution = solution_for(spec, data_dir)
    frame = read_predictions(content, spec, expected_ids=solution["id"].to_numpy(), name=name)
    return frame.sort_values("id")["label"].to_numpy()


def score_model_labels(
    labels: np.ndarray, spec: Assignment, *, data_dir: Path | None = None
) -> Scored:
    """Score one predicted class per test image, in id order (what a worker posts back).

    Raises ValueError when the count differs from the test set's.
    """
    solution = solution_for(spec, data_dir)
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(solution):
        raise ValueError(
            f"{len(labels)} predicted labels for {len(solution)} test images; the worker "
            "must evaluate the whole test set"
        )
    return Scored.from_score(score_labels(solution, labels, spec), labels)


def _maybe(value: float | None) -> float | None:
    return None if value is None else float(value)


def score_row(submission_id: int, scored: Scored, **extra) -> ScoreRow:
    """A :class:`leaderboard.models.Score` row holding ``scored`` (and ``extra`` columns)."""
    return ScoreRow(
        submission_id=submission_id,
        public_accuracy=scored.public_accuracy,
        public_macro_f1=scored.public_macro_f1,
        private_accuracy=scored.private_accuracy,
        private_macro_f1=scored.private_macro_f1,
        all_accuracy=scored.all_accuracy,
        points=scored.points,
        details=scored.details,
        labels=scored.labels_bytes,
        **extra,
    )


__all__ = [
    "Scored",
    "SubmissionError",
    "read_labels",
    "score_model_labels",
    "score_predictions",
    "score_row",
    "solution_for",
]
