"""Score predictions against the answer key on the public, private and whole test set.

Accuracy, per-class accuracy, the confusion matrix and macro-F1 come from one
``numpy.bincount`` confusion matrix, so ``grader score`` answers without importing scikit-learn
(about 1.8 s cold); the test suite checks every metric against scikit-learn's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from grader.assignment import Assignment
from grader.predictions.solution import load_solution, split_ids


@dataclass
class Score:
    """Metrics of one submission; ``splits`` maps split -> metric -> value."""

    splits: dict[str, dict[str, float]]
    """``{"public"|"private"|"all": {"accuracy": ..., "macro_f1": ...}}``."""
    per_class: dict[str, dict[str, float]]
    """Split -> class name -> accuracy (recall) on that class."""
    confusion: dict[str, list[list[int]]]
    """Split -> confusion matrix, rows true class, columns predicted class."""
    counts: dict[str, int]
    """Split -> number of test images."""
    points: float
    """Rubric points for the accuracy on ``grade_split``."""
    max_points: float
    """The rubric's top tier."""
    grade_split: str
    class_names: tuple[str, ...] = field(default=())

    @property
    def graded_accuracy(self) -> float:
        """Accuracy on the split the rubric grades."""
        return self.splits[self.grade_split]["accuracy"]

    def to_json(self) -> dict[str, float]:
        """Flat ``{column: number}`` mapping, the shape of a Codabench ``scores.json``."""
        flat = {
            f"{split}_{metric}": value
            for split, metrics in self.splits.items()
            for metric, value in metrics.items()
        }
        flat["points"] = self.points
        return flat

    def details(self) -> dict[str, object]:
        """Everything, as JSON-ready values."""
        return {
            "scores": self.splits,
            "points": self.points,
            "max_points": self.max_points,
            "grade_split": self.grade_split,
            "counts": self.counts,
            "per_class": self.per_class,
            "confusion": self.confusion,
        }


def score(solution: pd.DataFrame, submission: pd.DataFrame, spec: Assignment) -> Score:
    """Score a validated submission (columns id, label) against the solution (id, label)."""
    truth_ids, truth_labels = _sorted_arrays(solution)
    sub_ids, sub_labels = _sorted_arrays(submission)
    if len(truth_ids) != len(sub_ids) or not np.array_equal(truth_ids, sub_ids):
        raise ValueError(
            "the submission's ids differ from the solution's; validate it with read_predictions"
        )
    return _score_arrays(truth_ids, truth_labels, sub_labels, spec)


def score_labels(solution: pd.DataFrame, predicted_labels: np.ndarray, spec: Assignment) -> Score:
    """Score one predicted label per test image, in id order 0..N-1 (model submissions)."""
    ids, truth_labels = _sorted_arrays(solution)
    predicted = np.asarray(predicted_labels).reshape(-1)
    if len(predicted) != len(ids) or not np.array_equal(ids, np.arange(len(ids))):
        raise ValueError(
            f"expected one prediction for each of the {len(ids)} test images (ids 0..N-1), "
            f"got {len(predicted)}"
        )
    return _score_arrays(ids, truth_labels, predicted.astype(np.int64), spec)


def _sorted_arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``id`` and ``label`` columns as int64 arrays ordered by id."""
    ids = frame["id"].to_numpy(np.int64)
    labels = frame["label"].to_numpy(np.int64)
    if not (ids[1:] >= ids[:-1]).all():
        order = np.argsort(ids, kind="stable")
        ids, labels = ids[order], labels[order]
    return ids, labels


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs as a ``num_classes`` square matrix."""
    flat = truth.astype(np.int64) * num_classes + predicted.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def macro_f1(matrix: np.ndarray) -> float:
    """Mean F1 over the classes that occur in truth or predictions (0 where undefined)."""
    tp = np.diag(matrix).astype(float)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    denominator = support + predicted
    present = denominator > 0
    if not present.any():
        return 0.0
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=present)
    return float(f1[present].mean())


def _score_arrays(
    ids: np.ndarray, truth: np.ndarray, predicted: np.ndarray, spec: Assignment
) -> Score:
    k = len(spec.class_names)
    private = ~split_ids(ids, spec.public_fraction, spec.split_seed)
    # One bincount gives both splits' confusion matrices: index (split, true, predicted).
    flat = private.astype(np.int64) * (k * k) + truth * k + predicted
    both = np.bincount(flat, minlength=2 * k * k).reshape(2, k, k)
    matrices = np.concatenate([both, both.sum(axis=0, keepdims=True)])  # public, private, all
    totals = matrices.sum(axis=(1, 2))
    correct = np.diagonal(matrices, axis1=1, axis2=2)
    support = matrices.sum(axis=2)
    guessed = matrices.sum(axis=1)
    accuracy = np.divide(correct.sum(axis=1), totals, out=np.zeros(3), where=totals > 0)
    recall = np.divide(correct, support, out=np.zeros((3, k)), where=support > 0)
    # Macro-F1 over the classes present in truth or predictions, as scikit-learn averages it.
    present = (support + guessed) > 0
    f1 = np.divide(2 * correct, support + guessed, out=np.zeros((3, k)), where=present)
    f1_macro = f1.sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    names = ("public", "private", "all")
    splits: dict[str, dict[str, float]] = {}
    for i, split in enumerate(names):
        splits[split] = {"accuracy": float(accuracy[i])}
        if "macro_f1" in spec.metrics:
            splits[split]["macro_f1"] = float(f1_macro[i])
    recall_rows = recall.tolist()
    matrix_lists = matrices.tolist()
    return Score(
        splits=splits,
        per_class={
            split: dict(zip(spec.class_names, recall_rows[i], strict=True))
            for i, split in enumerate(names)
        },
        confusion={split: matrix_lists[i] for i, split in enumerate(names)},
        counts={split: int(totals[i]) for i, split in enumerate(names)},
        points=spec.points_for(splits[spec.grade_split]["accuracy"]),
        max_points=spec.rubric_points,
        grade_split=spec.grade_split,
        class_names=spec.class_names,
    )


def score_file(
    predictions: Path | bytes,
    *,
    spec: Assignment,
    solution: pd.DataFrame | None = None,
    data_dir: Path | None = None,
    name: str = "predictions.csv",
) -> Score:
    """Read, validate and score one predictions file.

    Raises :class:`grader.predictions.read.SubmissionError` for an invalid file and
    :class:`grader.predictions.solution.SolutionError` when the answer key cannot be loaded.
    """
    from grader.predictions.read import read_predictions

    if solution is None:
        solution = load_solution(spec, data_dir)
    submission = read_predictions(
        predictions, spec, expected_ids=solution["id"].to_numpy(), name=name
    )
    return score(solution, submission, spec)
