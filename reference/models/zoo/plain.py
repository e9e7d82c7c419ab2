"""Plain stacks: LeNet for 3-channel 32x32 images, and VGG with BatchNorm (pytorch-cifar).

LeNet after LeCun et al. 1998 on CIFAR-10: two 5x5 convolutions without padding (32 -> 28 ->
pool 14 -> 10 -> pool 5), then 400 -> 120 -> 84 -> classes. VGG after Simonyan & Zisserman 2015
(configurations A, B, D, E: 11, 13, 16, 19 weight layers) with a BatchNorm after every 3x3
convolution and, for 32x32 inputs, a single linear layer on the 512 features left after five
poolings.
"""

from __future__ import annotations

import torch
from torch import nn

VGG_STAGES: dict[int, tuple[int, ...]] = {
    11: (1, 1, 2, 2, 2),
    13: (2, 2, 2, 2, 2),
    16: (2, 2, 3, 3, 3),
    19: (2, 2, 4, 4, 4),
}
"""Convolutions per stage; the stages have 64, 128, 256, 512, 512 filters, each ends in a pool."""
VGG_WIDTHS = (64, 128, 256, 512, 512)


class LeNet(nn.Module):
    """conv 5x5x6 -> pool -> conv 5x5x16 -> pool -> fc 120 -> fc 84 -> fc classes, ReLU."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, kernel_size=5)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc3(torch.relu(self.fc2(x)))


class VGG(nn.Module):
    """VGG with BatchNorm: ``stages`` convolutions per stage, then one linear layer."""

    def __init__(self, stages: tuple[int, ...], num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for count, width in zip(stages, VGG_WIDTHS, strict=True):
            for _ in range(count):
                layers += [
                    nn.Conv2d(channels, width, kernel_size=3, padding=1),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                channels = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def lenet(num_classes: int = 10) -> LeNet:
    """LeNet for CIFAR-10 (62,006 parameters)."""
    return LeNet(num_classes)


def vgg(depth: int = 16, num_classes: int = 10) -> VGG:
    """VGG-11/13/16/19 with BatchNorm for 32x32 images (VGG-16: 14,728,266 parameters)."""
    return VGG(VGG_STAGES[depth], num_classes)
