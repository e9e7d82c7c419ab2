"""The metrics of one submission: calibration, robustness, consistency and the memoriser rule.

Robustness is the accuracy on each corruption at each severity, and their mean; consistency is
the share of images whose predicted class stays the same when the image is flipped horizontally
or shifted by 2 pixels, and the accuracy kept under the secret continuous changes (sub-pixel
shift, crop, colour). All are measured on :func:`grader.metrics.variants.variant_subset`'s
images (drawn with the grading's seed) and compared with the plain accuracy on the same images.

The memoriser rule reads the secret variants first: a model that learned the classes keeps most
of its accuracy under a sub-pixel shift, a small crop or a change of colour; a model that looks
the exact test images up (or stored their public variants) cannot, since it never saw the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from grader.metrics.calibration import Calibration, calibration, class_probabilities
from grader.metrics.variants import (
    CONSISTENCY,
    CORRUPTIONS,
    DEFAULT_SEED,
    SECRET_VARIANTS,
    SEVERITIES,
    VARIANT_NAMES,
    subset_of_size,
)

MEMORISER_MIN_ACCURACY = 0.5
MEMORISER_MAX_RETAINED = 0.5
MEMORISER_RULE = (
    f"likely memoriser of the test images: accuracy on the exact test images at least "
    f"{MEMORISER_MIN_ACCURACY:.0%}, while on the same images changed in ways drawn from a seed "
    f"the model never sees (a sub-pixel shift, a small crop, a change of colour), or flipped "
    f"horizontally or shifted by 2 pixels, it keeps less than {MEMORISER_MAX_RETAINED:.0%} of "
    f"that accuracy (a model that learned the classes keeps most of it; one that looks the exact "
    f"images up does not)"
)


@dataclass(frozen=True)
class Metrics:
    """Metrics of one submission; a field is None when its inputs were not available."""

    accuracy: float
    """Accuracy on every test image the metrics saw."""
    calibration: Calibration | None = None
    images_per_variant: int | None = None
    corruption_accuracy: dict[str, tuple[float, ...]] | None = None
    """Corruption -> accuracy at severities 1, 2, 3."""
    mean_corruption_accuracy: float | None = None
    clean_subset_accuracy: float | None = None
    """Plain accuracy on the images the variants were made of."""
    flip_accuracy: float | None = None
    shift_accuracy: float | None = None
    flip_consistency: float | None = None
    """Share of images whose predicted class is unchanged by a horizontal flip."""
    shift_consistency: float | None = None
    secret_accuracy: float | None = None
    """Mean accuracy on the secret continuous variants (sub-pixel shift, crop, colour)."""
    secret_consistency: float | None = None
    """Share of predictions unchanged by those variants."""
    likely_memoriser: bool | None = None
    memoriser_reason: str = ""

    @property
    def ece(self) -> float | None:
        """Expected calibration error, when probabilities were available."""
        return None if self.calibration is None else self.calibration.ece

    def columns(self) -> dict[str, float | bool | None]:
        """The flat values for grades.csv (and a board's optional columns)."""
        return {
            "ece": _round(self.ece),
            "corruption_accuracy": _round(self.mean_corruption_accuracy),
            "flip_consistency": _round(self.flip_consistency),
            "shift_consistency": _round(self.shift_consistency),
            "likely_memoriser": self.likely_memoriser,
        }

    def to_json(self) -> dict[str, Any]:
        """JSON-ready values (tuples become lists)."""
        return {
            "accuracy": self.accuracy,
            "calibration": None if self.calibration is None else self.calibration.to_json(),
            "images_per_variant": self.images_per_variant,
            "corruption_accuracy": None
            if self.corruption_accuracy is None
            else {k: list(v) for k, v in self.corruption_accuracy.items()},
            "mean_corruption_accuracy": self.mean_corruption_accuracy,
            "clean_subset_accuracy": self.clean_subset_accuracy,
            "flip_accuracy": self.flip_accuracy,
            "shift_accuracy": self.shift_accuracy,
            "flip_consistency": self.flip_consistency,
            "shift_consistency": self.shift_consistency,
            "secret_accuracy": self.secret_accuracy,
            "secret_consistency": self.secret_consistency,
            "likely_memoriser": self.likely_memoriser,
            "memoriser_reason": self.memoriser_reason,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Metrics:
        """The inverse of :meth:`to_json`."""
        values = dict(data)
        if values.get("calibration") is not None:
            values["calibration"] = Calibration.from_json(values["calibration"])
        if values.get("corruption_accuracy") is not None:
            values["corruption_accuracy"] = {
                k: tuple(v) for k, v in values["corruption_accuracy"].items()
            }
        return cls(**values)


def prediction_metrics(labels: np.ndarray, probabilities: np.ndarray) -> Metrics:
    """Metrics of a predictions file with class probabilities (calibration only)."""
    cal = calibration(labels, probabilities)
    return Metrics(accuracy=cal.accuracy, calibration=cal)


def model_metrics(
    labels: np.ndarray,
    logits: np.ndarray,
    variant_logits: dict[str, np.ndarray] | None = None,
    *,
    seed: int = DEFAULT_SEED,
) -> Metrics:
    """Metrics of a model from its logits on the test images and on their variants.

    ``variant_logits`` maps the names of :func:`grader.metrics.variants.make_variants` to the
    model's logits on those images, made with ``seed`` (the grading's secret seed, which the
    model result carries); an empty or missing mapping gives calibration only. Raises
    ValueError naming a variant of the wrong size or an unknown variant.
    """
    labels = np.asarray(labels, dtype=np.int64)
    logits = np.asarray(logits)
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ValueError(f"logits must be (N, classes) for N = {len(labels)}, got {logits.shape}")
    predicted = logits.argmax(axis=1)
    accuracy = float((predicted == labels).mean())
    cal = calibration(labels, class_probabilities(logits))
    if not variant_logits:
        return Metrics(accuracy=accuracy, calibration=cal)
    unknown = sorted(set(variant_logits) - set(VARIANT_NAMES))
    missing = sorted(set(VARIANT_NAMES) - set(variant_logits))
    if unknown or missing:
        raise ValueError(
            f"variant logits: unknown {unknown or 'none'}, missing {missing or 'none'}"
        )
    size = len(next(iter(variant_logits.values())))
    subset = subset_of_size(len(labels), size, seed)
    truth, plain = labels[subset], predicted[subset]
    variant_predictions: dict[str, np.ndarray] = {}
    for name, values in variant_logits.items():
        values = np.asarray(values)
        if values.shape != (size, logits.shape[1]):
            raise ValueError(
                f"variant {name!r}: logits {values.shape}, expected {(size, logits.shape[1])}"
            )
        variant_predictions[name] = values.argmax(axis=1)

    def acc(name: str) -> float:
        return float((variant_predictions[name] == truth).mean())

    corruption = {c: tuple(acc(f"{c}_{s}") for s in SEVERITIES) for c in CORRUPTIONS}
    clean = float((plain == truth).mean())
    flip, shift = (acc(name) for name in CONSISTENCY)
    secret = float(np.mean([acc(name) for name in SECRET_VARIANTS]))
    secret_same = float(
        np.mean([(variant_predictions[n] == plain).mean() for n in SECRET_VARIANTS])
    )
    likely, reason = _memoriser(accuracy, clean, flip, shift, secret)
    return Metrics(
        accuracy=accuracy,
        calibration=cal,
        images_per_variant=size,
        corruption_accuracy=corruption,
        mean_corruption_accuracy=float(np.mean([a for v in corruption.values() for a in v])),
        clean_subset_accuracy=clean,
        flip_accuracy=flip,
        shift_accuracy=shift,
        flip_consistency=float((variant_predictions["flip"] == plain).mean()),
        shift_consistency=float((variant_predictions["shift"] == plain).mean()),
        secret_accuracy=secret,
        secret_consistency=secret_same,
        likely_memoriser=likely,
        memoriser_reason=reason,
    )


def _memoriser(
    accuracy: float, clean: float, flip: float, shift: float, secret: float
) -> tuple[bool, str]:
    worst_name, worst = min(
        (
            ("changed in ways drawn from a secret seed", secret),
            ("flipped", flip),
            ("shifted", shift),
        ),
        key=lambda item: item[1],
    )
    if accuracy < MEMORISER_MIN_ACCURACY or clean <= 0:
        return False, ""
    retained = worst / clean
    if retained >= MEMORISER_MAX_RETAINED:
        return False, ""
    return True, (
        f"likely memoriser: {accuracy:.1%} on the exact test images but {worst:.1%} on the same "
        f"images {worst_name} (keeps {retained:.0%} of {clean:.1%}; the rule flags below "
        f"{MEMORISER_MAX_RETAINED:.0%})"
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
