"""Fast training recipe for the reference models (CIFAR-10 nets, LeNet-5 on MNIST).

    python -m reference.train resnet20 --epochs 30            # one model
    python -m reference.train --all-baselines                 # every baseline record
    grader train resnet20 --epochs 1 --limit-train 512        # the same through the grader CLI

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

import argparse
import dataclasses
import json
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from grader.data import DataError, load_dataset
from reference.augment import augment_batch
from reference.models import MODELS, dataset_for, get_model

Schedule = Literal["onecycle", "cosine", "step"]
SCHEDULES: tuple[str, ...] = ("onecycle", "cosine", "step")
REPO_ROOT = Path(__file__).resolve().parent.parent

# =============================================================================================
#  Hyperparameters
# =============================================================================================


@dataclass(frozen=True)
class DatasetRecipe:
    """Per-dataset preprocessing: normalisation and which augmentations make sense."""

    mean: tuple[float, ...]  # per-channel mean of the training pixels, in [0, 1] units
    std: tuple[float, ...]  # per-channel standard deviation, in [0, 1] units
    crop_pad: int  # pixels of zero padding before the random crop
    flip: bool  # horizontal flips (never for digits: a mirrored 2 is not a 2)


DATASET_RECIPES: dict[str, DatasetRecipe] = {
    "cifar10": DatasetRecipe((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 4, True),
    "mnist": DatasetRecipe((0.1307,), (0.3081,), 2, False),
}

# peak learning rate per model when --lr is not given; nets without normalisation layers
# diverge at the BatchNorm nets' rate
DEFAULT_LR = 0.2
MODEL_LR: dict[str, float] = {
    "simplenn": 0.05,
    "simplenn_swish": 0.05,
    "alexnet_cifar": 0.02,
    "vgg_a": 0.02,
    "lenet5": 0.05,
}


@dataclass
class TrainConfig:
    """Everything one training run depends on; stored in its record."""

    model: str = "resnet20"
    epochs: int = 10
    batch_size: int = 256  # images per SGD step
    lr: float | None = None  # peak learning rate (None: MODEL_LR or DEFAULT_LR)
    momentum: float = 0.9  # Nesterov momentum
    weight_decay: float = 5e-4  # L2 penalty on weights (not on biases and norm parameters)
    label_smoothing: float = 0.1  # fraction of target mass spread over all classes
    schedule: Schedule = "onecycle"  # per-step learning-rate schedule
    warmup: float = 0.25  # one-cycle: fraction of steps spent rising to the peak
    l1: float = 0.0  # L1 penalty coefficient on weights (0: off)
    tta: bool = True  # average logits over the image and its mirror (when flips apply)
    seed: int = 0
    limit_train: int | None = None  # train on the first N training images only
    data_dir: str | None = None  # None: $GRADER_DATA_DIR or ~/.cache/grader/data
    out: str = "out/train"
    predictions: bool = True  # write predictions.csv for the test set
    plots: bool = False  # write weight-histogram and first-layer-filter plots
    device: str | None = None  # None: cuda when available, else cpu
    progress: bool = True  # tqdm progress bars

    def peak_lr(self) -> float:
        """The learning rate actually used."""
        return self.lr if self.lr is not None else MODEL_LR.get(self.model, DEFAULT_LR)


def validate_config(config: TrainConfig) -> None:
    """Raise ValueError naming the first bad setting and its allowed values."""
    if config.model not in MODELS:
        raise ValueError(f"unknown model {config.model!r}: use one of {', '.join(sorted(MODELS))}")
    if config.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {config.schedule!r}: use one of {', '.join(SCHEDULES)}")
    if config.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {config.epochs}")
    if config.batch_size < 2:
        raise ValueError(f"--batch-size must be at least 2, got {config.batch_size}")
    if config.limit_train is not None and config.limit_train < 2:
        raise ValueError(f"--limit-train must be at least 2, got {config.limit_train}")
    if config.peak_lr() <= 0:
        raise ValueError(f"--lr must be positive, got {config.peak_lr()}")
    if config.l1 < 0:
        raise ValueError(f"--l1 must be zero or positive, got {config.l1}")


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
    recipe: DatasetRecipe
    description: dict = field(default_factory=dict)


def load_data(config: TrainConfig, device: torch.device) -> TrainData:
    """Load the model's data set once and keep it on ``device`` as uint8."""
    dataset = dataset_for(config.model)
    train = load_dataset(dataset, "train", config.data_dir)
    test = load_dataset(dataset, "test", config.data_dir)
    available = len(train)
    count = available if config.limit_train is None else min(config.limit_train, available)
    description = {
        "dataset": dataset,
        "source": str(train.source),
        "train_images": count,
        "train_images_available": available,
        "test_images": len(test),
        "full_test_set": len(test) == 10_000,
    }
    return TrainData(
        dataset=dataset,
        train_images=torch.from_numpy(train.images[:count].copy()).to(device),
        train_labels=torch.from_numpy(train.labels[:count].copy()).to(device),
        test_images=torch.from_numpy(test.images.copy()).to(device),
        test_labels=torch.from_numpy(test.labels.copy()).to(device),
        recipe=DATASET_RECIPES[dataset],
        description=description,
    )


def normalize(images: torch.Tensor, recipe: DatasetRecipe) -> torch.Tensor:
    """uint8 (N, C, H, W) -> normalised float32 in channels_last memory format."""
    mean = torch.tensor(recipe.mean, device=images.device).view(1, -1, 1, 1) * 255
    std = torch.tensor(recipe.std, device=images.device).view(1, -1, 1, 1) * 255
    x = (images.float() - mean) / std
    return x.contiguous(memory_format=torch.channels_last)


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
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, recipe: DatasetRecipe, tta: bool
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
    losses = []
    for epoch in tqdm(range(1, config.epochs + 1), desc=config.model, disable=not config.progress):
        losses.append(
            train_one_epoch(model, data, optimizer, scheduler, criterion, config, generator, epoch)
        )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    train_seconds = time.perf_counter() - train_started

    tta = config.tta and data.recipe.flip
    result = evaluate(model, data.test_images, data.test_labels, data.recipe, tta)

    out = Path(config.out)
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
    (out / "record.json").write_text(json.dumps(record, indent=2) + "\n")
    return TrainResult(out, result.accuracy, record)


def train(
    *,
    model: str,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float | None = None,
    schedule: Schedule = "onecycle",
    l1: float = 0.0,
    tta: bool = True,
    seed: int = 0,
    limit_train: int | None = None,
    data_dir: str | None = None,
    out: str | None = None,
    predictions: bool = True,
    plots: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train one reference model (the Python API behind ``grader train``)."""
    config = TrainConfig(
        model=model,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        schedule=schedule,
        l1=l1,
        tta=tta,
        seed=seed,
        limit_train=limit_train,
        data_dir=data_dir,
        out=out or f"out/train/{model}",
        predictions=predictions,
        plots=plots,
        progress=progress,
    )
    return main(config)


# =============================================================================================
#  Baselines
# =============================================================================================

# model -> (epochs on the full data set, epochs on the 5,085-image CIFAR-10 subset, other
# settings); LeNet-5's MNIST is complete everywhere, so both numbers are its full-data recipe.
# Subset epochs are few to keep CPU runs short: on 5k images the accuracy is low regardless.
BASELINES: dict[str, tuple[int, int, dict]] = {
    "lenet5": (8, 8, {"batch_size": 128}),
    "simplenn": (30, 15, {}),
    "simplenn_bn": (30, 15, {}),
    "simplenn_swish": (30, 15, {}),
    "resnet20": (40, 4, {}),
    "alexnet_cifar": (30, 0, {}),
    "resnet18_cifar": (20, 0, {}),
    "vgg_a_bn": (30, 0, {}),
}
BASELINE_DIR = REPO_ROOT / "reference" / "baselines"


def run_baselines(
    *, data_dir: str | None = None, out: Path = BASELINE_DIR, models: Sequence[str] = ()
) -> list[TrainResult]:
    """Train every baseline into ``out/<model>/`` (record.json + predictions.csv).

    With the full CIFAR-10 the long recipe runs; with only the subset, the short one (models whose
    subset epochs are 0 are skipped: too costly on a CPU for what 5k images can show).
    """
    full = len(load_dataset("cifar10", "test", data_dir)) == 10_000
    results = []
    for name in models or BASELINES:
        if name not in BASELINES:
            raise ValueError(f"no baseline {name!r}: use one of {', '.join(BASELINES)}")
        full_epochs, subset_epochs, settings = BASELINES[name]
        epochs = full_epochs if full or dataset_for(name) != "cifar10" else subset_epochs
        if epochs == 0:
            print(f"{name}: skipped on the CIFAR-10 subset (run it where the full data set is)")
            continue
        config = TrainConfig(
            model=name, epochs=epochs, data_dir=data_dir, out=str(out / name), **settings
        )
        result = main(config)
        (result.out / "model.pt").unlink()  # records and predictions only; weights stay out
        print(f"{name}: accuracy {result.accuracy:.4f} ({result.record['data']})")
        results.append(result)
    return results


# =============================================================================================
#  Command line
# =============================================================================================


def get_args_parser() -> argparse.ArgumentParser:
    """Flags of ``python -m reference.train``; every default is stated in its help."""
    defaults = TrainConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?", help=f"one of: {', '.join(sorted(MODELS))}")
    p.add_argument("--all-baselines", action="store_true", help="train every baseline record")
    p.add_argument("--only", action="append", default=[], help="with --all-baselines: this one")
    p.add_argument("--epochs", type=int, default=defaults.epochs, help="default: %(default)s")
    p.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help="default: %(default)s"
    )
    p.add_argument("--lr", type=float, default=None, help="peak LR (default: per model)")
    p.add_argument(
        "--schedule", choices=SCHEDULES, default=defaults.schedule, help="default: %(default)s"
    )
    p.add_argument("--l1", type=float, default=0.0, help="L1 penalty (default: 0)")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True, help="default: on")
    p.add_argument("--seed", type=int, default=0, help="default: 0")
    p.add_argument("--limit-train", type=int, default=None, help="default: all images")
    p.add_argument("--data-dir", default=None, help="default: $GRADER_DATA_DIR")
    p.add_argument("--out", default=None, help="default: out/train/<model>")
    p.add_argument("--plots", action=argparse.BooleanOptionalAction, default=False)
    return p


def cli(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m reference.train``."""
    parser = get_args_parser()
    args = parser.parse_args(argv)
    try:
        return _run_cli(args, parser)
    except (ValueError, DataError) as exc:
        parser.error(str(exc))  # exits with status 2 and the message, no traceback
    return 2


def _run_cli(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.all_baselines:
        out = Path(args.out) if args.out else BASELINE_DIR
        run_baselines(data_dir=args.data_dir, out=out, models=args.only)
        return 0
    if args.model is None:
        parser.error("give a MODEL or --all-baselines")
    config = TrainConfig(
        model=args.model,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        schedule=args.schedule,
        l1=args.l1,
        tta=args.tta,
        seed=args.seed,
        limit_train=args.limit_train,
        data_dir=args.data_dir,
        out=args.out or f"out/train/{args.model}",
        plots=args.plots,
    )
    result = main(config)
    print(f"{config.model}: test accuracy {result.accuracy:.4f}; files in {result.out}")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
