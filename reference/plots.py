"""Report plots for the training experiments: weight histograms per layer, first-layer filters.

Matplotlib's Agg backend renders straight to PNG files; nothing needs a display.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
import torch  # noqa: E402
from torch import nn  # noqa: E402


def weight_layers(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """(name, weight) of every convolution and linear layer, in definition order."""
    return [
        (name, module.weight.detach().float().cpu())
        for name, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear))
    ]


def plot_weight_histograms(
    models: Mapping[str, nn.Module], path: str | Path, bins: int = 60
) -> Path:
    """One panel per layer, one histogram per model (e.g. ``{"L1": m1, "L2": m2}``) overlaid."""
    layered = {label: weight_layers(model) for label, model in models.items()}
    names = [name for name, _ in next(iter(layered.values()))]
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for index, name in enumerate(names):
        ax = axes[index // cols][index % cols]
        for label, layers in layered.items():
            ax.hist(layers[index][1].flatten().numpy(), bins=bins, alpha=0.6, label=label)
        ax.set_title(name, fontsize=8)
        ax.set_yscale("log")
        ax.tick_params(labelsize=6)
    for index in range(len(names), rows * cols):
        axes[index // cols][index % cols].axis("off")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("weight histograms per layer")
    fig.tight_layout()
    return _save(fig, path)


def plot_first_layer_filters(model: nn.Module, path: str | Path) -> Path:
    """The first convolution's filters as small images, each scaled to its own value range."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(model).__name__} has no convolution whose filters could be shown")
    weight = convs[0].weight.detach().float().cpu()  # (out, in, k, k)
    count = weight.shape[0]
    cols = min(8, count)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.2 * rows), squeeze=False)
    for index in range(rows * cols):
        ax = axes[index // cols][index % cols]
        ax.axis("off")
        if index >= count:
            continue
        kernel = weight[index]
        kernel = (kernel - kernel.min()) / (kernel.max() - kernel.min() + 1e-12)
        if kernel.shape[0] == 3:
            ax.imshow(kernel.permute(1, 2, 0).numpy())
        else:
            ax.imshow(kernel[0].numpy(), cmap="gray")
    fig.suptitle(f"first-layer filters ({count})", fontsize=9)
    return _save(fig, path)


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def load_run(run_dir: str | Path) -> nn.Module:
    """The trained model of a ``reference.train`` output folder (record.json + model.pt)."""
    import json

    from reference.models import get_model

    run_dir = Path(run_dir)
    try:
        name = json.loads((run_dir / "record.json").read_text())["model"]
        state = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{run_dir}: not a training run folder ({exc})") from None
    model = get_model(name)
    model.load_state_dict(state)
    return model


def compare_runs(runs: Mapping[str, str | Path], path: str | Path) -> Path:
    """Overlay the per-layer weight histograms of several runs of one model (e.g. L1 vs L2)."""
    return plot_weight_histograms({label: load_run(d) for label, d in runs.items()}, path)


def plot_validation_curves(baseline_dir: str | Path, path: str | Path) -> Path:
    """Validation accuracy by epoch of every baseline run under ``baseline_dir`` that recorded a
    curve (``<model>/record*.json``), one panel per model, one line per run."""
    import json

    runs: dict[str, list[tuple[str, list[dict]]]] = {}
    for record_path in sorted(Path(baseline_dir).glob("*/record*.json")):
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("curve"):
            label = f"{record['epochs']} epochs: test {record['accuracy']:.1%}"
            runs.setdefault(record["model"], []).append((label, record["curve"]))
    if not runs:
        raise ValueError(f"no baseline under {baseline_dir} recorded a validation curve")
    cols = min(3, len(runs))
    rows = math.ceil(len(runs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for index, (model, curves) in enumerate(sorted(runs.items())):
        ax = axes[index // cols][index % cols]
        for label, curve in sorted(curves, key=lambda c: len(c[1])):
            ax.plot([p["epoch"] for p in curve], [p["val_accuracy"] for p in curve], label=label)
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel("validation accuracy", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="lower right")
    for index in range(len(runs), rows * cols):
        axes[index // cols][index % cols].axis("off")
    fig.tight_layout()
    return _save(fig, path)


def main(argv: list[str] | None = None) -> None:
    """``python -m reference.plots OUT.png LABEL=RUN_DIR ...``: compare weight histograms."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2 or not all("=" in a for a in args[1:]):
        raise SystemExit(
            "usage: python -m reference.plots OUT.png LABEL=RUN_DIR [LABEL=RUN_DIR ...]"
        )
    runs = dict(a.split("=", 1) for a in args[1:])
    print(compare_runs(runs, args[0]))


if __name__ == "__main__":
    main()
