"""SimpleNN with and without step learning-rate decay (ECE 661 HW2, lab 1 bonus)."""

from __future__ import annotations

import dataclasses

import pytest

from reference.experiments import lr_decay


def test_step_decay_divides_the_learning_rate_on_schedule(tiny_run):
    document, _out, _output = tiny_run("lr-decay")
    constant, decayed = document["curves"]
    assert (constant["label"], decayed["label"]) == ("constant lr", "step decay")
    # tiny scale: lr 0.05, times 0.1 every 2 epochs, 3 epochs
    assert constant["lr"] == [0.05, 0.05, 0.05]
    assert decayed["lr"] == pytest.approx([0.05, 0.05, 0.005])
    gain = decayed["val_accuracy"][-1] - constant["val_accuracy"][-1]
    assert document["summary"]["decay_accuracy_gain"] == pytest.approx(gain)


def test_both_runs_agree_until_the_first_decay(tiny_run):
    document, _out, _output = tiny_run("lr-decay")
    constant, decayed = document["curves"]
    per_epoch = len(constant["step_loss"]) // 3
    # the same initialisation, batches and learning rate for two epochs: the same steps
    assert constant["step_loss"][: 2 * per_epoch] == pytest.approx(
        decayed["step_loss"][: 2 * per_epoch], rel=1e-5
    )
    assert constant["step_loss"][2 * per_epoch + 1] != decayed["step_loss"][2 * per_epoch + 1]


@pytest.mark.slow
def test_step_decay_lowers_the_loss_and_raises_the_accuracy(data_dir, tmp_path):
    """Small scale (15 epochs, x0.1 every 5): after the decays SimpleNN fits the training set
    better and generalises better than at the constant rate of 0.05."""
    config = dataclasses.replace(
        lr_decay.SCALES["small"], data_dir=data_dir, out_dir=tmp_path, progress=False
    )
    summary = lr_decay.run(config)["summary"]
    constant, decayed = summary["runs"]["constant lr"], summary["runs"]["step decay"]
    assert summary["decay_accuracy_gain"] > 0.02
    assert decayed["final_val_loss"] < constant["final_val_loss"]
    assert summary["decay_train_loss_drop"] > 0
