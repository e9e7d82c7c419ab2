"""The model check (in-process, fast) and grader-side evaluation in the sandbox (real boxes)."""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score

from grader.assignment import load_assignment
from grader.data import load_dataset
from grader.modelgrade import grade_model_folder, sanity_check
from grader.sandbox import bubblewrap_available
from grader.weights import WeightsError, apply_state_dict, load_state_dict

HERE = Path(__file__).resolve().parent
SIMPLENN = HERE / "attacks" / "simplenn.py"
SUBMISSIONS = HERE.parents[1] / "submissions" / "simplenn"


def _write(tmp_path: Path, name: str, code: str) -> Path:
    path = tmp_path / name
    path.write_text(code)
    return path


def _wrong_simplenn(tmp_path: Path) -> Path:
    code = SIMPLENN.read_text().replace("nn.Conv2d(8, 16, 3)", "nn.Conv2d(8, 16, 5)")
    return _write(tmp_path, "wrong.py", code.replace("16 * 6 * 6", "16 * 5 * 5"))


def _load_net(path: Path) -> torch.nn.Module:
    spec = importlib.util.spec_from_file_location(f"m_{path.parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Net()


def test_simplenn_passes_with_82030_parameters():
    grade = sanity_check(SIMPLENN, assignment=load_assignment("simplenn"), sandbox=False)
    assert grade.status == "ok", grade.message
    assert grade.total_params == 82_030
    assert grade.output_shape == [2, 10]
    layers = {row["name"]: row for row in grade.layers}
    assert layers["conv1"]["params"] == 608 and layers["conv2"]["output_shape"] == [1, 16, 12, 12]
    # conv1 28*28*8*75 MACs + conv2 12*12*16*72 + fc 576*120 + 120*84 + 84*10, at 2 FLOPs each
    assert grade.flops == 2 * (28 * 28 * 8 * 75 + 12 * 12 * 16 * 72 + 576 * 120 + 120 * 84 + 840)
    assert grade.fingerprint_match == "reference simplenn"
    assert grade.flags == []


def test_wrong_simplenn_fails_naming_the_layer_that_differs(tmp_path):
    grade = sanity_check(
        _wrong_simplenn(tmp_path), assignment=load_assignment("simplenn"), sandbox=False
    )
    assert grade.status == "invalid"
    failed = {c.name: c.message for c in grade.checks if not c.passed}
    assert list(failed) == ["params_exact"]
    assert "62,958 parameters" in failed["params_exact"]
    assert "layer conv2 (Conv2d, 16x8x5x5 + 16 = 3,216)" in failed["params_exact"]
    assert "16x8x3x3" in failed["params_exact"]


def test_structure_rules_on_resnet20(tmp_path):
    resnet = _write(tmp_path, "model.py", "from reference.models import get_model\n\n"
                    "def build_model():\n    return get_model('resnet20')\n")  # fmt: skip
    grade = sanity_check(resnet, assignment=load_assignment("resnet20"), sandbox=False)
    passed = {c.name: c.passed for c in grade.checks}
    assert passed["residual"] and passed["batchnorm_after_conv"] and passed["params_max"]
    plain = sanity_check(SIMPLENN, assignment=load_assignment("resnet20"), sandbox=False)
    messages = {c.name: c.message for c in plain.checks if not c.passed}
    assert messages["residual"].startswith("no skip connection")
    assert "conv1, conv2" in messages["batchnorm_after_conv"]


def test_unmodified_torchvision_model_is_flagged(tmp_path):
    code = "from torchvision.models import resnet18\n\ndef build_model():\n"
    model = _write(tmp_path, "model.py", code + "    return resnet18(num_classes=10)\n")
    grade = sanity_check(model, sandbox=False)
    assert grade.status == "ok", grade.message
    assert grade.flags == ["unmodified public model: torchvision resnet18"]


def test_weights_errors_name_the_keys(tmp_path):
    net = _load_net(SIMPLENN)
    state = net.state_dict()
    state.pop("fc3.bias")
    state["fc1.weight"] = torch.zeros(7, 7)
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError) as info:
        apply_state_dict(net, state, "model.pt")
    text = str(info.value)
    assert "missing keys: fc3.bias" in text and "unexpected keys: extra.weight" in text
    assert "fc1.weight (model (120, 576), file (7, 7))" in text


def test_whole_models_and_torchscript_are_refused(tmp_path):
    net = _load_net(SIMPLENN)
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), tmp_path / "whole.pt")
    with pytest.raises(WeightsError, match=r"torch.save\(model.state_dict\(\)"):
        load_state_dict(tmp_path / "whole.pt")
    with warnings.catch_warnings():  # newer torch deprecates scripting; the archive is the point
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "scripted.pt")
    with pytest.raises(WeightsError, match="TorchScript"):
        load_state_dict(tmp_path / "scripted.pt")
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    assert set(load_state_dict(tmp_path / "ckpt.pt")) == set(net.state_dict())


def _grade(name: str, data_dir: Path, slot: int):
    if not bubblewrap_available():
        if os.environ.get("CI"):
            pytest.fail("bubblewrap is missing: apt-get install bubblewrap (scripts/setup.sh)")
        pytest.skip("bubblewrap not installed (apt-get install bubblewrap)")
    return grade_model_folder(SUBMISSIONS / name, load_assignment("simplenn"), data_dir=data_dir,
                              slot=slot)  # fmt: skip


def test_sandboxed_logits_give_the_same_accuracy_as_a_bare_run(data_dir, labels_csv):
    grade = _grade("ada", data_dir, slot=1)
    assert grade.status == "ok", grade.message
    test = load_dataset("cifar10", "test", data_dir)
    assert grade.logits.shape == (len(test), 10)
    net = _load_net(SUBMISSIONS / "ada" / "model.py")
    net.load_state_dict(torch.load(SUBMISSIONS / "ada" / "model.pt", weights_only=True))
    with torch.inference_mode():
        bare = net.eval()(torch.from_numpy(test.images).float() / 255).numpy()
    np.testing.assert_allclose(grade.logits, bare, rtol=1e-4, atol=1e-4)
    labels = pd.read_csv(labels_csv)["Category"].to_numpy()[: len(test)]
    accuracy = accuracy_score(labels, grade.logits.argmax(1))
    assert accuracy == accuracy_score(labels, bare.argmax(1))
    assert accuracy > 0.2  # one epoch on 5,085 images: well above chance (0.1)
    assert grade.total_params == 82_030 and grade.images_per_s > 0
    assert len(grade.weights_sha256) == 64


@pytest.mark.slow
def test_structure_problem_submission_is_invalid(data_dir):
    grade = _grade("cruz", data_dir, slot=2)
    assert grade.status == "invalid"
    assert grade.logits is not None  # it runs; it just is not the required architecture
    failed = {c.name: c.message for c in grade.checks if not c.passed}
    assert "layer conv2 (Conv2d, 16x8x5x5 + 16 = 3,216)" in failed["params_exact"]


def test_torchvision_parameter_table_is_current():
    import torchvision.models as tvm

    from grader.fingerprint import EXTRA_KWARGS, TORCHVISION_PARAMS

    for name, count in TORCHVISION_PARAMS.items():
        with torch.device("meta"):
            model = getattr(tvm, name)(weights=None, num_classes=10, **EXTRA_KWARGS.get(name, {}))
        assert sum(p.numel() for p in model.parameters()) == count, name
