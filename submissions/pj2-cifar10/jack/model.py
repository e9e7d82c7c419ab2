"""PJ2 part 1: the required components only (convolution, pooling, activation, linear)."""

from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 5), nn.ReLU(), nn.MaxPool2d(2),  # 32 -> 28 -> 14
            nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),  # 14 -> 10 -> 5
        )  # fmt: skip
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 5 * 5, 64), nn.ReLU(), nn.Linear(64, 10)
        )

    def forward(self, x):
        return self.classifier(self.features((x - 0.5) / 0.25))
