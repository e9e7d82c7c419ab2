"""Calibration of class probabilities: expected calibration error and the reliability diagram.

ECE after Guo et al. 2017 ("On calibration of modern neural networks", eq. 3): the confidence of
a prediction is its top probability; predictions are put in 15 equal-width confidence bins
(lo, hi]; ECE = sum over bins of (bin size / N) * |accuracy in bin - mean confidence in bin|.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

BINS = 15
PROBABILITY_TOLERANCE = 1e-3
"""How far a row of probabilities may sum from 1 (float32 softmax rows are within ~1e-6)."""


@dataclass(frozen=True)
class Calibration:
    """How well the top probability matches the accuracy; one entry per bin in the tuples."""

    ece: float
    """Expected calibration error, 0 (calibrated) to 1."""
    mean_confidence: float
    accuracy: float
    """Accuracy of the probabilities' top class."""
    bin_counts: tuple[int, ...]
    bin_confidence: tuple[float | None, ...]
    """Mean top probability in each bin (None for an empty bin)."""
    bin_accuracy: tuple[float | None, ...]

    @property
    def bins(self) -> int:
        """Number of confidence bins."""
        return len(self.bin_counts)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready values."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibration:
        """The inverse of :meth:`to_json`."""
        return cls(
            ece=float(data["ece"]),
            mean_confidence=float(data["mean_confidence"]),
            accuracy=float(data["accuracy"]),
            bin_counts=tuple(int(c) for c in data["bin_counts"]),
            bin_confidence=tuple(data["bin_confidence"]),
            bin_accuracy=tuple(data["bin_accuracy"]),
        )


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (stable for large logits)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def outputs_are_probabilities(outputs: np.ndarray) -> bool:
    """Whether a model's outputs are already class probabilities (a softmax at the end of its
    forward): every row lies in [0, 1] and sums to 1, within float32 rounding."""
    values = np.asarray(outputs, dtype=np.float64)
    if values.ndim != 2 or not values.size or not np.isfinite(values).all():
        return False
    tolerance = PROBABILITY_TOLERANCE
    in_range = (values >= -tolerance).all() and (values <= 1 + tolerance).all()
    return bool(in_range and np.allclose(values.sum(axis=1), 1.0, rtol=0, atol=tolerance))


def class_probabilities(outputs: np.ndarray) -> np.ndarray:
    """The class probabilities a model's outputs stand for: the outputs themselves when they
    already are probabilities, else their softmax (of logits, or of log-probabilities, whose
    softmax is the probabilities too)."""
    if outputs_are_probabilities(outputs):
        return np.asarray(outputs, dtype=np.float64)
    return softmax(outputs)


def calibration(labels: np.ndarray, probabilities: np.ndarray, bins: int = BINS) -> Calibration:
    """ECE and the reliability diagram's bins for (N, classes) probabilities against labels."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if probabilities.ndim != 2 or len(probabilities) != len(labels) or not len(labels):
        raise ValueError(
            f"probabilities must be (N, classes) for N = {len(labels)} labels, "
            f"got {probabilities.shape}"
        )
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    conf_sum = np.bincount(which, weights=confidence, minlength=bins)
    correct_sum = np.bincount(which, weights=correct, minlength=bins)
    filled = counts > 0
    mean_conf = np.divide(conf_sum, counts, out=np.zeros(bins), where=filled)
    mean_acc = np.divide(correct_sum, counts, out=np.zeros(bins), where=filled)
    ece = float((counts / len(labels) * np.abs(mean_acc - mean_conf)).sum())
    return Calibration(
        ece=ece,
        mean_confidence=float(confidence.mean()),
        accuracy=float(correct.mean()),
        bin_counts=tuple(int(c) for c in counts),
        bin_confidence=_per_bin(mean_conf, filled),
        bin_accuracy=_per_bin(mean_acc, filled),
    )


def _per_bin(values: np.ndarray, filled: np.ndarray) -> tuple[float | None, ...]:
    return tuple(float(v) if f else None for v, f in zip(values, filled, strict=True))
