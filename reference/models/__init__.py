"""Registry of the reference models: ``get_model("resnet20")`` builds one by name.

Modules are imported only when their model is built, so the registry itself is cheap to import.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

# model name -> "module:factory"
MODELS: dict[str, str] = {
    "simplenn": "reference.models.simplenn:simplenn",
    "simplenn_bn": "reference.models.simplenn:simplenn_bn",
    "simplenn_swish": "reference.models.simplenn:simplenn_swish",
    "resnet20": "reference.models.resnet:resnet20",
    "resnet32": "reference.models.resnet:resnet32",
    "resnet44": "reference.models.resnet:resnet44",
    "resnet56": "reference.models.resnet:resnet56",
    "resnet18_cifar": "reference.models.resnet:resnet18_cifar",
    "alexnet_cifar": "reference.models.alexnet:alexnet_cifar",
    "lenet5": "reference.models.lenet:lenet5",
    "vgg_a": "reference.models.vgg:vgg_a",
    "vgg_a_bn": "reference.models.vgg:vgg_a",
    "vgg16_cifar": "reference.models.vgg:vgg16",
    "tp4_net": "reference.models.tp4:tp4_net",
}

# keyword arguments a registry name fixes for its factory
MODEL_KWARGS: dict[str, dict[str, Any]] = {
    "vgg_a": {"batch_norm": False},
    "vgg_a_bn": {"batch_norm": True},
}

# data set each model is built for; every model not listed here takes CIFAR-10
MODEL_DATASETS: dict[str, str] = {"lenet5": "mnist"}


def dataset_for(name: str) -> str:
    """The data set (``cifar10`` or ``mnist``) the model ``name`` is trained and evaluated on."""
    _check_name(name)
    return MODEL_DATASETS.get(name, "cifar10")


def get_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name``; ``kwargs`` go to its factory function."""
    _check_name(name)
    module_name, factory_name = MODELS[name].split(":")
    factory = getattr(importlib.import_module(module_name), factory_name)
    return factory(**{**MODEL_KWARGS.get(name, {}), **kwargs})


def grader_models() -> dict[str, tuple[Callable[[], nn.Module], str]]:
    """Every registered model as (builder, data set), for the grader's model registry.

    Published as the ``grader.models`` entry point: the grader finds the reference models
    (public-model fingerprints, layer hints) without importing this package by name.
    """
    return {name: (functools.partial(get_model, name), dataset_for(name)) for name in MODELS}


def _check_name(name: str) -> None:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: use one of {', '.join(sorted(MODELS))}")
