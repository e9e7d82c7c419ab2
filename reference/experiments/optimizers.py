"""Adam vs SGD with momentum on the AlexNet-style network (VU Deep Learning, assignment 2).

Both runs start from the same initialisation and see the same batches of real CIFAR-10 images;
each optimizer has its usual learning rate (Adam 1e-3, Kingma & Ba 2015; SGD 0.01 with momentum
0.9). The figure shows the training loss per step and the validation loss and accuracy per
epoch; the summary says which optimizer ends with the lower validation loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reference.experiments import common
from reference.train_config import setting

NAME = "optimizers"
FIGURE_NAMES = {"curves": "optimizers_curves.png", "step_loss": "optimizers_step_loss.png"}


@dataclass(frozen=True)
class Config(common.EpochConfig):
    """Settings of the optimizer comparison."""

    width: float = setting(
        0.25, "Channel multiplier of the AlexNet-style net (1 = 64..256 channels).", minimum=0,
        min_open=True,
    )  # fmt: skip
    adam_lr: float = setting(1e-3, "Adam's learning rate.", minimum=0, min_open=True)
    sgd_lr: float = setting(0.01, "SGD's learning rate.", minimum=0, min_open=True)
    momentum: float = setting(0.9, "SGD's momentum.", minimum=0)
    out_dir: Path = setting(Path("out/optimizers"), "Output folder.", flag="--out")


SCALES = {
    "tiny": Config(epochs=2, batch_size=32, width=0.125, train_images=256, val_images=128),
    "small": Config(epochs=6, batch_size=64, width=0.25),
    "full": Config(
        epochs=30, batch_size=128, width=1.0, val_images=5000, out_dir=Path("out/optimizers-full")
    ),
}


def run(config: Config) -> dict[str, Any]:
    """Train the AlexNet-style net once with Adam and once with SGD; write figures and JSON."""
    build = common.reference_model("alexnet_cifar", width=config.width)
    variants = [
        common.Variant("Adam", build, common.optimizer("adam", config.adam_lr)),
        common.Variant("SGD", build, common.optimizer("sgd", config.sgd_lr, config.momentum)),
    ]
    return common.run_variants(NAME, config, "cifar10", variants, plot=plot, summarise=summarise)


def plot(
    trained: Sequence[common.TrainedVariant], out_dir: Path, config: Config
) -> dict[str, Path]:
    """Per-epoch curves (training loss, validation loss and accuracy) and the per-step loss."""
    runs = [t.curves for t in trained]
    curves = common.plot_epoch_curves(
        runs,
        ("train_loss", "val_loss", "val_accuracy"),
        out_dir / FIGURE_NAMES["curves"],
        title=f"Adam (lr {config.adam_lr:g}) vs SGD (lr {config.sgd_lr:g}, momentum "
        f"{config.momentum:g}) on the AlexNet-style net, CIFAR-10",
    )
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for run in runs:
        ax.plot(run.step_loss, linewidth=0.7, label=run.label)
    ax.set(xlabel="step", ylabel="training loss (cross-entropy)", title="Training loss per step")
    ax.legend()
    return {
        "curves": curves,
        "step_loss": common.save_figure(fig, out_dir / FIGURE_NAMES["step_loss"]),
    }


def summarise(trained: Sequence[common.TrainedVariant], config: Config) -> dict[str, Any]:
    """Per run the last epoch's figures, and the optimizer with the lower validation loss."""
    runs = {t.curves.label: common.epoch_summary(t.curves) for t in trained}
    best = min(runs, key=lambda label: runs[label]["final_val_loss"])
    return {"runs": runs, "lower_val_loss": best}


def summary_lines(document: dict[str, Any]) -> list[str]:
    """What ``grader reproduce optimizers`` prints."""
    lines = common.epoch_summary_lines(document)
    return [*lines, f"lower validation loss: {document['summary']['lower_val_loss']}"]
