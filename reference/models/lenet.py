"""LeNet-5 for MNIST (LeCun et al. 1998, "Gradient-based learning applied to document recognition").

The modern reading of the original: ReLU and max pooling instead of scaled tanh and trainable
subsampling, a full C3 connection table and a plain linear output instead of RBF units.
"""

from __future__ import annotations

import torch
from torch import nn

from reference.models.layers import make_activation


class LeNet5(nn.Module):
    """conv 5x5x6 (padding 2) -> pool -> conv 5x5x16 -> pool -> fc 120 -> fc 84 -> fc classes."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, activation: str = "relu"):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2),  # C1: 28 -> 28 (paper: 32 -> 28)
            make_activation(activation),
            nn.MaxPool2d(2),  # S2: 28 -> 14
            nn.Conv2d(6, 16, kernel_size=5),  # C3: 14 -> 10
            make_activation(activation),
            nn.MaxPool2d(2),  # S4: 10 -> 5
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),  # C5
            make_activation(activation),
            nn.Linear(120, 84),  # F6
            make_activation(activation),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def lenet5(num_classes: int = 10, activation: str = "relu") -> LeNet5:
    """LeNet-5 for 1x28x28 MNIST digits (61,706 parameters)."""
    return LeNet5(num_classes, activation=activation)
