"""SimpleNN with and without step learning-rate decay (Duke ECE 661 HW2, lab 1 bonus).

Both runs train SimpleNN with SGD and momentum from one initialisation on the same batches; one
keeps the learning rate, the other multiplies it by ``gamma`` every ``decay_every`` epochs
(``torch.optim.lr_scheduler.StepLR``). The figure shows training loss, validation loss and
accuracy, and the learning rate per epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from reference.experiments import common
from reference.train_config import setting

NAME = "lr-decay"
FIGURE_NAMES = {"curves": "lr_decay_curves.png"}
CONSTANT, DECAY = "constant lr", "step decay"


@dataclass(frozen=True)
class Config(common.EpochConfig):
    """Settings of the learning-rate decay comparison."""

    lr: float = setting(0.05, "Initial SGD learning rate.", minimum=0, min_open=True)
    momentum: float = setting(0.9, "SGD momentum.", minimum=0)
    decay_every: int = setting(5, "Epochs between two decays.", minimum=1)
    gamma: float = setting(0.1, "Factor the learning rate is multiplied by at each decay.",
                           minimum=0, min_open=True)  # fmt: skip
    out_dir: Path = setting(Path("out/lr-decay"), "Output folder.", flag="--out")


SCALES = {
    "tiny": Config(epochs=3, batch_size=32, decay_every=2, train_images=256, val_images=128),
    "small": Config(epochs=15, batch_size=64, decay_every=5),
    "full": Config(
        epochs=40,
        batch_size=128,
        decay_every=15,
        val_images=5000,
        out_dir=Path("out/lr-decay-full"),
    ),  # fmt: skip
}


def run(config: Config) -> dict[str, Any]:
    """Train SimpleNN at a constant learning rate and with step decay; write figure and JSON."""
    build = common.reference_model("simplenn")
    sgd = common.optimizer("sgd", config.lr, config.momentum)

    def step_decay(optimizer):
        return torch.optim.lr_scheduler.StepLR(optimizer, config.decay_every, gamma=config.gamma)

    variants = [
        common.Variant(CONSTANT, build, sgd),
        common.Variant(DECAY, build, sgd, scheduler=step_decay),
    ]
    return common.run_variants(NAME, config, "cifar10", variants, plot=plot, summarise=summarise)


plot = common.epoch_plot(
    FIGURE_NAMES["curves"],
    ("train_loss", "val_loss", "val_accuracy", "lr"),
    lambda config: (
        f"SimpleNN, SGD lr {config.lr:g}: constant vs x{config.gamma:g} every "
        f"{config.decay_every} epochs"
    ),
    log_scale=("lr",),
)
"""Training loss, validation loss and accuracy, and the learning rate, per epoch."""


def summarise(trained: Sequence[common.TrainedVariant], config: Config) -> dict[str, Any]:
    """Per run the last epoch's figures; the accuracy and loss step decay gains."""
    runs = {t.curves.label: common.epoch_summary(t.curves) for t in trained}
    return {
        "runs": runs,
        "decay_accuracy_gain": runs[DECAY]["final_val_accuracy"]
        - runs[CONSTANT]["final_val_accuracy"],
        "decay_train_loss_drop": runs[CONSTANT]["final_train_loss"]
        - runs[DECAY]["final_train_loss"],
    }


def summary_lines(document: dict[str, Any]) -> list[str]:
    """What ``grader reproduce lr-decay`` prints."""
    gain = document["summary"]["decay_accuracy_gain"]
    return [
        *common.epoch_summary_lines(document),
        f"step decay changes the accuracy by {gain:+.4f}",
    ]
