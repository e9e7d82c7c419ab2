"""Mobile networks of pytorch-cifar, with its CIFAR-10 adaptations (stride-1 stems).

- ``mobilenet``: Howard et al. 2017, depthwise-separable blocks (3x3 depthwise + 1x1
  pointwise, each with BN and ReLU) from 32 to 1024 channels.
- ``mobilenet_v2``: Sandler et al. 2018, inverted residual blocks (1x1 expand, 3x3 depthwise,
  linear 1x1 project); the first stride-2 stage and the stem stride become 1 for 32x32 images,
  and a stride-1 block whose width changes gets a 1x1 projection shortcut.
- ``shufflenet_v2``: Ma et al. 2018, channel split, a branch of 1x1 / 3x3 depthwise / 1x1 and a
  channel shuffle; down-sampling units of two branches; no max pool after the stem.
- ``efficientnet_b0``: Tan & Le 2019, MBConv blocks with squeeze-and-excitation (a quarter of
  the block's input width) and Swish; stride 1 for the stem and the first stage.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reference.models.zoo.layers import Pooled, conv_bn

MOBILENET = (64, (128, 2), 128, (256, 2), 256, (512, 2), 512, 512, 512, 512, 512, (1024, 2), 1024)
"""Pointwise widths; (width, 2) down-samples in its depthwise convolution."""
MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip
"""(expansion, width, blocks, stride of the first block) per stage."""
SHUFFLENET_V2: dict[float, tuple[int, int, int, int]] = {
    0.5: (48, 96, 192, 1024),
    1: (116, 232, 464, 1024),
    1.5: (176, 352, 704, 1024),
    2: (224, 488, 976, 2048),
}
"""Stage widths and the final 1x1 width per size; the stages hold 3, 7 and 3 basic units."""
EFFICIENTNET_B0 = ((1, 16, 1, 3, 1), (6, 24, 2, 3, 2), (6, 40, 2, 5, 2), (6, 80, 3, 3, 2),
                   (6, 112, 3, 5, 1), (6, 192, 4, 5, 2), (6, 320, 1, 3, 1))  # fmt: skip
"""(expansion, width, blocks, kernel, stride of the first block) per stage."""


def mobilenet(num_classes: int = 10) -> Pooled:
    """MobileNet (v1) for 32x32 images: 3,217,226 parameters."""
    layers: list[nn.Module] = [conv_bn(3, 32, 3), nn.ReLU()]
    channels = 32
    for entry in MOBILENET:
        width, stride = entry if isinstance(entry, tuple) else (entry, 1)
        layers += [conv_bn(channels, channels, 3, stride, groups=channels), nn.ReLU(),
                   conv_bn(channels, width), nn.ReLU()]  # fmt: skip
        channels = width
    return Pooled(nn.Sequential(*layers), channels, num_classes)


class InvertedResidual(nn.Module):
    """1x1 expand -> 3x3 depthwise -> 1x1 project; at stride 1 the input is added back (through
    a 1x1 projection when the width changes)."""

    def __init__(self, in_planes: int, planes: int, expansion: int, stride: int) -> None:
        super().__init__()
        hidden = expansion * in_planes
        self.body = nn.Sequential(
            conv_bn(in_planes, hidden), nn.ReLU(),
            conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.ReLU(),
            conv_bn(hidden, planes),
        )  # fmt: skip
        self.stride = stride
        self.shortcut: nn.Module = nn.Identity()
        if stride == 1 and in_planes != planes:
            self.shortcut = conv_bn(in_planes, planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out + self.shortcut(x) if self.stride == 1 else out


def mobilenet_v2(num_classes: int = 10) -> Pooled:
    """MobileNetV2 as pytorch-cifar adapts it to 32x32 images: 2,296,922 parameters."""
    layers: list[nn.Module] = [conv_bn(3, 32, 3), nn.ReLU()]
    channels = 32
    for expansion, width, count, stride in MOBILENET_V2:
        for b in range(count):
            layers.append(InvertedResidual(channels, width, expansion, stride if not b else 1))
            channels = width
    layers += [conv_bn(channels, 1280), nn.ReLU()]
    return Pooled(nn.Sequential(*layers), 1280, num_classes)


def _shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    """Half the channels pass; the other half go through 1x1 -> 3x3 depthwise -> 1x1."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.branch = nn.Sequential(
            conv_bn(half, half), nn.ReLU(), conv_bn(half, half, 3, groups=half),
            conv_bn(half, half), nn.ReLU(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = x.shape[1] // 2
        return _shuffle(torch.cat([x[:, :half], self.branch(x[:, half:])], 1))


class ShuffleDown(nn.Module):
    """Two stride-2 branches, each producing half of ``planes`` channels."""

    def __init__(self, in_planes: int, planes: int) -> None:
        super().__init__()
        half = planes // 2
        self.left = nn.Sequential(
            conv_bn(in_planes, in_planes, 3, 2, groups=in_planes), conv_bn(in_planes, half),
            nn.ReLU(),
        )  # fmt: skip
        self.right = nn.Sequential(
            conv_bn(in_planes, half), nn.ReLU(), conv_bn(half, half, 3, 2, groups=half),
            conv_bn(half, half), nn.ReLU(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _shuffle(torch.cat([self.left(x), self.right(x)], 1))


def shufflenet_v2(size: float = 1, num_classes: int = 10) -> Pooled:
    """ShuffleNetV2 at width ``size`` (0.5, 1, 1.5 or 2) for 32x32 images."""
    *widths, final = SHUFFLENET_V2[size]
    layers: list[nn.Module] = [conv_bn(3, 24, 3), nn.ReLU()]
    channels = 24
    for width, count in zip(widths, (3, 7, 3), strict=True):
        layers.append(ShuffleDown(channels, width))
        layers += [ShuffleUnit(width) for _ in range(count)]
        channels = width
    layers += [conv_bn(channels, final), nn.ReLU()]
    return Pooled(nn.Sequential(*layers), final, num_classes)


class MBConv(nn.Module):
    """(1x1 expand) -> kxk depthwise -> squeeze-excite -> 1x1 project, Swish; the input is
    added back when the shape is kept."""

    def __init__(
        self, in_planes: int, planes: int, expansion: int, kernel: int, stride: int
    ) -> None:
        super().__init__()
        hidden = expansion * in_planes
        self.expand = conv_bn(in_planes, hidden) if expansion != 1 else None
        self.depthwise = conv_bn(hidden, hidden, kernel, stride, groups=hidden)
        reduced = int(in_planes * 0.25)
        self.reduce = nn.Conv2d(hidden, reduced, 1)
        self.restore = nn.Conv2d(reduced, hidden, 1)
        self.project = conv_bn(hidden, planes)
        self.skip = stride == 1 and in_planes == planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.silu(self.expand(x)) if self.expand is not None else x
        out = F.silu(self.depthwise(out))
        gate = torch.sigmoid(self.restore(F.silu(self.reduce(F.adaptive_avg_pool2d(out, 1)))))
        out = self.project(out * gate)
        return out + x if self.skip else out


def efficientnet_b0(num_classes: int = 10) -> Pooled:
    """EfficientNet-B0 for 32x32 images (dropout and drop-connect act in training only)."""
    layers: list[nn.Module] = [conv_bn(3, 32, 3), nn.SiLU()]
    channels = 32
    for expansion, width, count, kernel, stride in EFFICIENTNET_B0:
        for b in range(count):
            layers.append(MBConv(channels, width, expansion, kernel, stride if not b else 1))
            channels = width
    return Pooled(nn.Sequential(*layers), channels, num_classes)
