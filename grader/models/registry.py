"""Models the grader compares submissions with: registered reference models and torchvision's zoo.

Packages register models through the ``grader.models`` entry point: a callable returning
``{name: (builder, dataset)}`` (the project's ``reference`` package registers its reference
models this way), and the public models students copy through ``grader.public_models`` (same
shape; ``reference.models.zoo``). The grader never imports such a package by name. Models are
built on the ``meta`` device without initialising their weights (no download); where layer
shapes are needed, they move to uninitialised memory for one forward pass.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

ENTRY_POINT_GROUP = "grader.models"
PUBLIC_MODELS_GROUP = "grader.public_models"
"""Entry-point group of public model zoos (re-implementations of the architectures students
copy), in the same ``{name: (builder, dataset)}`` shape."""
LAYER_TYPES = ("conv", "linear", "pool", "batchnorm")
"""Layer types (lower case, without underscores, by part) that the layer comparison lines up."""


@dataclass(frozen=True)
class RegisteredModel:
    """A model someone registered, buildable by name."""

    name: str
    build: Callable[[], Any]
    dataset: str


@dataclass(frozen=True)
class ReferenceLayer:
    """A leaf module of a reference model: its output shape for one image and its parameters."""

    name: str
    type: str
    output_shape: list[int]
    params: int


@functools.cache
def registered_models() -> dict[str, RegisteredModel]:
    """Every model registered through the ``grader.models`` entry point, by name."""
    return _models_of(ENTRY_POINT_GROUP)


@functools.cache
def public_models() -> dict[str, RegisteredModel]:
    """Every public model (the collections students copy from) registered through the
    ``grader.public_models`` entry point, by name (``pytorch-cifar MobileNetV2``)."""
    return _models_of(PUBLIC_MODELS_GROUP)


def _models_of(group: str) -> dict[str, RegisteredModel]:
    found: dict[str, RegisteredModel] = {}
    for entry in entry_points(group=group):
        try:
            provider = entry.load()
            models = provider()
        except Exception:  # noqa: BLE001 - a broken plugin must not stop grading
            continue
        for name, (build, dataset) in models.items():
            found.setdefault(name, RegisteredModel(name, build, dataset))
    return found


_INITIALISERS = frozenset(
    {"normal_", "uniform_", "zero_", "fill_", "copy_", "bernoulli_", "exponential_", "random_",
     "log_normal_", "cauchy_", "geometric_", "orthogonal_", "trunc_normal_"}
)  # fmt: skip
"""In-place tensor methods that only fill values: meaningless on the meta device."""


def build_on_meta(build: Callable[[], Any]) -> Any:
    """Build a model on the meta device (shapes only), skipping its weight initialisation (on
    meta tensors it would only import and run torch's reference kernels: ~1 s per process)."""
    import torch
    from torch.overrides import TorchFunctionMode

    class _NoFill(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if (
                getattr(func, "__name__", "") in _INITIALISERS
                and args
                and isinstance(args[0], torch.Tensor)
                and args[0].is_meta
            ):
                return args[0]
            return func(*args, **(kwargs or {}))

    with torch.device("meta"), _NoFill():
        return build()


@functools.cache
def reference_size(name: str) -> int | None:
    """Values in the parameters of registered model ``name`` (None when none is registered)."""
    entry = registered_models().get(name)
    if entry is None:
        return None
    try:
        model = build_on_meta(entry.build)
    except (TypeError, RuntimeError, ValueError, NotImplementedError):
        return None
    return sum(p.numel() for p in model.parameters())


_TRACING = threading.Lock()


def reference_layers(name: str, input_shape: tuple[int, ...]) -> tuple[ReferenceLayer, ...]:
    """The leaf layers of registered model ``name`` as they run on one image, in order (run
    once per process, however many threads ask at once).

    Empty when no such model is registered or it cannot be built and run.
    """
    with _TRACING:
        return _reference_layers(name, input_shape)


@functools.cache
def _reference_layers(name: str, input_shape: tuple[int, ...]) -> tuple[ReferenceLayer, ...]:
    import torch

    model_entry = registered_models().get(name)
    if model_entry is None:
        return ()
    try:
        # built on the CPU as it is (milliseconds for these models): a forward on the meta
        # device, or moving a meta model to empty CPU memory, imports torch's reference kernels
        # and sympy (1.3 s per process); only the shapes are read
        model = model_entry.build().eval()
    except (TypeError, RuntimeError, ValueError, NotImplementedError):
        return ()
    names = {id(m): n for n, m in model.named_modules()}
    seen: list[ReferenceLayer] = []

    def record(module: Any, _inputs: Any, output: Any) -> None:
        shape = list(output.shape[1:]) if isinstance(output, torch.Tensor) else []
        params = sum(p.numel() for p in module.parameters(recurse=False))
        seen.append(
            ReferenceLayer(names.get(id(module), "?"), type(module).__name__, shape, params)
        )

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    hooks = [m.register_forward_hook(record) for m in leaves]
    try:
        with torch.no_grad():
            model(torch.zeros((1, *input_shape)))
    except (RuntimeError, TypeError, ValueError, NotImplementedError):
        return ()
    finally:
        for hook in hooks:
            hook.remove()
    return tuple(seen)
