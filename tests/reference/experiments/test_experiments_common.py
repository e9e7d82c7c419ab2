"""What every experiment shares: the registry, --list, the JSON with provenance, the figures."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.image import imread

from grader.cli import main
from reference.experiments import EXPERIMENTS, get_experiment
from reference.experiments.common import SCALE_NAMES, results_name
from reference.experiments.loop import ExperimentError, batch_order

NAMES = list(EXPERIMENTS)


def test_list_names_every_experiment_with_one_line_each():
    result = CliRunner().invoke(main, ["reproduce", "--list"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [line.split()[0] for line in lines] == NAMES
    assert NAMES == ["bn", "optimizers", "regularization", "lr-decay", "ablation", "dessilbi"]
    assert all(len(line.split()) > 5 for line in lines)


def test_list_does_not_import_torch():
    code = (
        "import sys; from click.testing import CliRunner; from grader.cli import main; "
        "r = CliRunner().invoke(main, ['reproduce', '--list']); "
        "print(r.exit_code, 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["0", "False"]


@pytest.mark.parametrize("name", NAMES)
def test_every_experiment_has_three_scales_and_distinct_output_folders(name):
    module = get_experiment(name)
    assert set(module.SCALES) == set(SCALE_NAMES)
    assert all(isinstance(c, module.Config) for c in module.SCALES.values())
    assert module.SCALES["full"].out_dir != module.SCALES["small"].out_dir


@pytest.mark.parametrize("name", NAMES)
def test_tiny_run_writes_json_with_provenance_and_labelled_figures(name, tiny_run):
    document, out, output = tiny_run(name)
    assert document["experiment"] == name
    assert json.loads((out / results_name(name)).read_text()) == document
    prov = document["provenance"]
    assert len(prov["git_commit"]) == 40 or prov["git_commit"] == "unknown"
    assert prov["config"]["seed"] == prov.get("seed", 0) == 0
    assert prov["device"].startswith("cpu") and prov["machine"] and prov["torch"]
    assert prov["data"]["dataset"] in ("cifar10", "mnist")
    assert prov["data"]["source"] in ("cifar10-subset/cifar-10-batches-py", "MNIST/raw")
    assert prov["wall_s"] > 0
    assert document["files"]
    for file_name in document["files"].values():
        pixels = imread(out / file_name)
        assert pixels.ndim == 3 and pixels.shape[0] >= 300 and pixels.std() > 0.01
        assert f"wrote {out / file_name}" in output
    assert f"wrote {out / results_name(name)}" in output


@pytest.mark.parametrize("name", [n for n in NAMES if n != "bn"])
def test_epoch_experiments_record_every_curve_per_epoch(name, tiny_run):
    document, _out, output = tiny_run(name)
    epochs = document["provenance"]["config"]["epochs"]
    batch = document["provenance"]["config"]["batch_size"]
    train_images = document["provenance"]["data"]["train_images"]
    for curve in document["curves"]:
        for key in ("train_loss", "val_loss", "val_accuracy", "lr"):
            assert len(curve[key]) == epochs, key
        assert len(curve["step_loss"]) == epochs * (train_images // batch)
        assert all(0 <= a <= 1 for a in curve["val_accuracy"])
        # ten classes at initialisation: the first loss is near ln(10)
        assert 1.5 < curve["step_loss"][0] < 3.5
        assert curve["label"] in output
    assert set(document["summary"]["runs"]) == {c["label"] for c in document["curves"]}


@pytest.mark.parametrize("name", ["optimizers", "regularization", "lr-decay", "dessilbi"])
def test_variants_start_from_one_initialisation_on_the_same_batches(name, tiny_run):
    document, _out, _output = tiny_run(name)
    # the first loss is computed before any update: equal when model and batch are
    assert len({round(c["step_loss"][0], 5) for c in document["curves"]}) == 1


def test_validation_images_are_held_out_of_the_training_rows(tiny_run):
    document, _out, _output = tiny_run("optimizers")
    data = document["provenance"]["data"]
    assert data["train_rows"] == [0, 256] and data["val_rows"] == [5085 - 128, 5085]


def test_bad_settings_are_usage_errors(data_dir, tmp_path):
    runner = CliRunner()
    base = ["--data-dir", str(data_dir), "--out", str(tmp_path), "--scale", "tiny"]
    result = runner.invoke(main, ["reproduce", "optimizers", "--val-images", "6000", *base])
    assert result.exit_code == 2 and "--val-images must be between 1 and 5084" in result.output
    result = runner.invoke(main, ["reproduce", "lr-decay", "--gamma", "0", *base])
    assert result.exit_code == 2 and "0.0 is not in the range x>0" in result.output
    result = runner.invoke(main, ["reproduce", "nope"])
    assert result.exit_code == 2 and "No such command 'nope'" in result.output
    assert "Traceback" not in result.output


def test_config_bounds_are_checked_outside_the_cli(data_dir, tmp_path):
    module = get_experiment("ablation")
    config = dataclasses.replace(module.SCALES["tiny"], epochs=0, data_dir=data_dir)
    with pytest.raises(ExperimentError, match="--epochs must be at least 1, got 0"):
        module.run(config)


def test_batch_order_is_seeded_and_covers_each_epoch_once():
    a = batch_order(100, steps=7, batch_size=30, seed=1)
    assert a.shape == (7, 30)
    assert np.array_equal(a, batch_order(100, steps=7, batch_size=30, seed=1))
    assert len(set(a[:3].ravel())) == 90
    with pytest.raises(ExperimentError, match="--batch-size"):
        batch_order(10, steps=2, batch_size=11, seed=0)
