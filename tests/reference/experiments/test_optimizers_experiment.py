"""Adam vs SGD on the AlexNet-style net (VU Deep Learning, assignment 2)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from reference.experiments import optimizers


def test_tiny_run_compares_adam_with_sgd(tiny_run):
    document, _out, output = tiny_run("optimizers")
    assert [c["label"] for c in document["curves"]] == ["Adam", "SGD"]
    assert {c["lr"][0] for c in document["curves"]} == {1e-3, 1e-2}
    runs = document["summary"]["runs"]
    best = min(runs, key=lambda label: runs[label]["final_val_loss"])
    assert document["summary"]["lower_val_loss"] == best
    assert f"lower validation loss: {best}" in output


@pytest.mark.slow
def test_adam_trains_the_alexnet_style_net_faster_than_sgd(data_dir, tmp_path):
    """At the small scale (quarter width, 6 epochs of 4,068 real images) Adam's validation loss
    falls well below chance while SGD with momentum at lr 0.01 has barely left it."""
    config = dataclasses.replace(
        optimizers.SCALES["small"], data_dir=data_dir, out_dir=tmp_path, progress=False
    )
    summary = optimizers.run(config)["summary"]
    adam, sgd = summary["runs"]["Adam"], summary["runs"]["SGD"]
    assert summary["lower_val_loss"] == "Adam"
    assert adam["final_val_loss"] < math.log(10) - 0.3
    assert adam["final_val_accuracy"] > sgd["final_val_accuracy"] + 0.05
