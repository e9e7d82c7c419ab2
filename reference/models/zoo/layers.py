"""Pieces the public model re-implementations share: conv + BN, residual units, stages, a head."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

BlockMaker = Callable[[int, int, int], tuple[nn.Module, int]]
"""(in channels, stage width, stride) -> (block, out channels)."""


def conv_bn(in_planes: int, planes: int, kernel: int = 1, stride: int = 1, groups: int = 1):
    """A convolution without bias (padding keeps the size) and its BatchNorm."""
    return nn.Sequential(
        nn.Conv2d(in_planes, planes, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(planes),
    )


def stem(planes: int = 64, kernel: int = 3) -> nn.Module:
    """The CIFAR stem: one stride-1 convolution with BN and ReLU."""
    return nn.Sequential(conv_bn(3, planes, kernel), nn.ReLU())


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


def stages(
    plan: Iterable[tuple[int, int]], block: BlockMaker, in_planes: int, down_from: int = 1
) -> tuple[list[nn.Module], int]:
    """One ``nn.Sequential`` of blocks per (blocks, width) of ``plan``; the first block of each
    stage from index ``down_from`` on halves the resolution. Returns the stages and the width
    they end with."""
    built = []
    for index, (count, width) in enumerate(plan):
        blocks = []
        for b in range(count):
            unit, in_planes = block(in_planes, width, 2 if index >= down_from and not b else 1)
            blocks.append(unit)
        built.append(nn.Sequential(*blocks))
    return built, in_planes


class Pooled(nn.Module):
    """features -> global average pool -> linear."""

    def __init__(self, features: nn.Module, width: int, num_classes: int) -> None:
        super().__init__()
        self.features = features
        self.linear = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))
