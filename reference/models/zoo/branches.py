"""Multi-branch networks of pytorch-cifar: GoogLeNet, DenseNet and Deep Layer Aggregation.

- ``googlenet``: Szegedy et al. 2015, inception modules of four branches (1x1; 1x1 -> 3x3;
  1x1 -> 3x3 -> 3x3 in place of 5x5; 3x3 max pool -> 1x1), every convolution biased and
  followed by BN and ReLU, on a 3x3 stem of 192 filters at full resolution.
- ``densenet``: Huang et al. 2017 (DenseNet-BC): bottleneck layers (BN-ReLU-1x1 to 4k, BN-ReLU-
  3x3 to k) whose outputs are concatenated, transitions halving the channels, a 3x3 stem of 2k.
- ``dla`` / ``simple_dla``: Yu et al. 2018, trees of residual blocks whose outputs a root
  (1x1 convolution of their concatenation) aggregates; ``simple_dla`` is the binary-tree form.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from reference.models.zoo.layers import Pooled, Residual, basic_body, conv_bn

INCEPTIONS = (
    (192, 64, 96, 128, 16, 32, 32), (256, 128, 128, 192, 32, 96, 64), "pool",
    (480, 192, 96, 208, 16, 48, 64), (512, 160, 112, 224, 24, 64, 64),
    (512, 128, 128, 256, 24, 64, 64), (512, 112, 144, 288, 32, 64, 64),
    (528, 256, 160, 320, 32, 128, 128), "pool",
    (832, 256, 160, 320, 32, 128, 128), (832, 384, 192, 384, 48, 128, 128),
)  # fmt: skip
"""(in, 1x1, 3x3 reduce, 3x3, double-3x3 reduce, double-3x3, pool projection) per module."""
DENSENET_BLOCKS = {121: (6, 12, 24, 16), 161: (6, 12, 36, 24), 169: (6, 12, 32, 32),
                   201: (6, 12, 48, 32)}  # fmt: skip
DENSENET_GROWTH = {121: 32, 161: 48, 169: 32, 201: 32}


def conv_bn_relu(in_planes: int, planes: int, kernel: int = 1) -> nn.Sequential:
    """A biased convolution, BN and ReLU (GoogLeNet's unit)."""
    return nn.Sequential(
        nn.Conv2d(in_planes, planes, kernel, padding=kernel // 2), nn.BatchNorm2d(planes),
        nn.ReLU(),
    )  # fmt: skip


class Inception(nn.Module):
    """Four parallel branches concatenated along the channels."""

    def __init__(self, in_planes: int, n1: int, r3: int, n3: int, r5: int, n5: int, pool: int):
        super().__init__()
        self.branches = nn.ModuleList([
            conv_bn_relu(in_planes, n1),
            nn.Sequential(conv_bn_relu(in_planes, r3), conv_bn_relu(r3, n3, 3)),
            nn.Sequential(conv_bn_relu(in_planes, r5), conv_bn_relu(r5, n5, 3),
                          conv_bn_relu(n5, n5, 3)),
            nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_bn_relu(in_planes, pool)),
        ])  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], 1)


def googlenet(num_classes: int = 10) -> Pooled:
    """GoogLeNet (Inception v1) for 32x32 images: 6,166,250 parameters."""
    layers: list[nn.Module] = [conv_bn_relu(3, 192, 3)]
    for entry in INCEPTIONS:
        layers.append(nn.MaxPool2d(3, 2, 1) if entry == "pool" else Inception(*entry))
    return Pooled(nn.Sequential(*layers), 1024, num_classes)


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 (4k) -> BN-ReLU-3x3 (k), concatenated with its input."""

    def __init__(self, in_planes: int, growth: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        return torch.cat([self.conv2(F.relu(self.bn2(out))), x], 1)


class Transition(nn.Sequential):
    """BN-ReLU-1x1 convolution to ``planes`` channels, then a 2x2 average pool."""

    def __init__(self, in_planes: int, planes: int) -> None:
        super().__init__(
            nn.BatchNorm2d(in_planes), nn.ReLU(), nn.Conv2d(in_planes, planes, 1, bias=False),
            nn.AvgPool2d(2),
        )  # fmt: skip


def densenet(depth: int = 121, growth: int | None = None, num_classes: int = 10) -> Pooled:
    """DenseNet-121/161/169/201 for 32x32 images (``growth`` 12 at depth 121: densenet_cifar)."""
    growth = growth or DENSENET_GROWTH[depth]
    channels = 2 * growth
    layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1, bias=False)]
    blocks = DENSENET_BLOCKS[depth]
    for index, count in enumerate(blocks):
        for _ in range(count):
            layers.append(DenseLayer(channels, growth))
            channels += growth
        if index < len(blocks) - 1:
            reduced = math.floor(channels * 0.5)
            layers.append(Transition(channels, reduced))
            channels = reduced
    layers += [nn.BatchNorm2d(channels), nn.ReLU()]
    return Pooled(nn.Sequential(*layers), channels, num_classes)


def block(in_planes: int, planes: int, stride: int = 1) -> Residual:
    """DLA's residual unit: the basic block with a projection shortcut."""
    return Residual(basic_body(in_planes, planes, stride), in_planes, planes, stride)


class Root(nn.Module):
    """Aggregation node: 1x1 convolution, BN and ReLU of the concatenated inputs."""

    def __init__(self, in_planes: int, planes: int) -> None:
        super().__init__()
        self.unit = nn.Sequential(conv_bn(in_planes, planes), nn.ReLU())

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return self.unit(torch.cat(xs, 1))


class Tree(nn.Module):
    """DLA's hierarchical aggregation at ``level``: the outputs of the sub-trees of levels
    ``level - 1`` .. 1, of a projection of the input (level > 1) and of two blocks meet in
    one root."""

    def __init__(self, in_planes: int, planes: int, level: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.level = level
        self.subtrees = nn.ModuleList(
            Tree(in_planes, planes, i, stride) for i in reversed(range(1, level))
        )
        self.first = block(in_planes, planes, stride) if level > 1 else None
        self.left = block(in_planes if level == 1 else planes, planes, stride if level == 1 else 1)
        self.right = block(planes, planes)
        self.root = Root((level + 2 if level > 1 else 2) * planes, planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [self.first(x)] if self.first is not None else []
        for subtree in self.subtrees:
            x = subtree(x)
            outs.append(x)
        x = self.left(x)
        outs.append(x)
        outs.append(self.right(x))
        return self.root(outs)


class BinaryTree(nn.Module):
    """Simplified DLA: two sub-trees (or two blocks at level 1) joined by a root."""

    def __init__(self, in_planes: int, planes: int, level: int = 1, stride: int = 1) -> None:
        super().__init__()
        if level == 1:
            self.left: nn.Module = block(in_planes, planes, stride)
            self.right: nn.Module = block(planes, planes)
        else:
            self.left = BinaryTree(in_planes, planes, level - 1, stride)
            self.right = BinaryTree(planes, planes, level - 1)
        self.root = Root(2 * planes, planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = self.left(x)
        return self.root([left, self.right(left)])


def _dla(tree: type[nn.Module], num_classes: int) -> Pooled:
    layers = [
        nn.Sequential(conv_bn(3, 16, 3), nn.ReLU()),
        nn.Sequential(conv_bn(16, 16, 3), nn.ReLU()),
        nn.Sequential(conv_bn(16, 32, 3), nn.ReLU()),
        tree(32, 64, 1, 1),
        tree(64, 128, 2, 2),
        tree(128, 256, 2, 2),
        tree(256, 512, 1, 2),
    ]
    return Pooled(nn.Sequential(*layers), 512, num_classes)


def dla(num_classes: int = 10) -> Pooled:
    """Deep Layer Aggregation for 32x32 images."""
    return _dla(Tree, num_classes)


def simple_dla(num_classes: int = 10) -> Pooled:
    """The simplified, binary-tree Deep Layer Aggregation."""
    return _dla(BinaryTree, num_classes)
