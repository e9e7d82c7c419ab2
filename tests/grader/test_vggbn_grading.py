"""Grading a student's VGG_BatchNorm: structure rules, the loss band on real data, the sandbox."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from torch import nn

from grader.assignment import load_assignment
from grader.data import load_dataset
from grader.vggbn import (
    PLOT_NAME,
    REPORT_NAME,
    Schedule,
    VggBnReport,
    check_structure,
    executed_layers,
    finish_report,
    grade_vgg_bn,
    reference_layers,
)
from reference.bn_experiments import LocalContext, student_band_task
from reference.models.vgg import VGG_A, VGG_BatchNorm

REPO = Path(__file__).resolve().parents[2]
GOOD = REPO / "submissions" / "vgg-bn" / "eve"
MISSING_BN = REPO / "submissions" / "vgg-bn" / "finn"


def student_class(folder: Path) -> type[nn.Module]:
    spec = importlib.util.spec_from_file_location(f"student_{folder.name}", folder / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.VGG_BatchNorm


def failures(model: nn.Module) -> dict[str, str]:
    checks = check_structure(executed_layers(model, (3, 32, 32)), reference_layers())
    return {c.rule: c.message for c in checks if not c.passed}


def test_reference_and_student_vgg_bn_pass_every_rule():
    assert failures(VGG_BatchNorm()) == {}
    assert failures(student_class(GOOD)()) == {}


def test_a_missing_batch_norm_is_named_by_layer():
    found = failures(student_class(MISSING_BN)())
    assert set(found) == {"batchnorm_after_conv"}
    assert (
        "stage3.3 (Conv2d 256->256) is followed by stage3.4 (ReLU)" in found["batchnorm_after_conv"]
    )
    assert "stage3.0" not in found["batchnorm_after_conv"]


def test_reference_vgg_a_with_one_bn_removed_is_refused():
    model = VGG_BatchNorm()
    model.features[5] = nn.Identity()  # the BN after the second convolution
    found = failures(model)
    assert (
        "features.4 (Conv2d 64->128) is followed by features.5 (Identity)"
        in (found["batchnorm_after_conv"])
    )


def test_plain_vgg_a_fails_only_the_batch_norm_rule():
    found = failures(VGG_A())
    assert set(found) == {"batchnorm_after_conv"}
    assert "features.0 (Conv2d 3->64)" in found["batchnorm_after_conv"]


def test_other_shapes_are_named():
    found = failures(VGG_BatchNorm(width=0.5))
    assert "Conv2d #1 features.0 (Conv2d 3->32) should be 3->64" in found["conv_shapes"]
    assert "Linear #1" in found["linear_shapes"]


@pytest.fixture(scope="module")
def train_set(data_dir: Path):
    return load_dataset("cifar10", "train", data_dir)


def test_band_task_trains_each_lr_from_one_initialisation(train_set, tmp_path: Path):
    ctx = LocalContext(
        build_model=lambda: VGG_BatchNorm(width=0.125),
        inputs={"images": train_set.images[:64], "labels": train_set.labels[:64]},
        args={"lrs": [1e-3, 1e-4], "steps": 3, "batch_size": 8, "seed": 0},
        output_dir=tmp_path,
    )
    result = student_band_task(ctx)
    json.dumps(result)  # what the sandbox hands back must be JSON
    assert [c["lr"] for c in result["curves"]] == [1e-3, 1e-4]
    losses = [c["loss"] for c in result["curves"]]
    assert all(len(curve) == 3 for curve in losses)
    assert losses[0][0] == losses[1][0]  # same initialisation, same first batch
    assert losses[0][1:] != losses[1][1:]
    assert sum(1 for layer in result["layers"] if layer["kind"] == "BatchNorm2d") == 8


def test_report_compares_the_student_band_with_vgg_a(train_set, tmp_path: Path):
    # narrow models keep this fast; the checks then also flag the shapes
    schedule = Schedule(lrs=(1e-3, 1e-4), steps=3, batch_size=4, seed=0, reference_width=0.125)
    images, labels = train_set.images[:32], train_set.labels[:32]
    ctx = LocalContext(
        build_model=lambda: VGG_BatchNorm(width=0.125),
        inputs={"images": images, "labels": labels},
        args={"lrs": list(schedule.lrs), "steps": 3, "batch_size": 4, "seed": 0},
        output_dir=tmp_path,
    )
    report = VggBnReport(submission="narrow-vgg-bn", status="ok")
    finish_report(report, student_band_task(ctx), images, labels, schedule, tmp_path)
    assert not report.structure_ok
    assert {c.rule for c in report.checks if not c.passed} == {"conv_shapes", "linear_shapes"}
    assert report.student_band_width > 0 and report.reference_band_width > 0
    assert report.narrowed == (report.student_band_width < report.reference_band_width)
    assert report.plot == tmp_path / PLOT_NAME
    assert report.plot.read_bytes()[:4] == b"\x89PNG"
    json.dumps(report.to_dict())


@pytest.mark.slow
def test_band_task_with_the_full_width_student_class(train_set, tmp_path: Path):
    ctx = LocalContext(
        build_model=lambda: student_class(GOOD)(),
        inputs={"images": train_set.images[:64], "labels": train_set.labels[:64]},
        args={"lrs": [1e-3, 1e-4], "steps": 3, "batch_size": 8, "seed": 0},
        output_dir=tmp_path,
    )
    result = student_band_task(ctx)
    assert [len(c["loss"]) for c in result["curves"]] == [3, 3]
    assert sum(1 for layer in result["layers"] if layer["kind"] == "Conv2d") == 8


@pytest.mark.slow
def test_grading_through_the_sandbox(data_dir: Path, tmp_path: Path):
    from grader.sandbox import bubblewrap_available

    if not bubblewrap_available():
        pytest.fail("the sandbox needs bubblewrap and root: run scripts/setup.sh")
    spec = load_assignment("vgg-bn")
    schedule = Schedule(lrs=(1e-3, 1e-4), steps=3, batch_size=8)
    report = grade_vgg_bn(MISSING_BN, spec, data_dir=data_dir, out_dir=tmp_path, schedule=schedule)
    assert report.status == "ok", report.message
    assert "stage3.3 (Conv2d 256->256)" in next(
        c.message for c in report.checks if c.rule == "batchnorm_after_conv"
    )
    stored = json.loads((tmp_path / REPORT_NAME).read_text())
    assert stored["student_band_width"] == pytest.approx(report.student_band_width)
    assert np.isfinite(stored["reference_band_width"])


@pytest.mark.slow
def test_grader_check_runs_the_experiment_for_every_vgg_bn_folder(tmp_path, data_dir):
    from grader.batch.run import grade_folder

    batch = grade_folder(
        GOOD.parent,
        spec=load_assignment("vgg-bn"),
        data_dir=data_dir,
        out_dir=tmp_path,
        progress=False,
    )
    rows = {r.student: r for r in batch.results}
    assert rows["eve"].status == "ok", rows["eve"].message
    assert "BN loss band" in rows["eve"].message
    assert (tmp_path / "experiments" / "eve" / "vggbn_loss_band.png").stat().st_size > 0
    assert rows["finn"].status == "invalid"
    assert any("stage3.3" in flag for flag in rows["finn"].flags)
    assert (tmp_path / "report.html").exists()
