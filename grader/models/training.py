"""The short training run of an experiment: one loop for a captured graph and a reference model.

Both the student's captured training-mode graph (inside a box, :mod:`grader.models.inside.
training`) and the reference model (on the host) are trained by :func:`loss_curve` on the same
batches in the same order, so their loss curves compare like for like.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from grader.data import get_dataset


def normalise(images: np.ndarray, dataset: str = "cifar10") -> torch.Tensor:
    """uint8 (N, C, H, W) images -> float32 tensor normalised per channel with the registered
    statistics of ``dataset``."""
    stats = get_dataset(dataset)
    x = torch.from_numpy(np.array(images, copy=True)).float().div_(255.0)
    mean = torch.tensor(stats.mean).view(1, -1, 1, 1)
    std = torch.tensor(stats.std).view(1, -1, 1, 1)
    return (x - mean) / std


def batch_order(n_images: int, *, steps: int, batch_size: int, seed: int) -> np.ndarray:
    """Indices (steps, batch_size) of each step's batch: seeded shuffles, one per epoch."""
    if batch_size > n_images:
        raise ValueError(f"batch size {batch_size} is larger than the {n_images} training images")
    rng = np.random.default_rng(seed)
    per_epoch = n_images // batch_size
    epochs = math.ceil(steps / per_epoch)
    order = [rng.permutation(n_images)[: per_epoch * batch_size] for _ in range(epochs)]
    return np.concatenate(order).reshape(-1, batch_size)[:steps]


def loss_curve(
    forward: Callable[[torch.Tensor], torch.Tensor],
    parameters: Sequence[torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    order: np.ndarray,
    *,
    lr: float,
) -> list[float]:
    """Train with Adam on the batches of ``order``; the training loss at every step."""
    optimizer = torch.optim.Adam(list(parameters), lr=lr)
    losses = []
    for index in order:
        idx = torch.from_numpy(index)
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(forward(images[idx]), labels[idx])
        loss.backward()
        optimizer.step()
        value = float(loss.detach())
        losses.append(value if math.isfinite(value) else float("nan"))
    return losses


def band(curves: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-step minimum and maximum over several curves (truncated to the shortest)."""
    if not curves:
        raise ValueError("no curves to make a band from")
    length = min(len(c) for c in curves)
    stacked = np.array([np.asarray(c[:length], dtype=float) for c in curves])
    # fmin/fmax skip a NaN (a diverged run) without the warning nanmin gives
    return np.fmin.reduce(stacked, axis=0), np.fmax.reduce(stacked, axis=0)


def band_width(curves: Sequence[Sequence[float]]) -> float:
    """Mean over steps of (max - min) across ``curves``: how much the learning rate matters."""
    low, high = band(curves)
    return float(np.nanmean(high - low))


def plot_bands(bands: dict[str, Sequence[Sequence[float]]], path, *, title: str):
    """One figure with a loss band (min/max over learning rates) per entry of ``bands``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    for (label, curves), colour in zip(
        bands.items(), ("tab:green", "tab:red", "tab:blue"), strict=False
    ):
        low, high = band(curves)
        xs = np.arange(len(low))
        ax.fill_between(xs, low, high, color=colour, alpha=0.35, label=label)
        ax.plot(xs, low, color=colour, linewidth=0.6)
        ax.plot(xs, high, color=colour, linewidth=0.6)
    ax.set(xlabel="step", ylabel="training loss", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
