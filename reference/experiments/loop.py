"""The one training loop of the experiments: seeded batches, one optimizer step per batch.

:func:`run_steps` trains on a given batch order and hands every step to optional hooks (the
batch-norm experiment probes the gradient between ``backward`` and ``step``); :func:`fit` runs it
epoch by epoch and records the training loss, the validation loss and accuracy and the learning
rate of each epoch. Every experiment trains through these two functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

OptimizerName = Literal["adam", "sgd"]
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")


class ExperimentError(ValueError):
    """A configuration or data problem of an experiment; the message says what to change."""


def batch_order(n_images: int, *, steps: int, batch_size: int, seed: int) -> np.ndarray:
    """Indices (steps, batch_size) of each step's batch: seeded shuffles, one per epoch (the
    grader's own order, :func:`grader.models.training.batch_order`)."""
    from grader.models.training import batch_order as grader_batch_order

    try:
        return grader_batch_order(n_images, steps=steps, batch_size=batch_size, seed=seed)
    except ValueError as exc:
        raise ExperimentError(f"{exc}: lower --batch-size") from None


def make_optimizer(
    name: str,
    model: nn.Module,
    lr: float,
    *,
    momentum: float = 0.9,
    params: Sequence[Tensor] | None = None,
) -> torch.optim.Optimizer:
    """Adam or SGD with (heavy-ball) ``momentum`` over ``model``'s parameters (or ``params``)."""
    chosen = list(model.parameters()) if params is None else list(params)
    if name == "adam":
        return torch.optim.Adam(chosen, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(chosen, lr=lr, momentum=momentum)
    raise ExperimentError(f"unknown optimizer {name!r}: use one of {', '.join(OPTIMIZERS)}")


@dataclass
class Step:
    """One training step as the hooks see it: the batch and its (data) loss."""

    index: int
    x: Tensor
    y: Tensor
    loss: Tensor


def run_steps(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    order: np.ndarray,
    optimizer: torch.optim.Optimizer,
    *,
    penalty: Callable[[nn.Module], Tensor] | None = None,
    after_backward: Callable[[Step], None] | None = None,
    after_step: Callable[[], None] | None = None,
) -> list[float]:
    """Train ``model`` on the batches ``order`` (rows of indices into ``images``).

    The loss is cross-entropy, plus ``penalty(model)`` when given; the returned curve holds the
    cross-entropy of every step (the penalty is not part of it). ``after_backward`` sees each step
    while the gradients are in place, before the optimizer moves the weights.
    """
    model.train()
    losses: list[float] = []
    for step, index in enumerate(order):
        idx = torch.from_numpy(np.asarray(index)).to(images.device)
        x, y = images[idx], labels[idx]
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        objective = loss + penalty(model) if penalty is not None else loss
        objective.backward()
        losses.append(float(loss.detach()))
        if after_backward is not None:
            after_backward(Step(step, x, y, loss))
        optimizer.step()
        if after_step is not None:
            after_step()
    return losses


@torch.no_grad()
def evaluate(
    model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 1024
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` in eval mode on ``images``."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(labels), batch_size):
        logits = model(images[start : start + batch_size]).float()
        target = labels[start : start + batch_size]
        total_loss += float(F.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(1) == target).sum())
    model.train(was_training)
    return total_loss / len(labels), correct / len(labels)


@dataclass
class EpochCurves:
    """The curves of one training run, one value per epoch unless named per step."""

    label: str
    train_loss: list[float] = field(default_factory=list)
    """Mean cross-entropy over the epoch's batches, in training mode (dropout on)."""
    val_loss: list[float] = field(default_factory=list)
    """Cross-entropy on the validation images after the epoch, in eval mode."""
    val_accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    """Learning rate the epoch was trained with."""
    step_loss: list[float] = field(default_factory=list)
    """Cross-entropy of every training step."""
    wall_s: float = 0.0


def fit(
    model: nn.Module,
    data: TrainValSplit,
    *,
    epochs: int,
    batch_size: int,
    optimizer: torch.optim.Optimizer,
    seed: int,
    label: str,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    penalty: Callable[[nn.Module], Tensor] | None = None,
    after_step: Callable[[], None] | None = None,
    after_epoch: Callable[[int, nn.Module], None] | None = None,
) -> EpochCurves:
    """Train ``model`` for ``epochs`` on ``data``; ``scheduler`` is stepped once per epoch.

    The batch order depends only on ``seed``, so runs with the same seed see the same batches.
    ``after_epoch(epoch, model)`` runs after each epoch's evaluation (epoch counts from 1).
    """
    started = time.perf_counter()
    n = len(data.train_labels)
    per_epoch = n // batch_size
    order = batch_order(n, steps=epochs * per_epoch, batch_size=batch_size, seed=seed)
    curves = EpochCurves(label)
    for epoch in range(epochs):
        curves.lr.append(float(optimizer.param_groups[0]["lr"]))
        losses = run_steps(
            model,
            data.train_images,
            data.train_labels,
            order[epoch * per_epoch : (epoch + 1) * per_epoch],
            optimizer,
            penalty=penalty,
            after_step=after_step,
        )
        if scheduler is not None:
            scheduler.step()
        curves.step_loss.extend(losses)
        curves.train_loss.append(float(np.mean(losses)))
        val_loss, val_accuracy = evaluate(model, data.val_images, data.val_labels)
        curves.val_loss.append(val_loss)
        curves.val_accuracy.append(val_accuracy)
        if after_epoch is not None:
            after_epoch(epoch + 1, model)
    curves.wall_s = round(time.perf_counter() - started, 2)
    return curves


@dataclass
class TrainValSplit:
    """Normalised float images on the device: the images trained on and the held-out ones."""

    train_images: Tensor
    train_labels: Tensor
    val_images: Tensor
    val_labels: Tensor
