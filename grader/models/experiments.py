"""Experiments run with a model submission besides its checks.

``bn_landscape`` (assignment ``vgg-bn``, after Santurkar et al. 2018): the student's VGG with
BatchNorm, captured in training mode, is trained by the grader's own loop inside a box from one
initialisation at each learning rate of a short schedule on real CIFAR-10 training images; the
registered reference VGG-A without BatchNorm runs the same schedule on the host. The outcome gives
both loss-band widths (per step, max - min over the learning rates, averaged), whether batch norm
narrowed the band, and a figure.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grader.grading.status import GradeStatus
from grader.models.inside.artifact import TENSORS_FILE, TRAIN_GRAPH_FILE
from grader.models.records import TRAINING_RECORD, TrainArgs, TrainingRecord
from grader.models.result import ExperimentOutcome
from grader.models.training import band_width, batch_order, loss_curve, normalise, plot_bands
from grader.records import to_data
from grader.sandbox.inside.tasks import INPUTS_DIR
from grader.sandbox.protocol import Limits, ProtocolError, read_record
from grader.sandbox.tasks import ended_message

PLOT_NAME = "vggbn_loss_band.png"
REFERENCE_MODEL = "vgg_a"


@dataclass(frozen=True)
class Schedule:
    """The short training schedule both models run for the loss-band comparison."""

    lrs: tuple[float, ...] = (2e-3, 1e-4)
    steps: int = 30
    batch_size: int = 32
    seed: int = 0


def run_experiment(
    name: str,
    *,
    worker,
    artifact: dict[str, Path],
    work: Path,
    limits: Limits,
    data_dir: Path | None,
    dataset: str,
    out_dir: Path | None,
    student: str = "submission",
    schedule: Schedule = Schedule(),
) -> ExperimentOutcome:
    """Run the experiment ``name`` (a spec's ``model.experiment``) on a captured submission."""
    experiment = EXPERIMENTS.get(name)
    if experiment is None:
        return ExperimentOutcome(name, f"unknown experiment {name!r}")
    return experiment(worker=worker, artifact=artifact, work=work, limits=limits,
                      data_dir=data_dir, dataset=dataset, out_dir=out_dir, student=student,
                      schedule=schedule)  # fmt: skip


def bn_landscape(
    *,
    worker,
    artifact: dict[str, Path],
    work: Path,
    limits: Limits,
    data_dir: Path | None,
    dataset: str,
    out_dir: Path | None,
    student: str,
    schedule: Schedule,
) -> ExperimentOutcome:
    """The batch-norm loss band of the submission against the reference VGG-A."""

    if TRAIN_GRAPH_FILE not in artifact:
        return ExperimentOutcome(
            "bn_landscape", "BN experiment: no training-mode graph was captured"
        )
    images, labels = training_files(dataset, str(data_dir) if data_dir else None)
    files = {TRAIN_GRAPH_FILE: artifact[TRAIN_GRAPH_FILE], TENSORS_FILE: artifact[TENSORS_FILE],
             f"{INPUTS_DIR}/images.npy": images, f"{INPUTS_DIR}/labels.npy": labels}  # fmt: skip
    args = TrainArgs(schedule.lrs, schedule.steps, schedule.batch_size, schedule.seed)
    job = worker.run("train", files=files, limits=limits, args=to_data(args), out=work / "train")
    if job.error:
        return ExperimentOutcome("bn_landscape", f"BN experiment: the sandbox failed: {job.error}")
    try:
        record = read_record(job.out / TRAINING_RECORD, TrainingRecord)
    except ProtocolError as exc:
        why = ended_message(job, limits, exc, "training the captured graph")
        return ExperimentOutcome("bn_landscape", f"BN experiment: {why}")
    if record.status is not GradeStatus.OK:
        return ExperimentOutcome("bn_landscape", f"BN experiment: {record.message}")
    reference = reference_curves(dataset, str(data_dir) if data_dir else None, schedule)
    mine, theirs = band_width(record.curves), band_width(reference)
    narrowed = mine < theirs
    summary = (f"BN loss band {mine:.3f} vs VGG-A {theirs:.3f} "
               f"({'narrower' if narrowed else 'not narrower'})")  # fmt: skip
    plot = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        plot_bands(
            {"VGG-A (reference)": reference, f"{student} (with BatchNorm)": record.curves},
            out_dir / PLOT_NAME,
            title=f"Loss band over lr {', '.join(f'{lr:g}' for lr in schedule.lrs)}",
        )
        plot = PLOT_NAME
        summary += f"; plot: experiments/{student}/{PLOT_NAME}"
    values = {"student_band_width": mine, "reference_band_width": theirs, "narrowed": narrowed,
              "lrs": list(schedule.lrs), "student_curves": record.curves,
              "reference_curves": reference}  # fmt: skip
    return ExperimentOutcome("bn_landscape", summary, values, plot)


@functools.cache
def training_files(dataset: str, data_dir: str | None) -> tuple[Path, Path]:
    """The training images and labels as ``.npy`` files, written once per process (every
    submission's training box links them in, instead of a copy each)."""
    from grader.data import cached_dataset

    train = cached_dataset(dataset, "train", Path(data_dir) if data_dir else None)
    folder = Path(tempfile.mkdtemp(prefix="grader-train-data-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    np.save(folder / "images.npy", np.ascontiguousarray(train.images), allow_pickle=False)
    np.save(folder / "labels.npy", np.ascontiguousarray(train.labels), allow_pickle=False)
    return folder / "images.npy", folder / "labels.npy"


EXPERIMENTS = {"bn_landscape": bn_landscape}
"""Experiment name (a spec's ``model.experiment``) -> the function that runs it."""


@functools.cache
def reference_curves(dataset: str, data_dir: str | None, schedule: Schedule) -> list[list[float]]:
    """The reference VGG-A's loss curves on ``schedule`` (deterministic: computed once)."""
    import torch

    from grader.data import cached_dataset
    from grader.models.registry import registered_models

    entry = registered_models().get(REFERENCE_MODEL)
    if entry is None:
        raise LookupError(f"no reference model {REFERENCE_MODEL!r} is registered")
    train = cached_dataset(dataset, "train", Path(data_dir) if data_dir else None)
    x = normalise(train.images)
    labels = torch.from_numpy(np.array(train.labels, dtype=np.int64))
    order = batch_order(len(labels), steps=schedule.steps, batch_size=schedule.batch_size,
                        seed=schedule.seed)  # fmt: skip
    curves = []
    for lr in schedule.lrs:
        torch.manual_seed(schedule.seed)
        model = entry.build().train()
        curves.append(loss_curve(model, list(model.parameters()), x, labels, order, lr=float(lr)))
    return curves
