"""Batch transforms on the device: random crops with zero padding, horizontal flips, normalising.

Whole batches of uint8 images are transformed with a few tensor operations, so no per-image PIL
pipeline or DataLoader worker is involved (the approach of Jordan's cifar10-airbench).
"""

from __future__ import annotations

import torch

from grader.data import Dataset


def normalize(images: torch.Tensor, recipe: Dataset) -> torch.Tensor:
    """uint8 (N, C, H, W) -> normalised float32 in channels_last memory format, with the data
    set's registered per-channel statistics."""
    mean = torch.tensor(recipe.mean, device=images.device).view(1, -1, 1, 1) * 255
    std = torch.tensor(recipe.std, device=images.device).view(1, -1, 1, 1) * 255
    x = (images.float() - mean) / std
    return x.contiguous(memory_format=torch.channels_last)


def random_crop(images: torch.Tensor, pad: int, generator: torch.Generator | None = None):
    """Pad ``images`` (N, C, H, W) by ``pad`` zeros per side and cut a random HxW window of each."""
    if pad == 0:
        return images
    n, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    device = images.device
    dy = torch.randint(0, 2 * pad + 1, (n,), device=device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=device))[:, None, :, None]  # (N, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=device))[:, None, None, :]  # (N, 1, 1, W)
    batch = torch.arange(n, device=device)[:, None, None, None]
    channel = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_flip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror a random half of ``images`` left to right."""
    flip = torch.rand(images.shape[0], device=images.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def augment_batch(
    images: torch.Tensor, pad: int, flip: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random crop (``pad`` pixels) and, when ``flip``, random horizontal flip of a batch."""
    images = random_crop(images, pad, generator)
    return random_flip(images, generator) if flip else images
