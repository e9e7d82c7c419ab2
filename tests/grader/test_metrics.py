"""Calibration, corruptions after CIFAR-10-C, flip/shift consistency and the memoriser rule, on
the real CIFAR-10 test images with a reference SimpleNN trained in-process."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

from grader.data import load_dataset
from grader.metrics import (
    MEMORISER_MAX_RETAINED,
    VARIANT_NAMES,
    calibration,
    make_variants,
    model_metrics,
    prediction_metrics,
    softmax,
    variant_subset,
)
from grader.metrics.variants import NOISE_STD, SHIFT_PIXELS


@pytest.fixture(scope="module")
def test_set(data_dir):
    return load_dataset("cifar10", "test", data_dir)


@pytest.fixture(scope="module")
def trained_simplenn(tmp_path_factory, data_dir):
    """The reference SimpleNN after 6 epochs of the training recipe on the real subset (~6 s)."""
    from reference.models import get_model
    from reference.train import train

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("simplenn")
    result = train(model="simplenn", epochs=6, data_dir=str(data_dir), out=str(out),
                   predictions=False, progress=False)  # fmt: skip
    model = get_model("simplenn")
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    model.eval()
    yield model, result.accuracy
    torch.set_num_threads(before)


def logits_of(model, images: np.ndarray) -> np.ndarray:
    from grader.data import get_dataset
    from reference.train import normalize

    with torch.no_grad():
        x = normalize(torch.from_numpy(np.ascontiguousarray(images)), get_dataset("cifar10"))
        return model(x).float().numpy()


def test_variants_are_deterministic_uint8_copies_of_one_subset(test_set):
    images = test_set.images
    variants = make_variants(images, seed=0)
    assert tuple(variants) == VARIANT_NAMES
    k = math.ceil(len(images) * 0.6 / len(VARIANT_NAMES))
    subset = variant_subset(len(images), 0)
    assert len(subset) == k == 36 and (np.diff(subset) > 0).all()
    for name, values in variants.items():
        assert values.dtype == np.uint8 and values.shape == (k, 3, 32, 32), name
    again = make_variants(images, seed=0)
    assert all(np.array_equal(variants[n], again[n]) for n in VARIANT_NAMES)
    other = make_variants(images, seed=1)
    assert not np.array_equal(variants["gaussian_noise_1"], other["gaussian_noise_1"])
    full = make_variants(images[:40], budget=None)
    assert all(v.shape == (40, 3, 32, 32) for v in full.values())
    with pytest.raises(ValueError, match="uint8"):
        make_variants(images.astype(np.float32))


def test_each_corruption_does_what_cifar10c_describes(test_set):
    originals = test_set.images[variant_subset(len(test_set.images), 0)]
    variants = make_variants(test_set.images)
    unit = originals.astype(np.float64) / 255
    # Gaussian noise: the added noise has the severity's standard deviation (where not clipped)
    for severity, std in zip((1, 2, 3), NOISE_STD, strict=True):
        diff = variants[f"gaussian_noise_{severity}"] / 255 - unit
        inside = (unit > 0.3) & (unit < 0.7)
        assert abs(diff[inside].std() - std) < 0.01, severity
    # contrast: the spread of each image shrinks with severity
    spreads = [
        variants[f"contrast_{s}"].astype(float).std(axis=(1, 2, 3)).mean() for s in (1, 2, 3)
    ]
    assert originals.astype(float).std(axis=(1, 2, 3)).mean() > spreads[0] > spreads[1] > spreads[2]
    # blur and JPEG: further from the original with each severity
    for kind in ("gaussian_blur", "jpeg"):
        errors = [np.abs(variants[f"{kind}_{s}"] / 255 - unit).mean() for s in (1, 2, 3)]
        assert 0 < errors[0] < errors[1] < errors[2], kind
    np.testing.assert_array_equal(variants["flip"], originals[..., ::-1])


def test_the_shift_moves_each_image_two_pixels_filling_zeros(test_set):
    originals = test_set.images[variant_subset(len(test_set.images), 0)]
    shifted = make_variants(test_set.images)["shift"]
    p, directions = SHIFT_PIXELS, set()
    padded = np.pad(originals, ((0, 0), (0, 0), (p, p), (p, p)))
    for original, moved, source in zip(originals, shifted, padded, strict=True):
        del original
        found = [
            (dy, dx)
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            if (dy, dx) != (0, 0)
            and np.array_equal(
                moved, source[:, p - dy * p : p - dy * p + 32, p - dx * p : p - dx * p + 32]
            )
        ]
        assert found, "every shifted image is the original moved by 2 pixels"
        directions.add(found[0])
    assert len(directions) >= 6


def window(padded: np.ndarray, top: int, left: int) -> np.ndarray:
    return padded[:, top : top + 32, left : left + 32]


def naive_ece(labels, probs, bins=15):
    confidence, predicted = probs.max(1), probs.argmax(1)
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = (confidence > lo) & (confidence <= hi) if b else (confidence <= hi)
        if inside.any():
            gap = (predicted[inside] == labels[inside]).mean() - confidence[inside].mean()
            total += inside.mean() * abs(gap)
    return total


def test_ece_matches_the_definition_and_known_cases():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 5000)
    probs = rng.dirichlet(np.full(10, 0.5), 5000)
    cal = calibration(labels, probs)
    assert cal.ece == pytest.approx(naive_ece(labels, probs), abs=1e-12)
    assert sum(cal.bin_counts) == 5000 and cal.bins == 15
    # always sure, right half of the time: ECE = 1 - 0.5
    sure = np.eye(10)[labels]
    sure[::2] = np.eye(10)[(labels[::2] + 1) % 10]
    assert calibration(labels, sure).ece == pytest.approx(0.5)
    # calibrated by construction: correct with probability equal to the confidence
    n = 200_000
    conf = rng.uniform(0.5, 1.0, n)  # the top class is the one given conf
    labels = rng.integers(0, 10, n)
    correct = rng.random(n) < conf
    top = np.where(correct, labels, (labels + 1) % 10)
    probs = np.full((n, 10), 0.0)
    probs[np.arange(n), top] = conf
    probs[np.arange(n), (top + 1) % 10] += 1 - conf
    assert calibration(labels, probs).ece < 0.01
    with pytest.raises(ValueError, match="probabilities must be"):
        calibration(labels[:5], probs[:4])


def test_model_metrics_of_a_trained_reference_model(trained_simplenn, test_set):
    model, trained_accuracy = trained_simplenn
    images, labels = test_set.images, test_set.labels
    logits = logits_of(model, images)
    variants = make_variants(images)
    variant_logits = {name: logits_of(model, v) for name, v in variants.items()}
    metrics = model_metrics(labels, logits, variant_logits)
    assert metrics.accuracy == pytest.approx((logits.argmax(1) == labels).mean())
    assert 0.25 < metrics.accuracy < 0.6  # the training run's own figure is with flip TTA
    assert abs(metrics.accuracy - trained_accuracy) < 0.05
    subset = variant_subset(len(images), 0)
    for name in ("jpeg_3", "gaussian_noise_2", "flip"):
        expected = (variant_logits[name].argmax(1) == labels[subset]).mean()
        corruption, _, severity = name.rpartition("_")
        got = (
            metrics.flip_accuracy
            if name == "flip"
            else (metrics.corruption_accuracy[corruption][int(severity) - 1])
        )
        assert got == pytest.approx(expected), name
    agree = (variant_logits["flip"].argmax(1) == logits[subset].argmax(1)).mean()
    assert metrics.flip_consistency == pytest.approx(agree)
    assert metrics.calibration.ece == pytest.approx(naive_ece(labels, softmax(logits)))
    assert metrics.flip_consistency > 0.6 and metrics.shift_consistency > 0.4
    assert metrics.flip_accuracy / metrics.clean_subset_accuracy > MEMORISER_MAX_RETAINED
    assert metrics.likely_memoriser is False and metrics.memoriser_reason == ""
    assert metrics.images_per_variant == 36
    clean_only = model_metrics(labels, logits)
    assert clean_only.corruption_accuracy is None and clean_only.likely_memoriser is None
    assert clean_only.ece == metrics.ece


class LookupModel:
    """A "model" that memorised the exact test images: it hashes the image and looks the label
    up; anything it has not seen is class 0."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.table = {self.key(i): int(y) for i, y in zip(images, labels, strict=True)}

    @staticmethod
    def key(image: np.ndarray) -> str:
        return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return np.eye(10, dtype=np.float32)[[self.table.get(self.key(i), 0) for i in images]] * 8


def test_a_model_that_memorised_the_test_images_is_flagged(test_set):
    images, labels = test_set.images, test_set.labels
    model = LookupModel(images, labels)
    variant_logits = {name: model(v) for name, v in make_variants(images).items()}
    metrics = model_metrics(labels, model(images), variant_logits)
    assert metrics.accuracy == 1.0 and metrics.flip_accuracy < 0.3
    assert metrics.likely_memoriser is True
    assert "100.0% on the exact test images" in metrics.memoriser_reason
    assert metrics.columns()["likely_memoriser"] is True


def test_variant_logits_of_the_wrong_shape_are_refused(test_set):
    labels = test_set.labels
    logits = np.zeros((len(labels), 10), dtype=np.float32)
    good = {name: np.zeros((36, 10)) for name in VARIANT_NAMES}
    with pytest.raises(ValueError, match="missing \\['shift'\\]"):
        model_metrics(labels, logits, {k: v for k, v in good.items() if k != "shift"})
    with pytest.raises(ValueError, match="'flip': logits \\(50, 10\\)"):
        model_metrics(labels, logits, good | {"flip": np.zeros((50, 10))})


def test_metrics_round_trip_through_json(test_set):
    labels = test_set.labels
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(10), len(labels))
    metrics = prediction_metrics(labels, probs)
    from grader.metrics import Metrics

    assert Metrics.from_json(metrics.to_json()) == metrics
    assert metrics.columns()["ece"] == round(metrics.ece, 4)
