"""Residual networks of the public CIFAR-10 collections.

- ``resnet``: He et al. 2016 (ResNet-18/34 of basic blocks, 50/101/152 of bottlenecks) with a
  3x3 stride-1 stem of 64 filters, no max pool, projection shortcuts (option B) where the shape
  changes, and a 4x4 average pool before the linear layer (pytorch-cifar).
- ``preact_resnet``: He et al. 2016b, "Identity mappings in deep residual networks": BN and ReLU
  before each convolution, shortcuts of a single 1x1 convolution, no stem BN.
- ``senet18``: the pre-activation ResNet-18 with a squeeze-and-excitation gate (Hu et al. 2018)
  of two 1x1 convolutions (reduction 16) in every block.
- ``resnext29``: Xie et al. 2017, three stages of three grouped bottlenecks whose width doubles
  per stage, 1x1 stem.
- ``regnet``: Radosavovic et al. 2020, RegNetX/Y stages of grouped bottlenecks (Y: with SE).
- ``cifar_resnet``: the CIFAR ResNets of He et al. 2016 sec. 4.2 (6n+2 layers, 16/32/64
  filters, option A shortcuts) as pytorch_resnet_cifar10 publishes them, depths 20 to 1202.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

RESNET_BLOCKS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
REGNETS: dict[str, dict] = {
    "RegNetX_200MF": {"depths": (1, 1, 4, 7), "widths": (24, 56, 152, 368), "group": 8,
                      "se": 0.0},
    "RegNetX_400MF": {"depths": (1, 2, 7, 12), "widths": (32, 64, 160, 384), "group": 16,
                      "se": 0.0},
    "RegNetY_400MF": {"depths": (1, 2, 7, 12), "widths": (32, 64, 160, 384), "group": 16,
                      "se": 0.25},
}  # fmt: skip


def conv_bn(in_planes: int, planes: int, kernel: int = 1, stride: int = 1, groups: int = 1):
    """A convolution without bias (padding keeps the size) and its BatchNorm."""
    return nn.Sequential(
        nn.Conv2d(in_planes, planes, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(planes),
    )


class Residual(nn.Module):
    """``relu(body(x) + shortcut(x))``; the shortcut projects (1x1 conv + BN) when needed."""

    def __init__(self, body: nn.Module, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.body = body
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = conv_bn(in_planes, planes, 1, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


def basic_body(in_planes: int, planes: int, stride: int) -> nn.Module:
    """Two 3x3 convolutions (He et al. 2016, fig. 5 left)."""
    return nn.Sequential(
        conv_bn(in_planes, planes, 3, stride), nn.ReLU(), conv_bn(planes, planes, 3)
    )


def bottleneck_body(in_planes: int, planes: int, stride: int, width: int, groups: int = 1):
    """1x1 reduce to ``width``, 3x3 (grouped) at ``stride``, 1x1 expand to ``planes``."""
    return nn.Sequential(
        conv_bn(in_planes, width), nn.ReLU(),
        conv_bn(width, width, 3, stride, groups), nn.ReLU(),
        conv_bn(width, planes),
    )  # fmt: skip


class StagedNet(nn.Module):
    """Stem -> stages -> global average pool -> linear: the layout every network here shares."""

    def __init__(self, stem: nn.Module, stages: list[nn.Module], features: int, num_classes: int):
        super().__init__()
        self.stem = stem
        self.stages = nn.Sequential(*stages)
        self.linear = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def _stem(planes: int = 64, kernel: int = 3) -> nn.Module:
    return nn.Sequential(conv_bn(3, planes, kernel), nn.ReLU())


def resnet(depth: int = 18, num_classes: int = 10) -> StagedNet:
    """ResNet-18/34/50/101/152 for 32x32 images (ResNet-18: 11,173,962 parameters)."""
    kind, counts = RESNET_BLOCKS[depth]
    expansion = 1 if kind == "basic" else 4
    stages, in_planes = [], 64
    for index, (count, width) in enumerate(zip(counts, (64, 128, 256, 512), strict=True)):
        blocks = []
        for b in range(count):
            stride = 2 if index and not b else 1
            planes = width * expansion
            body = (
                basic_body(in_planes, planes, stride)
                if kind == "basic"
                else bottleneck_body(in_planes, planes, stride, width)
            )
            blocks.append(Residual(body, in_planes, planes, stride))
            in_planes = planes
        stages.append(nn.Sequential(*blocks))
    return StagedNet(_stem(), stages, in_planes, num_classes)


class PreActBlock(nn.Module):
    """BN-ReLU before each convolution; the shortcut (a 1x1 conv where the shape changes)
    starts after the first BN-ReLU. ``squeeze``: an SE gate of two biased 1x1 convolutions."""

    def __init__(
        self, in_planes: int, planes: int, stride: int, bottleneck: bool, squeeze: bool = False
    ) -> None:
        super().__init__()
        width = planes // 4 if bottleneck else planes
        self.bn_in = nn.BatchNorm2d(in_planes)
        if bottleneck:
            shapes = [(in_planes, width, 1, 1), (width, width, 3, stride), (width, planes, 1, 1)]
        else:
            shapes = [(in_planes, planes, 3, stride), (planes, planes, 3, 1)]
        self.convs = nn.ModuleList(
            nn.Conv2d(i, o, k, s, k // 2, bias=False) for i, o, k, s in shapes
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(o) for _, o, _, _ in shapes[:-1])
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)
        self.gate: nn.Module | None = None
        if squeeze:
            self.gate = nn.Sequential(
                nn.AdaptiveAvgPool2d(1), nn.Conv2d(planes, planes // 16, 1), nn.ReLU(),
                nn.Conv2d(planes // 16, planes, 1), nn.Sigmoid(),
            )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn_in(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.convs[0](out)
        for bn, conv in zip(self.bns, self.convs[1:], strict=True):
            out = conv(F.relu(bn(out)))
        if self.gate is not None:
            out = out * self.gate(out)
        return out + skip


def preact_resnet(depth: int = 18, num_classes: int = 10, squeeze: bool = False) -> StagedNet:
    """Pre-activation ResNet-18/34/50/101/152 (PreActResNet-18: 11,171,146 parameters)."""
    kind, counts = RESNET_BLOCKS[depth]
    expansion = 1 if kind == "basic" else 4
    stages, in_planes = [], 64
    for index, (count, width) in enumerate(zip(counts, (64, 128, 256, 512), strict=True)):
        blocks = []
        for b in range(count):
            stride = 2 if index and not b else 1
            planes = width * expansion
            blocks.append(PreActBlock(in_planes, planes, stride, kind == "bottleneck", squeeze))
            in_planes = planes
        stages.append(nn.Sequential(*blocks))
    stem = nn.Conv2d(3, 64, 3, padding=1, bias=False)
    return StagedNet(stem, stages, in_planes, num_classes)


def senet18(num_classes: int = 10) -> StagedNet:
    """SENet-18: the pre-activation ResNet-18 with squeeze-and-excitation, and a stem BN."""
    net = preact_resnet(18, num_classes, squeeze=True)
    net.stem = _stem()
    return net


def resnext29(cardinality: int = 32, width: int = 4, num_classes: int = 10) -> StagedNet:
    """ResNeXt-29 (3 stages of 3 blocks) with ``cardinality`` groups of ``width`` channels."""
    stages, in_planes = [], 64
    for index in range(3):
        group_width = cardinality * width * 2**index
        planes = 2 * group_width
        blocks = []
        for b in range(3):
            stride = 2 if index and not b else 1
            body = bottleneck_body(in_planes, planes, stride, group_width, cardinality)
            blocks.append(Residual(body, in_planes, planes, stride))
            in_planes = planes
        stages.append(nn.Sequential(*blocks))
    return StagedNet(_stem(64, kernel=1), stages, in_planes, num_classes)


class SqueezeExcite(nn.Module):
    """``x * sigmoid(W2 relu(W1 mean(x)))`` with biased 1x1 convolutions (Hu et al. 2018)."""

    def __init__(self, planes: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(planes, reduced, 1)
        self.expand = nn.Conv2d(reduced, planes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = F.relu(self.reduce(F.adaptive_avg_pool2d(x, 1)))
        return x * torch.sigmoid(self.expand(w))


def regnet(name: str = "RegNetX_200MF", num_classes: int = 10) -> StagedNet:
    """RegNetX-200MF, RegNetX-400MF or RegNetY-400MF with strides (1, 1, 2, 2) for 32x32."""
    config = REGNETS[name]
    stages, in_planes = [], 64
    for index, (depth, width) in enumerate(zip(config["depths"], config["widths"], strict=True)):
        blocks = []
        for b in range(depth):
            stride = 2 if index >= 2 and not b else 1
            layers = [
                conv_bn(in_planes, width), nn.ReLU(),
                conv_bn(width, width, 3, stride, width // config["group"]), nn.ReLU(),
            ]  # fmt: skip
            if config["se"]:
                layers.append(SqueezeExcite(width, round(in_planes * config["se"])))
            layers.append(conv_bn(width, width))
            blocks.append(Residual(nn.Sequential(*layers), in_planes, width, stride))
            in_planes = width
        stages.append(nn.Sequential(*blocks))
    return StagedNet(_stem(), stages, in_planes, num_classes)


class PadShortcut(nn.Module):
    """Option A shortcut (He et al. 2016, sec. 3.3): take every ``stride``-th pixel and pad
    the new channels with zeros; no parameters."""

    def __init__(self, extra: int, stride: int) -> None:
        super().__init__()
        self.extra, self.stride = extra, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


def cifar_resnet(depth: int = 20, num_classes: int = 10) -> StagedNet:
    """ResNet-20/32/44/56/110/1202 for CIFAR (ResNet-20: 269,722 parameters)."""
    n = (depth - 2) // 6
    stages, in_planes = [], 16
    for index, width in enumerate((16, 32, 64)):
        blocks = []
        for b in range(n):
            stride = 2 if index and not b else 1
            block = Residual(basic_body(in_planes, width, stride), width, width, 1)
            if stride != 1 or in_planes != width:
                block.shortcut = PadShortcut(width - in_planes, stride)
            blocks.append(block)
            in_planes = width
        stages.append(nn.Sequential(*blocks))
    return StagedNet(_stem(16), stages, in_planes, num_classes)
