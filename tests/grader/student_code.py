"""Submissions written the way students of CIFAR-10 courses write them (our own code, in the
styles of the repositories and course skeletons they start from), for the tests of
``test_student_code.py`` (stages in this process) and ``test_student_submissions.py`` (boxes).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import torch

# A ResNet-20 in the style of the most-copied CIFAR ResNet: option A shortcuts through a
# LambdaLayer and F.pad, in-place addition, Kaiming init applied with self.apply.
AKAMASTER_RESNET = """
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.nn.init as init


def _weights_init(m):
    if isinstance(m, (nn.Linear, nn.Conv2d)):
        init.kaiming_normal_(m.weight)


class LambdaLayer(nn.Module):
    def __init__(self, lambd):
        super(LambdaLayer, self).__init__()
        self.lambd = lambd

    def forward(self, x):
        return self.lambd(x)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super(BasicBlock, self).__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            pad = planes // 4
            self.shortcut = LambdaLayer(
                lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad), "constant", 0))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class ResNet(nn.Module):
    def __init__(self, block, num_blocks, num_classes=10):
        super(ResNet, self).__init__()
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(block, 16, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, 32, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 64, num_blocks[2], stride=2)
        self.linear = nn.Linear(64, num_classes)
        self.apply(_weights_init)

    def _make_layer(self, block, planes, num_blocks, stride):
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        return self.linear(out.view(out.size(0), -1))


def resnet20():
    return ResNet(BasicBlock, [3, 3, 3])


def build_model():
    return resnet20()
"""
RESNET20_PARAMS = 269_722

# kuangliu's LeNet, as copied into a student's model.py under the assignment's class name.
KUANGLIU_LENET = """
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1   = nn.Linear(16*5*5, 120)
        self.fc2   = nn.Linear(120, 84)
        self.fc3   = nn.Linear(84, 10)

    def forward(self, x):
        out = F.relu(self.conv1(x))
        out = F.max_pool2d(out, 2)
        out = F.relu(self.conv2(out))
        out = F.max_pool2d(out, 2)
        out = out.view(out.size(0), -1)
        out = F.relu(self.fc1(out))
        out = F.relu(self.fc2(out))
        return self.fc3(out)
"""
LENET_PARAMS = 62_006

# The Fudan PJ2 skeleton: the model imports its initialisation from utils/nn.py (a folder
# without __init__.py) and its blocks from a models/ package.
PJ2_MODEL = """
import torch
from torch import nn

from models.blocks import conv_bn_relu
from utils.nn import init_weights_


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(3, 16), nn.MaxPool2d(2),
            conv_bn_relu(16, 32), nn.MaxPool2d(2),
            conv_bn_relu(32, 64), nn.AdaptiveAvgPool2d(1),
        )
        self.dropout = nn.Dropout(0.3)
        self.classifier = nn.Linear(64, num_classes)
        init_weights_(self)

    def forward(self, x):
        x = torch.flatten(self.features(x), 1)
        return self.classifier(self.dropout(x))
"""
PJ2_FILES = {
    "utils/nn.py": """
from torch import nn


def init_weights_(model):
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            nn.init.zeros_(m.bias)
""",
    "models/__init__.py": "",
    "models/blocks.py": """
from torch import nn


def conv_bn_relu(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))
""",
}
# conv 3*16*9 + BN 32; conv 16*32*9 + BN 64; conv 32*64*9 + BN 128; fc 64*10 + 10
PJ2_PARAMS = 432 + 32 + 4_608 + 64 + 18_432 + 128 + 650

# VGG-A with BatchNorm as public Fudan PJ2 code writes it: the class is VGG_A_BatchNorm.
VGG_A_BATCHNORM = """
import torch.nn as nn


def init_weights_(m):
    if isinstance(m, nn.Conv2d):
        nn.init.xavier_normal_(m.weight)


class VGG_A_BatchNorm(nn.Module):
    def __init__(self, inp_ch=3, num_classes=10, init_weights=True):
        super().__init__()
        cfg = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
        layers, ch = [], inp_ch
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(ch, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(True)]
                ch = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
            nn.Linear(512, num_classes))
        if init_weights:
            self.apply(init_weights_)

    def forward(self, x):
        x = self.features(x)
        return self.classifier(x.view(-1, 512 * 1 * 1))
"""
VGG_A_BN_PARAMS = 9_756_426


def write_folder(root: Path, files: dict[str, str | bytes]) -> Path:
    """A submission folder holding ``files`` (text is dedented)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content))
    return root


def build(code: str, name: str = "Net") -> torch.nn.Module:
    """The model ``code`` defines, built in a namespace of its own (seeded)."""
    namespace: dict = {"__name__": "student_code"}
    exec(compile(textwrap.dedent(code), "model.py", "exec"), namespace)  # noqa: S102
    torch.manual_seed(0)
    return namespace[name]()


def save_whole_model(code: str, path: Path) -> None:
    """``torch.save(model, path)`` from a script ``model.py``: the pickle names ``model.Net``."""
    import sys
    import types

    module = types.ModuleType("model")
    exec(compile(textwrap.dedent(code), "model.py", "exec"), vars(module))  # noqa: S102
    sys.modules["model"] = module
    try:
        torch.save(module.Net(), path)
    finally:
        del sys.modules["model"]


def save_akamaster_checkpoint(model: torch.nn.Module, path: Path) -> None:
    """As the CIFAR ResNet trainer saves: DataParallel keys, the best accuracy, a pre-1.6
    torch.save file, and no BatchNorm counters (older PyTorch did not have them)."""
    state = {
        f"module.{k}": v for k, v in model.state_dict().items() if "num_batches_tracked" not in k
    }
    torch.save({"state_dict": state, "best_prec1": 91.78}, path,
               _use_new_zipfile_serialization=False)  # fmt: skip


def save_kuangliu_checkpoint(model: torch.nn.Module, path: Path) -> None:
    """As pytorch-cifar's main.py saves: ``{'net', 'acc', 'epoch'}``, DataParallel keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"net": state, "acc": 71.3, "epoch": 42}, path)


def notebook(cells: list[tuple[str, str] | str], tags: dict[int, list[str]] | None = None) -> str:
    """A Jupyter notebook (nbformat 4) of ``cells``: code, or ("markdown", text)."""
    out = []
    for index, cell in enumerate(cells):
        kind, source = ("code", cell) if isinstance(cell, str) else cell
        entry = {"cell_type": kind, "metadata": {}, "source": textwrap.dedent(source).strip()}
        if kind == "code":
            entry.update(execution_count=index + 1, outputs=[])
        if tags and index in tags:
            entry["metadata"]["tags"] = tags[index]
        out.append(entry)
    return json.dumps({"cells": out, "metadata": {}, "nbformat": 4, "nbformat_minor": 4})


# A homework notebook as students hand it in: imports with magics, data loading with a download,
# the model, training, a plot, saving; the model is the first PyTorch tutorial's net, widened.
HOMEWORK_CELLS = [
    ("markdown", "# HW1: a CNN for CIFAR-10"),
    """
    %matplotlib inline
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision
    import torchvision.transforms as transforms
    import matplotlib.pyplot as plt
    from google.colab import drive
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    """,
    """
    transform = transforms.Compose([transforms.ToTensor(),
                                    transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    trainset = torchvision.datasets.CIFAR10(root='./data', train=True, download=True,
                                            transform=transform)
    trainloader = torch.utils.data.DataLoader(trainset, batch_size=4, shuffle=True)
    """,
    """
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 5)
            self.pool = nn.MaxPool2d(2, 2)
            self.conv2 = nn.Conv2d(8, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = self.pool(F.relu(self.conv1(x)))
            x = self.pool(F.relu(self.conv2(x)))
            x = torch.flatten(x, 1)
            x = F.relu(self.fc1(x))
            x = F.relu(self.fc2(x))
            return self.fc3(x)

    net = Net().to(device)
    """,
    """
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
    for epoch in range(2):
        for inputs, labels in trainloader:
            optimizer.zero_grad()
            loss = criterion(net(inputs.to(device)), labels.to(device))
            loss.backward()
            optimizer.step()
    """,
    """
    plt.plot([1, 2, 3])
    plt.show()
    """,
    "torch.save(net.state_dict(), './cifar_net.pth')",
]
# conv 3*8*25 + 8, conv 8*16*25 + 16, fc 400*120 + 120, 120*84 + 84, 84*10 + 10
NOTEBOOK_PARAMS = 608 + 3_216 + 48_120 + 10_164 + 850

# A model whose forward ends in a softmax (trained with NLLLoss on log of it, or not at all).
SOFTMAX_NET = """
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.ReLU(),
                                      nn.MaxPool2d(4), nn.Conv2d(12, 24, 3, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(2))
        self.fc = nn.Linear(96, 10)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x):
        return self.softmax(self.fc(torch.flatten(self.features(x), 1)))
"""
SOFTMAX_PARAMS = 3 * 12 * 9 + 12 + 12 * 24 * 9 + 24 + 96 * 10 + 10
