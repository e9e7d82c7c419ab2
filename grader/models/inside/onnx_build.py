"""The pieces an ONNX translation of a graph artifact is built from (INSIDE a box).

:class:`Builder` collects ONNX nodes and initializers; the values of the program during the
translation are :class:`Tensor` (an ONNX tensor), :class:`Size` (an integer that follows the
batch size), :class:`Folded` (a tensor that does not depend on the image) or plain Python
values; :class:`Call` is one operation with its arguments bound by name. Used by
:mod:`grader.models.inside.onnx_ops` (one translation per ATen operation) and
:mod:`grader.models.inside.onnx_graph` (the whole program).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

MAX_INITIALIZER_BYTES = 1 << 30
"""Above this the constants of the model do not fit one protobuf comfortably: interpreter."""
ONNX_DTYPES = {torch.float32: 1, torch.int64: 7, torch.bool: 9}
"""The dtypes translated graphs compute in (ONNX TensorProto FLOAT, INT64, BOOL)."""


class Untranslatable(Exception):
    """The graph uses something without an exact ONNX form here; the interpreter runs it."""

    def __init__(self, op: str, reason: str, *, index: int | None = None, module: str = "") -> None:
        where = f" (operation {index}, layer {module or '?'})" if index is not None else ""
        super().__init__(f"{op}{where}: {reason}")
        self.op = op
        self.reason = reason


# --- values during the translation ----------------------------------------------------------------


@dataclass(frozen=True)
class Tensor:
    """An ONNX tensor: its name, dtype and shape (None: a dimension that follows the batch)."""

    name: str
    dtype: torch.dtype
    shape: tuple[int | None, ...]

    @property
    def rank(self) -> int:
        return len(self.shape)

    def dim(self, d: int) -> int:
        """Normalise dimension ``d`` (negative counts from the end)."""
        return normalise_dim(d, self.rank)


@dataclass(frozen=True)
class Size:
    """An integer that follows the batch size: a 1-D int64 ONNX tensor of one element."""

    name: str


@dataclass(frozen=True)
class Folded:
    """A tensor that does not depend on the image: the value the interpreter computed."""

    value: torch.Tensor
    key: Any
    """Where the value sits in the program, so that each becomes one initializer."""


def normalise_dim(d: int, rank: int) -> int:
    if not -max(rank, 1) <= d < max(rank, 1):
        raise ValueError(f"dimension {d} is out of range for rank {rank}")
    return d % max(rank, 1)


# --- the builder ----------------------------------------------------------------------------------


class Builder:
    """Collects ONNX nodes and initializers and turns translated values into ONNX inputs."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.initializer_bytes = 0
        self._count = 0
        self._folded: dict[Any, Tensor] = {}
        self._consts: dict[tuple, str] = {}

    def fresh(self, hint: str = "t") -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def op(self, op_type: str, inputs: Sequence[str], outputs: int = 1, **attrs: Any) -> Any:
        """Add one ONNX node; its output name (or names, when ``outputs`` > 1)."""
        from onnx import helper

        names = [self.fresh(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names

    def initializer(self, array: np.ndarray, hint: str = "c") -> str:
        from onnx import numpy_helper

        name = self.fresh(hint)
        self.initializer_bytes += array.nbytes
        if self.initializer_bytes > MAX_INITIALIZER_BYTES:
            raise Untranslatable(
                "initializers", f"the model's constants exceed {MAX_INITIALIZER_BYTES:,} bytes"
            )
        self.initializers.append(numpy_helper.from_array(np.asarray(array, order="C"), name))
        return name

    def const(self, value: Any, dtype: torch.dtype) -> str:
        """A small constant (a scalar or a list) of ``dtype``, shared by every use."""
        array = np.asarray(value, dtype=numpy_dtype(dtype))
        key = (str(array.dtype), array.shape, array.tobytes())
        if key not in self._consts:
            self._consts[key] = self.initializer(array)
        return self._consts[key]

    def ints(self, values: Sequence[int | Size]) -> str:
        """A 1-D int64 tensor of sizes, some of which may follow the batch."""
        if all(isinstance(v, int) for v in values):
            return self.const(list(values), torch.int64)
        parts = [v.name if isinstance(v, Size) else self.const([v], torch.int64) for v in values]
        return self.op("Concat", parts, axis=0)

    def tensor(self, value: Any) -> Tensor:
        """A translated value as an ONNX tensor (folded values become initializers)."""
        if isinstance(value, Tensor):
            return value
        if isinstance(value, Folded):
            if value.key not in self._folded:
                tensor = value.value.detach().cpu().contiguous()
                check_dtype(tensor.dtype, "a constant of the model")
                if tensor.is_floating_point() and bool(tensor.isnan().any()):
                    # weights of a diverged training run: ONNX Runtime's fused kernels would not
                    # spread the NaN as torch does
                    raise Untranslatable("a constant of the model", "it holds NaN")
                name = self.initializer(tensor.numpy(), "w")
                self._folded[value.key] = Tensor(name, tensor.dtype, tuple(tensor.shape))
            return self._folded[value.key]
        raise TypeError(f"expected a tensor, got {type(value).__name__}")

    def cast(self, value: Any, dtype: torch.dtype) -> str:
        """``value`` (a tensor or a Python number) as an ONNX input of ``dtype``."""
        if isinstance(value, (bool, int, float)):
            return self.const(value, dtype)
        if isinstance(value, Size):  # a size used as a number: a scalar tensor
            scalar = self.op("Reshape", [value.name, self.const([], torch.int64)])
            return (
                scalar if dtype == torch.int64 else self.op("Cast", [scalar], to=ONNX_DTYPES[dtype])
            )
        tensor = self.tensor(value)
        if tensor.dtype == dtype:
            return tensor.name
        return self.op("Cast", [tensor.name], to=ONNX_DTYPES[dtype])


def numpy_dtype(dtype: torch.dtype) -> Any:
    return {torch.float32: np.float32, torch.int64: np.int64, torch.bool: np.bool_}[dtype]


def check_dtype(dtype: torch.dtype, what: str) -> None:
    if dtype not in ONNX_DTYPES:
        raise Untranslatable(what, f"computes in {dtype}; only float32, int64 and bool translate")


# --- one operation --------------------------------------------------------------------------------


@dataclass
class Call:
    """One operation of the program, with its arguments bound by name (defaults filled in)."""

    op: str
    args: dict[str, Any]
    """Translated arguments: Tensor, Size, Folded, Python values, lists of them."""
    probe: dict[str, Any]
    """The same arguments as the interpreter saw them on the first probe batch."""
    out: Any
    """The interpreter's result on the first probe batch."""
    shape: Any
    """The result's shape with dynamic dimensions as None (a list of them for a tuple)."""

    @property
    def name(self) -> str:
        """The operation's name without namespace and overload (``conv2d``)."""
        return self.op.split(".")[1]

    def tensor(self, b: Builder, name: str = "self") -> Tensor:
        return b.tensor(self.args[name])

    def static(self, name: str) -> Any:
        """An argument that must be a constant (a kernel size, a dimension, a flag)."""
        value = self.args[name]
        if has_dynamic(value):
            raise Untranslatable(self.op, f"argument {name} follows the batch size")
        return value

    def result(self, name: str, dtype: torch.dtype | None = None) -> Tensor:
        dtype = dtype or self.out.dtype
        check_dtype(dtype, self.op)
        return Tensor(name, dtype, tuple(self.shape))


def has_dynamic(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return any(has_dynamic(v) for v in value)
    return isinstance(value, (Size, Tensor))


def int_list(value: Any, n: int) -> list[int]:
    if isinstance(value, int):
        return [value] * n
    values = list(value)
    return values * n if len(values) == 1 else values
