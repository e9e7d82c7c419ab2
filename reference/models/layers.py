"""Building blocks shared by the reference models: convolution helpers and named activations."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

# name -> activation module class; Swish (Ramachandran et al. 2017, "Searching for Activation
# Functions") is x * sigmoid(x), which PyTorch ships as SiLU.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "elu": lambda: nn.ELU(inplace=True),
    "leakyrelu": lambda: nn.LeakyReLU(0.01, inplace=True),
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "swish": nn.SiLU,
}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module for ``name`` (one of ``ACTIVATIONS``)."""
    try:
        return ACTIVATIONS[name.lower()]()
    except KeyError:
        allowed = ", ".join(sorted(ACTIVATIONS))
        raise ValueError(f"unknown activation {name!r}: use one of {allowed}") from None


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a norm layer follows it)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias, used by projection shortcuts."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)
