"""PJ2 part 1: the ECE 661 SimpleNN, copied as it is (a public model, not one of my own)."""

import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, kernel_size=5), nn.Identity(), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, kernel_size=3), nn.Identity(), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )  # fmt: skip
        self.classifier = nn.Sequential(
            nn.Linear(16 * 6 * 6, 120), nn.ReLU(inplace=True),
            nn.Linear(120, 84), nn.ReLU(inplace=True),
            nn.Linear(84, 10),
        )  # fmt: skip

    def forward(self, x):
        return self.classifier(torch.flatten(self.features((x - 0.5) / 0.25), 1))
