"""The reference operations a student's hand-written ops are compared with, and their test inputs.

Each :class:`OpReference` is a torch function on float64 tensors (its gradient comes from torch's
autograd) plus the inputs it is checked on: several shapes, drawn from a seeded generator, kept
away from the points where the op is not differentiable (ReLU at 0) or not defined (log of a
negative number). Integer inputs (class indices) are not differentiated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

InputKind = Literal["real", "positive", "nonzero", "index"]
NUM_CLASSES = 5
"""Classes of the ``index`` inputs (targets of ``softmax_cross_entropy``)."""


@dataclass(frozen=True)
class InputSpec:
    """One input of an op: its name and what values it takes."""

    name: str
    kind: InputKind = "real"

    @property
    def differentiable(self) -> bool:
        """Whether the op is differentiated with respect to this input."""
        return self.kind != "index"


@dataclass(frozen=True)
class OpReference:
    """A reference operation: what it computes, its inputs, and the shapes it is checked on."""

    name: str
    description: str
    inputs: tuple[InputSpec, ...]
    shapes: tuple[tuple[tuple[int, ...], ...], ...]
    """One tuple of input shapes per test case."""
    function: Callable[..., object]
    """The reference, on torch tensors (float64, int64 for indices)."""

    def draw_inputs(self, rng: np.random.Generator) -> list[list[np.ndarray]]:
        """Input arrays for every case, drawn from ``rng``."""
        return [
            [draw(spec.kind, shape, rng) for spec, shape in zip(self.inputs, case, strict=True)]
            for case in self.shapes
        ]


def draw(kind: InputKind, shape: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """Random values of ``kind``: real N(0, 1); positive in [0.5, 2]; nonzero |x| in [0.2, 2];
    index in 0..NUM_CLASSES-1."""
    if kind == "index":
        return rng.integers(0, NUM_CLASSES, size=shape, dtype=np.int64)
    if kind == "positive":
        return rng.uniform(0.5, 2.0, size=shape)
    if kind == "nonzero":
        return rng.uniform(0.2, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return rng.standard_normal(size=shape)


def _torch():
    import torch

    return torch


def _swish(x):
    return x * _torch().sigmoid(x)


def _linear(x, weight, bias):
    return x @ weight.T + bias


def _softmax_cross_entropy(logits, targets):
    return _torch().nn.functional.cross_entropy(logits, targets)


ELEMENTWISE = (((7,),), ((3, 5),), ((2, 3, 4),))
PAIRS = (((7,), (7,)), ((3, 5), (3, 5)), ((2, 3, 4), (2, 3, 4)))
MATRICES = (((4, 6),), ((1, 3),), ((5, 2),))

REFERENCES: dict[str, OpReference] = {
    op.name: op
    for op in (
        OpReference("swish", "x * sigmoid(x) (Ramachandran et al. 2017)", (InputSpec("x"),),
                    ELEMENTWISE, _swish),
        OpReference("sigmoid", "1 / (1 + exp(-x)), element-wise", (InputSpec("x"),), ELEMENTWISE,
                    lambda x: _torch().sigmoid(x)),
        OpReference("relu", "max(x, 0), element-wise (checked away from 0)",
                    (InputSpec("x", "nonzero"),), ELEMENTWISE, lambda x: _torch().relu(x)),
        OpReference("tanh", "tanh(x), element-wise", (InputSpec("x"),), ELEMENTWISE,
                    lambda x: _torch().tanh(x)),
        OpReference("exp", "exp(x), element-wise", (InputSpec("x"),), ELEMENTWISE,
                    lambda x: _torch().exp(x)),
        OpReference("log", "natural log, element-wise (positive x)", (InputSpec("x", "positive"),),
                    ELEMENTWISE, lambda x: _torch().log(x)),
        OpReference("add", "x + y, element-wise", (InputSpec("x"), InputSpec("y")), PAIRS,
                    lambda x, y: x + y),
        OpReference("multiply", "x * y, element-wise", (InputSpec("x"), InputSpec("y")), PAIRS,
                    lambda x, y: x * y),
        OpReference("divide", "x / y, element-wise (|y| >= 0.2)",
                    (InputSpec("x"), InputSpec("y", "nonzero")), PAIRS, lambda x, y: x / y),
        OpReference("sum", "the sum of all elements (a scalar)", (InputSpec("x"),), ELEMENTWISE,
                    lambda x: x.sum()),
        OpReference("row_sum", "the sum of each row of a matrix, (n, m) -> (n,)",
                    (InputSpec("x"),), MATRICES, lambda x: x.sum(dim=1)),
        OpReference("normalize", "each row divided by its sum (positive entries)",
                    (InputSpec("x", "positive"),), MATRICES,
                    lambda x: x / x.sum(dim=1, keepdim=True)),
        OpReference("softmax", "softmax over the last dimension", (InputSpec("x"),), MATRICES,
                    lambda x: _torch().softmax(x, dim=-1)),
        OpReference("matmul", "matrix product, (n, k) @ (k, m)", (InputSpec("a"), InputSpec("b")),
                    (((4, 3), (3, 5)), ((1, 6), (6, 2)), ((3, 1), (1, 4))),
                    lambda a, b: a @ b),
        OpReference("linear", "x @ weight.T + bias, x (n, in), weight (out, in), bias (out,)",
                    (InputSpec("x"), InputSpec("weight"), InputSpec("bias")),
                    (((4, 3), (5, 3), (5,)), ((1, 6), (2, 6), (2,)), ((6, 1), (1, 1), (1,))),
                    _linear),
        OpReference("softmax_cross_entropy",
                    "mean cross-entropy of softmax(logits) against integer targets (a scalar)",
                    (InputSpec("logits"), InputSpec("targets", "index")),
                    (((4, NUM_CLASSES), (4,)), ((1, NUM_CLASSES), (1,)),
                     ((9, NUM_CLASSES), (9,))),
                    _softmax_cross_entropy),
        OpReference("mse", "mean of (prediction - target)^2 (a scalar)",
                    (InputSpec("prediction"), InputSpec("target")), PAIRS,
                    lambda p, t: ((p - t) ** 2).mean()),
    )
}  # fmt: skip


def get_reference(name: str) -> OpReference:
    """The reference op ``name``; ValueError lists the known ones."""
    if name not in REFERENCES:
        raise ValueError(f"unknown reference op {name!r}: use one of {', '.join(REFERENCES)}")
    return REFERENCES[name]
