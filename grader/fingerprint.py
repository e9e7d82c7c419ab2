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

TORCHVISION_PARAMS: dict[str, int] = {
    "alexnet": 57_044_810, "vgg11": 128_807_306, "vgg11_bn": 128_812_810, "vgg13": 128_991_818,
    "vgg13_bn": 128_997_706, "vgg16": 134_301_514, "vgg16_bn": 134_309_962,
    "vgg19_bn": 139_622_218, "resnet18": 11_181_642, "resnet34": 21_289_802,
    "resnet50": 23_528_522, "densenet121": 6_964_106, "squeezenet1_0": 740_554,
    "squeezenet1_1": 727_626, "mobilenet_v2": 2_236_682, "mobilenet_v3_small": 1_528_106,
    "shufflenet_v2_x1_0": 1_263_854, "efficientnet_b0": 4_020_358, "googlenet": 5_610_154,
}  # fmt: skip
"""torchvision models compared against, with their parameter counts at ``num_classes=10``.

Importing torchvision costs seconds in every sandbox, so it is imported only when a submission
has one of these counts; the fingerprint itself is then compared for real."""
TORCHVISION_MODELS: tuple[str, ...] = tuple(TORCHVISION_PARAMS)
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


def _torchvision_builders(
    num_classes: int, total_params: int | None
) -> dict[str, Callable[[], nn.Module]]:
    names = TORCHVISION_MODELS
    if num_classes == 10 and total_params is not None:
        names = tuple(n for n in names if TORCHVISION_PARAMS[n] == total_params)
    if not names:
        return {}
    import torchvision.models as tvm

    builders = {}
    for name in names:
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
def known_fingerprints(num_classes: int = 10, total_params: int | None = None) -> dict[str, str]:
    """Fingerprint -> model name for torchvision's zoo and the reference models.

    With ``total_params``, torchvision models of another size are left out (they cannot match).
    """
    known: dict[str, str] = {}
    builders = {**_torchvision_builders(num_classes, total_params), **_reference_builders()}
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
    total = sum(p.numel() for p in model.parameters())
    return known_fingerprints(num_classes, total).get(fingerprint(model))
