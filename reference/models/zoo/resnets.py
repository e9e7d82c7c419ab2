"""Residual networks of the public CIFAR-10 collections.

- ``resnet``: He et al. 2016 (ResNet-18/34 of basic blocks, 50/101/152 of bottlenecks) with a
  3x3 stride-1 stem of 64 filters, no max pool, projection shortcuts (option B) where the shape
  changes, and a 4x4 average pool before the linear layer (pytorch-cifar).
- ``preact_resnet``: He et al. 2016b, "Identity mappings in deep residual networks": BN and ReLU
  before each convolution, shortcuts of a single 1x1 convolution, no stem BN.
- ``senet18``: the pre-activation ResNet-18 with a squeeze-and-excitation gate (Hu et al. 2018)
  of two 1x1 convolutions (reduction 16) in every block, and a stem BN.
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

from reference.models.zoo.layers import (
    Pooled,
    Residual,
    basic_body,
    conv_bn,
    stages,
    stem,
)

WIDTHS = (64, 128, 256, 512)
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


def bottleneck_body(in_planes: int, planes: int, stride: int, width: int, groups: int = 1):
    """1x1 reduce to ``width``, 3x3 (grouped) at ``stride``, 1x1 expand to ``planes``."""
    return nn.Sequential(
        conv_bn(in_planes, width), nn.ReLU(),
        conv_bn(width, width, 3, stride, groups), nn.ReLU(),
        conv_bn(width, planes),
    )  # fmt: skip


def resnet(depth: int = 18, num_classes: int = 10) -> Pooled:
    """ResNet-18/34/50/101/152 for 32x32 images (ResNet-18: 11,173,962 parameters)."""
    kind, counts = RESNET_BLOCKS[depth]

    def block(in_planes: int, width: int, stride: int) -> tuple[nn.Module, int]:
        if kind == "basic":
            return Residual(basic_body(in_planes, width, stride), in_planes, width, stride), width
        body = bottleneck_body(in_planes, 4 * width, stride, width)
        return Residual(body, in_planes, 4 * width, stride), 4 * width

    layers, width = stages(zip(counts, WIDTHS, strict=True), block, 64)
    return Pooled(nn.Sequential(stem(), *layers), width, num_classes)


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


def preact_resnet(
    depth: int = 18, num_classes: int = 10, squeeze: bool = False, first: nn.Module | None = None
) -> Pooled:
    """Pre-activation ResNet-18/34/50/101/152 (PreActResNet-18: 11,171,146 parameters);
    ``first`` replaces the stem (a plain 3x3 convolution)."""
    kind, counts = RESNET_BLOCKS[depth]
    expansion = 1 if kind == "basic" else 4

    def block(in_planes: int, width: int, stride: int) -> tuple[nn.Module, int]:
        planes = width * expansion
        return PreActBlock(in_planes, planes, stride, kind == "bottleneck", squeeze), planes

    layers, width = stages(zip(counts, WIDTHS, strict=True), block, 64)
    first = first or nn.Conv2d(3, 64, 3, padding=1, bias=False)
    return Pooled(nn.Sequential(first, *layers), width, num_classes)


def senet18(num_classes: int = 10) -> Pooled:
    """SENet-18: the pre-activation ResNet-18 with squeeze-and-excitation, and a stem BN."""
    return preact_resnet(18, num_classes, squeeze=True, first=stem())


def resnext29(cardinality: int = 32, width: int = 4, num_classes: int = 10) -> Pooled:
    """ResNeXt-29 (3 stages of 3 blocks) with ``cardinality`` groups of ``width`` channels,
    doubled per stage."""

    def block(in_planes: int, group_width: int, stride: int) -> tuple[nn.Module, int]:
        planes = 2 * group_width
        body = bottleneck_body(in_planes, planes, stride, group_width, cardinality)
        return Residual(body, in_planes, planes, stride), planes

    plan = [(3, cardinality * width * 2**index) for index in range(3)]
    layers, out = stages(plan, block, 64)
    return Pooled(nn.Sequential(stem(64, kernel=1), *layers), out, num_classes)


class SqueezeExcite(nn.Module):
    """``x * sigmoid(W2 relu(W1 mean(x)))`` with biased 1x1 convolutions (Hu et al. 2018)."""

    def __init__(self, planes: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(planes, reduced, 1)
        self.expand = nn.Conv2d(reduced, planes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = F.relu(self.reduce(F.adaptive_avg_pool2d(x, 1)))
        return x * torch.sigmoid(self.expand(w))


def regnet(name: str = "RegNetX_200MF", num_classes: int = 10) -> Pooled:
    """RegNetX-200MF, RegNetX-400MF or RegNetY-400MF with strides (1, 1, 2, 2) for 32x32."""
    config = REGNETS[name]

    def block(in_planes: int, width: int, stride: int) -> tuple[nn.Module, int]:
        layers = [
            conv_bn(in_planes, width), nn.ReLU(),
            conv_bn(width, width, 3, stride, width // config["group"]), nn.ReLU(),
        ]  # fmt: skip
        if config["se"]:
            layers.append(SqueezeExcite(width, round(in_planes * config["se"])))
        layers.append(conv_bn(width, width))
        return Residual(nn.Sequential(*layers), in_planes, width, stride), width

    layers, width = stages(
        zip(config["depths"], config["widths"], strict=True), block, 64, down_from=2
    )
    return Pooled(nn.Sequential(stem(), *layers), width, num_classes)


class PadShortcut(nn.Module):
    """Option A shortcut (He et al. 2016, sec. 3.3): take every ``stride``-th pixel and pad
    the new channels with zeros; no parameters."""

    def __init__(self, extra: int, stride: int) -> None:
        super().__init__()
        self.extra, self.stride = extra, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


def cifar_resnet(depth: int = 20, num_classes: int = 10) -> Pooled:
    """ResNet-20/32/44/56/110/1202 for CIFAR (ResNet-20: 269,722 parameters)."""
    n = (depth - 2) // 6

    def block(in_planes: int, width: int, stride: int) -> tuple[nn.Module, int]:
        unit = Residual(basic_body(in_planes, width, stride), width, width, 1)
        if stride != 1 or in_planes != width:
            unit.shortcut = PadShortcut(width - in_planes, stride)
        return unit, width

    layers, width = stages([(n, 16), (n, 32), (n, 64)], block, 16)
    return Pooled(nn.Sequential(stem(16), *layers), width, num_classes)
