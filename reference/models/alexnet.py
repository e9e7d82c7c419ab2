"""An AlexNet-style network for 32x32 CIFAR-10 images.

Krizhevsky et al. 2012 ("ImageNet classification with deep convolutional neural networks"): five
convolutions with three max pools, then three fully connected layers with dropout. The 11x11/4
stem and the 4096-wide classifier are scaled down to 3x3/1 and 1024/512 for 32x32 inputs;
``width`` scales every channel and hidden width (1.0 = this network) for short CPU runs.
"""

from __future__ import annotations

import torch
from torch import nn

from reference.models.layers import make_activation


class AlexNetCIFAR(nn.Module):
    """5 convolutions (64, 192, 384, 256, 256 channels) and 3 linear layers."""

    def __init__(
        self,
        num_classes: int = 10,
        dropout: float = 0.5,
        activation: str = "relu",
        width: float = 1.0,
    ):
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        c1, c2, c3, c4, c5, h1, h2 = (
            max(1, round(c * width)) for c in (64, 192, 384, 256, 256, 1024, 512)
        )
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, kernel_size=3, padding=1),
            make_activation(activation),
            nn.MaxPool2d(2),  # 32 -> 16
            nn.Conv2d(c1, c2, kernel_size=3, padding=1),
            make_activation(activation),
            nn.MaxPool2d(2),  # 16 -> 8
            nn.Conv2d(c2, c3, kernel_size=3, padding=1),
            make_activation(activation),
            nn.Conv2d(c3, c4, kernel_size=3, padding=1),
            make_activation(activation),
            nn.Conv2d(c4, c5, kernel_size=3, padding=1),
            make_activation(activation),
            nn.MaxPool2d(2),  # 8 -> 4
        )
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(c5 * 4 * 4, h1),
            make_activation(activation),
            nn.Dropout(dropout),
            nn.Linear(h1, h2),
            make_activation(activation),
            nn.Linear(h2, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def alexnet_cifar(num_classes: int = 10, dropout: float = 0.5, width: float = 1.0) -> AlexNetCIFAR:
    """AlexNet-style CIFAR-10 network (5 conv + 3 FC layers; 6,976,842 parameters at width 1)."""
    return AlexNetCIFAR(num_classes, dropout=dropout, width=width)
