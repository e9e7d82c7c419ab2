"""The operations a captured graph may use: what each one is, what it costs, how it may be called.

One table, :data:`OPS`, is at once

- the **allowlist** of the verified evaluation: a graph using any other operation is refused
  before anything runs. Every entry is a functional ATen overload whose result depends only on
  its arguments: no in-place or ``out=`` variant, no uninitialised memory, no view that can
  reach outside its storage (``as_strided``), nothing that touches files. Some entries are pure
  only with some arguments, and the table says which (:attr:`OpSpec.pure_when`): the
  batch-norm family writes its running statistics in place when ``training`` is true (torch
  still reports the schema as not mutable), ``instance_norm`` does the same with
  ``use_input_stats`` and running statistics, and the dropout family and ``rrelu`` draw random
  numbers (global generator state) when training. In a graph that is evaluated those
  arguments must be the literal ``False`` -- a computed value is refused too. A training graph
  (an experiment that trains the model) may use them;
- the **vocabulary** of the structure rules (:class:`OpKind`);
- the **FLOP table**: :func:`node_flops` counts every operation from the shapes it ran with.

FLOPs, per operation (``out`` = elements of the result, ``in`` = elements of the first input):

======================================  ================================================
operation                               FLOPs
======================================  ================================================
convolution (any dims, transposed)      2 x batch x prod(weight shape) x prod(spatial),
                                        spatial = the output's (the input's when
                                        transposed); + out for a bias. torch.utils.
                                        flop_counter's convention, plus the bias.
linear                                  2 x out x in_features (+ out for a bias)
mm, addmm, matmul, bmm, baddbmm         2 x out x contracted size (+ out for the added
                                        term)
einsum                                  2 x prod(size of every index) per pairwise
                                        contraction, left to right; one operand: in
pointwise (arithmetic, comparisons,     1 x out (``k`` x out for the composites listed
activations, where, clamp, ...)         with their ``k``: addcmul 2, lerp 3, softmax 5...)
reductions (sum, mean, amax, argmax,    1 x in (var/std/norm 2, var_mean and logsumexp
cumsum, any, all)                       3; sort and topk in x ceil(log2 n))
pooling                                 out x prod(kernel); adaptive pooling: in
batch norm (evaluation)                 2 x out (a scale and a shift per element)
layer, group, instance, RMS norm        5 x out (mean, variance, normalise, scale, shift)
bilinear upsampling                     4 x out (nearest: 0)
shape, copy, indexing, creation,        0 (they move or make memory; they compute
dropout in evaluation                   nothing)
======================================  ================================================

Python's integer operators appear only for shape arithmetic on symbolic sizes.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


class OpKind(enum.Enum):
    """What an operation does, as the structure rules see it."""

    CONV = "conv"
    LINEAR = "linear"
    """A contraction: linear, matrix products, einsum."""
    NORM = "norm"
    POOL = "pool"
    ACTIVATION = "activation"
    DROPOUT = "dropout"
    ADD = "add"
    ELEMENTWISE = "elementwise"
    REDUCTION = "reduction"
    SHAPE = "shape"
    """Moves or copies values without computing new ones (views, concatenation, indexing)."""
    CREATE = "create"
    """A new tensor from sizes or constants alone (zeros_like, full, arange)."""
    SYMBOLIC = "symbolic"
    """Shape arithmetic on integers, and taking an item of a tuple result."""


FlopRule = Callable[[Sequence[Any], Any], int]
"""``rule(args, result)``: FLOPs of one call, from its decoded arguments and its result."""


@dataclass(frozen=True)
class OpSpec:
    """One allowed operation."""

    kind: OpKind
    flops: FlopRule
    pure_when: tuple[tuple[str, ...], ...] = ()
    """Each entry names arguments of which at least one must be passed as the literal
    ``False`` (or, for a name starting with ``none:``, the literal ``None``) for the operation to
    be pure; e.g. ``(("training",),)``."""
    view: bool = False
    """The result may share the first input's memory (no new memory when estimating a run)."""


# --- FLOP rules -----------------------------------------------------------------------------------


def _numel(value: Any) -> int:
    shape = getattr(value, "shape", None)
    if shape is None:
        if isinstance(value, (tuple, list)):
            return _numel(next((v for v in value if hasattr(v, "shape")), None))
        return 0
    return math.prod(int(d) for d in shape)


def _tensors(args: Sequence[Any]) -> list[Any]:
    found = []
    for arg in args:
        if hasattr(arg, "shape"):
            found.append(arg)
        elif isinstance(arg, (list, tuple)):
            found += [a for a in arg if hasattr(a, "shape")]
    return found


def _zero(_args: Sequence[Any], _result: Any) -> int:
    return 0


def per_output(k: int = 1) -> FlopRule:
    """``k`` FLOPs per element of the (first) result."""

    def rule(_args: Sequence[Any], result: Any) -> int:
        return k * _numel(result)

    return rule


def per_input(k: int = 1) -> FlopRule:
    """``k`` FLOPs per element of the first tensor argument."""

    def rule(args: Sequence[Any], _result: Any) -> int:
        tensors = _tensors(args)
        return k * _numel(tensors[0]) if tensors else 0

    return rule


def _sorting(args: Sequence[Any], _result: Any) -> int:
    tensors = _tensors(args)
    if not tensors:
        return 0
    x = tensors[0]
    dim = args[2] if len(args) > 2 and isinstance(args[2], int) else -1
    n = int(x.shape[dim]) if x.dim() else 1
    return _numel(x) * max(1, math.ceil(math.log2(max(n, 2))))


def _conv(args: Sequence[Any], result: Any, *, transposed: bool = False) -> int:
    x, weight = args[0], args[1]
    bias = args[2] if len(args) > 2 and hasattr(args[2], "shape") else None
    if len(args) > 6 and isinstance(args[6], bool):  # aten.convolution: transposed flag
        transposed = args[6]
    spatial = (x if transposed else result).shape[2:]
    batch = int(x.shape[0]) if x.dim() == weight.dim() else 1
    flops = 2 * batch * _numel(weight) * math.prod(int(d) for d in spatial)
    return flops + (_numel(result) if bias is not None else 0)


def _conv_transposed(args: Sequence[Any], result: Any) -> int:
    return _conv(args, result, transposed=True)


def _linear(args: Sequence[Any], result: Any) -> int:
    weight = args[1]
    bias = args[2] if len(args) > 2 and hasattr(args[2], "shape") else None
    return 2 * _numel(result) * int(weight.shape[-1]) + (_numel(result) if bias is not None else 0)


def _matmul(args: Sequence[Any], result: Any) -> int:
    a = args[0]
    contracted = int(a.shape[-1]) if a.dim() else 1
    return 2 * max(_numel(result), 1) * contracted


def _with_added(args: Sequence[Any], result: Any) -> int:
    # addmm(bias, a, b) / baddbmm(input, a, b): the product, plus adding the first term
    return _matmul(args[1:], result) + _numel(result)


_EINSUM_TERM = re.compile(r"[A-Za-z]|\.\.\.")


def _einsum(args: Sequence[Any], result: Any) -> int:
    equation, operands = args[0], list(args[1])
    inputs, _, output = equation.replace(" ", "").partition("->")
    terms = [_EINSUM_TERM.findall(t) for t in inputs.split(",")]
    if len(terms) != len(operands):
        return 0
    sizes: dict[str, int] = {}
    for term, operand in zip(terms, operands, strict=True):
        ellipsis = operand.dim() - (len(term) - ("..." in term))
        dims: list[str] = []
        for letter in term:
            dims += [f"...{i}" for i in range(ellipsis)] if letter == "..." else [letter]
        for letter, size in zip(dims, operand.shape, strict=False):
            sizes[letter] = max(sizes.get(letter, 1), int(size))
        term[:] = dims
    if len(terms) == 1:
        return _numel(operands[0])
    wanted = set(_EINSUM_TERM.findall(output)) if "->" in equation else set()
    wanted |= {k for k in sizes if k.startswith("...")}
    flops, current = 0, set(terms[0])
    for index, term in enumerate(terms[1:], start=1):
        together = current | set(term)
        flops += 2 * math.prod(sizes[k] for k in together)
        later = set().union(*map(set, terms[index + 1 :])) if index + 1 < len(terms) else set()
        current = {k for k in together if k in wanted or k in later}
    return flops


def _pool(args: Sequence[Any], result: Any) -> int:
    kernel = args[1] if len(args) > 1 else 1
    size = math.prod(kernel) if isinstance(kernel, (list, tuple)) else int(kernel)
    dims = max(_tensors(args)[0].dim() - 2, 1) if _tensors(args) else 2
    if isinstance(kernel, (list, tuple)) and len(kernel) == 1:
        size = int(kernel[0]) ** dims
    elif not isinstance(kernel, (list, tuple)):
        size = int(kernel) ** dims
    return _numel(result) * size


# --- the table ------------------------------------------------------------------------------------

TRAINING = ("training",)
"""The argument of the batch-norm family that must be a literal False in an evaluated graph."""


def _many(spec: OpSpec, *names: str) -> dict[str, OpSpec]:
    return {f"aten.{name}": spec for name in names}


def _pointwise(kind: OpKind, k: int, *names: str) -> dict[str, OpSpec]:
    return _many(OpSpec(kind, per_output(k)), *names)


OPS: dict[str, OpSpec] = {
    **_many(
        OpSpec(OpKind.CONV, _conv),
        "conv1d.default", "conv2d.default", "conv3d.default", "conv1d.padding",
        "conv2d.padding", "conv3d.padding", "convolution.default",
    ),
    **_many(
        OpSpec(OpKind.CONV, _conv_transposed),
        "conv_transpose1d.default", "conv_transpose2d.input", "conv_transpose3d.input",
    ),
    "aten.linear.default": OpSpec(OpKind.LINEAR, _linear),
    **_many(OpSpec(OpKind.LINEAR, _matmul), "mm.default", "matmul.default", "bmm.default"),
    **_many(OpSpec(OpKind.LINEAR, _with_added), "addmm.default", "baddbmm.default"),
    "aten.einsum.default": OpSpec(OpKind.LINEAR, _einsum),
    **_many(
        OpSpec(OpKind.NORM, per_output(2), pure_when=(TRAINING,)),
        "batch_norm.default", "native_batch_norm.default",
        "_native_batch_norm_legit_functional.default",
    ),
    "aten._native_batch_norm_legit_no_training.default": OpSpec(OpKind.NORM, per_output(2)),
    "aten.instance_norm.default": OpSpec(
        OpKind.NORM,
        per_output(5),
        pure_when=(
            ("use_input_stats", "none:running_mean"),
            ("use_input_stats", "none:running_var"),
        ),
    ),
    **_many(
        OpSpec(OpKind.NORM, per_output(5)),
        "layer_norm.default", "native_layer_norm.default", "group_norm.default",
        "native_group_norm.default", "rms_norm.default",
    ),
    **_many(
        OpSpec(OpKind.POOL, _pool),
        "max_pool1d.default", "max_pool2d.default", "max_pool3d.default",
        "max_pool2d_with_indices.default", "avg_pool1d.default", "avg_pool2d.default",
        "avg_pool3d.default",
    ),
    **_many(
        OpSpec(OpKind.POOL, per_input(1)),
        "adaptive_avg_pool1d.default", "adaptive_avg_pool2d.default",
        "_adaptive_avg_pool2d.default", "adaptive_max_pool2d.default",
    ),
    **_pointwise(
        OpKind.ACTIVATION, 1,
        "relu.default", "relu6.default", "leaky_relu.default", "elu.default", "selu.default",
        "celu.default", "gelu.default", "silu.default", "mish.default", "sigmoid.default",
        "tanh.default", "hardtanh.default", "hardswish.default", "hardsigmoid.default",
        "softplus.default", "prelu.default", "_prelu_kernel.default", "log_sigmoid.default",
        "threshold.default",
    ),
    "aten.rrelu.default": OpSpec(OpKind.ACTIVATION, per_output(1), pure_when=(TRAINING,)),
    **_pointwise(
        OpKind.ACTIVATION, 5,
        "softmax.int", "_softmax.default", "log_softmax.int", "_log_softmax.default",
    ),
    **_many(
        OpSpec(OpKind.DROPOUT, _zero, pure_when=(("train",),)),
        "dropout.default", "native_dropout.default", "feature_dropout.default",
        "alpha_dropout.default", "feature_alpha_dropout.default",
    ),
    "aten.add.Tensor": OpSpec(OpKind.ADD, per_output(1)),
    **_pointwise(
        OpKind.ELEMENTWISE, 1,
        "add.Scalar", "sub.Tensor", "sub.Scalar", "rsub.Scalar", "rsub.Tensor", "mul.Tensor",
        "mul.Scalar", "div.Tensor", "div.Scalar", "div.Tensor_mode", "div.Scalar_mode",
        "neg.default", "exp.default", "exp2.default", "expm1.default", "log.default",
        "log2.default", "log10.default", "log1p.default", "sqrt.default", "rsqrt.default",
        "square.default", "pow.Tensor_Scalar", "pow.Tensor_Tensor", "pow.Scalar", "abs.default",
        "sign.default", "reciprocal.default", "floor.default", "ceil.default", "round.default",
        "trunc.default", "frac.default", "erf.default", "sin.default", "cos.default",
        "clamp.default", "clamp.Tensor", "clamp_min.default", "clamp_max.default",
        "minimum.default", "maximum.default", "where.self", "where.ScalarOther",
        "where.ScalarSelf", "eq.Tensor", "eq.Scalar", "ne.Tensor", "ne.Scalar", "gt.Tensor",
        "gt.Scalar", "lt.Tensor", "lt.Scalar", "ge.Tensor", "ge.Scalar", "le.Tensor", "le.Scalar",
        "logical_and.default", "logical_or.default", "logical_not.default",
        "masked_fill.Scalar", "masked_fill.Tensor", "fmod.Scalar", "remainder.Scalar",
        "remainder.Tensor", "isnan.default", "nan_to_num.default", "bitwise_and.Tensor",
        "bitwise_or.Tensor", "atan2.default", "hypot.default",
    ),
    **_pointwise(OpKind.ELEMENTWISE, 2, "addcmul.default", "addcdiv.default"),
    "aten.lerp.Scalar": OpSpec(OpKind.ELEMENTWISE, per_output(3)),
    **_many(
        OpSpec(OpKind.REDUCTION, per_input(1)),
        "mean.dim", "mean.default", "sum.dim_IntList", "sum.default", "amax.default",
        "amin.default", "max.dim", "min.dim", "max.default", "min.default", "argmax.default",
        "argmin.default", "prod.dim_int", "cumsum.default", "all.default", "any.default",
    ),
    **_many(
        OpSpec(OpKind.REDUCTION, per_input(2)),
        "var.correction", "var.dim", "std.correction", "std.dim", "norm.ScalarOpt_dim",
        "linalg_vector_norm.default",
    ),
    **_many(OpSpec(OpKind.REDUCTION, per_input(3)), "var_mean.correction", "logsumexp.default"),
    **_many(OpSpec(OpKind.REDUCTION, _sorting), "topk.default", "sort.default"),
    **_many(
        OpSpec(OpKind.SHAPE, _zero, view=True),
        "view.default", "_unsafe_view.default", "reshape.default", "flatten.using_ints",
        "unflatten.int", "permute.default", "transpose.int", "t.default", "expand.default",
        "expand_as.default", "view_as.default", "reshape_as.default", "squeeze.dim",
        "squeeze.dims", "squeeze.default", "unsqueeze.default", "split.Tensor",
        "split_with_sizes.default", "chunk.default", "unbind.int", "slice.Tensor", "select.int",
        "narrow.default", "movedim.int", "alias.default", "detach.default", "diagonal.default",
        "contiguous.default", "to.dtype", "to.dtype_layout", "to.device",
        "type_as.default",
    ),
    **_many(
        OpSpec(OpKind.SHAPE, _zero),
        "clone.default", "cat.default", "stack.default", "pad.default",
        "constant_pad_nd.default", "reflection_pad1d.default", "reflection_pad2d.default",
        "replication_pad2d.default", "repeat.default", "flip.default", "roll.default",
        "_to_copy.default", "index_select.default", "gather.default", "index.Tensor",
        "upsample_nearest2d.vec", "upsample_nearest2d.default", "_upsample_nearest_exact2d.vec",
        "pixel_shuffle.default",
        "pixel_unshuffle.default", "channel_shuffle.default", "tril.default", "triu.default",
        "one_hot.default", "lift_fresh_copy.default", "tile.default",
    ),
    **_many(
        OpSpec(OpKind.SHAPE, per_output(4)),
        "upsample_bilinear2d.vec", "upsample_bilinear2d.default", "_upsample_bilinear2d_aa.vec",
    ),
    **_many(
        OpSpec(OpKind.SHAPE, per_output(16)),
        "upsample_bicubic2d.vec", "_upsample_bicubic2d_aa.vec",
    ),
    **_many(
        OpSpec(OpKind.CREATE, _zero),
        "zeros_like.default", "ones_like.default", "full_like.default", "zeros.default",
        "ones.default", "full.default", "arange.default", "arange.start", "arange.start_step",
        "scalar_tensor.default", "new_zeros.default", "new_ones.default", "new_full.default",
        "eye.default", "linspace.default",
    ),
    **{
        name: OpSpec(OpKind.SYMBOLIC, _zero)
        for name in (
            "aten.sym_size.int", "aten.sym_numel.default", "operator.getitem", "operator.add",
            "operator.sub", "operator.mul", "operator.floordiv", "operator.mod", "operator.neg",
        )
    },
}  # fmt: skip

SKIPPED_OPS = frozenset(
    {
        "aten._assert_scalar.default",
        "aten._assert_tensor_metadata.default",
        "aten.sym_constrain_range_for_size.default",
        "aten.sym_constrain_range.default",
        "aten._assert_async.msg",
    }
)
"""Run-time assertions the exporter inserts about shapes; they compute nothing and are skipped."""

PARAMETRIC = frozenset({OpKind.CONV, OpKind.LINEAR})
"""Kinds whose operations are layers with learned weights in the rules' sense."""
BATCH_NORM_STATISTICS = {
    "aten.batch_norm.default": (3, 4),
    "aten.native_batch_norm.default": (3, 4),
    "aten._native_batch_norm_legit_functional.default": (3, 4),
    "aten._native_batch_norm_legit_no_training.default": (3, 4),
    "aten.instance_norm.default": (3, 4),
}
"""Argument positions of the running mean and variance of the batch-norm family."""


def op_kind(op: str) -> OpKind | None:
    """The kind of ``op`` (e.g. ``aten.conv2d.default``), or None when it is not allowed."""
    spec = OPS.get(op)
    return spec.kind if spec is not None else None


def node_flops(op: str, args: Sequence[Any], result: Any) -> int:
    """FLOPs of one call of ``op`` with decoded positional ``args`` (see the table above)."""
    spec = OPS.get(op)
    if spec is None:
        return 0
    try:
        return int(spec.flops(args, result))
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return _numel(result)  # arguments the formula did not expect: one per element
