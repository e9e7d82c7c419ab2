"""The batch-norm experiments of Santurkar et al., "How Does Batch Normalization Help
Optimization?" (NeurIPS 2018), on VGG-A with and without BatchNorm.

Both models start from the same initialisation (one seed) and see the same batches. Along the
trajectory of ONE training run per model (at ``landscape_lr``), at every probed step t with
weights w_t and loss gradient g_t, the loss and its gradient are evaluated again at
``w_t - eta * g_t`` for each step size eta of a grid (paper, section 3.1 and figure 4):

- **loss landscape**: per step, the range [min, max] of ``loss(w_t - eta * g_t)`` over eta;
- **gradient predictiveness**: ``||g(w_t) - g(w_t - eta * g_t)||`` over eta;
- **effective beta-smoothness**: the largest ratio of that gradient change to ``||eta * g_t||``.

Each model is also trained once per learning rate in ``lrs``; the per-step max and min of those
training losses is kept as a second curve, the **loss band over learning rates** (the course
project's variant of the figure).

``run(config)`` writes three PNG figures and a JSON holding every curve with its provenance; its
summary gives per model ``loss_band_width`` (the landscape along the gradient, mean over probed
steps of max - min over eta) and ``lr_band_width`` (the band over learning rates). The
CPU default (``SMALL``) trains a narrow VGG-A on the 5,085 real CIFAR-10 images of the shared
subset in minutes; ``FULL`` is the published width for a GPU.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from reference.experiments.common import (
    ExperimentConfig,
    Timer,
    normalised,
    provenance,
    pyplot,
    relative_source,
    resolve_device,
    results_name,
    save_figure,
    write_document,
)
from reference.experiments.loop import ExperimentError, Step, batch_order, make_optimizer, run_steps
from reference.train_config import setting

NAME = "bn"
BNExperimentError = ExperimentError
Optimizer = Literal["adam", "sgd"]
MODEL_KINDS = ("vgg_a", "vgg_a_bn")
MODEL_LABELS = {"vgg_a": "VGG-A", "vgg_a_bn": "VGG-A + BatchNorm"}
MODEL_COLOURS = {"vgg_a": "tab:green", "vgg_a_bn": "tab:red"}

RESULTS_NAME = results_name(NAME)
FIGURE_NAMES = {
    "loss_landscape": "loss_landscape.png",
    "gradient_predictiveness": "gradient_predictiveness.png",
    "beta_smoothness": "beta_smoothness.png",
}

__all__ = [
    "BNConfig",
    "BNExperimentError",
    "Config",
    "FIGURE_NAMES",
    "FULL",
    "RESULTS_NAME",
    "RunCurves",
    "SCALES",
    "SMALL",
    "band",
    "band_width",
    "batch_order",
    "landscape_band",
    "landscape_lr",
    "landscape_width",
    "normalise",
    "plot_all",
    "run",
    "summarise",
    "summary_lines",
    "train_curves",
]


@dataclass(frozen=True)
class BNConfig(ExperimentConfig):
    """One run of the experiments; every field is recorded in the JSON."""

    lrs: tuple[float, ...] = setting(
        (1e-3, 2e-3, 1e-4, 5e-4),
        "Learning rates; each model trains once per rate from one initialisation.",
    )
    landscape_lr: float | None = setting(
        None,
        "Learning rate of the run probed along the gradient (None: the middle of the sorted lrs).",
        cli=False,
    )
    steps: int = setting(100, "Optimisation steps per run.", minimum=2)
    batch_size: int = setting(32, "Images per step.", minimum=2)
    width: float = setting(0.25, "Channel multiplier of VGG-A (1 = published).", minimum=0,
                           min_open=True)  # fmt: skip
    optimizer: Optimizer = setting("adam", "Optimizer of every run.")
    probe_steps: tuple[float, ...] = setting(
        (0.05, 0.1, 0.2, 0.4), "The eta grid: step sizes of the probes w - eta * g."
    )
    probe_every: int = setting(5, "Probe the gradient every N steps.", minimum=1)
    max_images: int | None = setting(
        None, "Use only the first N training images.", minimum=2, default_text="all"
    )
    out_dir: Path = setting(Path("out/bn"), "Output folder.", flag="--out")


Config = BNConfig
SMALL = BNConfig()
"""CPU scale: quarter-width VGG-A, Adam, batch 32, 100 steps (3,200 of the 5,085 images of the
subset); the run at lr 1e-3 probed along the gradient every 5th step."""
FULL = BNConfig(width=1.0, steps=2000, batch_size=128, probe_every=1, out_dir=Path("out/bn-full"))
"""GPU scale: published VGG-A width, 2,000 steps of batch 128 (about 5 epochs of CIFAR-10)."""
TINY = BNConfig(
    lrs=(1e-3, 1e-4), steps=4, batch_size=16, width=0.125, probe_every=2, max_images=256
)
"""Test scale: eighth-width VGG-A, 4 steps at two learning rates on 256 images (seconds)."""
SCALES = {"tiny": TINY, "small": SMALL, "full": FULL}


@dataclass
class RunCurves:
    """Every curve recorded while training one model at one learning rate."""

    model: str
    lr: float
    loss: list[float] = field(default_factory=list)
    """Training loss at every step."""
    grad_change: list[float] = field(default_factory=list)
    """||g_t - g_{t-1}|| for t = 1..steps-1."""
    probe_at: list[int] = field(default_factory=list)
    """Steps at which the gradient was probed along its direction."""
    probe_grad_dist: list[list[float]] = field(default_factory=list)
    """Per probed step, ||g(w - eta*g) - g(w)|| for each probe step size (None: not finite)."""
    probe_loss: list[list[float]] = field(default_factory=list)
    """Per probed step, the loss at each probe point."""
    beta: list[float] = field(default_factory=list)
    """Per probed step, max over probe steps of gradient change / distance moved."""
    wall_s: float = 0.0


def normalise(images: np.ndarray) -> Tensor:
    """uint8 (N, 3, H, W) CIFAR-10 images -> float32 tensor normalised per channel."""
    return normalised(images, "cifar10")


# --- one training run -----------------------------------------------------------------------------


def _norm(tensors: Sequence[Tensor]) -> float:
    return float(torch.sqrt(sum(t.double().pow(2).sum() for t in tensors)))


def _probe(
    model: nn.Module,
    names: list[str],
    point: list[Tensor],
    grads: list[Tensor],
    x: Tensor,
    y: Tensor,
    steps: Sequence[float],
) -> tuple[list[float], list[float], float]:
    """Gradient distance and loss at ``point - eta * grads`` for each eta, and the max ratio."""
    # Cloned buffers keep BatchNorm's running statistics of the real model untouched.
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    grad_norm = _norm(grads)
    dists, losses, beta = [], [], 0.0
    for eta in steps:
        moved = [(p - eta * g).requires_grad_(True) for p, g in zip(point, grads, strict=True)]
        out = functional_call(model, {**dict(zip(names, moved, strict=True)), **buffers}, (x,))
        loss = F.cross_entropy(out, y)
        new_grads = torch.autograd.grad(loss, moved)
        dist = _norm([a - b for a, b in zip(new_grads, grads, strict=True)])
        dists.append(dist)
        losses.append(float(loss.detach()))
        moved_by = eta * grad_norm
        if moved_by > 0 and math.isfinite(dist):
            beta = max(beta, dist / moved_by)
    return dists, losses, beta


def train_curves(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    order: np.ndarray,
    *,
    lr: float,
    optimizer: str = "adam",
    probe_steps: Sequence[float] = (),
    probe_every: int = 1,
    name: str = "model",
    on_step: Callable[[], None] | None = None,
) -> RunCurves:
    """Train ``model`` on the batches in ``order`` and record the curves of the experiments.

    ``images``/``labels`` are on the model's device. Probing along the gradient happens only
    when ``probe_steps`` is not empty.
    """
    timer = Timer()
    names = [n for n, _ in model.named_parameters()]
    params = [p for _, p in model.named_parameters()]
    if optimizer not in ("adam", "sgd"):
        raise BNExperimentError(f"unknown optimizer {optimizer!r}: use 'adam' or 'sgd'")
    opt = make_optimizer(optimizer, model, lr, params=params)
    curves = RunCurves(model=name, lr=lr)
    previous: list[list[Tensor]] = []

    def record(step: Step) -> None:
        grads = [
            p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params
        ]
        if previous:
            curves.grad_change.append(
                _norm([a - b for a, b in zip(grads, previous[0], strict=True)])
            )
        previous[:] = [grads]
        if probe_steps and step.index % probe_every == 0:
            point = [p.detach() for p in params]
            dists, losses, beta = _probe(model, names, point, grads, step.x, step.y, probe_steps)
            curves.probe_at.append(step.index)
            curves.probe_grad_dist.append(dists)
            curves.probe_loss.append(losses)
            curves.beta.append(beta)

    curves.loss = run_steps(
        model, images, labels, order, opt, after_backward=record, after_step=on_step
    )
    curves.wall_s = timer.seconds
    return curves


# --- bands and summaries --------------------------------------------------------------------------


def band(curves: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-step minimum and maximum over several curves (truncated to the shortest; a NaN of a
    diverged probe is skipped): the grader's :func:`grader.models.training.band`."""
    from grader.models.training import band as grader_band

    if not curves:
        raise BNExperimentError("no curves to make a band from")
    return grader_band(curves)


def band_width(curves: Sequence[Sequence[float]]) -> float:
    """Mean over steps of (max - min) across ``curves``: how much the learning rate matters."""
    low, high = band(curves)
    widths = high - low
    widths = widths[np.isfinite(widths)]
    return float(widths.mean()) if widths.size else math.nan


def landscape_band(probe_loss: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Per probed step, the min and max of the loss over the eta grid (paper, figure 4a)."""
    if not probe_loss:
        raise BNExperimentError("no probed steps: the landscape run recorded no probe losses")
    return band(np.asarray(probe_loss, dtype=float).T.tolist())


def landscape_width(probe_loss: Sequence[Sequence[float]]) -> float:
    """Mean over probed steps of (max - min) of the loss along the gradient direction.

    A step where a probe diverged (a non-finite loss) has no finite width and is left out.
    """
    return band_width(np.asarray(probe_loss, dtype=float).T.tolist())


def landscape_lr(config: BNConfig) -> float:
    """The learning rate of the probed run: ``config.landscape_lr``, else the middle of the
    sorted lrs (the upper one of an even count: 1e-3 of the default 1e-4, 5e-4, 1e-3, 2e-3)."""
    if config.landscape_lr is not None:
        return config.landscape_lr
    ordered = sorted(config.lrs)
    return ordered[len(ordered) // 2]


# --- the whole experiment -------------------------------------------------------------------------


def _validate(config: BNConfig) -> None:
    if not config.lrs:
        raise BNExperimentError("give at least one learning rate (--lrs)")
    if any(not (lr > 0 and math.isfinite(lr)) for lr in config.lrs):
        raise BNExperimentError(f"learning rates must be positive numbers, got {config.lrs}")
    if config.steps < 2:
        raise BNExperimentError(f"--steps must be at least 2, got {config.steps}")
    if config.batch_size < 2:
        raise BNExperimentError(f"--batch-size must be at least 2, got {config.batch_size}")
    if config.probe_every < 1:
        raise BNExperimentError(f"probe_every must be at least 1, got {config.probe_every}")
    if config.width <= 0:
        raise BNExperimentError(f"--width must be positive, got {config.width}")
    if not config.probe_steps or any(not (e > 0 and math.isfinite(e)) for e in config.probe_steps):
        raise BNExperimentError(
            f"probe step sizes must be positive numbers, got {config.probe_steps}"
        )
    if config.landscape_lr is not None and config.landscape_lr not in config.lrs:
        raise BNExperimentError(
            f"landscape_lr {config.landscape_lr:g} is not one of the learning rates {config.lrs}"
        )


def run(config: BNConfig) -> dict[str, Any]:
    """Train VGG-A and VGG-A-BN at every learning rate, probing the landscape run; write the
    figures and the JSON.

    Returns the JSON document (``curves``, ``summary``, ``provenance``, ``files``).
    """
    from tqdm import tqdm

    from grader.data import cached_dataset
    from reference.models.vgg import vgg_a

    _validate(config)
    device = resolve_device(config.device)
    timer = Timer()
    data = cached_dataset("cifar10", "train", config.data_dir)
    raw_images, raw_labels = data.images, data.labels
    if config.max_images is not None:
        raw_images, raw_labels = raw_images[: config.max_images], raw_labels[: config.max_images]
    images = normalise(raw_images).to(device)
    labels = torch.from_numpy(raw_labels.copy()).to(device)
    order = batch_order(
        len(labels), steps=config.steps, batch_size=config.batch_size, seed=config.seed
    )

    probed_lr = landscape_lr(config)
    runs: list[RunCurves] = []
    total = len(MODEL_KINDS) * len(config.lrs) * config.steps
    with tqdm(total=total, desc="BN experiments", unit="step", disable=not config.progress) as bar:
        for kind in MODEL_KINDS:
            for lr in config.lrs:
                bar.set_postfix_str(f"{MODEL_LABELS[kind]} lr={lr:g}")
                torch.manual_seed(config.seed)  # same initialisation for every learning rate
                model = vgg_a(batch_norm=kind == "vgg_a_bn", width=config.width).to(device)
                runs.append(
                    train_curves(
                        model,
                        images,
                        labels,
                        order,
                        lr=lr,
                        optimizer=config.optimizer,
                        probe_steps=config.probe_steps if lr == probed_lr else (),
                        probe_every=config.probe_every,
                        name=kind,
                        on_step=bar.update,
                    )
                )

    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prov = provenance(
        config,
        {
            "dataset": "cifar10",
            "split": "train",
            "source": relative_source(Path(data.source), config.data_dir),
            "images": int(len(labels)),
            "description": "CIFAR-10 training images (python layout), normalised per channel",
        },
        device,
        timer.seconds,
    )
    prov.update(
        landscape_lr=probed_lr,
        seeds={"init": config.seed, "batch_order": config.seed},
        models={k: MODEL_LABELS[k] for k in MODEL_KINDS},
    )
    curves = [dataclasses.asdict(r) for r in runs]
    summary = summarise(runs, probed_lr)
    figures = plot_all({"curves": curves, "provenance": prov}, out_dir)
    return write_document(NAME, config, curves=curves, summary=summary, prov=prov, figures=figures)


def summarise(runs: Sequence[RunCurves], probed_lr: float) -> dict[str, dict[str, float]]:
    """Per model: the landscape band width along the gradient (``loss_band_width``), gradient
    predictiveness and beta of the probed run, and the loss band width over learning rates."""
    summary: dict[str, dict[str, float]] = {}
    for kind in sorted({r.model for r in runs}):
        mine = [r for r in runs if r.model == kind]
        probed = next((r for r in mine if r.lr == probed_lr and r.probe_at), None)
        if probed is None:
            raise BNExperimentError(f"{kind}: no run at lr {probed_lr:g} was probed")
        summary[kind] = {
            "loss_band_width": landscape_width(probed.probe_loss),
            "lr_band_width": band_width([r.loss for r in mine]),
            "landscape_first_loss": float(np.mean(probed.loss[:5])),
            "landscape_final_loss": float(np.mean(probed.loss[-10:])),
            "final_loss_mean": float(np.mean([np.mean(r.loss[-10:]) for r in mine])),
            "grad_change_mean": float(np.mean(probed.grad_change)),
            "grad_probe_dist_max_mean": _finite_mean([max(d) for d in probed.probe_grad_dist]),
            "beta_max_mean": _finite_mean(probed.beta),
        }
    return summary


def summary_lines(document: dict[str, Any]) -> list[str]:
    """What ``grader reproduce bn`` prints: the band widths and final loss per model."""
    return [
        f"{kind:9s} landscape band (along g) {entry['loss_band_width']:.4f}  "
        f"band over lrs {entry['lr_band_width']:.4f}  "
        f"final loss {entry['final_loss_mean']:.4f}"
        for kind, entry in document["summary"].items()
    ]


def _finite_mean(values: Sequence[float]) -> float:
    array = np.asarray(values, dtype=float)
    array = array[np.isfinite(array)]
    return float(array.mean()) if array.size else math.nan


# --- figures --------------------------------------------------------------------------------------


def _by_model(document: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for curve in document["curves"]:
        grouped.setdefault(curve["model"], []).append(curve)
    return grouped


def _band_plot(ax: Any, xs: np.ndarray, curves: list[list[float]], kind: str) -> None:
    low, high = band(curves)
    xs = xs[: len(low)]
    colour = MODEL_COLOURS.get(kind, "tab:blue")
    ax.fill_between(xs, low, high, color=colour, alpha=0.35, label=MODEL_LABELS.get(kind, kind))
    ax.plot(xs, low, color=colour, linewidth=0.6)
    ax.plot(xs, high, color=colour, linewidth=0.6)


def _probed(curves: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((c for c in curves if c["probe_at"]), None)


def _finite(values: list[Any]) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values], dtype=float)


def plot_all(document: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """The three figures of the experiments as PNGs in ``out_dir``."""
    plt = pyplot()
    grouped = _by_model(document)
    lrs = ", ".join(f"{lr:g}" for lr in document["provenance"]["config"]["lrs"])
    etas = ", ".join(f"{e:g}" for e in document["provenance"]["config"]["probe_steps"])
    probed_lr = document["provenance"]["landscape_lr"]
    paths: dict[str, Path] = {}

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    for kind, curves in grouped.items():
        probed = _probed(curves)
        if probed is not None:
            losses = _finite([value for row in probed["probe_loss"] for value in row])
            rows = losses.reshape(len(probed["probe_at"]), -1).T.tolist()
            _band_plot(left, np.asarray(probed["probe_at"]), rows, kind)
        _band_plot(right, np.arange(len(curves[0]["loss"])), [c["loss"] for c in curves], kind)
    left.set(
        xlabel="step",
        ylabel="loss(w - eta g)",
        title=f"Loss landscape along the gradient (lr {probed_lr:g}, eta {etas})",
    )
    right.set(xlabel="step", ylabel="training loss", title=f"Loss band over lr {lrs}")
    for ax in (left, right):
        ax.legend()
    paths["loss_landscape"] = save_figure(fig, out_dir / FIGURE_NAMES["loss_landscape"])

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    for kind, curves in grouped.items():
        probed = _probed(curves)
        if probed is None:
            continue
        dists = _finite([value for row in probed["probe_grad_dist"] for value in row])
        rows = dists.reshape(len(probed["probe_at"]), -1).T.tolist()
        _band_plot(left, np.asarray(probed["probe_at"]), rows, kind)
        right.plot(
            np.arange(1, 1 + len(probed["grad_change"])),
            _finite(probed["grad_change"]),
            color=MODEL_COLOURS.get(kind, "tab:blue"),
            linewidth=0.8,
            label=MODEL_LABELS.get(kind, kind),
        )
    left.set(
        xlabel="step",
        ylabel="||g(w - eta g) - g(w)||",
        title=f"Gradient predictiveness (lr {probed_lr:g}, eta {etas})",
    )
    right.set(xlabel="step", ylabel="||g_t - g_(t-1)||", title="Gradient change between steps")
    for ax in (left, right):
        ax.set_yscale("log")
        ax.legend()
    paths["gradient_predictiveness"] = save_figure(
        fig, out_dir / FIGURE_NAMES["gradient_predictiveness"]
    )

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    for kind, curves in grouped.items():
        probed = _probed(curves)
        if probed is not None:
            ax.plot(
                np.asarray(probed["probe_at"]),
                _finite(probed["beta"]),
                color=MODEL_COLOURS.get(kind, "tab:blue"),
                marker=".",
                label=MODEL_LABELS.get(kind, kind),
            )
    ax.set(
        xlabel="step",
        ylabel="max over eta ||dg|| / ||eta g||",
        title=f"Effective beta-smoothness (lr {probed_lr:g})",
    )
    ax.set_yscale("log")
    ax.legend()
    paths["beta_smoothness"] = save_figure(fig, out_dir / FIGURE_NAMES["beta_smoothness"])
    return paths
