"""Corrupted, flipped and shifted copies of test images, made grader-side and deterministically.

Corruptions follow CIFAR-10-C (Hendrycks & Dietterich 2019, "Benchmarking neural network
robustness to common corruptions and perturbations", the CIFAR variant of their corruption code):
Gaussian noise, Gaussian blur, contrast and JPEG compression, each at three of the paper's five
severities (1, 3 and 5, called 1, 2 and 3 here). Consistency uses a horizontal flip and a shift by
``SHIFT_PIXELS`` in one of the eight directions (zero fill, as a random crop with padding gives).

Evaluating every variant of every test image costs 14 extra passes of the model; by default each
variant is made of one seeded subset of the test images sized so that all variants together hold
``DEFAULT_BUDGET`` times the test set (< 1 extra pass: robustness stays under 2x the plain
evaluation). :func:`variant_subset` gives the subset's indices, so the logits on a variant can be
matched to the plain images without sending the indices along.
"""

from __future__ import annotations

import io
import math

import numpy as np

CORRUPTIONS = ("gaussian_noise", "gaussian_blur", "contrast", "jpeg")
SEVERITIES = (1, 2, 3)
# Parameters of CIFAR-10-C's severities 1, 3 and 5 (of five):
NOISE_STD = (0.04, 0.08, 0.10)  # std of additive noise, on pixels scaled to [0, 1]
BLUR_SIGMA = (0.4, 0.7, 1.0)  # pixels
CONTRAST_FACTOR = (0.75, 0.4, 0.15)  # (x - channel mean) * c + channel mean
JPEG_QUALITY = (80, 58, 40)  # Pillow quality
SHIFT_PIXELS = 2
CONSISTENCY = ("flip", "shift")
VARIANT_NAMES = (
    *(f"{corruption}_{severity}" for corruption in CORRUPTIONS for severity in SEVERITIES),
    *CONSISTENCY,
)
DEFAULT_SEED = 0
DEFAULT_BUDGET = 0.6
"""Images in all variants together, as a multiple of the number of test images."""


def variant_subset(
    n_images: int, seed: int = DEFAULT_SEED, budget: float | None = DEFAULT_BUDGET
) -> np.ndarray:
    """Sorted indices of the test images the variants are made of (all when ``budget`` is None)."""
    if budget is None:
        return np.arange(n_images)
    per_variant = min(n_images, max(1, math.ceil(n_images * budget / len(VARIANT_NAMES))))
    return subset_of_size(n_images, per_variant, seed)


def subset_of_size(n_images: int, size: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """The seeded subset of ``size`` of ``n_images`` images (all of them when size is n_images)."""
    if not 0 < size <= n_images:
        raise ValueError(f"a subset of {size} of {n_images} images is not possible")
    if size == n_images:
        return np.arange(n_images)
    rng = np.random.default_rng([seed, n_images])
    return np.sort(rng.choice(n_images, size, replace=False))


def make_variants(
    images: np.ndarray, seed: int = DEFAULT_SEED, *, budget: float | None = DEFAULT_BUDGET
) -> dict[str, np.ndarray]:
    """Variant name -> uint8 copies (k, C, H, W) of the images at :func:`variant_subset`.

    ``images`` are uint8 (N, C, H, W) with 1 or 3 channels. The same images and seed always
    give the same bytes. ``budget=None`` makes every variant of every image (k = N).
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"images must be uint8 (N, C, H, W) with 1 or 3 channels, got {images.dtype} "
            f"{images.shape}"
        )
    chosen = images[variant_subset(len(images), seed, budget)]
    rng = np.random.default_rng([seed, 1])
    unit = chosen.astype(np.float32) / 255.0
    out: dict[str, np.ndarray] = {}
    for severity, std in zip(SEVERITIES, NOISE_STD, strict=True):
        noisy = unit + rng.normal(0.0, std, size=unit.shape).astype(np.float32)
        out[f"gaussian_noise_{severity}"] = _to_uint8(noisy)
    for severity, sigma in zip(SEVERITIES, BLUR_SIGMA, strict=True):
        out[f"gaussian_blur_{severity}"] = _to_uint8(_blur(unit, sigma))
    means = unit.mean(axis=(2, 3), keepdims=True)
    for severity, factor in zip(SEVERITIES, CONTRAST_FACTOR, strict=True):
        out[f"contrast_{severity}"] = _to_uint8((unit - means) * factor + means)
    for severity, quality in zip(SEVERITIES, JPEG_QUALITY, strict=True):
        out[f"jpeg_{severity}"] = _jpeg(chosen, quality)
    out["flip"] = np.ascontiguousarray(chosen[..., ::-1])
    out["shift"] = _shift(chosen, SHIFT_PIXELS, rng)
    return out


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)


def _blur(unit: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    # Over height and width only; 'nearest' edges as scikit-image's gaussian (CIFAR-10-C's).
    return gaussian_filter(unit, sigma=(0, 0, sigma, sigma), mode="nearest", truncate=4.0)


def _jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    out = np.empty_like(images)
    mode = "RGB" if images.shape[1] == 3 else "L"
    for i, image in enumerate(images):
        pixels = image.transpose(1, 2, 0) if mode == "RGB" else image[0]
        buffer = io.BytesIO()
        Image.fromarray(pixels, mode).save(buffer, "JPEG", quality=quality)
        buffer.seek(0)
        decoded = np.asarray(Image.open(buffer).convert(mode))
        out[i] = decoded.transpose(2, 0, 1) if mode == "RGB" else decoded[None]
    return out


def _shift(images: np.ndarray, pixels: int, rng: np.random.Generator) -> np.ndarray:
    """Each image moved by ``pixels`` in one of the 8 directions (seeded), zeros filling in."""
    directions = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    chosen = rng.integers(0, len(directions), size=len(images))
    p = pixels
    padded = np.pad(images, ((0, 0), (0, 0), (p, p), (p, p)))
    height, width = images.shape[2:]
    out = np.empty_like(images)
    for k, (dy, dx) in enumerate(directions):
        which = chosen == k
        top, left = p - dy * p, p - dx * p  # content moves by (dy, dx) * p
        out[which] = padded[which, :, top : top + height, left : left + width]
    return out
