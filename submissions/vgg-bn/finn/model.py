"""VGG-A with batch normalisation for CIFAR-10 (one BatchNorm forgotten in stage 3)."""

from torch import nn


def conv_bn(cin, cout):
    return [nn.Conv2d(cin, cout, kernel_size=3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(True)]


class VGG_BatchNorm(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stage1 = nn.Sequential(*conv_bn(3, 64), nn.MaxPool2d(2))
        self.stage2 = nn.Sequential(*conv_bn(64, 128), nn.MaxPool2d(2))
        self.stage3 = nn.Sequential(
            *conv_bn(128, 256), nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(2)
        )
        self.stage4 = nn.Sequential(*conv_bn(256, 512), *conv_bn(512, 512), nn.MaxPool2d(2))
        self.stage5 = nn.Sequential(*conv_bn(512, 512), *conv_bn(512, 512), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(
            nn.Linear(512, 512),
            nn.ReLU(True),
            nn.Linear(512, 512),
            nn.ReLU(True),
            nn.Linear(512, num_classes),
        )

    def forward(self, x):
        x = self.stage5(self.stage4(self.stage3(self.stage2(self.stage1(x)))))
        return self.classifier(x.flatten(1))
