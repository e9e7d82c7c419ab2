"""TP4: MyConvolutionalNetwork with BatchNorm, max-pooling and dropout."""

import torch
from torch import nn


class MyConvolutionalNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.pool = nn.MaxPool2d(2, 2)
        # my layers
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.dropout = nn.Dropout(0.5)
        self.fc1 = nn.Linear(32 * 8 * 8, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = (x - 0.5) / 0.25
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))  # 32 -> 16
        x = self.pool(torch.relu(self.bn2(self.conv2(x))))  # 16 -> 8
        x = self.dropout(x.flatten(1))
        x = self.dropout(torch.relu(self.fc1(x)))
        return self.fc2(x)
