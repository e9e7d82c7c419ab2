"""The batch-norm experiments (now :mod:`reference.experiments.bn`) and the grading of a student's
``VGG_BatchNorm`` on the same loss band.

The experiment's names are re-exported here unchanged; :func:`student_band_task` is the sandbox
task of the ``vgg-bn`` assignment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reference.experiments.bn import (  # noqa: F401 - the experiment's names, re-exported
    FIGURE_NAMES,
    FULL,
    MODEL_KINDS,
    MODEL_LABELS,
    RESULTS_NAME,
    SMALL,
    TINY,
    BNConfig,
    BNExperimentError,
    RunCurves,
    band,
    band_width,
    batch_order,
    landscape_band,
    landscape_lr,
    landscape_width,
    normalise,
    plot_all,
    run,
    summarise,
    train_curves,
)
from reference.experiments.common import save_figure

# --- grading a student's VGG_BatchNorm ------------------------------------------------------------


@dataclass
class LocalContext:
    """What :func:`student_band_task` needs, for trusted models run in this process.

    The sandbox hands the task an object with the same attributes for a student's model.
    """

    build_model: Callable[[], nn.Module]
    inputs: dict[str, np.ndarray]
    args: dict[str, Any]
    output_dir: Path


def student_band_task(ctx: Any) -> dict[str, Any]:
    """Train ``ctx.build_model()`` from one initialisation at each learning rate in ``ctx.args``.

    Runs inside the sandbox. ``ctx.inputs`` holds the uint8 training ``images`` and their
    ``labels``; ``ctx.args`` the ``lrs``, ``steps``, ``batch_size``, ``seed`` and
    ``input_shape``. Returns the executed layers and the loss curve for every learning rate.
    """
    from grader.vggbn import executed_layers

    args = ctx.args
    seed = int(args.get("seed", 0))
    torch.manual_seed(seed)
    layers = executed_layers(ctx.build_model(), args.get("input_shape", (3, 32, 32)))
    images = normalise(ctx.inputs["images"])
    labels = torch.from_numpy(np.asarray(ctx.inputs["labels"], dtype=np.int64))
    order = batch_order(
        len(labels), steps=int(args["steps"]), batch_size=int(args["batch_size"]), seed=seed
    )
    curves = []
    for lr in args["lrs"]:
        torch.manual_seed(seed)  # the same initialisation for every learning rate
        run_curves = train_curves(ctx.build_model(), images, labels, order, lr=float(lr))
        curves.append({"lr": float(lr), "loss": run_curves.loss, "wall_s": run_curves.wall_s})
    return {"layers": [dataclasses.asdict(layer) for layer in layers], "curves": curves}


def reference_band_curves(
    images: np.ndarray, labels: np.ndarray, schedule: Any, *, batch_norm: bool = False
) -> list[list[float]]:
    """Loss curves of the reference VGG-A (one per learning rate) on ``schedule``."""
    from reference.models.vgg import vgg_a

    ctx = LocalContext(
        build_model=lambda: vgg_a(
            batch_norm=batch_norm, width=getattr(schedule, "reference_width", 1.0)
        ),
        inputs={"images": images, "labels": labels},
        args={
            "lrs": list(schedule.lrs),
            "steps": schedule.steps,
            "batch_size": schedule.batch_size,
            "seed": schedule.seed,
        },
        output_dir=Path("."),
    )
    return [curve["loss"] for curve in student_band_task(ctx)["curves"]]


def plot_band_comparison(bands: dict[str, list[list[float]]], path: Path, *, title: str) -> Path:
    """One figure with a loss band (max/min over learning rates) per entry of ``bands``."""
    from reference.experiments.common import pyplot

    fig, ax = pyplot().subplots(figsize=(7, 4.2), dpi=100)
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
    return save_figure(fig, path)
