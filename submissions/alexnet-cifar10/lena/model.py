"""VU DL assignment 2: an AlexNet-style net (one eighth of the channels), BatchNorm on."""

from torch import nn


def conv_bn(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            *conv_bn(3, 8), nn.MaxPool2d(2),  # 32 -> 16
            *conv_bn(8, 24), nn.MaxPool2d(2),  # 16 -> 8
            *conv_bn(24, 48), *conv_bn(48, 32), *conv_bn(32, 32), nn.MaxPool2d(2),  # 8 -> 4
        )  # fmt: skip
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.5), nn.Linear(32 * 4 * 4, 128), nn.ReLU(),
            nn.Dropout(0.5), nn.Linear(128, 64), nn.ReLU(),
            nn.Linear(64, 10),
        )  # fmt: skip

    def forward(self, x):
        return self.classifier(self.features((x - 0.5) / 0.25))
