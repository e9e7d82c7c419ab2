"""L1 vs L2 on SimpleNN: weight histograms and near-zero weights (ECE 661 HW2, lab 2)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from reference.experiments import regularization

LAYERS = ["features.0", "features.4", "classifier.0", "classifier.2", "classifier.4"]
WEIGHTS = {  # SimpleNN's weight tensors, by hand: 5x5x3x8, 3x3x8x16, 576x120, 120x84, 84x10
    "features.0": 5 * 5 * 3 * 8,
    "features.4": 3 * 3 * 8 * 16,
    "classifier.0": 16 * 6 * 6 * 120,
    "classifier.2": 120 * 84,
    "classifier.4": 84 * 10,
}


def test_histograms_cover_every_weight_of_every_layer(tiny_run):
    document, _out, _output = tiny_run("regularization")
    assert [c["label"] for c in document["curves"]] == ["L2", "L1"]
    for curve in document["curves"]:
        assert [h["layer"] for h in curve["histograms"]] == LAYERS
        for histogram in curve["histograms"]:
            assert sum(histogram["counts"]) == WEIGHTS[histogram["layer"]]
            assert len(histogram["edges"]) == len(histogram["counts"]) + 1
        (fractions,) = curve["near_zero"]
        assert set(fractions) == {*LAYERS, "all"}


def test_near_zero_fraction_is_counted_per_layer_and_over_all_weights(tiny_run):
    document, _out, _output = tiny_run("regularization")
    for curve in document["curves"]:
        (fractions,) = curve["near_zero"]
        weighted = sum(fractions[layer] * WEIGHTS[layer] for layer in LAYERS)
        assert fractions["all"] == pytest.approx(weighted / sum(WEIGHTS.values()))
    summary = document["summary"]
    assert summary["l1_sparser"] == (
        summary["near_zero"]["L1"]["all"] > summary["near_zero"]["L2"]["all"]
    )


def test_near_zero_fractions_of_known_weights():
    from reference.experiments.common import TrainedVariant
    from reference.experiments.loop import EpochCurves
    from reference.models import get_model

    model = get_model("simplenn")
    with torch.no_grad():
        model.features[0].weight.zero_()  # 600 weights exactly zero
        model.classifier[4].weight.fill_(0.5)  # 840 weights far from zero
        model.classifier[4].weight[0, :21] = 1e-4  # 21 of them near zero
    trained = TrainedVariant(None, EpochCurves("x"), model)
    fractions = regularization.near_zero_fractions(trained, 1e-3)
    assert fractions["features.0"] == 1.0
    assert fractions["classifier.4"] == pytest.approx(21 / 840)
    others = [w for name, w in regularization.layer_weights(trained) if name != "features.0"]
    expected = (600 + sum(int((np.abs(w) < 1e-3).sum()) for w in others)) / sum(WEIGHTS.values())
    assert fractions["all"] == pytest.approx(expected)


@pytest.mark.slow
def test_l1_drives_many_more_weights_to_zero_than_l2(data_dir, tmp_path):
    """Small scale (15 epochs on 4,068 real images): most of L1's weights end near zero in every
    layer, while L2 keeps a spread-out distribution; both still learn (chance is 0.1)."""
    config = dataclasses.replace(
        regularization.SCALES["small"], data_dir=data_dir, out_dir=tmp_path, progress=False
    )
    summary = regularization.run(config)["summary"]
    l1, l2 = summary["near_zero"]["L1"], summary["near_zero"]["L2"]
    assert summary["l1_sparser"]
    assert l1["all"] > 5 * l2["all"]
    assert all(l1[layer] > l2[layer] for layer in LAYERS)
    assert min(run["final_val_accuracy"] for run in summary["runs"].values()) > 0.3
