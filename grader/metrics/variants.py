"""Corrupted, flipped, shifted, cropped and recoloured copies of test images, made grader-side
from a seed the grader keeps secret.

Corruptions follow CIFAR-10-C (Hendrycks & Dietterich 2019, "Benchmarking neural network
robustness to common corruptions and perturbations", the CIFAR variant of their corruption code):
Gaussian noise, Gaussian blur, contrast and JPEG compression, each at three of the paper's five
severities (1, 3 and 5, called 1, 2 and 3 here). Consistency uses a horizontal flip and a shift by
``SHIFT_PIXELS`` in one of the eight directions (zero fill, as a random crop with padding gives),
and three continuous changes a class-learning model shrugs off but no table of stored images can
anticipate (:data:`SECRET_VARIANTS`): a sub-pixel shift, a crop resized back, and a change of
brightness, contrast and saturation, each drawn per image from the seed.

The seed is drawn for each grading by the host and given only to the verified evaluation (or, for
a model that cannot be captured, used by the host itself to make the images it hands the model's
process mixed with the test images): a model never sees it, so no model can store the variants.

Evaluating every variant of every test image costs 17 extra passes of the model; by default each
variant is made of one seeded subset of the test images sized so that all variants together hold
``DEFAULT_BUDGET`` times the test set (< 1 extra pass: robustness stays under 2x the plain
evaluation). :func:`variant_subset` gives the subset's indices, so the logits on a variant can be
matched to the plain images without sending the indices along: the host keeps the seed.
:func:`evaluation_images` puts the test images and every variant into one array, in an order
drawn from the seed, so that the model computes them all in one pass and cannot tell which image
is which kind.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np

CORRUPTIONS = ("gaussian_noise", "gaussian_blur", "contrast", "jpeg")
SEVERITIES = (1, 2, 3)
# Parameters of CIFAR-10-C's severities 1, 3 and 5 (of five):
NOISE_STD = (0.04, 0.08, 0.10)  # std of additive noise, on pixels scaled to [0, 1]
BLUR_SIGMA = (0.4, 0.7, 1.0)  # pixels
CONTRAST_FACTOR = (0.75, 0.4, 0.15)  # (x - channel mean) * c + channel mean
JPEG_QUALITY = (80, 58, 40)  # Pillow quality
SHIFT_PIXELS = 2
SUBPIXEL_SHIFT = (0.3, 1.5)  # pixels, each direction: |shift| drawn in this range, random sign
CROP_AREA = (0.7, 0.9)  # share of the image kept by the crop, before resizing back
COLOUR_RANGE = 0.25  # brightness and contrast factors in 1 +- this; saturation in 1 +- 2x this
CONSISTENCY = ("flip", "shift")
SECRET_VARIANTS = ("subpixel", "crop", "colour")
"""Continuous variants drawn per image from the grading's secret seed: the memoriser evidence."""
VARIANT_NAMES = (
    *(f"{corruption}_{severity}" for corruption in CORRUPTIONS for severity in SEVERITIES),
    *CONSISTENCY,
    *SECRET_VARIANTS,
)
DEFAULT_SEED = 0
"""For tests and benchmarks only: a grading draws its own secret seed (:func:`secret_seed`)."""
DEFAULT_BUDGET = 0.6
"""Images in all variants together, as a multiple of the number of test images."""


def secret_seed() -> int:
    """A fresh seed for one grading, from the operating system's secure source."""
    import secrets

    return secrets.randbits(62)


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
    out["subpixel"] = _to_uint8(_subpixel_shift(unit, rng))
    out["crop"] = _crop(chosen, rng)
    out["colour"] = _to_uint8(_recolour(unit, rng))
    return out


@dataclass(frozen=True)
class EvaluationImages:
    """The test images and their variants as one array, in the order a model evaluates them."""

    images: np.ndarray
    """uint8 (T, C, H, W): every image to evaluate, test images and variants mixed."""
    order: np.ndarray
    """``images[k]`` is image ``order[k]`` of the test images followed by each variant's."""
    n_test: int
    parts: dict[str, tuple[int, int]]
    """Variant name -> its range in the test-images-then-variants numbering."""

    def split(self, logits: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The logits of the test images and of each variant, from the logits of
        :attr:`images` in their order."""
        if len(logits) != len(self.order):
            raise ValueError(f"{len(logits)} logits for {len(self.order)} images")
        unmixed = np.empty_like(logits)
        unmixed[self.order] = logits
        variants = {name: unmixed[a:b] for name, (a, b) in self.parts.items()}
        return unmixed[: self.n_test], variants


def evaluation_images(
    images: np.ndarray, *, seed: int, variants: bool, budget: float | None = DEFAULT_BUDGET
) -> EvaluationImages:
    """The test ``images`` and (when ``variants``) every variant of :func:`make_variants` with
    ``seed``, mixed in an order drawn from ``seed``."""
    images = np.asarray(images)
    parts: dict[str, tuple[int, int]] = {}
    pool = [images]
    if variants and len(images) and images.ndim == 4 and images.shape[1] in (1, 3):
        start = len(images)
        for name, values in make_variants(images, seed, budget=budget).items():
            parts[name] = (start, start + len(values))
            pool.append(values)
            start += len(values)
    everything = np.concatenate(pool) if len(pool) > 1 else images
    order = np.random.default_rng([seed, 2]).permutation(len(everything))
    return EvaluationImages(np.ascontiguousarray(everything[order]), order, len(images), parts)


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


def _subpixel_shift(unit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image moved by a fractional (dy, dx) drawn per image (bilinear, zeros fill in)."""
    low, high = SUBPIXEL_SHIFT
    amounts = rng.uniform(low, high, size=(len(unit), 2)) * rng.choice([-1, 1], (len(unit), 2))
    height, width = unit.shape[2:]
    out = np.empty_like(unit)
    ys, xs = np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32)
    for i, (dy, dx) in enumerate(amounts):
        out[i] = _sample(unit[i], ys - dy, xs - dx)
    return out


def _sample(image: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` (C, H, W) at rows ``ys`` x columns ``xs``; 0 outside."""
    height, width = image.shape[1:]
    padded = np.pad(image, ((0, 0), (1, 1), (1, 1)))
    y = np.clip(ys + 1, 0, height + 1 - 1e-4)
    x = np.clip(xs + 1, 0, width + 1 - 1e-4)
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    y1, x1 = np.minimum(y0 + 1, height + 1), np.minimum(x0 + 1, width + 1)
    wy, wx = (y - y0)[:, None], (x - x0)[None, :]
    top = padded[:, y0][:, :, x0] * (1 - wx) + padded[:, y0][:, :, x1] * wx
    bottom = padded[:, y1][:, :, x0] * (1 - wx) + padded[:, y1][:, :, x1] * wx
    return top * (1 - wy) + bottom * wy


def _crop(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A square crop of a random share of each image at a random place, resized back."""
    from PIL import Image

    height, width = images.shape[2:]
    out = np.empty_like(images)
    mode = "RGB" if images.shape[1] == 3 else "L"
    for i, image in enumerate(images):
        side = max(4, round(math.sqrt(rng.uniform(*CROP_AREA)) * min(height, width)))
        top = int(rng.integers(0, height - side + 1))
        left = int(rng.integers(0, width - side + 1))
        pixels = image.transpose(1, 2, 0) if mode == "RGB" else image[0]
        patch = Image.fromarray(np.ascontiguousarray(pixels), mode).crop(
            (left, top, left + side, top + side)
        )
        resized = np.asarray(patch.resize((width, height), Image.Resampling.BILINEAR))
        out[i] = resized.transpose(2, 0, 1) if mode == "RGB" else resized[None]
    return out


def _recolour(unit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast and (colour images) saturation changed by factors drawn per image."""
    n = len(unit)
    spread = COLOUR_RANGE
    brightness = rng.uniform(1 - spread, 1 + spread, (n, 1, 1, 1)).astype(np.float32)
    contrast = rng.uniform(1 - spread, 1 + spread, (n, 1, 1, 1)).astype(np.float32)
    saturation = rng.uniform(1 - 2 * spread, 1 + 2 * spread, (n, 1, 1, 1)).astype(np.float32)
    out = unit * brightness
    if unit.shape[1] == 3:
        grey = (out * np.array([0.299, 0.587, 0.114], np.float32)[None, :, None, None]).sum(
            axis=1, keepdims=True
        )
        out = grey + (out - grey) * saturation
    mean = out.mean(axis=(1, 2, 3), keepdims=True)
    return (out - mean) * contrast + mean


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
