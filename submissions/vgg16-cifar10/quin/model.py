"""TP4: VGG-16 for 32x32 images with BatchNorm after every convolution."""

from torch import nn

CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGG16(nn.Module):
    def __init__(self, batch_norm=True):
        super().__init__()
        layers, channels = [], 3
        for item in CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            layers.append(nn.Conv2d(channels, item, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(item))
            layers.append(nn.ReLU(inplace=True))
            channels = item
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(512, 512), nn.ReLU(inplace=True),
            nn.Linear(512, 512), nn.ReLU(inplace=True),
            nn.Linear(512, 10),
        )  # fmt: skip

    def forward(self, x):
        return self.classifier(self.features((x - 0.5) / 0.25).flatten(1))
