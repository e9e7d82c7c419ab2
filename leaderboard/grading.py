"""Scoring as the leaderboard needs it: validate and score predictions, score model logits.

The answer key is loaded once per process and kept; nothing here ever puts a true label into a
message.
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

    @classmethod
    def from_score(cls, result: Score) -> Scored:
        """Flatten a :class:`grader.predictions.scoring.Score`."""
        splits = result.splits
        return cls(
            public_accuracy=float(splits["public"]["accuracy"]),
            public_macro_f1=_maybe(splits["public"].get("macro_f1")),
            private_accuracy=float(splits["private"]["accuracy"]),
            private_macro_f1=_maybe(splits["private"].get("macro_f1")),
            all_accuracy=float(splits["all"]["accuracy"]),
            points=float(result.points),
            details={"scores": splits, "counts": result.counts},
        )


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
    return Scored.from_score(score(solution, frame, spec))


def score_logits(logits: np.ndarray, spec: Assignment, *, data_dir: Path | None = None) -> Scored:
    """Score a model's logits (one row per test image, in id order)."""
    solution = solution_for(spec, data_dir)
    return Scored.from_score(score_labels(solution, np.asarray(logits).argmax(axis=1), spec))


def _maybe(value: float | None) -> float | None:
    return None if value is None else float(value)


__all__ = ["Scored", "SubmissionError", "score_logits", "score_predictions", "solution_for"]
