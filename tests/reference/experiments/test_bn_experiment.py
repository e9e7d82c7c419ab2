"""The batch-norm experiments on the real CIFAR-10 subset: curves, JSON, figures, the claim."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from reference.experiments.bn import (
    FIGURE_NAMES,
    RESULTS_NAME,
    SMALL,
    BNConfig,
    BNExperimentError,
    band,
    landscape_band,
    landscape_lr,
    run,
)

TINY = dict(
    lrs=(1e-3, 1e-4),
    steps=4,
    batch_size=16,
    width=0.125,
    probe_every=2,
    max_images=256,
    progress=False,
    device="cpu",
)


@pytest.fixture(scope="module")
def tiny_bn(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("bn")
    document = run(BNConfig(data_dir=data_dir, out_dir=out, **TINY))
    return document, out


def test_json_holds_every_curve_for_every_lr_and_model(tiny_bn):
    document, out = tiny_bn
    stored = json.loads((out / RESULTS_NAME).read_text())
    assert stored == document
    pairs = sorted((c["model"], c["lr"]) for c in stored["curves"])
    assert pairs == sorted((m, lr) for m in ("vgg_a", "vgg_a_bn") for lr in (1e-3, 1e-4))
    for curve in stored["curves"]:
        assert len(curve["loss"]) == 4
        assert len(curve["grad_change"]) == 3
        # ten classes at initialisation: the first loss is near ln(10)
        assert 1.5 < curve["loss"][0] < 3.5
        if curve["lr"] != 1e-3:  # only the landscape run (upper middle lr) is probed
            assert curve["probe_at"] == [] and curve["probe_loss"] == []
            continue
        assert curve["probe_at"] == [0, 2]
        assert all(len(d) == len(SMALL.probe_steps) for d in curve["probe_grad_dist"])
        assert all(len(d) == len(SMALL.probe_steps) for d in curve["probe_loss"])
        assert len(curve["beta"]) == 2 and all(b > 0 for b in curve["beta"])
    for entry in stored["summary"].values():
        assert entry["loss_band_width"] > 0 and entry["lr_band_width"] > 0


def test_runs_share_initialisation_and_batches(tiny_bn):
    document, _ = tiny_bn
    first = {}
    for curve in document["curves"]:
        first.setdefault(curve["model"], set()).add(round(curve["loss"][0], 6))
    # the first loss is computed before any update: equal across learning rates
    assert all(len(values) == 1 for values in first.values())


def test_provenance_and_figures_are_written(tiny_bn):
    document, out = tiny_bn
    prov = document["provenance"]
    assert prov["data"]["images"] == 256
    # relative to the data folder: the JSON names no path of the machine it ran on
    assert prov["data"]["source"] == "cifar10-subset/cifar-10-batches-py"
    assert prov["config"]["lrs"] == [1e-3, 1e-4] and prov["landscape_lr"] == 1e-3
    assert prov["seeds"]["init"] == 0 and prov["device"].startswith("cpu")
    assert prov["torch"] and prov["wall_s"] > 0
    for name in FIGURE_NAMES.values():
        path = out / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size < 300_000


def test_band_is_min_and_max_per_step():
    low, high = band([[3.0, 2.0, 1.0], [1.0, 2.5, np.nan], [2.0, 2.2, 0.5, 9.0]])
    assert low.tolist() == [1.0, 2.0, 0.5]
    assert high.tolist() == [3.0, 2.5, 1.0]


def test_landscape_band_is_min_and_max_over_eta_per_step():
    low, high = landscape_band([[2.0, 2.5, 1.0], [1.8, 1.7, 1.9]])
    assert low.tolist() == [1.0, 1.7]
    assert high.tolist() == [2.5, 1.9]


def test_landscape_lr_is_the_middle_rate_unless_given(data_dir: Path):
    assert landscape_lr(BNConfig(lrs=(1e-3, 2e-3, 1e-4, 5e-4))) == 1e-3
    assert landscape_lr(BNConfig(lrs=(1e-4, 1e-2, 1e-3))) == 1e-3
    assert landscape_lr(BNConfig(lrs=(1e-4, 1e-3), landscape_lr=1e-4)) == 1e-4
    with pytest.raises(BNExperimentError, match="not one of the learning rates"):
        run(BNConfig(lrs=(1e-3,), landscape_lr=1e-2, data_dir=data_dir, progress=False))


def test_cli_refuses_bad_learning_rates(tmp_path: Path):
    from grader.cli import main

    result = CliRunner().invoke(
        main, ["reproduce", "bn", "--lrs", "1e-3,abc", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "comma-separated numbers" in result.output
    assert "Traceback" not in result.output


def test_cli_runs_and_names_the_files(data_dir: Path, tmp_path: Path):
    from grader.cli import main

    args = ["reproduce", "bn", "--lrs", "1e-3,1e-4", "--steps", "2", "--batch-size", "8"]
    args += ["--width", "0.125", "--data-dir", str(data_dir), "--out", str(tmp_path)]
    args += ["--device", "cpu"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'loss_landscape.png'}" in result.output
    assert len(json.loads((tmp_path / RESULTS_NAME).read_text())["curves"]) == 4


@pytest.mark.parametrize("seed", [0, 1])
def test_batch_norm_narrows_the_loss_landscape(data_dir: Path, tmp_path: Path, seed: int):
    """Santurkar et al., figure 4a, at a tiny CPU scale (eighth width, 60 Adam steps at 1e-3).

    Along one training trajectory per model, the loss at ``w - eta * g`` varies over a narrower
    range with BatchNorm, and the plain VGG-A really trains (it is not a flat chance-level loss).
    """
    config = BNConfig(
        lrs=(1e-3,),
        steps=60,
        width=0.125,
        seed=seed,
        data_dir=data_dir,
        out_dir=tmp_path,
        progress=False,
        device="cpu",
    )
    summary = run(config)["summary"]
    plain, normed = summary["vgg_a"], summary["vgg_a_bn"]
    assert plain["landscape_final_loss"] < plain["landscape_first_loss"] - 0.05
    assert normed["loss_band_width"] < plain["loss_band_width"]
    assert normed["grad_probe_dist_max_mean"] < plain["grad_probe_dist_max_mean"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_norm_smooths_the_landscape(data_dir: Path, tmp_path: Path, seed: int):
    """Santurkar et al., sections 3.1-3.2, at the CPU scale ``SMALL`` (minutes on one core).

    Along the trajectory at lr 1e-3, BN's loss varies less along the gradient direction (a
    narrower loss landscape), its gradient changes less there (better gradient predictiveness),
    its effective beta-smoothness is lower, and it learns faster; the plain VGG-A trains too.
    """
    config = BNConfig(data_dir=data_dir, out_dir=tmp_path, progress=False, seed=seed)
    summary = run(config)["summary"]
    plain, normed = summary["vgg_a"], summary["vgg_a_bn"]
    assert plain["landscape_final_loss"] < plain["landscape_first_loss"] - 0.1
    assert normed["loss_band_width"] < plain["loss_band_width"]
    assert normed["grad_probe_dist_max_mean"] < plain["grad_probe_dist_max_mean"]
    assert normed["beta_max_mean"] < plain["beta_max_mean"]
    assert normed["final_loss_mean"] < plain["final_loss_mean"]
