"""The course experiments that ``grader reproduce`` reruns, one module each.

This registry is cheap to import (no torch): ``grader reproduce --list`` reads it. Every module
named here defines ``Config`` (a dataclass whose fields are the experiment's settings), ``SCALES``
(``tiny``, ``small`` and ``full`` presets of it), ``run(config) -> dict`` (the JSON document it
writes beside its figures) and ``summary_lines(document)`` (what the command prints).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class ExperimentInfo:
    """One reproducible experiment: its module and what it shows, in one line."""

    name: str
    module: str
    summary: str
    course: str
    """The seed assignment the experiment comes from."""


EXPERIMENTS: dict[str, ExperimentInfo] = {
    info.name: info
    for info in (
        ExperimentInfo(
            "bn",
            "reference.experiments.bn",
            "VGG-A with and without BatchNorm: loss landscape, gradient predictiveness, "
            "beta-smoothness (Santurkar et al. 2018)",
            "Fudan DATA130011 PJ2, part 2",
        ),
        ExperimentInfo(
            "optimizers",
            "reference.experiments.optimizers",
            "Adam vs SGD with momentum on the AlexNet-style net: training and validation curves",
            "VU Deep Learning, assignment 2",
        ),
        ExperimentInfo(
            "regularization",
            "reference.experiments.regularization",
            "L1 vs L2 on SimpleNN: weight histograms per layer and the fraction of near-zero "
            "weights",
            "Duke ECE 661 HW2, lab 2",
        ),
        ExperimentInfo(
            "lr-decay",
            "reference.experiments.lr_decay",
            "SimpleNN with and without step learning-rate decay: loss, accuracy and lr per epoch",
            "Duke ECE 661 HW2, lab 1 (bonus)",
        ),
        ExperimentInfo(
            "ablation",
            "reference.experiments.ablation",
            "Dropout, pooling and BatchNorm on TP4's MyConvolutionalNetwork: train and "
            "validation loss",
            "ENSTA ROB313 TP4",
        ),
        ExperimentInfo(
            "dessilbi",
            "reference.experiments.dessilbi",
            "DessiLBI on LeNet-5/MNIST: accuracy (dense and pruned by Gamma) and the sparsity path",
            "Fudan DATA130011 PJ2, DessiLBI",
        ),
    )
}


def get_experiment(name: str) -> ModuleType:
    """Import the module of experiment ``name``; ValueError lists the known names."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}: use one of {', '.join(EXPERIMENTS)}")
    return importlib.import_module(EXPERIMENTS[name].module)
