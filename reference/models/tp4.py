"""``MyConvolutionalNetwork`` of ENSTA ROB313 TP4, with the layers the ablation switches.

The handout fixes the stem (a 3x3 convolution 3 -> 16 with padding 1, ReLU, 2x2 max-pool) and the
head (a fully connected layer to 64 units, ReLU, 64 -> 10) and leaves the layers between to the
student. Here they are a second 3x3 convolution 16 -> 32 with ReLU and 2x2 max-pool, and the three
switches the TP studies: ``dropout`` before each fully connected layer, ``pooling`` (without it
both max-pools go and the head sees the full 32x32 map), ``batch_norm`` after each convolution.
"""

from __future__ import annotations

import torch
from torch import nn


class MyConvolutionalNetwork(nn.Module):
    """conv 3->16 [BN] ReLU [pool] -> conv 16->32 [BN] ReLU [pool] -> [dropout] fc 64 -> fc 10."""

    def __init__(
        self,
        num_classes: int = 10,
        *,
        dropout: float = 0.0,
        pooling: bool = True,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        channels = 3
        for width in (16, 32):
            # a BatchNorm's shift makes the convolution's bias redundant (Ioffe & Szegedy 2015)
            layers.append(nn.Conv2d(channels, width, kernel_size=3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
            if pooling:
                layers.append(nn.MaxPool2d(2))
            channels = width
        self.features = nn.Sequential(*layers)
        side = 8 if pooling else 32
        head: list[nn.Module] = []
        if dropout:
            head.append(nn.Dropout(dropout))
        head += [nn.Linear(32 * side * side, 64), nn.ReLU(inplace=True)]
        if dropout:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(64, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def tp4_net(
    num_classes: int = 10, dropout: float = 0.0, pooling: bool = True, batch_norm: bool = False
) -> MyConvolutionalNetwork:
    """TP4's network (136,874 parameters with pooling, no BatchNorm)."""
    return MyConvolutionalNetwork(
        num_classes, dropout=dropout, pooling=pooling, batch_norm=batch_norm
    )
