"""Architecture fingerprints: spot unmodified public models among student submissions.

A fingerprint hashes the sequence of leaf layers (type and parameter/buffer shapes). Candidates
are torchvision's classification models built with ``num_classes=10`` and the reference models,
all constructed on the ``meta`` device: no weights, no download, no memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import cache

import torch
from torch import nn

TORCHVISION_MODELS: tuple[str, ...] = (
    "alexnet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19_bn",
    "resnet18", "resnet34", "resnet50", "densenet121", "squeezenet1_0", "squeezenet1_1",
    "mobilenet_v2", "mobilenet_v3_small", "shufflenet_v2_x1_0", "efficientnet_b0", "googlenet",
)  # fmt: skip
EXTRA_KWARGS: dict[str, dict[str, object]] = {
    "googlenet": {"aux_logits": False, "init_weights": False},
}


def layer_signature(model: nn.Module) -> list[str]:
    """One entry per module owning parameters or buffers: its type and their shapes.

    Parameter-free layers (activations, pooling) are left out, so ``F.relu`` and ``nn.ReLU``
    give the same fingerprint.
    """
    entries = []
    for module in model.modules():
        tensors = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
        if not tensors:
            continue
        shapes = ",".join(f"{n}={tuple(t.shape)}" for n, t in tensors if t is not None)
        entries.append(f"{type(module).__name__}[{shapes}]")
    return entries


def fingerprint(model: nn.Module) -> str:
    """Hex SHA-256 of :func:`layer_signature`."""
    return hashlib.sha256("\n".join(layer_signature(model)).encode()).hexdigest()


def _torchvision_builders(num_classes: int) -> dict[str, Callable[[], nn.Module]]:
    import torchvision.models as tvm

    builders = {}
    for name in TORCHVISION_MODELS:
        factory = getattr(tvm, name, None)
        if factory is not None:
            kwargs = {"weights": None, "num_classes": num_classes, **EXTRA_KWARGS.get(name, {})}
            builders[f"torchvision {name}"] = lambda f=factory, k=kwargs: f(**k)
    return builders


def _reference_builders() -> dict[str, Callable[[], nn.Module]]:
    try:
        from reference.models import MODELS, get_model
    except ImportError:
        return {}
    return {f"reference {name}": lambda n=name: get_model(n) for name in MODELS}


@cache
def known_fingerprints(num_classes: int = 10) -> dict[str, str]:
    """Fingerprint -> model name for torchvision's zoo and the reference models."""
    known: dict[str, str] = {}
    builders = {**_torchvision_builders(num_classes), **_reference_builders()}
    for name, build in builders.items():
        try:
            with torch.device("meta"):
                model = build()
        except (TypeError, RuntimeError, NotImplementedError):
            continue  # a zoo entry this torchvision version cannot build is no candidate
        known.setdefault(fingerprint(model), name)
    return known


def match_public_model(model: nn.Module, num_classes: int = 10) -> str | None:
    """The name of the known model with exactly ``model``'s architecture, or None."""
    return known_fingerprints(num_classes).get(fingerprint(model))
