"""The settings of the training recipe: the one place their defaults and limits are written.

``TrainConfig`` is what a run depends on (stored in its record). ``grader train`` builds its
flags from its fields (help text, lower bounds and
choices come from each field's metadata) and ``reference.train.train(**settings)`` takes the same
names, so no default is written twice. Cheap to import: no torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

Schedule = Literal["onecycle", "cosine", "step"]
SCHEDULES: tuple[str, ...] = get_args(Schedule)
Device = Literal["cpu", "cuda"]


def setting(
    default: Any,
    help: str,
    *,
    minimum: float | None = None,
    min_open: bool = False,
    default_text: str | None = None,
    cli: bool = True,
    flag: str | None = None,
) -> Any:
    """A dataclass field whose metadata the command lines and :func:`check_bounds` read.

    ``minimum`` (exclusive when ``min_open``) bounds a number; ``default_text`` is what the help
    says for a default that is not a plain value (None meaning "per model", say); ``cli=False``
    keeps the field off the command line; ``flag`` renames its option.
    """
    metadata = {"help": help, "min": minimum, "min_open": min_open, "cli": cli}
    metadata.update(default_text=default_text, flag=flag)
    return field(default=default, metadata=metadata)


def check_bounds(config: Any) -> None:
    """Raise ValueError naming the first numeric setting of ``config`` below its minimum."""
    for item in dataclasses.fields(config):
        minimum = item.metadata.get("min")
        value = getattr(config, item.name)
        if minimum is None or value is None or isinstance(value, (tuple, bool)):
            continue
        flag = item.metadata.get("flag") or f"--{item.name.replace('_', '-')}"
        if item.metadata.get("min_open"):
            if not (value > minimum and math.isfinite(value)):
                raise ValueError(f"{flag} must be greater than {minimum:g}, got {value}")
        elif not value >= minimum:
            raise ValueError(f"{flag} must be at least {minimum:g}, got {value}")


# peak learning rate per model when --lr is not given; nets without normalisation layers
# diverge at the BatchNorm nets' rate
DEFAULT_LR = 0.2
MODEL_LR: dict[str, float] = {
    "simplenn": 0.05,
    "simplenn_swish": 0.05,
    "alexnet_cifar": 0.02,
    "vgg_a": 0.02,
    "vgg16_cifar": 0.02,
    "lenet5": 0.05,
    "tp4_net": 0.05,
}


@dataclass
class TrainConfig:
    """Everything one training run depends on; stored in its record."""

    model: str = setting("resnet20", "Reference model to train.", cli=False)
    epochs: int = setting(10, "Training epochs.", minimum=1)
    batch_size: int = setting(256, "Images per SGD step.", minimum=2)
    lr: float | None = setting(
        None,
        "Peak learning rate.",
        minimum=0,
        min_open=True,
        default_text=f"per model, {DEFAULT_LR:g} for BatchNorm nets",
    )
    momentum: float = setting(0.9, "Nesterov momentum.", minimum=0)
    weight_decay: float = setting(
        5e-4, "L2 penalty on weights (not on biases and norm parameters).", minimum=0
    )
    label_smoothing: float = setting(
        0.1, "Fraction of the target mass spread over all classes.", minimum=0
    )
    schedule: Schedule = setting("onecycle", "Per-step learning-rate schedule.")
    warmup: float = setting(0.25, "One-cycle: fraction of steps rising to the peak.", minimum=0)
    l1: float = setting(0.0, "L1 penalty coefficient on the weights (0: off).", minimum=0)
    tta: bool = setting(True, "Average logits with the mirrored test image (CIFAR-10 only).")
    seed: int = setting(0, "Seed of the initialisation, batch order and augmentation.")
    limit_train: int | None = setting(
        None, "Train on the first N training images only.", minimum=2, default_text="all"
    )
    validation: int = setting(
        0,
        "Hold out the last N training images as a validation set; its accuracy after every "
        "epoch is the run's curve (0: no curve).",
        minimum=0,
    )
    data_dir: str | None = setting(
        None, "Data folder.", default_text="$GRADER_DATA_DIR, else ~/.cache/grader/data"
    )
    out: str | None = setting(None, "Output folder.", default_text="out/train/MODEL")
    predictions: bool = setting(True, "Write the test set's predictions.csv (Id,Category).")
    plots: bool = setting(False, "Write weight-histogram and first-layer-filter plots.")
    device: Device | None = setting(None, "Device to train on.", default_text="cuda if present")
    progress: bool = setting(True, "tqdm progress bars.", cli=False)

    def peak_lr(self) -> float:
        """The learning rate actually used."""
        return self.lr if self.lr is not None else MODEL_LR.get(self.model, DEFAULT_LR)

    def out_dir(self) -> Path:
        """Where the run writes its files."""
        return Path(self.out or f"out/train/{self.model}")


def validate_config(config: TrainConfig) -> None:
    """Raise ValueError naming the first bad setting and its allowed values."""
    from reference.models import MODELS

    if config.model not in MODELS:
        raise ValueError(f"unknown model {config.model!r}: use one of {', '.join(sorted(MODELS))}")
    if config.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {config.schedule!r}: use one of {', '.join(SCHEDULES)}")
    check_bounds(config)
