"""Architecture fingerprints: spot unmodified public models among student submissions.

A fingerprint hashes the sorted shapes of a model's parameters, so renaming attributes or
reordering the class body does not hide a copied architecture. A submission's fingerprint comes
from the verified graph (only the parameters the logits depend on); the candidates are
torchvision's classification models built with the assignment's class count and the registered
reference models and the public models students copy (:func:`candidates`), all built
on the ``meta`` device.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable

from grader.models.registry import build_on_meta, public_models, registered_models

TORCHVISION_PARAMS: dict[str, int] = {
    "alexnet": 57_044_810, "vgg11": 128_807_306, "vgg11_bn": 128_812_810, "vgg13": 128_991_818,
    "vgg13_bn": 128_997_706, "vgg16": 134_301_514, "vgg16_bn": 134_309_962,
    "vgg19_bn": 139_622_218, "resnet18": 11_181_642, "resnet34": 21_289_802,
    "resnet50": 23_528_522, "densenet121": 6_964_106, "squeezenet1_0": 740_554,
    "squeezenet1_1": 727_626, "mobilenet_v2": 2_236_682, "mobilenet_v3_small": 1_528_106,
    "shufflenet_v2_x1_0": 1_263_854, "efficientnet_b0": 4_020_358, "googlenet": 5_610_154,
}  # fmt: skip
"""torchvision models compared against, with their parameter counts at ``num_classes=10``:
torchvision is imported only for a submission with one of these counts."""
EXTRA_KWARGS: dict[str, dict[str, object]] = {
    "googlenet": {"aux_logits": False, "init_weights": False},
}


def fingerprint(shapes: Iterable[Iterable[int]]) -> str:
    """Hex SHA-256 of the sorted parameter shapes."""
    lines = sorted("x".join(str(d) for d in shape) for shape in shapes)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def model_fingerprint(model) -> str:
    """The fingerprint of an ``nn.Module`` (its parameters)."""
    return fingerprint(tuple(p.shape) for p in model.parameters())


@functools.cache
def known_fingerprints(num_classes: int, total_params: int) -> dict[str, str]:
    """Fingerprint -> name of every candidate model with ``total_params`` parameters."""
    known: dict[str, str] = {}
    for name, shapes in candidates():
        if sum(_numel(s) for s in shapes) == total_params:
            known.setdefault(fingerprint(shapes), name)
    names = [n for n, count in TORCHVISION_PARAMS.items() if count == total_params]
    if num_classes != 10:
        names = list(TORCHVISION_PARAMS)
    if names:
        import torchvision.models as tvm

        for name in names:
            factory = getattr(tvm, name, None)
            if factory is None:
                continue
            kwargs = {"weights": None, "num_classes": num_classes, **EXTRA_KWARGS.get(name, {})}
            try:
                model = build_on_meta(lambda f=factory, k=kwargs: f(**k))
            except (TypeError, RuntimeError, NotImplementedError):
                continue  # a zoo entry this torchvision version cannot build
            known.setdefault(model_fingerprint(model), f"torchvision {name}")
    return known


@functools.cache
def candidates() -> tuple[tuple[str, tuple[tuple[int, ...], ...]], ...]:
    """(name, parameter shapes) of the registered reference models (``reference resnet20``)
    and of the public models students copy (``pytorch-cifar MobileNetV2``, through the
    ``grader.public_models`` entry point), each built once per process on the ``meta``
    device; reference models first."""
    found = []
    for prefix, models in (("reference ", registered_models()), ("", public_models())):
        for entry in models.values():
            try:
                model = build_on_meta(entry.build)
            except (TypeError, RuntimeError, ValueError, NotImplementedError):
                continue
            found.append((prefix + entry.name, tuple(tuple(p.shape) for p in model.parameters())))
    return tuple(found)


def match_public_model(shapes: list[tuple[int, ...]], *, num_classes: int = 10) -> str | None:
    """The name of the known model whose parameter shapes are exactly ``shapes``, or None."""
    total = sum(_numel(s) for s in shapes)
    return known_fingerprints(num_classes, total).get(fingerprint(shapes))


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count
