"""SimpleNN, the first CIFAR-10 model of the ECE 661 labs, and its BatchNorm and Swish variants.

conv 5x5x8 -> maxpool 2 -> conv 3x3x16 -> maxpool 2 -> fc 120 -> fc 84 -> fc 10, no padding,
ReLU after every layer but the last: 82,030 parameters for 3x32x32 inputs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from reference.models.layers import make_activation


class SimpleNN(nn.Module):
    """The lab's LeNet-like CIFAR-10 network; ``norm_layer`` adds a norm after each conv."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        norm_layer: Callable[[int], nn.Module] | None = None,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        use_norm = norm_layer is not None
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 8, kernel_size=5, bias=not use_norm),  # 32 -> 28
            norm_layer(8) if use_norm else nn.Identity(),
            make_activation(activation),
            nn.MaxPool2d(2),  # 28 -> 14
            nn.Conv2d(8, 16, kernel_size=3, bias=not use_norm),  # 14 -> 12
            norm_layer(16) if use_norm else nn.Identity(),
            make_activation(activation),
            nn.MaxPool2d(2),  # 12 -> 6
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * 6 * 6, 120),
            make_activation(activation),
            nn.Linear(120, 84),
            make_activation(activation),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def simplenn(num_classes: int = 10) -> SimpleNN:
    """SimpleNN exactly as the lab specifies it (82,030 parameters)."""
    return SimpleNN(num_classes)


def simplenn_bn(num_classes: int = 10) -> SimpleNN:
    """SimpleNN with BatchNorm after each conv (Ioffe & Szegedy 2015); conv biases dropped."""
    return SimpleNN(num_classes, norm_layer=nn.BatchNorm2d)


def simplenn_swish(num_classes: int = 10) -> SimpleNN:
    """SimpleNN with Swish activations (Ramachandran et al. 2017) instead of ReLU."""
    return SimpleNN(num_classes, activation="swish")
