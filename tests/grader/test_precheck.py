"""The static look before any box: each common mistake, written the way students write it, is
answered from the syntax tree or the weights file's structure, with what to change; the honest
variants of the same code pass. Nothing of the student's is run or unpickled here."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from grader.assignment import load_assignment
from grader.models import pipeline
from grader.models.pipeline import grade_model
from grader.models.precheck import code_findings, weights_findings
from grader.models.result import GradeStatus

NET = """
import torch
import torch.nn as nn
import torch.nn.functional as F

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.fc1 = nn.Linear(6 * 14 * 14, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        return self.fc1(torch.flatten(x, 1))
"""
TRAINING = """
transform = transforms.Compose([transforms.ToTensor()])
trainloader = torch.utils.data.DataLoader(trainset, batch_size=4, shuffle=True)
net = Net()
criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
for epoch in range(2):
    for i, data in enumerate(trainloader, 0):
        inputs, labels = data
        optimizer.zero_grad()
        loss = criterion(net(inputs), labels)
        loss.backward()
        optimizer.step()
torch.save(net.state_dict(), "model.pt")
"""


def findings(code: str, **kwargs) -> list:
    return code_findings(textwrap.dedent(code), **kwargs)


def only(code: str, **kwargs):
    (found,) = findings(code, **kwargs)
    return found


def test_training_at_import_is_refused_with_the_main_guard_as_the_fix():
    found = only(NET + TRAINING)
    assert found.fatal and found.kind == "training"
    assert "model.py line 21 trains a model when model.py is imported" in found.message
    assert 'if __name__ == "__main__":' in found.message and "zero_grad()" in found.message
    guarded = NET + 'if __name__ == "__main__":\n' + textwrap.indent(TRAINING, "    ")
    assert findings(guarded) == []


def test_a_training_function_called_at_import_is_training():
    code = (
        NET
        + """
def train(net, epochs):
    for _ in range(epochs):
        loss = net(torch.rand(2, 3, 32, 32)).sum()
        loss.backward()

def fit_all(net):
    train(net, 10)

fit_all(Net())
"""
    )
    found = only(code)
    assert found.fatal and "fit_all(), which trains" in found.message
    assert findings(code.replace("fit_all(Net())", "")) == []  # defined, never called: fine


def test_downloads_and_data_sets_at_import_are_refused():
    download = NET + (
        "trainset = torchvision.datasets.CIFAR10(root='./data', train=True, download=True)\n"
    )
    found = only(download)
    assert found.kind == "download" and "the grader has no network" in found.message
    local = NET + "testset = torchvision.datasets.CIFAR10(root='./data', train=False)\n"
    found = only(local)
    assert found.kind == "dataset" and "loads the CIFAR10 data set" in found.message


def test_code_an_if_may_skip_is_a_warning_and_a_false_constant_skips_it():
    maybe = NET + "if args.train:\n" + textwrap.indent(TRAINING, "    ")
    found = only(maybe)
    assert found.kind == "training" and not found.fatal
    off = NET + "TRAIN = False\nif TRAIN:\n" + textwrap.indent(TRAINING, "    ")
    assert findings(off) == []
    on = NET + "TRAIN = True\nif TRAIN:\n" + textwrap.indent(TRAINING, "    ")
    assert only(on).fatal


@pytest.mark.parametrize(
    ("code", "line"),
    [
        (NET.replace("return self.fc1(torch.flatten(x, 1))",
                     "return self.fc1(torch.flatten(x, 1).cuda())"), 14),
        ('device = "cuda"\n' + NET.replace("x = F.max_pool2d", "x = x.to(device)\n        x = F.max_pool2d"), 14),  # noqa: E501
        (NET + "net = Net().cuda()\n", 15),
        (NET.replace("super().__init__()", "super().__init__()\n        self.d = torch.device('cuda:0')"), 9),  # noqa: E501
    ],
)  # fmt: skip
def test_hard_coded_gpus_are_refused_naming_the_line(code, line):
    found = only(code)
    assert found.fatal and found.kind == "cuda", found
    assert (
        f"model.py line {line}:" in found.message and "runs your model on the CPU" in found.message
    )
    assert "device=x.device" in found.message


@pytest.mark.parametrize(
    "code",
    [
        NET.replace("x = F.max_pool2d", "if torch.cuda.is_available():\n            x = x.cuda()\n        x = F.max_pool2d"),  # noqa: E501
        "device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')\n" + NET,
        'device = "cuda"\n' + NET,  # never used by the model
        NET + "def test(net, loader):\n    for x, y in loader:\n        net(x.cuda())\n",
        NET + "use_gpu = torch.cuda.is_available()\nif use_gpu:\n    net = Net().cuda()\n",
    ],
)  # fmt: skip
def test_a_device_chosen_by_a_test_or_never_used_by_the_model_passes(code):
    assert findings(code) == []


def test_pretrained_downloads_are_refused():
    code = """
import torch.nn as nn
from torchvision import models
from torchvision.models import ResNet18_Weights

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = models.resnet18(weights=ResNet18_Weights.DEFAULT)
        self.backbone.fc = nn.Linear(512, 10)

    def forward(self, x):
        return self.backbone(x)
"""
    found = only(code)
    assert found.kind == "pretrained" and "weights=ResNet18_Weights.DEFAULT" in found.message
    assert "build the model with weights=None" in found.message
    assert only(code.replace("weights=ResNet18_Weights.DEFAULT", "pretrained=True")).fatal
    assert findings(code.replace("weights=ResNet18_Weights.DEFAULT", "weights=None")) == []


def test_transforms_that_need_pil_images_or_are_random_are_refused_in_preprocess():
    base = NET + (
        "import torchvision.transforms as T\n"
        "test_transform = T.Compose([T.ToTensor(), T.Normalize((0.49, 0.48, 0.45), (0.25,) * 3)])"
        "\n\ndef preprocess(x):\n    return test_transform(x)\n"
    )
    found = only(base)
    assert found.kind == "transforms" and "leave out ToTensor()" in found.message
    assert "float tensor batch (N, C, H, W)" in found.message
    random = base.replace("T.ToTensor(), ", "T.RandomHorizontalFlip(), ")
    assert "random augmentation" in only(random).message
    assert findings(base.replace("T.ToTensor(), ", "")) == []  # Normalize alone exports
    unused = base.replace("return test_transform(x)", "return x")  # a training transform
    assert findings(unused) == []


def test_a_missing_entry_lists_the_classes_and_functions_and_the_accepted_names():
    code = """
import torch.nn as nn

class ConvBlock(nn.Module):
    pass

class VGG_A(nn.Module):
    pass

class VGG_A_Light(VGG_A):
    pass

class Meter:
    pass

def get_model(depth=11):
    return VGG_A()

def train(model, loader):
    pass
"""
    found = only(code, entry="VGG_BatchNorm", aliases=("VGG_A_BatchNorm",))
    assert found.fatal and found.kind == "entry"
    message = found.message
    assert message.startswith("model.py defines no VGG_BatchNorm, the model this assignment asks")
    assert "also accepted: VGG_A_BatchNorm, or a function build_model()" in message
    assert "the nn.Module classes ConvBlock, VGG_A, VGG_A_Light" in message
    assert "the functions get_model()" in message and "Meter" not in message
    assert "train()" not in message
    for accepted in ("class VGG_A_BatchNorm(nn.Module):\n    pass\n",
                     "def build_model():\n    return VGG_A()\n",
                     "from models.vgg import VGG_A_BatchNorm\n",
                     "VGG_BatchNorm = VGG_A\n", "from models import *\n"):  # fmt: skip
        assert findings(code + accepted, entry="VGG_BatchNorm", aliases=("VGG_A_BatchNorm",)) == []


def test_a_softmax_output_is_a_warning():
    code = NET.replace(
        "return self.fc1(torch.flatten(x, 1))", "return F.softmax(self.fc1(torch.flatten(x, 1)), 1)"
    )
    found = only(code)
    assert not found.fatal and found.kind == "softmax"
    assert "train on (and return) the logits" in found.message


class Whole(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)


class Planted:
    """An object whose unpickling would create a file: it must never be unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_pickled_models_and_objects_are_found_without_unpickling(tmp_path):
    torch.save(Whole(), tmp_path / "whole.pt")
    (found,) = weights_findings(tmp_path / "whole.pt")
    assert found.kind == "pickled_model" and "Whole" in found.message
    assert "torch.save(model.state_dict(), 'model.pt')" in found.message
    torch.save(Whole(), tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    assert weights_findings(tmp_path / "legacy.pth")[0].kind == "pickled_model"
    torch.save({"net": Whole(), "acc": 91.2}, tmp_path / "ckpt.pth")
    assert weights_findings(tmp_path / "ckpt.pth")[0].kind == "pickled_model"
    marker = tmp_path / "unpickled"
    torch.save({"w": torch.zeros(2), "x": Planted(marker)}, tmp_path / "planted.pt")
    (found,) = weights_findings(tmp_path / "planted.pt")
    assert found.kind == "pickled_objects" and "io.open" in found.message
    assert not marker.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, still used
        torch.jit.script(Whole()).save(str(tmp_path / "scripted.pt"))
    assert weights_findings(tmp_path / "scripted.pt")[0].kind == "torchscript"


def test_state_dicts_and_checkpoint_dicts_pass(tmp_path):
    import numpy as np

    state = Whole().state_dict()
    files = {
        "plain.pt": state,
        "legacy.th": {"state_dict": {f"module.{k}": v for k, v in state.items()},
                      "best_prec1": 91.78},
        "ckpt.pth": {"net": state, "acc": np.float64(93.1), "epoch": 199,
                     "optimizer": {"state": {0: {"momentum_buffer": torch.zeros(2)}},
                               "param_groups": [{"lr": 0.1, "params": [0, 1]}]}},
    }  # fmt: skip
    for name, value in files.items():
        legacy = name.endswith(".th")
        torch.save(value, tmp_path / name, _use_new_zipfile_serialization=not legacy)
        assert weights_findings(tmp_path / name) == [], name


@pytest.fixture
def no_box(monkeypatch):
    """Fail the test if a box is started: the static look must answer first."""

    def refuse(*args, **kwargs):
        raise AssertionError("a box was started for a mistake the static look can see")

    monkeypatch.setattr(pipeline, "model_pool", refuse)


def test_the_pipeline_answers_before_any_box_starts(tmp_path, no_box):
    spec = load_assignment("pj2-cifar10")
    folder = tmp_path / "ana"
    folder.mkdir()
    (folder / "model.py").write_text(NET + TRAINING)
    torch.save(Whole(), folder / "model.pt")
    result = grade_model(folder, spec)
    assert result.status is GradeStatus.INVALID
    assert "holds a whole pickled model" in result.message
    assert "trains a model when model.py is imported" in result.message


def test_hostile_sources_are_left_to_the_box():
    deep = "x = " + "(" * 150 + "1" + ")" * 150 + "\n"
    assert findings(NET + deep) == []
    chained = "".join(f"def f{i}():\n    f{i + 1}()\n" for i in range(3000))
    code = NET + chained + "def f3000():\n    loss.backward()\n\nf0()\n"
    assert only(code).kind == "training"  # 3,000 calls deep, found without recursion
    assert code_findings("import torch\x00")[0].message.startswith("model.py: syntax error")
