"""Honest models through the pipeline: verified logits equal the model's own, in and out of boxes.

The bundled example submissions run in real boxes on the 1017 real test images; every reference
model is captured and evaluated by the same stage functions in this process (the stages are pure
functions of their folders) and compared with its eager forward pass.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import SUBMISSIONS, assert_stage2_logits

from grader.assignment import load_assignment
from grader.data import load_dataset
from grader.models.files import find_model_files
from grader.models.inside.capture import capture
from grader.models.inside.evaluate import evaluate
from grader.models.inside.weights import load_state_dict
from grader.models.pipeline import grade_model, model_pool
from grader.models.records import LOGITS_FILE, CaptureArgs, EvaluateArgs
from grader.models.result import GradeStatus
from grader.sandbox.inside.tasks import JobContext
from grader.sandbox.jail import bubblewrap_available

REFERENCE_MODELS = ["simplenn", "simplenn_bn", "simplenn_swish", "resnet20",
                    pytest.param("resnet18_cifar", marks=pytest.mark.slow),  # 11M parameters
                    "alexnet_cifar", "lenet5", "vgg_a", "vgg_a_bn"]  # fmt: skip


def eager_logits(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model.eval()(torch.from_numpy(np.array(images)).float() / 255).numpy()


def load_student(folder: Path) -> torch.nn.Module:
    spec = importlib.util.spec_from_file_location(f"student_{folder.name}", folder / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.Net()
    net.load_state_dict(load_state_dict(find_model_files(folder).weights))
    return net


@pytest.mark.parametrize("name", REFERENCE_MODELS)
def test_every_reference_model_is_verified_with_its_own_logits(name, data_dir, tmp_path):
    from reference.models import dataset_for, get_model

    dataset = dataset_for(name)
    images = load_dataset(dataset, "test", data_dir).images[:64]
    torch.manual_seed(0)
    model = get_model(name).eval()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    (tmp_path / "model.py").write_text(
        f"from reference.models import get_model\n\ndef build_model():\n"
        f"    return get_model({name!r})\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        out, out2 = Path(tmp) / "o", Path(tmp) / "o2"
        out.mkdir()
        out2.mkdir()
        shape = tuple(images.shape[1:])
        report = capture(
            JobContext(tmp_path, out, {}, None), CaptureArgs(input_shape=shape, weights="model.pt")
        )
        assert report.status == "exported", report.message
        (out / "model.pt").write_bytes((tmp_path / "model.pt").read_bytes())
        record = evaluate(JobContext(out, out2, {}, images), EvaluateArgs(weights="model.pt"))
        assert record.status == "ok", record.message
        assert record.weights.matched and record.deterministic and record.finite
        logits = np.load(out2 / LOGITS_FILE)
    assert_stage2_logits(logits, eager_logits(model, images))
    expected = sum(p.numel() for p in model.parameters())
    from grader.models.graph import Graph

    assert Graph(record.graph).parameter_count == expected


@pytest.fixture(scope="module")
def simplenn_pool(data_dir):
    if not bubblewrap_available():
        pytest.fail("bubblewrap is missing: apt-get install bubblewrap (scripts/setup.sh)")
    with model_pool(load_assignment("simplenn"), data_dir=data_dir) as pool:
        yield pool


@pytest.mark.parametrize("student", ["ada", "bao", "cruz"])
def test_bundled_examples_get_their_bare_logits_from_the_box(student, simplenn_pool, data_dir):
    spec = load_assignment("simplenn")
    folder = SUBMISSIONS / "simplenn" / student
    result = grade_model(folder, spec, pool=simplenn_pool)
    assert result.verified and result.sandboxed
    images = load_dataset("cifar10", "test", data_dir).images
    if student == "cruz":  # the wrong conv2: runs, is verified, fails the architecture check
        assert result.status is GradeStatus.INVALID and result.logits is None
        assert "Your layer conv2 (Conv2d) outputs 16x10x10" in result.message
        return
    assert result.status is GradeStatus.OK, result.message
    assert result.images == len(images) and result.images_per_s > 0
    bare = eager_logits(load_student(folder), images)
    np.testing.assert_allclose(result.logits, bare, rtol=1e-5, atol=1e-5)
    assert (result.logits.argmax(1) == bare.argmax(1)).all()
    assert result.total_params == 82_030 and len(result.weights_sha256) == 64
    # the spec asks for robustness: every variant, drawn from the grading's own secret seed
    from grader.metrics import VARIANT_NAMES, make_variants

    assert set(result.variant_logits) == set(VARIANT_NAMES)
    assert result.variant_seed is not None
    variants = make_variants(images, seed=result.variant_seed)
    model = load_student(folder)
    for name in ("flip", "jpeg_2"):
        np.testing.assert_allclose(result.variant_logits[name], eager_logits(model, variants[name]),
                                   rtol=1e-5, atol=1e-5)  # fmt: skip


def test_grader_check_grades_models_in_boxes_and_marks_them_verified(tmp_path, data_dir):
    from grader.batch.run import grade_folder

    batch = grade_folder(SUBMISSIONS / "simplenn", spec=load_assignment("simplenn"),
                         data_dir=data_dir, out_dir=tmp_path, progress=False)  # fmt: skip
    rows = {r.student: r for r in batch.results}
    assert rows["ada"].status == "ok" and rows["ada"].grade.verified
    assert (
        rows["ada"].grade.all_accuracy > 0.2
    )  # one epoch on the 5,085 subset images: above chance
    metrics = rows["ada"].grade.metrics
    assert metrics is not None and metrics.mean_corruption_accuracy is not None
    assert metrics.flip_consistency is not None and metrics.likely_memoriser is False
    assert rows["cruz"].status == "invalid" and rows["cruz"].grade.verified
    assert any("params_exact" in flag for flag in rows["cruz"].flags)


@pytest.mark.slow
def test_a_mobilenet_v2_size_model_grades_in_grader_check_under_the_default_limits(
    tmp_path, data_dir
):
    """MobileNetV2 keeps ~20 MB of intermediates per image when none is freed: 5 GB for a batch
    of 256 against the 4 GB box. Freed after their last reader, in batches sized from the
    memory per image, it grades like any model."""
    from grader.assignment import parse_assignment
    from grader.batch.run import grade_folder

    source = Path(__file__).resolve().parent / "students" / "mobilenet_v2.py"
    folder = tmp_path / "class" / "mona"
    folder.mkdir(parents=True)
    (folder / "model.py").write_text(source.read_text())
    spec_file = importlib.util.spec_from_file_location("mobilenet_v2", source)
    module = importlib.util.module_from_spec(spec_file)
    spec_file.loader.exec_module(module)
    torch.manual_seed(0)
    torch.save(module.Net().state_dict(), folder / "model.pt")
    spec = parse_assignment({"name": "mnv2", "dataset": "cifar10", "model": {"robustness": True}})
    assert (spec.model.memory_limit_mb, spec.model.batch_size) == (4096, 256)  # the defaults
    batch = grade_folder(tmp_path / "class", spec=spec, data_dir=data_dir, out_dir=tmp_path / "out",
                         progress=False)  # fmt: skip
    (row,) = batch.results
    assert row.status == "ok" and row.grade.verified, row.message
    assert row.grade.metrics is not None and row.grade.metrics.secret_accuracy is not None
