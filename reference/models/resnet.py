"""ResNets for CIFAR-10.

``resnet20/32/44/56``: He et al. 2016, "Deep residual learning for image recognition", sec. 4.2:
a 3x3 stem with 16 filters, three stages of n basic blocks at 16/32/64 filters (6n + 2 layers),
global average pooling and one linear layer. Shortcuts are option A (sec. 3.3): identity, and where
the shape changes, stride-2 subsampling with zero-padded channels, so they add no parameters.

``resnet18_cifar``: the ImageNet ResNet-18 layout (four stages of two basic blocks, projection
shortcuts, option B) with a 3x3 stride-1 stem and no max pool, as commonly used for 32x32 inputs;
width and activation are configurable for the course's activation-function experiments.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from reference.models.layers import conv1x1, conv3x3, make_activation

NormLayer = Callable[[int], nn.Module]


class PadShortcut(nn.Module):
    """Option A shortcut: subsample by ``stride`` and zero-pad the new channels."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra = planes - in_planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        half = self.extra // 2
        return F.pad(x, (0, 0, 0, 0, half, self.extra - half))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (He et al. 2016, fig. 2)."""

    expansion: int = 1

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        shortcut: str = "A",
        norm_layer: NormLayer = nn.BatchNorm2d,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.act1 = make_activation(activation)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.act2 = make_activation(activation)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            if shortcut == "A":
                self.shortcut = PadShortcut(in_planes, planes, stride)
            else:
                self.shortcut = nn.Sequential(
                    conv1x1(in_planes, planes, stride), norm_layer(planes)
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """A ResNet of basic blocks for 32x32 images: 3x3 stem, ``len(blocks)`` stages, pool, linear."""

    def __init__(
        self,
        blocks: list[int],
        widths: list[int],
        num_classes: int = 10,
        shortcut: str = "A",
        norm_layer: NormLayer = nn.BatchNorm2d,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if shortcut not in ("A", "B"):
            raise ValueError(f"unknown shortcut option {shortcut!r}: use 'A' or 'B'")
        make_activation(activation)  # fail early with the list of allowed names
        self.conv1 = conv3x3(3, widths[0])
        self.bn1 = norm_layer(widths[0])
        self.act1 = make_activation(activation)
        stages = []
        in_planes = widths[0]
        for index, (count, width) in enumerate(zip(blocks, widths, strict=True)):
            layers = []
            for block_index in range(count):
                stride = 2 if index > 0 and block_index == 0 else 1
                layers.append(
                    BasicBlock(in_planes, width, stride, shortcut, norm_layer, activation)
                )
                in_planes = width
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                # He et al. 2015, "Delving deep into rectifiers"
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.stages(x)
        return self.fc(torch.flatten(self.pool(x), 1))


def _cifar_resnet(depth: int, num_classes: int, **kwargs) -> CifarResNet:
    n = (depth - 2) // 6
    return CifarResNet([n, n, n], [16, 32, 64], num_classes, shortcut="A", **kwargs)


def resnet20(num_classes: int = 10, **kwargs) -> CifarResNet:
    """ResNet-20 (n=3, 0.27M parameters; 8.75% error in He et al. 2016, table 6)."""
    return _cifar_resnet(20, num_classes, **kwargs)


def resnet32(num_classes: int = 10, **kwargs) -> CifarResNet:
    """ResNet-32 (n=5, 0.46M parameters; 7.51% error in He et al. 2016, table 6)."""
    return _cifar_resnet(32, num_classes, **kwargs)


def resnet44(num_classes: int = 10, **kwargs) -> CifarResNet:
    """ResNet-44 (n=7, 0.66M parameters; 7.17% error in He et al. 2016, table 6)."""
    return _cifar_resnet(44, num_classes, **kwargs)


def resnet56(num_classes: int = 10, **kwargs) -> CifarResNet:
    """ResNet-56 (n=9, 0.85M parameters; 6.97% error in He et al. 2016, table 6)."""
    return _cifar_resnet(56, num_classes, **kwargs)


def resnet18_cifar(
    num_classes: int = 10, channels: int = 64, activation: str = "relu"
) -> CifarResNet:
    """ResNet-18-style CIFAR net: stages of 2 blocks at ``channels`` x (1, 2, 4, 8) filters."""
    widths = [channels, 2 * channels, 4 * channels, 8 * channels]
    return CifarResNet([2, 2, 2, 2], widths, num_classes, shortcut="B", activation=activation)
