"""torchvision's tensor transforms as plain arithmetic while a model is exported (INSIDE a box).

``T.Normalize`` checks ``(std == 0).any()`` on every call, a decision on the values of a
tensor that ``torch.export`` cannot capture, so a ``preprocess`` that normalises with
torchvision would be refused although ``(x - mean) / std`` passes. While the model is exported
the check is left out: the dummy forward pass before the export has already run torchvision's
own code (with the check) on the same transform, and the arithmetic is the same, so the graph
computes what the student's code computes. ``Resize`` and ``CenterCrop`` on tensors export as
they are (interpolation and slicing).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import torch

TENSOR_MODULES = (
    "torchvision.transforms._functional_tensor",
    "torchvision.transforms.functional_tensor",
)
"""Where torchvision keeps its tensor kernels (the name changed in torchvision 0.17)."""


def normalize(
    tensor: torch.Tensor, mean: list[float], std: list[float], inplace: bool = False
) -> torch.Tensor:
    """``(tensor - mean) / std`` per channel, as torchvision computes it, without its check on
    the values of ``std`` (made before the export) and without writing into ``tensor``."""
    del inplace  # a graph never writes into its input; the values are the same
    mean_t = torch.as_tensor(mean, dtype=tensor.dtype, device=tensor.device)
    std_t = torch.as_tensor(std, dtype=tensor.dtype, device=tensor.device)
    if mean_t.ndim == 1:
        mean_t = mean_t.view(-1, 1, 1)
    if std_t.ndim == 1:
        std_t = std_t.view(-1, 1, 1)
    return (tensor - mean_t) / std_t


@contextlib.contextmanager
def exportable_transforms() -> Iterator[None]:
    """Within the block, torchvision's ``normalize`` kernel is :func:`normalize` (when the
    student's code imported torchvision's transforms at all)."""
    module = next((sys.modules[n] for n in TENSOR_MODULES if n in sys.modules), None)
    if module is None or not hasattr(module, "normalize"):
        yield
        return
    original = module.normalize
    module.normalize = normalize
    try:
        yield
    finally:
        module.normalize = original
