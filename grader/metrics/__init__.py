"""Metrics beyond accuracy: calibration (expected calibration error, reliability diagram),
robustness to corruptions after CIFAR-10-C, consistency under a flip and a shift, and the
"likely memoriser" rule.

The pieces: :func:`make_variants` builds the corrupted, flipped and shifted copies of the test
images (the model pipeline runs the model on them next to the plain images);
:func:`model_metrics` turns the logits on both into :class:`Metrics`; :func:`prediction_metrics`
does the same for a predictions file that carries class probabilities.
"""

from __future__ import annotations

from grader.metrics.calibration import (
    Calibration,
    calibration,
    class_probabilities,
    outputs_are_probabilities,
    softmax,
)
from grader.metrics.robustness import (
    MEMORISER_MAX_RETAINED,
    MEMORISER_MIN_ACCURACY,
    MEMORISER_RULE,
    Metrics,
    model_metrics,
    prediction_metrics,
)
from grader.metrics.variants import (
    CORRUPTIONS,
    SECRET_VARIANTS,
    VARIANT_NAMES,
    EvaluationImages,
    evaluation_images,
    make_variants,
    secret_seed,
    variant_subset,
)

__all__ = [
    "CORRUPTIONS",
    "SECRET_VARIANTS",
    "MEMORISER_MAX_RETAINED",
    "MEMORISER_MIN_ACCURACY",
    "MEMORISER_RULE",
    "VARIANT_NAMES",
    "Calibration",
    "EvaluationImages",
    "Metrics",
    "calibration",
    "class_probabilities",
    "evaluation_images",
    "make_variants",
    "model_metrics",
    "outputs_are_probabilities",
    "prediction_metrics",
    "secret_seed",
    "softmax",
    "variant_subset",
]
