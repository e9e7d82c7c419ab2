"""Dropout, pooling and BatchNorm on TP4's MyConvolutionalNetwork (ENSTA ROB313 TP4)."""

from __future__ import annotations

import dataclasses

import pytest

from reference.experiments import ablation

VARIANTS = ["baseline", "+ dropout", "no pooling", "+ BatchNorm"]


def test_four_variants_with_train_and_validation_loss(tiny_run):
    document, _out, output = tiny_run("ablation")
    assert [c["label"] for c in document["curves"]] == VARIANTS
    runs = document["summary"]["runs"]
    for curve in document["curves"]:
        gap = curve["val_loss"][-1] - curve["train_loss"][-1]
        assert runs[curve["label"]]["loss_gap"] == pytest.approx(gap)
    assert document["summary"]["smallest_gap"] == min(runs, key=lambda k: runs[k]["loss_gap"])
    assert "loss gap (val - train): baseline" in output


@pytest.mark.slow
def test_dropout_closes_the_gap_and_removing_pooling_overfits(data_dir, tmp_path):
    """Small scale (6 Adam epochs on 4,068 real images): dropout's validation loss stays close to
    its training loss; without pooling the 2.1M-parameter head memorises the training images
    (the widest gap); BatchNorm reaches the lowest validation loss."""
    config = dataclasses.replace(
        ablation.SCALES["small"], data_dir=data_dir, out_dir=tmp_path, progress=False
    )
    summary = ablation.run(config)["summary"]
    runs = summary["runs"]
    assert summary["smallest_gap"] == "+ dropout"
    assert max(runs, key=lambda k: runs[k]["loss_gap"]) == "no pooling"
    assert runs["no pooling"]["final_train_loss"] < runs["baseline"]["final_train_loss"]
    assert summary["lowest_val_loss"] == "+ BatchNorm"
