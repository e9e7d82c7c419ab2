"""DessiLBI on LeNet-5/MNIST: accuracy and the sparsity path (Fudan PJ2)."""

from __future__ import annotations

import dataclasses

import pytest

from reference.experiments import dessilbi

SPARSE_LAYERS = {
    "features.0.weight",
    "features.3.weight",
    "classifier.0.weight",
    "classifier.2.weight",
    "classifier.4.weight",
}


def test_path_is_recorded_every_step_and_every_epoch(tiny_run):
    document, _out, output = tiny_run("dessilbi")
    lbi, sgd = document["curves"]
    assert (lbi["label"], sgd["label"]) == ("DessiLBI", "SGD")
    assert len(lbi["step_density"]) == len(lbi["step_loss"])
    assert len(lbi["epoch_density"]) == len(lbi["pruned_val_accuracy"]) == 2
    assert set(lbi["epoch_density"][0]) == {*SPARSE_LAYERS, "all"}
    # Gamma starts empty and its support only grows at the start of the path
    assert lbi["step_density"][0] == 0.0
    assert all(0.0 <= d <= 1.0 for d in lbi["step_density"])
    assert "step_density" not in sgd
    assert "Gamma's support" in output


@pytest.mark.slow
def test_dessilbi_finds_a_sparse_lenet_that_keeps_its_accuracy(data_dir, tmp_path):
    """Small scale (10 epochs on 8,192 real digits): Gamma's support grows from empty to a few
    percent of the weights, and LeNet-5 pruned to that support is nearly as accurate as dense."""
    config = dataclasses.replace(
        dessilbi.SCALES["small"], data_dir=data_dir, out_dir=tmp_path, progress=False
    )
    document = dessilbi.run(config)
    summary = document["summary"]
    lbi = document["curves"][0]
    assert summary["first_step_density"] == 0.0
    assert 0.0 < summary["final_density"]["all"] < 0.1
    assert lbi["epoch_density"][-1]["all"] >= lbi["epoch_density"][0]["all"]
    assert summary["runs"]["DessiLBI"]["final_val_accuracy"] > 0.85
    assert (
        summary["final_pruned_val_accuracy"]
        > summary["runs"]["DessiLBI"]["final_val_accuracy"] - 0.05
    )
