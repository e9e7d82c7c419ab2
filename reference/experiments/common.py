"""What every experiment shares: its base settings, data, provenance, the JSON and the figures.

Each experiment writes ``<name>_results.json`` (every curve, a summary, the provenance: code
version, config, seed, data used, hardware) and labelled PNG figures into its ``out_dir``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from reference.experiments.loop import (
    EpochCurves,
    ExperimentError,
    TrainValSplit,
    fit,
    make_optimizer,
)
from reference.train_config import check_bounds, setting

Scale = Literal["tiny", "small", "full"]
SCALE_NAMES: tuple[str, ...] = ("tiny", "small", "full")
DeviceChoice = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class ExperimentConfig:
    """Settings every experiment has; each experiment's ``Config`` adds its own."""

    seed: int = setting(0, "Seed of the initialisation and of the batch order.")
    data_dir: Path | None = setting(
        None, "Folder holding the data set.", default_text="$GRADER_DATA_DIR"
    )
    out_dir: Path = setting(Path("out/experiment"), "Output folder.", flag="--out")
    device: DeviceChoice = setting("auto", "Device (auto: cuda when present).")
    progress: bool = setting(True, "Progress bars.", cli=False)


def resolve_device(choice: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ExperimentError("--device cuda was asked for but no CUDA GPU is visible")
    if choice not in ("cpu", "cuda"):
        raise ExperimentError(f"unknown device {choice!r}: use auto, cpu or cuda")
    return torch.device(choice)


def device_description(device: torch.device) -> str:
    """``cuda (NVIDIA H200)`` or ``cpu (x86_64)``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()})"


# --- data -----------------------------------------------------------------------------------------


@dataclass
class ExperimentData:
    """The images of one experiment and what they were, for the provenance."""

    split: TrainValSplit
    description: dict[str, Any]


def normalised(images: np.ndarray, dataset: str) -> torch.Tensor:
    """uint8 (N, C, H, W) images -> float32, normalised per channel with the recipe's statistics."""
    from grader.data import get_dataset
    from reference.augment import normalize

    array = np.ascontiguousarray(images)
    if not array.flags.writeable:  # a cached data set is read-only; torch wants its own copy
        array = array.copy()
    tensor = torch.from_numpy(array)
    return normalize(tensor, get_dataset(dataset)).contiguous()


def load_split(
    dataset: str,
    *,
    train_images: int | None,
    val_images: int,
    data_dir: Path | None,
    device: torch.device,
) -> ExperimentData:
    """The first ``train_images`` training images to train on, the LAST ``val_images`` to validate.

    The validation images are held out of the training set (never the test set); with the
    5,085-image CIFAR-10 subset and ``val_images=1017`` they are ``data_batch_5``.
    """
    from grader.data import cached_dataset

    loaded = cached_dataset(dataset, "train", data_dir)
    available = len(loaded)
    if val_images < 1 or val_images >= available:
        raise ExperimentError(
            f"--val-images must be between 1 and {available - 1} ({available} training images)"
        )
    room = available - val_images
    count = room if train_images is None else min(train_images, room)
    val_start = available - val_images

    def tensor(rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        images = normalised(loaded.images[rows], dataset).to(device)
        return images, torch.from_numpy(loaded.labels[rows].copy()).to(device)

    train_x, train_y = tensor(slice(0, count))
    val_x, val_y = tensor(slice(val_start, available))
    description = {
        "dataset": dataset,
        "split": "train",
        "source": relative_source(Path(loaded.source), data_dir),
        "train_images": count,
        "train_rows": [0, count],
        "val_images": val_images,
        "val_rows": [val_start, available],
        "images_available": available,
        "description": f"{dataset} training images, normalised per channel; validation images "
        "held out from the end of the training set",
    }
    return ExperimentData(TrainValSplit(train_x, train_y, val_x, val_y), description)


def relative_source(source: Path, explicit: Path | None) -> str:
    """The data folder relative to the data directory, so the JSON names no local path."""
    from grader.data import data_dir

    try:
        return str(source.resolve().relative_to(data_dir(explicit).resolve()))
    except ValueError:
        return source.name


# --- provenance and the JSON ----------------------------------------------------------------------


def provenance(
    config: ExperimentConfig, data: dict[str, Any], device: torch.device, wall_s: float
) -> dict[str, Any]:
    """Code version, config, seed, data used and hardware of one run."""
    from reference.train import git_commit

    return {
        "git_commit": git_commit(),
        "config": jsonable(dataclasses.asdict(config)),
        "seed": config.seed,
        "data": data,
        "device": device_description(device),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_s": round(wall_s, 2),
    }


def jsonable(value: Any) -> Any:
    """``value`` with tuples as lists, paths as strings and non-finite floats as None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None  # a diverged run; JSON has no inf/nan
    return value


def results_name(experiment: str) -> str:
    """File name of an experiment's JSON: ``<name>_results.json``."""
    return f"{experiment.replace('-', '_')}_results.json"


def write_document(
    experiment: str,
    config: ExperimentConfig,
    *,
    curves: Any,
    summary: dict[str, Any],
    prov: dict[str, Any],
    figures: Mapping[str, Path],
) -> dict[str, Any]:
    """Write the experiment's JSON into ``config.out_dir`` and return it."""
    document = {
        "experiment": experiment,
        "curves": jsonable(curves),
        "summary": jsonable(summary),
        "provenance": prov,
        "files": {key: path.name for key, path in figures.items()},
    }
    out = Path(config.out_dir)
    (out / results_name(experiment)).write_text(
        json.dumps(document, indent=1, allow_nan=False) + "\n"
    )
    return document


class Timer:
    """Wall time since construction."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


# --- figures --------------------------------------------------------------------------------------


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> Path:
    """Lay out, write as PNG and close ``fig``."""
    plt = pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


EPOCH_METRICS = {
    "train_loss": "training loss",
    "val_loss": "validation loss",
    "val_accuracy": "validation accuracy",
    "lr": "learning rate",
}


def plot_epoch_curves(
    runs: Sequence[EpochCurves],
    metrics: Sequence[str],
    path: Path,
    *,
    title: str,
    log_scale: Sequence[str] = (),
) -> Path:
    """One panel per metric of ``EpochCurves`` (per epoch), one line per run, with a legend."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for run in runs:
            values = getattr(run, metric)
            ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=run.label)
        ax.set(xlabel="epoch", ylabel=EPOCH_METRICS[metric], title=EPOCH_METRICS[metric])
        if metric in log_scale:
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, path)


def epoch_plot(
    file_name: str,
    metrics: Sequence[str],
    title: Callable[[Any], str],
    *,
    log_scale: Sequence[str] = (),
) -> Callable[[Sequence[TrainedVariant], Path, Any], dict[str, Path]]:
    """A ``plot`` for :func:`run_variants` drawing only the per-epoch ``metrics`` of every run
    into ``file_name``, under the title ``title(config)``; the figure's key is ``curves``."""

    def plot(trained: Sequence[TrainedVariant], out_dir: Path, config: Any) -> dict[str, Path]:
        path = plot_epoch_curves([t.curves for t in trained], metrics, out_dir / file_name,
                                 title=title(config), log_scale=log_scale)  # fmt: skip
        return {"curves": path}

    return plot


def epoch_summary(run: EpochCurves) -> dict[str, float]:
    """The last epoch's losses and accuracy, the best accuracy, and the generalisation gap."""
    return {
        "final_train_loss": run.train_loss[-1],
        "final_val_loss": run.val_loss[-1],
        "final_val_accuracy": run.val_accuracy[-1],
        "best_val_accuracy": max(run.val_accuracy),
        "loss_gap": run.val_loss[-1] - run.train_loss[-1],
        "wall_s": run.wall_s,
    }


# --- experiments that train several variants epoch by epoch ---------------------------------------


@dataclass(frozen=True)
class EpochConfig(ExperimentConfig):
    """Settings of an experiment that trains each variant for some epochs and validates."""

    epochs: int = setting(4, "Training epochs per run.", minimum=1)
    batch_size: int = setting(64, "Images per step.", minimum=2)
    train_images: int | None = setting(
        None,
        "Train on the first N training images.",
        minimum=2,
        default_text="all but the validation images",
    )
    val_images: int = setting(
        1017, "Validation images, held out from the end of the training set.", minimum=1
    )


@dataclass
class Variant:
    """One run of an experiment: how to build, optimise and regularise its model.

    ``records`` collects extra curves the hooks write (e.g. the sparsity path); they are stored
    with the run's curves in the JSON.
    """

    label: str
    build: Callable[[], nn.Module]
    optimizer: Callable[[nn.Module], torch.optim.Optimizer]
    scheduler: Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler] | None = None
    penalty: Callable[[nn.Module], Tensor] | None = None
    after_step: Callable[[nn.Module, torch.optim.Optimizer], None] | None = None
    after_epoch: Callable[[int, nn.Module, torch.optim.Optimizer, TrainValSplit], None] | None = (
        None
    )
    """Called after each epoch's validation (epoch counts from 1) with the data trained on."""
    records: dict[str, list[Any]] = field(default_factory=dict)


def reference_model(name: str, **kwargs: Any) -> Callable[[], nn.Module]:
    """A builder of the reference model ``name`` (``kwargs`` go to its factory)."""

    def build() -> nn.Module:
        from reference.models import get_model

        return get_model(name, **kwargs)

    return build


def optimizer(
    name: str, lr: float, momentum: float = 0.9
) -> Callable[[nn.Module], torch.optim.Optimizer]:
    """A maker of Adam or SGD (with ``momentum``) at ``lr`` for a model."""
    return lambda model: make_optimizer(name, model, lr, momentum=momentum)


@dataclass
class TrainedVariant:
    """A variant after training: its curves and its model."""

    variant: Variant
    curves: EpochCurves
    model: nn.Module


def run_variants(
    name: str,
    config: EpochConfig,
    dataset: str,
    variants: Sequence[Variant],
    *,
    plot: Callable[[Sequence[TrainedVariant], Path, Any], dict[str, Path]],
    summarise: Callable[[Sequence[TrainedVariant], Any], dict[str, Any]],
) -> dict[str, Any]:
    """Train every variant from the same initialisation on the same batches, then write the
    figures (``plot(trained, out_dir, config)``) and the JSON with every curve, the summary
    (``summarise(trained, config)``) and the provenance."""
    from tqdm import tqdm

    try:
        check_bounds(config)
    except ValueError as exc:
        raise ExperimentError(str(exc)) from None
    device = resolve_device(config.device)
    timer = Timer()
    data = load_split(
        dataset,
        train_images=config.train_images,
        val_images=config.val_images,
        data_dir=config.data_dir,
        device=device,
    )
    trained: list[TrainedVariant] = []
    for variant in tqdm(variants, desc=name, unit="run", disable=not config.progress):
        torch.manual_seed(config.seed)  # the same initialisation for every variant
        model = variant.build().to(device)
        optimizer = variant.optimizer(model)
        scheduler = variant.scheduler(optimizer) if variant.scheduler is not None else None
        step_hook, epoch_hook = variant.after_step, variant.after_epoch
        # default arguments bind this variant's model and optimizer to its hooks
        curves = fit(
            model,
            data.split,
            epochs=config.epochs,
            batch_size=config.batch_size,
            optimizer=optimizer,
            seed=config.seed,
            label=variant.label,
            scheduler=scheduler,
            penalty=variant.penalty,
            after_step=(lambda h=step_hook, m=model, o=optimizer: h(m, o)) if step_hook else None,
            after_epoch=(lambda e, m, h=epoch_hook, o=optimizer, d=data.split: h(e, m, o, d))
            if epoch_hook
            else None,
        )
        trained.append(TrainedVariant(variant, curves, model))
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = plot(trained, out_dir, config)
    curves = [{**dataclasses.asdict(t.curves), **t.variant.records} for t in trained]
    prov = provenance(config, data.description, device, timer.seconds)
    return write_document(
        name, config, curves=curves, summary=summarise(trained, config), prov=prov, figures=figures
    )


def epoch_summary_lines(document: dict[str, Any]) -> list[str]:
    """One line per run: final training and validation loss and validation accuracy."""
    return [
        f"{label:24s} train loss {entry['final_train_loss']:.4f}  "
        f"val loss {entry['final_val_loss']:.4f}  val accuracy {entry['final_val_accuracy']:.4f}"
        for label, entry in document["summary"]["runs"].items()
    ]
