"""A MobileNetV2-size CIFAR-10 network, written as a student would (Sandler et al. 2018, table 2,
with the CIFAR-10 changes most course code makes: stride 1 in the stem and the first stage).

Inverted residual blocks (1x1 expansion, 3x3 depthwise, 1x1 linear projection) with an identity
skip where shape allows; 2,236,682 parameters, like torchvision's mobilenet_v2 at 10 classes.
"""

import torch
from torch import nn

# (expansion t, output channels c, repeats n, first stride s), as in the paper's table 2
STAGES = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
          (6, 160, 3, 2), (6, 320, 1, 1)]  # fmt: skip


def conv_bn(cin, cout, kernel, stride=1, groups=1, act=True):
    layers = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expansion):
        super().__init__()
        hidden = cin * expansion
        layers = [] if expansion == 1 else [conv_bn(cin, hidden, 1)]
        layers += [
            conv_bn(hidden, hidden, 3, stride, groups=hidden),  # depthwise
            conv_bn(hidden, cout, 1, act=False),  # linear bottleneck
        ]
        self.body = nn.Sequential(*layers)
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        out = self.body(x)
        return x + out if self.skip else out


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        blocks = [conv_bn(3, 32, 3)]
        cin = 32
        for t, c, n, s in STAGES:
            for i in range(n):
                blocks.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        blocks.append(conv_bn(cin, 1280, 1))
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x):
        x = self.features(x)
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.classifier(x)
