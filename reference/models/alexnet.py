"""An AlexNet-style network for 32x32 CIFAR-10 images.

Krizhevsky et al. 2012 ("ImageNet classification with deep convolutional neural networks"): five
convolutions with three max pools, then three fully connected layers with dropout. The 11x11/4
stem and the 4096-wide classifier are scaled down to 3x3/1 and 1024/512 for 32x32 inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from reference.models.layers import make_activation


class AlexNetCIFAR(nn.Module):
    """5 convolutions (64, 192, 384, 256, 256 channels) and 3 linear layers."""

    def __init__(self, num_classes: int = 10, dropout: float = 0.5, activation: str = "relu"):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=3, padding=1),
            make_activation(activation),
            nn.MaxPool2d(2),  # 32 -> 16
            nn.Conv2d(64, 192, kernel_size=3, padding=1),
            make_activation(activation),
            nn.MaxPool2d(2),  # 16 -> 8
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            make_activation(activation),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            make_activation(activation),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            make_activation(activation),
            nn.MaxPool2d(2),  # 8 -> 4
        )
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(256 * 4 * 4, 1024),
            make_activation(activation),
            nn.Dropout(dropout),
            nn.Linear(1024, 512),
            make_activation(activation),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def alexnet_cifar(num_classes: int = 10, dropout: float = 0.5) -> AlexNetCIFAR:
    """AlexNet-style CIFAR-10 network (5 conv + 3 FC layers)."""
    return AlexNetCIFAR(num_classes, dropout=dropout)
