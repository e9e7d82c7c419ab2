"""VGG for 32x32 images, the model of the batch-norm experiments.

Configuration "A" of Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale
Image Recognition" (ICLR 2015): eight 3x3 convolutions in five stages. On 32x32 inputs the five
max-pools leave a 1x1 map, so the classifier is the small 512 -> 512 -> 512 -> num_classes head
used by Santurkar et al., "How Does Batch Normalization Help Optimization?" (NeurIPS 2018).

``VGG_A`` and ``VGG_BatchNorm`` are the class names the course hands to students.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

# Channels of each 3x3 convolution, "M" for a 2x2 max-pool (Simonyan & Zisserman, table 1, A).
CFG_A: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")

# Configuration "D" (VGG-16): thirteen 3x3 convolutions in five stages (table 1, D).
CFG_D: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip

NormLayer = Callable[[int], nn.Module]


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


class VGG(nn.Module):
    """A VGG network: ``features`` (conv [+ norm] + ReLU, max-pools) then a 3-layer classifier.

    Args:
        cfg: channels per convolution, ``"M"`` for a max-pool.
        num_classes: outputs of the last linear layer.
        batch_norm: put ``BatchNorm2d`` after every convolution (unless ``norm_layer`` is given).
        norm_layer: a factory ``channels -> nn.Module`` placed after every convolution.
        width: multiplier on every channel and hidden width (1.0 = the published network); smaller
            widths keep CPU runs of the experiments short.
        in_channels: channels of the input image.
        image_size: side of the square input image.
    """

    def __init__(
        self,
        cfg: Sequence[int | str] = CFG_A,
        num_classes: int = 10,
        *,
        batch_norm: bool = False,
        norm_layer: NormLayer | None = None,
        width: float = 1.0,
        in_channels: int = 3,
        image_size: int = 32,
    ) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        if norm_layer is None and batch_norm:
            norm_layer = nn.BatchNorm2d
        layers: list[nn.Module] = []
        channels, side = in_channels, image_size
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                side //= 2
                continue
            if not isinstance(item, int):
                raise ValueError(f"cfg entries must be ints or 'M', got {item!r}")
            out = _scaled(item, width)
            layers.append(nn.Conv2d(channels, out, kernel_size=3, padding=1))
            if norm_layer is not None:
                layers.append(norm_layer(out))
            layers.append(nn.ReLU(inplace=True))
            channels = out
        if side < 1:
            raise ValueError(f"image_size {image_size} is too small for {cfg.count('M')} pools")
        self.features = nn.Sequential(*layers)
        hidden = _scaled(512, width)
        self.classifier = nn.Sequential(
            nn.Linear(channels * side * side, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # Kaiming-normal convolutions (He et al., ICCV 2015) keep the signal of the plain
        # network alive through eight layers; linears keep PyTorch's default. torchvision's
        # N(0, 0.01) linears leave the narrow plain VGG-A stuck at chance loss.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape (N, num_classes) for images of shape (N, C, H, W)."""
        return self.classifier(self.features(x).flatten(1))


def vgg_a(batch_norm: bool = False, num_classes: int = 10, width: float = 1.0) -> VGG:
    """VGG-A for 32x32 images; ``batch_norm=True`` gives the VGG-A-BN of the BN experiments."""
    return VGG(CFG_A, num_classes, batch_norm=batch_norm, width=width)


def vgg16(batch_norm: bool = False, num_classes: int = 10, width: float = 1.0) -> VGG:
    """VGG-16 adapted to 32x32 images (the 512 -> 512 -> 512 head on the 1x1 map), as ENSTA
    ROB313 TP4 adapts it: 15,245,130 parameters without BatchNorm."""
    return VGG(CFG_D, num_classes, batch_norm=batch_norm, width=width)


class VGG_A(VGG):  # noqa: N801 - the class name the course hands out
    """VGG-A without normalisation (9,750,922 parameters at width 1)."""

    def __init__(self, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__(CFG_A, num_classes, batch_norm=False, width=width)


class VGG_BatchNorm(VGG):  # noqa: N801 - the class name the course hands out
    """VGG-A with BatchNorm2d after every convolution (9,756,426 parameters at width 1)."""

    def __init__(self, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__(CFG_A, num_classes, batch_norm=True, width=width)
