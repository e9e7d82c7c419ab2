"""Public CIFAR-10 models that students copy, re-implemented from their published architectures.

Students of CIFAR-10 courses start from a few public model collections: kuangliu's
``pytorch-cifar`` (VGG, ResNet, PreActResNet, GoogLeNet, DenseNet, MobileNet, MobileNetV2,
ShuffleNetV2, EfficientNet-B0, RegNet, DLA, ResNeXt, SENet, LeNet) and Yerlan Idelbayev's
``pytorch_resnet_cifar10`` (the CIFAR ResNets of He et al. 2016, sec. 4.2). The grader
recognises an unmodified copy by the shapes of its parameters, so each model here has exactly
the parameter shapes of the published one (its CIFAR adaptations included: a 3x3 stride-1 stem,
no max pool, a 4x4 final pooling); the code is our own. torchvision's models are compared
separately.

The models reach the grader through the ``grader.public_models`` entry point
(:func:`public_models`); the grader never imports this package by name.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

KUANGLIU = "pytorch-cifar"
IDELBAYEV = "pytorch_resnet_cifar10"

# public name -> ("module:factory", keyword arguments)
ZOO: dict[str, tuple[str, dict[str, Any]]] = {
    f"{KUANGLIU} LeNet": ("plain:lenet", {}),
    **{f"{KUANGLIU} VGG{d}": ("plain:vgg", {"depth": d}) for d in (11, 13, 16, 19)},
    **{f"{KUANGLIU} ResNet{d}": ("resnets:resnet", {"depth": d}) for d in (18, 34, 50, 101, 152)},
    **{
        f"{KUANGLIU} PreActResNet{d}": ("resnets:preact_resnet", {"depth": d})
        for d in (18, 34, 50, 101, 152)
    },
    f"{KUANGLIU} SENet18": ("resnets:senet18", {}),
    **{
        f"{KUANGLIU} ResNeXt29_{c}x{w}d": ("resnets:resnext29", {"cardinality": c, "width": w})
        for c, w in ((2, 64), (4, 64), (8, 64), (32, 4))
    },
    **{
        f"{KUANGLIU} {n}": ("resnets:regnet", {"name": n})
        for n in ("RegNetX_200MF", "RegNetX_400MF", "RegNetY_400MF")
    },  # fmt: skip
    f"{KUANGLIU} MobileNet": ("mobile:mobilenet", {}),
    f"{KUANGLIU} MobileNetV2": ("mobile:mobilenet_v2", {}),
    **{
        f"{KUANGLIU} ShuffleNetV2({s})": ("mobile:shufflenet_v2", {"size": s})
        for s in (0.5, 1, 1.5, 2)
    },  # fmt: skip
    f"{KUANGLIU} EfficientNetB0": ("mobile:efficientnet_b0", {}),
    f"{KUANGLIU} GoogLeNet": ("branches:googlenet", {}),
    **{
        f"{KUANGLIU} DenseNet{d}": ("branches:densenet", {"depth": d}) for d in (121, 161, 169, 201)
    },
    f"{KUANGLIU} densenet_cifar": ("branches:densenet", {"depth": 121, "growth": 12}),
    f"{KUANGLIU} DLA": ("branches:dla", {}),
    f"{KUANGLIU} SimpleDLA": ("branches:simple_dla", {}),
    **{
        f"{IDELBAYEV} resnet{d}": ("resnets:cifar_resnet", {"depth": d})
        for d in (20, 32, 44, 56, 110, 1202)
    },  # fmt: skip
}


def build(name: str, **kwargs: Any) -> nn.Module:
    """Build the public model ``name`` (a key of :data:`ZOO`)."""
    if name not in ZOO:
        raise ValueError(f"unknown public model {name!r}: use one of {', '.join(ZOO)}")
    target, fixed = ZOO[name]
    module_name, factory = target.split(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    return getattr(module, factory)(**{**fixed, **kwargs})


def public_models() -> dict[str, tuple[Callable[[], nn.Module], str]]:
    """Every public model as (builder, data set): the ``grader.public_models`` entry point."""
    return {name: (functools.partial(build, name), "cifar10") for name in ZOO}
