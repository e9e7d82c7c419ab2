"""Real student code graded the first time, by the capture and the verified evaluation run in
this process (the stages are pure functions of their folders; test_student_submissions.py runs
the same kinds of submission through real boxes).

Each honest submission is captured, its graph's tensors are the weights file's (as the trusted
stage reads it, saying what it unwrapped) and its parameter count is exact; each mistake gets a
message naming the fix.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import assert_stage2_logits
from student_code import (
    AKAMASTER_RESNET,
    KUANGLIU_LENET,
    LENET_PARAMS,
    PJ2_FILES,
    PJ2_MODEL,
    PJ2_PARAMS,
    RESNET20_PARAMS,
    VGG_A_BATCHNORM,
    VGG_A_BN_PARAMS,
    build,
    save_akamaster_checkpoint,
    save_kuangliu_checkpoint,
    write_folder,
)

from grader.assignment import load_assignment
from grader.data import load_dataset
from grader.models.graph import Graph
from grader.models.inside.capture import capture
from grader.models.inside.evaluate import evaluate
from grader.models.pipeline import verified_result
from grader.models.records import LOGITS_FILE, CaptureArgs, EvaluateArgs
from grader.sandbox.inside.tasks import JobContext


@pytest.fixture(autouse=True)
def own_imports():
    """Each submission imports its own ``model``, ``utils``...: forget them after each test
    (the modules loaded from a temporary folder; torch's own stay)."""
    modules, path = set(sys.modules), list(sys.path)
    yield
    tmp = tempfile.gettempdir()
    for name in set(sys.modules) - modules:
        module = sys.modules[name]
        where = [getattr(module, "__file__", None) or ""]
        where += list(getattr(module, "__path__", None) or [])
        if any(str(w).startswith(tmp) for w in where):
            del sys.modules[name]
    sys.path[:] = path


def stages(folder: Path, *, weights: str | None = None, images: np.ndarray | None = None,
           batch_size: int = 8, **capture_args):  # fmt: skip
    """Capture ``folder`` and evaluate the artifact as the pipeline does: (report, record,
    logits or None)."""
    with tempfile.TemporaryDirectory() as tmp:
        out, out2 = Path(tmp) / "o", Path(tmp) / "o2"
        out.mkdir()
        out2.mkdir()
        report = capture(JobContext(folder, out, {}, None),
                         CaptureArgs(weights=weights, **capture_args))  # fmt: skip
        if report.status != "exported":
            return report, None, None
        if weights is not None:
            (out / weights).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(folder / weights, out / weights)
        args = EvaluateArgs(weights=weights, batch_size=batch_size)
        record = evaluate(JobContext(out, out2, {}, images), args)
        logits = np.load(out2 / LOGITS_FILE) if (out2 / LOGITS_FILE).exists() else None
    return report, record, logits


def verified(folder: Path, **kwargs):
    report, record, logits = stages(folder, **kwargs)
    assert report.status == "exported", report.message
    assert record.status == "ok", record.message
    return record, logits


@pytest.fixture(scope="module")
def images(data_dir):
    return load_dataset("cifar10", "test", data_dir).images[:32]


def eager(model: torch.nn.Module, images: np.ndarray, preprocess=None) -> np.ndarray:
    x = torch.from_numpy(np.array(images)).float() / 255
    with torch.inference_mode():
        return model.eval()(preprocess(x) if preprocess else x).numpy()


def test_an_old_dataparallel_resnet_checkpoint_is_unwrapped_and_verified(tmp_path, images):
    model = build(AKAMASTER_RESNET, "resnet20")
    folder = write_folder(tmp_path / "sub", {"model.py": AKAMASTER_RESNET})
    save_akamaster_checkpoint(model, folder / "resnet20-12fca82f.th")
    record, logits = verified(folder, weights="resnet20-12fca82f.th", images=images)
    check = record.weights
    assert check.matched, check.message
    assert "its 'state_dict' entry (other entries left out: best_prec1)" in check.message
    assert "removed the prefix 'module.'" in check.message
    assert "19 BatchNorm counter(s) num_batches_tracked were not saved" in check.message
    assert Graph(record.graph).parameter_count == RESNET20_PARAMS
    assert_stage2_logits(logits, eager(model, images))


def test_a_pytorch_cifar_checkpoint_in_a_sub_folder_is_unwrapped(tmp_path, images):
    model = build(KUANGLIU_LENET)
    folder = write_folder(tmp_path / "sub", {"model.py": KUANGLIU_LENET})
    save_kuangliu_checkpoint(model, folder / "checkpoint" / "ckpt.pth")
    record, logits = verified(folder, weights="checkpoint/ckpt.pth", images=images)
    assert record.weights.matched and "its 'net' entry" in record.weights.message
    assert Graph(record.graph).parameter_count == LENET_PARAMS
    assert_stage2_logits(logits, eager(model, images))
    # an unmodified public model: pj2's "by no means a publicly available model" refuses it
    result = verified_result(record, load_assignment("pj2-cifar10").model)
    own = next(c for c in result.checks if c.name == "own_model")
    assert not own.passed and "exactly pytorch-cifar LeNet" in own.message


@pytest.mark.parametrize("style", ["lightning", "safetensors", "numpy"])
def test_other_checkpoint_styles_load(tmp_path, style):
    model = build(KUANGLIU_LENET)
    folder = write_folder(tmp_path / "sub", {"model.py": KUANGLIU_LENET})
    state = model.state_dict()
    if style == "lightning":  # a LightningModule holding the net as self.model
        name = "epoch=9-step=100.ckpt"
        torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 9,
                    "pytorch-lightning_version": "2.2.0"}, folder / name)  # fmt: skip
    elif style == "safetensors":
        from safetensors.torch import save_file

        name = "model.safetensors"
        save_file({f"module.{k}": v.contiguous() for k, v in state.items()}, folder / name)
    else:  # the accuracy as a numpy scalar, a model saved under a key of the student's own
        name = "best.pth"
        torch.save({"best_weights": state, "acc": np.float64(71.5)}, folder / name)
    record, _ = verified(folder, weights=name)
    assert record.weights.matched, record.weights.message
    assert Graph(record.graph).parameter_count == LENET_PARAMS


def test_a_checkpoint_without_a_state_dict_lists_its_keys(tmp_path):
    folder = write_folder(tmp_path / "sub", {"model.py": KUANGLIU_LENET})
    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}, "history": [0.5, 0.6]}, folder / "m.pt")
    report, _, _ = stages(folder, weights="m.pt")
    assert report.status == "invalid"
    assert "m.pt is a dict of epoch (int), optimizer (dict), history (list)" in report.message
    assert "torch.save(model.state_dict(), 'model.pt')" in report.message


def test_helper_packages_with_and_without_init_import(tmp_path, images):
    folder = write_folder(tmp_path / "sub", {"model.py": PJ2_MODEL, **PJ2_FILES})
    model = build(PJ2_MODEL.replace("from models.blocks", "#").replace("from utils.nn", "#")
                  .replace("import torch\n", "import torch\n" + PJ2_FILES["utils/nn.py"]
                           + PJ2_FILES["models/blocks.py"]))  # fmt: skip
    torch.save(model.state_dict(), folder / "model.pt")
    record, logits = verified(folder, weights="model.pt", images=images)
    assert Graph(record.graph).parameter_count == PJ2_PARAMS
    assert_stage2_logits(logits, eager(model, images))


def test_a_missing_helper_says_which_files_were_found(tmp_path):
    folder = write_folder(
        tmp_path / "sub", {"model.py": PJ2_MODEL, "models/blocks.py": PJ2_FILES["models/blocks.py"]}
    )
    report, _, _ = stages(folder)
    assert report.status == "invalid"
    assert "model.py imports 'utils', which is neither in the submission" in report.message
    assert "the submission holds model.py, models/blocks.py" in report.message
    assert "submit utils.py (or the folder utils/) next to model.py" in report.message


def test_an_alias_and_build_model_are_accepted():
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_folder(Path(tmp) / "vgg", {"model.py": VGG_A_BATCHNORM})
        record, _ = verified(folder, entry="VGG_BatchNorm", aliases=("VGG_A_BatchNorm",),
                             batch_size=2)  # fmt: skip
        assert Graph(record.graph).parameter_count == VGG_A_BN_PARAMS
        wrong, _, _ = stages(folder, entry="VGG_BatchNorm")
        assert wrong.status == "invalid"
        assert "model.py defines no VGG_BatchNorm" in wrong.message
        assert "It defines the nn.Module classes VGG_A_BatchNorm" in wrong.message
    with tempfile.TemporaryDirectory() as tmp:  # build_model() for an entry other than Net
        folder = write_folder(Path(tmp) / "resnet", {"model.py": AKAMASTER_RESNET})
        record, _ = verified(folder, entry="ResNet20")
        assert Graph(record.graph).parameter_count == RESNET20_PARAMS


def test_torchvision_tensor_transforms_in_preprocess_are_verified(tmp_path, images):
    code = (
        KUANGLIU_LENET.replace("nn.Linear(16*5*5, 120)", "nn.Linear(16*13*13, 120)")
        + """
import torchvision.transforms as T

transform = T.Compose([
    T.Resize(64), T.CenterCrop(64),
    T.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
])


def preprocess(x):
    return transform(x)
"""
    )
    folder = write_folder(tmp_path / "sub", {"model.py": code})
    model = build(code)
    torch.save(model.state_dict(), folder / "model.pt")
    record, logits = verified(folder, weights="model.pt", images=images)
    import torchvision.transforms as T

    transform = T.Compose(
        [
            T.Resize(64),
            T.CenterCrop(64),
            T.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
        ]
    )
    np.testing.assert_allclose(logits, eager(model, images, transform), rtol=1e-5, atol=1e-5)
    assert Graph(record.graph).parameter_count == 16 * 13 * 13 * 120 + 120 + LENET_PARAMS - 48_120


def test_a_model_for_another_input_size_names_the_size_and_the_fix(tmp_path):
    imagenet_sized = KUANGLIU_LENET.replace("16*5*5", "16*53*53")  # a LeNet for 224x224 input
    folder = write_folder(tmp_path / "sub", {"model.py": imagenet_sized})
    report, _, _ = stages(folder)
    assert report.status == "invalid"
    assert "mat1 and mat2 shapes cannot be multiplied" in report.message
    assert "The grader feeds CIFAR-10 images of 3x32x32" in report.message
    assert "def preprocess(x): return torch.nn.functional.interpolate(x" in report.message


def test_a_gpu_in_forward_gets_a_real_message(tmp_path):
    hidden = KUANGLIU_LENET.replace(
        "out = F.relu(self.conv1(x))", "out = F.relu(self.conv1(getattr(x, 'cu' + 'da')()))"
    )
    folder = write_folder(tmp_path / "sub", {"model.py": hidden})  # the static look cannot see it
    report, _, _ = stages(folder)
    assert report.status == "invalid"
    assert "the model moves tensors to a GPU (model.py line" in report.message
    assert "the grader runs it on the CPU: remove .cuda()" in report.message


def test_a_model_whose_own_attribute_is_module_keeps_its_keys(tmp_path):
    from grader.models.inside.weights import read_checkpoint

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.BatchNorm1d(2))

    state = Wrapper().state_dict()
    torch.save(state, tmp_path / "plain.pt")
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "parallel.pt")
    for name in ("plain.pt", "parallel.pt"):
        loaded = read_checkpoint(tmp_path / name, expected=state.keys())
        assert set(loaded.state) == set(state), name
    assert read_checkpoint(tmp_path / "plain.pt", expected=state.keys()).notes == ()
