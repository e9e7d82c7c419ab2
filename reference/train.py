"""Fast training recipe for the reference models (CIFAR-10 nets, LeNet-5 on MNIST).

    grader train resnet20 --epochs 30                         # one model
    grader train --all-baselines                              # every baseline record
    grader train resnet20 --epochs 1 --limit-train 512        # a quick run

Measured evidence (2-core x86_64 VM, 24 GiB, loaded by parallel jobs; benchmarks/RESULTS.md,
section "Training"):
- LeNet-5, full MNIST (60,000 train / 10,000 test), 8 epochs, batch 128, CPU, 1 thread: 99.36%
  test accuracy in 386 s (reference/baselines/lenet5/record.json).
- CIFAR-10 baselines are trained on the 5 x 1017-image real subset (5,085 train images) and
  evaluated on its 1,017 test images: SimpleNN 48.9% (15 epochs), SimpleNN-BN 54.7%, SimpleNN-Swish
  43.0%, ResNet-20 28.2% (4 epochs); accuracies on 5k images are far below full-data figures.
- Input pipeline alone, CPU, 1 thread: batch crop + flip on uint8 tensors 1,648 img/s vs
  torchvision DataLoader + PIL transforms 208 img/s (7.9x); benchmarks/bench_train.py.

The recipe: data held as uint8 tensors on the device, random crop (zero padding) and horizontal
flip applied to whole batches there, channels_last, bf16 autocast on GPU, SGD with Nesterov
momentum, weight decay and label smoothing, a one-cycle / cosine / step schedule stepped per batch,
optional L1 penalty and flip test-time augmentation. Every run writes ``model.pt`` (state_dict),
``record.json`` (provenance) and ``predictions.csv`` (``Id,Category`` leaderboard format).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from grader.data import Dataset, get_dataset, load_dataset
from reference.augment import augment_batch, normalize
from reference.models import dataset_for, get_model
from reference.train_config import (  # noqa: F401 - the recipe's settings, importable from here
    DEFAULT_LR,
    MODEL_LR,
    SCHEDULES,
    Schedule,
    TrainConfig,
    validate_config,
)

REPO_ROOT = Path(__file__).resolve().parent.parent

# =============================================================================================
#  Data
# =============================================================================================


@dataclass
class TrainData:
    """Train and test images as uint8 tensors on the device, with a description for records."""

    dataset: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    recipe: Dataset
    """The data set's registry entry: normalisation and which augmentations keep the class."""
    description: dict = field(default_factory=dict)
    val_images: torch.Tensor | None = None
    """Held-out training images whose accuracy after every epoch is the run's curve."""
    val_labels: torch.Tensor | None = None


def load_data(config: TrainConfig, device: torch.device) -> TrainData:
    """Load the model's data set once and keep it on ``device`` as uint8."""
    dataset = dataset_for(config.model)
    train = load_dataset(dataset, "train", config.data_dir)
    test = load_dataset(dataset, "test", config.data_dir)
    available = len(train)
    held_out = min(config.validation, available - 2)
    usable = available - held_out
    count = usable if config.limit_train is None else min(config.limit_train, usable)
    description = {
        "dataset": dataset,
        "source": str(train.source),
        "train_images": count,
        "train_images_available": available,
        "test_images": len(test),
        "full_test_set": len(test) == 10_000,
    }
    val_images = val_labels = None
    if held_out > 0:
        description["validation_images"] = held_out
        description["validation"] = f"the last {held_out:,} training images, never trained on"
        val_images = torch.from_numpy(train.images[usable:].copy()).to(device)
        val_labels = torch.from_numpy(train.labels[usable:].copy()).to(device)
    return TrainData(
        dataset=dataset,
        train_images=torch.from_numpy(train.images[:count].copy()).to(device),
        train_labels=torch.from_numpy(train.labels[:count].copy()).to(device),
        test_images=torch.from_numpy(test.images.copy()).to(device),
        test_labels=torch.from_numpy(test.labels.copy()).to(device),
        recipe=get_dataset(dataset),
        description=description,
        val_images=val_images,
        val_labels=val_labels,
    )


# =============================================================================================
#  Optimisation
# =============================================================================================


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.SGD:
    """SGD + Nesterov; weight decay only on weights (biases and norm scales are exempt)."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.SGD(groups, lr=config.peak_lr(), momentum=config.momentum, nesterov=True)


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step schedule: one-cycle (Smith 2018), cosine (Loshchilov & Hutter 2017) or step."""
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=config.peak_lr(),
            total_steps=total_steps,
            pct_start=config.warmup,
            cycle_momentum=False,
        )
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    # step: divide by 10 at 50% and 75% of training (He et al. 2016, sec. 4.2)
    milestones = [total_steps // 2, (3 * total_steps) // 4]
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)


def l1_penalty(model: nn.Module) -> torch.Tensor:
    """Sum of absolute values of all weight tensors (biases and norm parameters excluded)."""
    return sum(p.abs().sum() for p in model.parameters() if p.ndim > 1)


def l2_penalty(model: nn.Module) -> torch.Tensor:
    """Half the sum of squares of all weight tensors: its gradient is the weight decay ``w``."""
    return sum(p.pow(2).sum() for p in model.parameters() if p.ndim > 1) / 2


def autocast(device: torch.device):
    """bf16 autocast on CUDA; a no-op context elsewhere."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


# =============================================================================================
#  Training and evaluation
# =============================================================================================


def train_one_epoch(
    model: nn.Module,
    data: TrainData,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    criterion: nn.Module,
    config: TrainConfig,
    generator: torch.Generator,
    epoch: int,
) -> float:
    """One pass over the shuffled, augmented training images; returns the mean training loss."""
    model.train()
    device = data.train_images.device
    n = len(data.train_labels)
    order = torch.randperm(n, device=device, generator=generator)
    starts = [s for s in range(0, n, config.batch_size) if n - s >= 2]  # BatchNorm needs 2+
    total, seen = 0.0, 0
    bar = tqdm(starts, desc=f"epoch {epoch}", leave=False, disable=not config.progress)
    for start in bar:
        index = order[start : start + config.batch_size]
        images = augment_batch(
            data.train_images[index], data.recipe.crop_pad, data.recipe.flip, generator
        )
        labels = data.train_labels[index]
        with autocast(device):
            loss = criterion(model(normalize(images, data.recipe)), labels)
        if config.l1 > 0:
            loss = loss + config.l1 * l1_penalty(model)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += loss.item() * len(index)
        seen += len(index)
        bar.set_postfix(loss=f"{total / seen:.3f}")
    return total / max(seen, 1)


@dataclass
class Evaluation:
    """Test-set accuracy and the predicted class of every test image."""

    accuracy: float
    predictions: np.ndarray


@torch.no_grad()
def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, recipe: Dataset, tta: bool
) -> Evaluation:
    """Predict every image (uint8 on the device); ``tta`` adds the mirrored image's logits."""
    model.eval()
    device = images.device
    predictions = []
    for start in range(0, len(images), 1024):
        x = normalize(images[start : start + 1024], recipe)
        with autocast(device):
            logits = model(x).float()
            if tta:
                logits = logits + model(x.flip(-1)).float()
        predictions.append(logits.argmax(1))
    predicted = torch.cat(predictions)
    accuracy = int((predicted == labels).sum()) / len(labels)
    return Evaluation(accuracy, predicted.cpu().numpy())


# =============================================================================================
#  Records
# =============================================================================================


@dataclass
class TrainResult:
    """Where a run wrote its files and what it measured."""

    out: Path
    accuracy: float
    record: dict


def git_commit() -> str:
    """The commit of the code that ran, or ``unknown`` outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def device_name(device: torch.device) -> str:
    """A human-readable name of the hardware that trained the model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu {platform.machine()} ({torch.get_num_threads()} threads)"


def write_predictions(path: Path, predictions: np.ndarray) -> None:
    """``Id,Category`` with Id = index in the test set, as the leaderboard reads it."""
    frame = pd.DataFrame({"Id": np.arange(len(predictions)), "Category": predictions})
    frame.to_csv(path, index=False)


# =============================================================================================
#  Main
# =============================================================================================


def main(config: TrainConfig) -> TrainResult:
    """Train ``config.model``, evaluate it and write model.pt, record.json, predictions.csv."""
    validate_config(config)
    started = time.perf_counter()
    device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(config.seed)
    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed)

    data = load_data(config, device)
    model = get_model(config.model).to(device, memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config)
    steps_per_epoch = sum(1 for s in range(0, len(data.train_labels), config.batch_size))
    scheduler = make_scheduler(optimizer, config, config.epochs * steps_per_epoch)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    train_started = time.perf_counter()
    losses, curve = [], []
    for epoch in tqdm(range(1, config.epochs + 1), desc=config.model, disable=not config.progress):
        losses.append(
            train_one_epoch(model, data, optimizer, scheduler, criterion, config, generator, epoch)
        )
        if data.val_images is not None:
            checked = evaluate(model, data.val_images, data.val_labels, data.recipe, tta=False)
            curve.append(
                {
                    "epoch": epoch,
                    "train_loss": round(losses[-1], 4),
                    "val_accuracy": round(checked.accuracy, 4),
                    "seconds": round(time.perf_counter() - train_started, 1),
                }
            )
            if config.out:  # the curve so far, readable while a long run is going
                _write_progress(config.out_dir(), config.model, curve)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    train_seconds = time.perf_counter() - train_started

    tta = config.tta and data.recipe.flip
    result = evaluate(model, data.test_images, data.test_labels, data.recipe, tta)

    out = config.out_dir()
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "model.pt")
    if config.predictions:
        write_predictions(out / "predictions.csv", result.predictions)
    if config.plots:
        from reference import plots  # matplotlib only when plots are asked for

        plots.plot_weight_histograms({config.model: model}, out / "weights.png")
        plots.plot_first_layer_filters(model, out / "filters.png")

    record = {
        "model": config.model,
        "accuracy": result.accuracy,
        "parameters": sum(p.numel() for p in model.parameters()),
        "epochs": config.epochs,
        "final_train_loss": losses[-1],
        "tta": tta,
        "train_time_s": round(train_seconds, 2),
        "wall_time_s": round(time.perf_counter() - started, 2),
        "device": device_name(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": data.description,
        "config": {**dataclasses.asdict(config), "lr": config.peak_lr()},
    }
    if curve:
        record["curve"] = curve
        record["flattened"] = flattened(curve)
    (out / "record.json").write_text(json.dumps(record, indent=2) + "\n")
    (out / "progress.json").unlink(missing_ok=True)
    return TrainResult(out, result.accuracy, record)


FLAT_GAIN = 0.01  # validation accuracy, as a fraction


def flattened(curve: Sequence[dict]) -> dict:
    """Whether the validation curve has flattened: the mean accuracy of the last quarter of the
    epochs (at least 2) gained less than ``FLAT_GAIN`` over the mean of the quarter before it
    (means, not maxima: one lucky epoch is noise on a thousand images)."""
    tail = max(2, len(curve) // 4)
    if len(curve) < 2 * tail:
        return {"flat": False, "last_epochs": tail, "gain": None}
    last = [point["val_accuracy"] for point in curve[-tail:]]
    before = [point["val_accuracy"] for point in curve[-2 * tail : -tail]]
    gain = round(sum(last) / tail - sum(before) / tail, 4)
    return {"flat": gain < FLAT_GAIN, "last_epochs": tail, "gain": gain}


def _write_progress(out: Path, model: str, curve: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    progress = {"model": model, "curve": curve}
    (out / "progress.json").write_text(json.dumps(progress, indent=2) + "\n")


def train(*, model: str, **settings: Any) -> TrainResult:
    """Train one reference model (the Python API behind ``grader train``); ``settings`` are
    :class:`TrainConfig` fields, and every one left out keeps its default."""
    return main(TrainConfig(model=model, **settings))


# =============================================================================================
#  Baselines
# =============================================================================================


@dataclass(frozen=True)
class Baseline:
    """How one baseline record is trained, with the full data set and on the CIFAR-10 subset."""

    full_epochs: int
    subset_epochs: int
    """Epochs on the CIFAR-10 subset: enough for the validation curve to flatten on one CPU
    thread (the record says whether it did). LeNet-5's MNIST is complete everywhere: its
    full-data recipe always runs."""
    settings: dict[str, Any] = field(default_factory=dict)
    subset_settings: dict[str, Any] = field(default_factory=lambda: {"validation": 1017})
    """Extra settings on the subset only: by default its last 1,017 training images (the fifth
    batch's share) are held out as the validation set that draws the curve."""


FULL_VALIDATION = {"validation": 5000}
BASELINES: dict[str, Baseline] = {
    "lenet5": Baseline(8, 8, {"batch_size": 128, **FULL_VALIDATION}),
    "simplenn": Baseline(30, 40, FULL_VALIDATION),
    "simplenn_bn": Baseline(30, 40, FULL_VALIDATION),
    "simplenn_swish": Baseline(30, 40, FULL_VALIDATION),
    "resnet20": Baseline(40, 40, FULL_VALIDATION),
    "resnet32": Baseline(40, 40, FULL_VALIDATION),
    "resnet44": Baseline(40, 40, FULL_VALIDATION),
    "resnet56": Baseline(40, 40, FULL_VALIDATION),
    "tp4_net": Baseline(30, 40, FULL_VALIDATION),
    "alexnet_cifar": Baseline(30, 30, FULL_VALIDATION),
    "vgg_a": Baseline(30, 30, FULL_VALIDATION),
    "vgg_a_bn": Baseline(30, 30, FULL_VALIDATION),
    "vgg16_cifar": Baseline(30, 30, FULL_VALIDATION),
    "resnet18_cifar": Baseline(20, 20, FULL_VALIDATION),
}
BASELINE_DIR = REPO_ROOT / "reference" / "baselines"


def run_baselines(
    *, data_dir: str | None = None, out: Path = BASELINE_DIR, models: Sequence[str] = ()
) -> list[TrainResult]:
    """Train every baseline into ``out/<model>/`` (record.json + predictions.csv).

    With the full CIFAR-10 the long recipe runs; with only the subset, the short one.
    """
    full = len(load_dataset("cifar10", "test", data_dir)) == 10_000
    results = []
    for name in models or BASELINES:
        if name not in BASELINES:
            raise ValueError(f"no baseline {name!r}: use one of {', '.join(BASELINES)}")
        recipe = BASELINES[name]
        settings = dict(recipe.settings)
        if full or dataset_for(name) != "cifar10":
            epochs = recipe.full_epochs
        else:
            epochs = recipe.subset_epochs
            settings.update(recipe.subset_settings)
        config = TrainConfig(
            model=name, epochs=epochs, data_dir=data_dir, out=str(out / name), **settings
        )
        result = main(config)
        (result.out / "model.pt").unlink()  # records and predictions only; weights stay out
        print(f"{name}: accuracy {result.accuracy:.4f} ({result.record['data']})")
        results.append(result)
    return results
