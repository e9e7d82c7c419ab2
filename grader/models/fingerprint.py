"""Public models inside a submission: architecture containment, not only equality.

A submission *contains* a known model when the tensors its graph reads as weights include every
weight of that model, shape for shape: wrapping a public model in a module of one's own, adding a
learnable scale to its logits, a head or a few layers leaves its weights in the graph. Shapes are
compared with their singleton dimensions dropped and their sizes sorted, so a transposed or
permuted copy (``w.t()``, channels reordered) or a rescaled one (weights multiplied by a
constant, batch norm folded into a scale) is found as well; renaming attributes or reordering a
class body changes nothing. The tensors come from the verified graph: only those the logits
depend on, parameters and any buffer or constant read as a weight.

A match needs :data:`MIN_MODEL_SHARE` of the known model's values and :data:`MIN_MODEL_TENSORS`
of its tensors inside the submission, and those values must make up :data:`MIN_SUBMISSION_SHARE`
of the submission's: a student's network that shares LeNet's fully connected head but has
convolutions of its own is not LeNet.

The candidates (:func:`candidate_models`) are the registered reference models
(``grader.models``), the public zoos (``grader.public_models``), and torchvision's classification
models built with the assignment's class count, all built on the ``meta`` device.
"""

from __future__ import annotations

import functools
import hashlib
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

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
torchvision is imported only for a submission whose size could contain one of them."""
EXTRA_KWARGS: dict[str, dict[str, object]] = {
    "googlenet": {"aux_logits": False, "init_weights": False},
}
MIN_MODEL_SHARE = 0.95
"""Share of a known model's weight values that must be found in the submission."""
MIN_MODEL_TENSORS = 0.9
"""Share of a known model's weight tensors that must be found in the submission."""
MIN_SUBMISSION_SHARE = 0.5
"""Share of the submission's weight values that the known model's must make up."""

Shape = tuple[int, ...]
_BUILDING = threading.Lock()
"""Held while candidate models are built: the threads of ``grader check`` that reach the check
together wait for one build instead of each building every model."""


@dataclass(frozen=True)
class Candidate:
    """A known model: its name (``torchvision resnet18``) and its weight shapes."""

    name: str
    shapes: tuple[Shape, ...]

    @functools.cached_property
    def total(self) -> int:
        """Values in its weights."""
        return sum(math.prod(s) for s in self.shapes)


@dataclass(frozen=True)
class PublicMatch:
    """A known model found inside a submission."""

    name: str
    exact: bool
    """The submission's weights are exactly the known model's (nothing added)."""
    model_share: float
    """Share of the known model's values found in the submission."""
    submission_share: float
    """Share of the submission's values that are the known model's."""

    def describe(self) -> str:
        """``is exactly torchvision resnet18``, or ``contains torchvision resnet18 (100% of its
        weights) plus other tensors (2.0% of the model's values)``."""
        if self.exact:
            return f"is exactly {self.name}"
        return (
            f"contains {self.name} ({self.model_share:.0%} of its weights) plus other tensors "
            f"({1 - self.submission_share:.1%} of the model's values)"
        )


def shape_key(shape: Iterable[int]) -> Shape:
    """A shape with singleton dimensions dropped and sizes sorted (transpose- and
    permutation-tolerant)."""
    return tuple(sorted(int(d) for d in shape if int(d) != 1))


def fingerprint(shapes: Iterable[Iterable[int]]) -> str:
    """Hex SHA-256 of the sorted parameter shapes."""
    lines = sorted("x".join(str(d) for d in shape) for shape in shapes)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def model_fingerprint(model) -> str:
    """The fingerprint of an ``nn.Module`` (its parameters)."""
    return fingerprint(tuple(p.shape) for p in model.parameters())


def _weights(model) -> tuple[Shape, ...]:
    return tuple(tuple(p.shape) for p in model.parameters())


def _registered(num_classes: int) -> tuple[Candidate, ...]:
    """The registered reference and public-zoo models that build (built once per process)."""
    with _BUILDING:
        return _build_registered(num_classes)


@functools.cache
def _build_registered(num_classes: int) -> tuple[Candidate, ...]:
    found = []
    for prefix, models in (("reference ", registered_models()), ("", public_models())):
        for entry in models.values():
            try:
                model = build_on_meta(entry.build)
            except (TypeError, RuntimeError, ValueError, NotImplementedError):
                continue
            if getattr(model, "num_classes", num_classes) not in (num_classes, None):
                continue
            found.append(Candidate(prefix + entry.name, _weights(model)))
    return tuple(found)


def candidates(num_classes: int = 10) -> tuple[tuple[str, tuple[Shape, ...]], ...]:
    """(name, weight shapes) of the registered reference models (``reference resnet20``) and
    the public models students copy (``pytorch-cifar MobileNetV2``), built once per process."""
    return tuple((c.name, c.shapes) for c in _registered(num_classes))


def _torchvision(name: str, num_classes: int) -> Candidate | None:
    """torchvision's model ``name`` as a candidate (built once per process), or None."""
    with _BUILDING:
        return _build_torchvision(name, num_classes)


@functools.cache
def _build_torchvision(name: str, num_classes: int) -> Candidate | None:
    import torchvision.models as tvm

    factory: Callable | None = getattr(tvm, name, None)
    if factory is None:
        return None
    kwargs = {"weights": None, "num_classes": num_classes, **EXTRA_KWARGS.get(name, {})}
    try:
        model = build_on_meta(lambda: factory(**kwargs))
    except (TypeError, RuntimeError, NotImplementedError):
        return None  # a zoo entry this torchvision version cannot build
    return Candidate(f"torchvision {name}", _weights(model))


def candidate_models(num_classes: int, total: int | None = None) -> list[Candidate]:
    """Every known model a submission of ``total`` weight values could contain (all of them
    when ``total`` is None): the one list the public-model checks read."""
    if total is None:
        low, high = 0.0, math.inf
    else:
        low, high = MIN_SUBMISSION_SHARE * total, total / MIN_MODEL_SHARE
    found = [c for c in _registered(num_classes) if low <= c.total <= high]
    names = (
        list(TORCHVISION_PARAMS)
        if num_classes != 10 or total is None
        else [n for n, count in TORCHVISION_PARAMS.items() if low <= count <= high]
    )
    for name in names:
        candidate = _torchvision(name, num_classes)
        if candidate is not None and low <= candidate.total <= high:
            found.append(candidate)
    return found


def contains(shapes: Iterable[Iterable[int]], candidate: Candidate) -> PublicMatch | None:
    """Whether the weight ``shapes`` of a submission contain ``candidate`` (see the module
    docstring); the match, or None."""
    ours = Counter(shape_key(s) for s in shapes)
    ours_total = sum(math.prod(k) * n for k, n in ours.items())
    theirs = Counter(shape_key(s) for s in candidate.shapes)
    if not ours_total or not candidate.total:
        return None
    matched = sum(math.prod(k) * min(n, ours[k]) for k, n in theirs.items())
    tensors = sum(min(n, ours[k]) for k, n in theirs.items()) / len(candidate.shapes)
    model_share, submission_share = matched / candidate.total, matched / ours_total
    if (
        model_share < MIN_MODEL_SHARE
        or tensors < MIN_MODEL_TENSORS
        or submission_share < MIN_SUBMISSION_SHARE
    ):
        return None
    return PublicMatch(candidate.name, ours == theirs, model_share, submission_share)


def public_models_inside(shapes: list[Shape], *, num_classes: int = 10) -> list[PublicMatch]:
    """Every known model the submission's weight ``shapes`` contain, best first."""
    total = sum(math.prod(s) for s in shapes)
    matches = [
        m for c in candidate_models(num_classes, total) if (m := contains(shapes, c)) is not None
    ]
    return sorted(matches, key=lambda m: (not m.exact, -m.model_share * m.submission_share))


def not_assigned(
    matches: list[PublicMatch], own: str | None, *, num_classes: int = 10
) -> list[PublicMatch]:
    """``matches`` less what the assignment asks for: when the submission contains the
    reference model ``own``, that model and every known model it contains itself."""
    reference = next((c for c in _registered(num_classes) if c.name == f"reference {own}"), None)
    if reference is None or not any(m.name == reference.name for m in matches):
        return matches
    return [
        m
        for m in matches
        if m.name != reference.name
        and contains(reference.shapes, _candidate(m.name, num_classes)) is None
    ]


def _candidate(name: str, num_classes: int) -> Candidate:
    """The candidate called ``name`` (one :func:`candidate_models` returned)."""
    if name.startswith("torchvision "):
        found = _torchvision(name.removeprefix("torchvision "), num_classes)
    else:
        found = next((c for c in _registered(num_classes) if c.name == name), None)
    if found is None:
        raise KeyError(name)
    return found


def match_public_model(shapes: list[Shape], *, num_classes: int = 10) -> str | None:
    """The name of the known model whose weights are exactly ``shapes``, or None."""
    exact = [m for m in public_models_inside(shapes, num_classes=num_classes) if m.exact]
    return exact[0].name if exact else None
