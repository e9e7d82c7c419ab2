"""The training recipe: batch augmentation, schedules and `grader train` end to end on real data."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from matplotlib.image import imread

from grader.cli import main as grader_cli
from grader.data import load_cifar10
from reference.augment import random_crop, random_flip
from reference.models import get_model
from reference.plots import compare_runs, plot_validation_curves
from reference.train import (
    TrainConfig,
    flattened,
    l1_penalty,
    make_optimizer,
    make_scheduler,
    train,
)


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine OpenMP's spinning threads cost 10x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_random_crop_cuts_a_window_of_the_zero_padded_image():
    images = torch.randint(1, 256, (64, 3, 8, 8), dtype=torch.uint8)
    generator = torch.Generator().manual_seed(0)
    crops = random_crop(images, 2, generator)
    assert crops.shape == images.shape
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    offsets = set()
    for image, crop in zip(padded, crops, strict=True):
        windows = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(image[:, dy : dy + 8, dx : dx + 8], crop)
        ]
        assert windows, "every crop is one 8x8 window of its padded image"
        offsets.add(windows[0])
    assert len(offsets) > 10  # offsets vary across the batch


def test_random_flip_mirrors_about_half_the_batch():
    images = torch.randint(0, 256, (400, 3, 4, 4), dtype=torch.uint8)
    flipped = random_flip(images, torch.Generator().manual_seed(1))
    mirrored = [torch.equal(f, i.flip(-1)) for f, i in zip(flipped, images, strict=True)]
    same = [torch.equal(f, i) for f, i in zip(flipped, images, strict=True)]
    assert all(m or s for m, s in zip(mirrored, same, strict=True))
    assert 150 < sum(mirrored) < 250


@pytest.mark.parametrize(
    ("schedule", "peak_step", "last_ratio"),
    [("onecycle", 24, 1e-4), ("cosine", 0, 1e-3), ("step", 0, 0.01)],
)
def test_schedules_shape_the_learning_rate(schedule, peak_step, last_ratio):
    config = TrainConfig(model="simplenn", lr=0.1, schedule=schedule)
    optimizer = make_optimizer(get_model("simplenn"), config)
    scheduler = make_scheduler(optimizer, config, total_steps=100)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert int(np.argmax(rates)) == peak_step
    assert max(rates) == pytest.approx(0.1)
    assert rates[-1] <= last_ratio * 0.1 * 1.01
    if schedule == "step":
        assert rates[49] == pytest.approx(0.1) and rates[50] == pytest.approx(0.01)


def test_l1_penalty_sums_weights_but_not_biases():
    model = get_model("lenet5")
    expected = sum(m.weight.abs().sum() for m in model.modules() if hasattr(m, "weight"))
    assert l1_penalty(model).item() == pytest.approx(expected.item(), rel=1e-5)


def test_grader_train_resnet20_end_to_end(tmp_path, data_dir):
    out = tmp_path / "run"
    runner = CliRunner()
    args = ["train", "resnet20", "--epochs", "1", "--batch-size", "128", "--limit-train", "256"]
    args += ["--data-dir", str(data_dir), "--out", str(out), "--seed", "3", "--no-tta"]
    result = runner.invoke(grader_cli, args)
    assert result.exit_code == 0, result.output

    record = json.loads((out / "record.json").read_text())
    assert record["model"] == "resnet20" and record["parameters"] == 269_722
    assert record["data"]["dataset"] == "cifar10"
    assert record["data"]["train_images"] == 256 and record["data"]["test_images"] == 1017
    assert record["device"].startswith("cpu") and record["torch"] == torch.__version__
    assert record["config"]["seed"] == 3 and record["tta"] is False

    model = get_model("resnet20")
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))

    predictions = pd.read_csv(out / "predictions.csv")
    assert list(predictions.columns) == ["Id", "Category"]
    assert predictions["Id"].tolist() == list(range(1017))
    assert predictions["Category"].between(0, 9).all()
    labels = load_cifar10("test", data_dir).labels
    assert record["accuracy"] == pytest.approx((predictions["Category"] == labels).mean())

    scored = runner.invoke(
        grader_cli,
        ["score", str(out / "predictions.csv"), "--assignment", "resnet20", "--json", "--all"]
        + ["--data-dir", str(data_dir)],
    )
    assert scored.exit_code == 0, scored.output
    report = json.loads(scored.output.strip().splitlines()[-1])
    assert report["status"] == "ok" and report["counts"]["all"] == 1017
    assert report["scores"]["all"]["accuracy"] == pytest.approx(record["accuracy"])


def test_simplenn_learns_on_the_cifar10_subset_and_plots(tmp_path, data_dir):
    result = train(
        model="simplenn",
        epochs=3,
        batch_size=128,
        validation=1017,
        data_dir=str(data_dir),
        out=str(tmp_path / "simplenn"),
        plots=True,
        progress=False,
    )
    data = result.record["data"]
    assert (data["train_images"], data["validation_images"]) == (4068, 1017)  # held out, last
    assert result.record["tta"] is True  # CIFAR-10 images may be mirrored at test time
    assert result.accuracy > 0.2  # chance is 0.1; 3 epochs on 4k images reach about 0.3
    curve = result.record["curve"]
    assert [p["epoch"] for p in curve] == [1, 2, 3] and curve[-1]["val_accuracy"] > 0.15
    assert (
        result.record["flattened"]["last_epochs"] == 2
        and not (result.out / "progress.json").exists()
    )
    assert flattened([{"val_accuracy": a} for a in (0.2, 0.4, 0.5, 0.6, 0.61, 0.6, 0.605, 0.6)])[
        "flat"
    ]
    assert not flattened([{"val_accuracy": a} for a in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)])["flat"]
    plot_validation_curves(tmp_path, tmp_path / "curves.png")
    run = tmp_path / "simplenn"
    compare_runs({"first": run, "again": run}, tmp_path / "compare.png")
    for name in ("simplenn/weights.png", "simplenn/filters.png", "compare.png", "curves.png"):
        pixels = imread(tmp_path / name)
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.std() > 0.01


def test_lenet5_trains_on_mnist_without_flips(tmp_path, data_dir):
    result = train(
        model="lenet5",
        epochs=2,
        batch_size=64,
        lr=0.05,
        limit_train=3000,
        data_dir=str(data_dir),
        out=str(tmp_path),
        predictions=False,
        progress=False,
    )
    assert result.record["data"]["dataset"] == "mnist"
    assert result.record["data"]["test_images"] == 10_000
    assert result.record["tta"] is False  # a mirrored digit is another symbol
    assert result.accuracy > 0.7
    assert not (tmp_path / "predictions.csv").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["resnet19"], "unknown model 'resnet19': use one of"),
        (["resnet20", "--schedule", "linear"], "'linear' is not one of"),
        (["resnet20", "--epochs", "0"], "0 is not in the range x>=1"),
    ],
)
def test_bad_arguments_are_clean_errors(args, message, tmp_path):
    result = CliRunner().invoke(grader_cli, ["train", *args, "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, (ValueError, RuntimeError))


@pytest.mark.gpu
def test_gpu_benchmark_smoke(tmp_path, data_dir, monkeypatch):
    import importlib.util

    if not torch.cuda.is_available():
        pytest.fail("the gpu marker needs a CUDA device")
    monkeypatch.setenv("GRADER_DATA_DIR", str(data_dir))
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_train_gpu.py"
    spec = importlib.util.spec_from_file_location("bench_train_gpu", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    (result,) = bench.main(["--smoke", "--models", "resnet20", "--json", str(tmp_path / "r.json")])
    assert result["recipe_img_s"] > 0 and result["dataloader_img_s"] > 0
    # ResNet-20: 40.6M multiply-adds forward = 0.081 GFLOP; backward costs twice the forward
    assert result["train_gflop_per_image"] == pytest.approx(3 * 0.0811, rel=0.05)
    assert 0 < result["fraction_of_peak"] < 1


def test_grader_train_takes_every_default_from_train_config():
    import dataclasses

    from grader.commands.train import train as command

    params = {p.name: p for p in command.params if isinstance(p, click.Option)}
    for item in dataclasses.fields(TrainConfig):
        if not item.metadata.get("cli", True):
            assert item.name not in params
            continue
        assert params[item.name].default == item.default, item.name
        assert item.metadata["help"] in params[item.name].help
    assert params["epochs"].type.min == 1 and params["lr"].type.min_open


def test_python_api_and_bounds_come_from_the_same_config(tmp_path):
    with pytest.raises(TypeError, match="unexpected keyword argument 'epoch'"):
        train(model="simplenn", epoch=3)
    with pytest.raises(ValueError, match="--batch-size must be at least 2, got 1"):
        train(model="simplenn", batch_size=1, out=str(tmp_path))
    with pytest.raises(ValueError, match="--lr must be greater than 0, got -0.1"):
        train(model="simplenn", lr=-0.1, out=str(tmp_path))


def test_grader_train_is_the_command_and_reference_does_not_import_the_cli():
    from click.testing import CliRunner

    from grader.cli import main

    done = CliRunner().invoke(main, ["train", "--help"])
    assert done.exit_code == 0
    assert "--all-baselines" in done.output and "--schedule [onecycle|cosine|step]" in done.output
    source = (Path(__file__).parents[2] / "reference" / "train.py").read_text()
    assert "grader.commands" not in source
