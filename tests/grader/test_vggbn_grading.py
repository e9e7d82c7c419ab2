"""Grading a student's VGG_BatchNorm: rules on the verified graph, and the verified loss band."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import SUBMISSIONS, graph_of

from grader.assignment import load_assignment
from grader.models.graph import Graph
from grader.models.inside.artifact import TRAIN_GRAPH_FILE
from grader.models.inside.export import export_model, write_artifact, write_tensors
from grader.models.inside.training import train
from grader.models.records import TrainArgs
from grader.models.registry import reference_layers
from grader.models.rules import RuleContext, check_rules
from grader.models.training import batch_order, loss_curve, normalise
from grader.sandbox.inside.tasks import INPUTS_DIR, JobContext

GOOD = SUBMISSIONS / "vgg-bn" / "eve"
MISSING_BN = SUBMISSIONS / "vgg-bn" / "finn"
NARROW = """
from reference.models.vgg import VGG_BatchNorm

def build_model():
    return VGG_BatchNorm(width={width})
"""


def vgg_checks(graph: Graph) -> dict[str, tuple[bool, str]]:
    context = RuleContext(reference=reference_layers("vgg_a_bn", (3, 32, 32)))
    checks = check_rules(("batchnorm_after_conv", "reference_layers"), graph, context)
    return {c.name: (c.passed, c.message) for c in checks}


def test_the_students_vgg_bn_passes_and_a_missing_batch_norm_is_named():
    good = vgg_checks(graph_of((GOOD / "model.py").read_text(), entry="VGG_BatchNorm"))
    assert all(passed for passed, _ in good.values()), good
    bad = vgg_checks(graph_of((MISSING_BN / "model.py").read_text(), entry="VGG_BatchNorm"))
    passed, message = bad["batchnorm_after_conv"]
    assert not passed
    assert "stage3.3 (Conv2d, model.py:" in message and "followed by stage3.4 (ReLU" in message
    assert "stage3.0 (Conv2d" not in message
    assert bad["reference_layers"][0]


def test_other_widths_are_named_by_layer():
    found = vgg_checks(graph_of(NARROW.format(width=0.5)))
    passed, message = found["reference_layers"]
    assert not passed
    assert message.startswith("layer #1, features.0 (Conv2d), outputs 32x32x32")
    assert "the reference's features.0 outputs 64x32x32" in message


def test_the_captured_training_graph_trains_exactly_like_the_model(data_dir):
    from grader.data import load_dataset
    from reference.models.vgg import VGG_BatchNorm

    train_set = load_dataset("cifar10", "train", data_dir)
    images, labels = train_set.images[:64], train_set.labels[:64]
    args = TrainArgs(lrs=(1e-3, 1e-4), steps=3, batch_size=8, seed=0)
    torch.manual_seed(0)
    model = VGG_BatchNorm(width=0.125)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model.train()
        tensors = write_artifact(export_model(model, (3, 32, 32)), folder,
                                 graph_file=TRAIN_GRAPH_FILE)  # fmt: skip
        write_tensors(tensors, folder)
        (folder / INPUTS_DIR).mkdir()
        np.save(folder / INPUTS_DIR / "images.npy", images)
        np.save(folder / INPUTS_DIR / "labels.npy", labels)
        record = train(JobContext(folder, folder, {}, None), args)
    assert record.status == "ok", record.message
    order = batch_order(len(labels), steps=3, batch_size=8, seed=0)
    x, y = normalise(images), torch.from_numpy(labels.astype(np.int64))
    eager = []
    for lr in args.lrs:
        model.load_state_dict(initial)
        eager.append(loss_curve(model.train(), list(model.parameters()), x, y, order, lr=lr))
    assert record.curves == eager  # bit for bit: the same operations on the same batches
    assert record.curves[0][0] == record.curves[1][0]  # one initialisation for every lr
    assert record.curves[0][1:] != record.curves[1][1:]


@pytest.mark.slow
def test_grader_check_runs_the_experiment_for_every_vgg_bn_folder(tmp_path, data_dir):
    from grader.batch.run import grade_folder

    batch = grade_folder(
        GOOD.parent, spec=load_assignment("vgg-bn"), data_dir=data_dir, out_dir=tmp_path,
        progress=False,
    )  # fmt: skip
    rows = {r.student: r for r in batch.results}
    assert rows["eve"].status == "ok", rows["eve"].message
    assert "BN loss band" in rows["eve"].message and rows["eve"].grade.verified
    assert (tmp_path / "experiments" / "eve" / "vggbn_loss_band.png").stat().st_size > 0
    assert rows["finn"].status == "invalid"
    assert any("stage3.3" in flag for flag in rows["finn"].flags)
    assert (tmp_path / "report.html").exists()
