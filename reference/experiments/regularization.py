"""L1 vs L2 regularization on SimpleNN (Duke ECE 661 HW2, lab 2: "use L1 instead of L2 and
compare the weight distributions").

Both runs train SimpleNN from one initialisation on the same batches with SGD; one adds
``l2 * sum(w^2) / 2`` to the loss (weight decay), the other ``l1 * sum(|w|)``, over the weights of
every convolution and linear layer (biases exempt). The figures show each layer's weight
histogram for both runs and the fraction of near-zero weights (``|w| < near_zero``) per layer:
L1's subgradient pushes small weights to zero, L2's only shrinks them in proportion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reference.experiments import common
from reference.train_config import setting

NAME = "regularization"
FIGURE_NAMES = {
    "histograms": "regularization_weight_histograms.png",
    "near_zero": "regularization_near_zero.png",
    "curves": "regularization_curves.png",
}
BINS = 80


@dataclass(frozen=True)
class Config(common.EpochConfig):
    """Settings of the L1 vs L2 comparison."""

    lr: float = setting(0.05, "SGD learning rate.", minimum=0, min_open=True)
    momentum: float = setting(0.9, "SGD momentum.", minimum=0)
    l1: float = setting(3e-4, "L1 coefficient (on sum |w|).", minimum=0, min_open=True)
    l2: float = setting(5e-4, "L2 coefficient (on sum w^2 / 2).", minimum=0, min_open=True)
    near_zero: float = setting(1e-3, "A weight with |w| below this counts as near zero.",
                               minimum=0, min_open=True)  # fmt: skip
    out_dir: Path = setting(Path("out/regularization"), "Output folder.", flag="--out")


SCALES = {
    "tiny": Config(epochs=2, batch_size=32, train_images=256, val_images=128),
    "small": Config(epochs=15, batch_size=64),
    "full": Config(
        epochs=30, batch_size=128, val_images=5000, out_dir=Path("out/regularization-full")
    ),  # fmt: skip
}


def run(config: Config) -> dict[str, Any]:
    """Train SimpleNN with the L2 penalty and with the L1 penalty; write figures and JSON."""
    from reference.train import l1_penalty, l2_penalty

    build = common.reference_model("simplenn")
    sgd = common.optimizer("sgd", config.lr, config.momentum)
    variants = [
        common.Variant("L2", build, sgd, penalty=lambda m: config.l2 * l2_penalty(m)),
        common.Variant("L1", build, sgd, penalty=lambda m: config.l1 * l1_penalty(m)),
    ]
    for variant in variants:
        variant.records["near_zero"] = []
        variant.records["histograms"] = []
    return common.run_variants(NAME, config, "cifar10", variants, plot=plot, summarise=summarise)


def layer_weights(trained: common.TrainedVariant) -> list[tuple[str, np.ndarray]]:
    """(layer name, flat weights) of every convolution and linear layer of a trained run."""
    from reference.plots import weight_layers

    return [(name, weight.flatten().numpy()) for name, weight in weight_layers(trained.model)]


def near_zero_fractions(trained: common.TrainedVariant, threshold: float) -> dict[str, float]:
    """Per layer, and ``all`` together, the fraction of weights with ``|w| < threshold``."""
    layers = layer_weights(trained)
    fractions = {name: float(np.mean(np.abs(w) < threshold)) for name, w in layers}
    everything = np.concatenate([w for _, w in layers])
    fractions["all"] = float(np.mean(np.abs(everything) < threshold))
    return fractions


def plot(
    trained: Sequence[common.TrainedVariant], out_dir: Path, config: Config
) -> dict[str, Path]:
    """Weight histograms per layer (both runs overlaid), near-zero fractions, training curves."""
    plt = common.pyplot()
    per_run = {t.curves.label: dict(layer_weights(t)) for t in trained}
    names = list(next(iter(per_run.values())))
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for index, name in enumerate(names):
        ax = axes[index // cols][index % cols]
        limit = max(float(np.abs(run[name]).max()) for run in per_run.values())
        edges = np.linspace(-limit, limit, BINS + 1)
        for t in trained:
            counts, _ = np.histogram(per_run[t.curves.label][name], bins=edges)
            t.variant.records["histograms"].append(
                {"layer": name, "edges": edges.tolist(), "counts": counts.tolist()}
            )
            ax.stairs(counts, edges, fill=True, alpha=0.5, label=t.curves.label)
        ax.set_yscale("log")
        ax.set(title=f"{name} ({per_run[trained[0].curves.label][name].size:,} weights)",
               xlabel="weight value", ylabel="count")  # fmt: skip
        ax.legend(fontsize=8)
    for index in range(len(names), rows * cols):
        axes[index // cols][index % cols].axis("off")
    fig.suptitle(f"SimpleNN weight histograms per layer: L1 ({config.l1:g}) vs L2 ({config.l2:g})")
    histograms = common.save_figure(fig, out_dir / FIGURE_NAMES["histograms"])

    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    positions = np.arange(len(names) + 1)
    for offset, t in zip((-0.2, 0.2), trained, strict=False):
        fractions = near_zero_fractions(t, config.near_zero)
        t.variant.records["near_zero"].append(fractions)
        ax.bar(positions + offset, list(fractions.values()), width=0.4, label=t.curves.label)
    ax.set_xticks(positions, [*names, "all"])
    ax.set(ylabel=f"fraction with |w| < {config.near_zero:g}",
           title="Near-zero weights per layer")  # fmt: skip
    ax.legend()
    near_zero = common.save_figure(fig, out_dir / FIGURE_NAMES["near_zero"])

    curves = common.plot_epoch_curves(
        [t.curves for t in trained],
        ("train_loss", "val_loss", "val_accuracy"),
        out_dir / FIGURE_NAMES["curves"],
        title="SimpleNN with L1 vs L2 (CIFAR-10)",
    )
    return {"histograms": histograms, "near_zero": near_zero, "curves": curves}


def summarise(trained: Sequence[common.TrainedVariant], config: Config) -> dict[str, Any]:
    """Per run the last epoch's figures and the near-zero fractions; whether L1 is sparser."""
    runs = {t.curves.label: common.epoch_summary(t.curves) for t in trained}
    fractions = {t.curves.label: near_zero_fractions(t, config.near_zero) for t in trained}
    return {
        "runs": runs,
        "near_zero": fractions,
        "near_zero_threshold": config.near_zero,
        "l1_sparser": fractions["L1"]["all"] > fractions["L2"]["all"],
    }


def summary_lines(document: dict[str, Any]) -> list[str]:
    """What ``grader reproduce regularization`` prints."""
    summary = document["summary"]
    threshold = summary["near_zero_threshold"]
    lines = common.epoch_summary_lines(document)
    for label, fractions in summary["near_zero"].items():
        lines.append(f"{label}: {fractions['all']:.1%} of the weights have |w| < {threshold:g}")
    return lines
