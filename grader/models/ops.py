"""The operations a captured graph may use, each with the kind of layer it belongs to.

This table is both the allowlist of the verified evaluation (a graph using any other operation is
refused before anything runs) and the vocabulary of the structure rules. Every entry is a pure,
functional ATen overload: no in-place or ``out=`` variants, no random numbers, no uninitialised
memory, no views that can reach outside their storage (``as_strided``), nothing that touches
files. Python's integer operators appear only for shape arithmetic on symbolic sizes.
"""

from __future__ import annotations

import enum


class OpKind(enum.Enum):
    """What an operation does, as the structure rules see it."""

    CONV = "conv"
    LINEAR = "linear"
    NORM = "norm"
    POOL = "pool"
    ACTIVATION = "activation"
    DROPOUT = "dropout"
    ADD = "add"
    ELEMENTWISE = "elementwise"
    REDUCTION = "reduction"
    SHAPE = "shape"
    CREATE = "create"
    """A new tensor from sizes or constants alone (zeros_like, full, arange)."""
    SYMBOLIC = "symbolic"
    """Shape arithmetic on integers, and taking an item of a tuple result."""


def _many(kind: OpKind, *names: str) -> dict[str, OpKind]:
    return {f"aten.{name}": kind for name in names}


OPS: dict[str, OpKind] = {
    **_many(
        OpKind.CONV,
        "conv1d.default", "conv2d.default", "conv3d.default", "conv1d.padding",
        "conv2d.padding", "conv3d.padding", "convolution.default", "conv_transpose1d.default",
        "conv_transpose2d.input", "conv_transpose3d.input",
    ),
    **_many(
        OpKind.LINEAR,
        "linear.default", "addmm.default", "mm.default", "matmul.default", "bmm.default",
        "baddbmm.default", "einsum.default",
    ),
    **_many(
        OpKind.NORM,
        "batch_norm.default", "_native_batch_norm_legit_no_training.default",
        "_native_batch_norm_legit_functional.default", "native_batch_norm.default",
        "layer_norm.default", "native_layer_norm.default", "group_norm.default",
        "native_group_norm.default", "instance_norm.default", "rms_norm.default",
    ),
    **_many(
        OpKind.POOL,
        "max_pool1d.default", "max_pool2d.default", "max_pool3d.default",
        "max_pool2d_with_indices.default", "avg_pool1d.default", "avg_pool2d.default",
        "avg_pool3d.default", "adaptive_avg_pool1d.default", "adaptive_avg_pool2d.default",
        "_adaptive_avg_pool2d.default", "adaptive_max_pool2d.default", "lp_pool2d.default",
    ),
    **_many(
        OpKind.ACTIVATION,
        "relu.default", "relu6.default", "leaky_relu.default", "elu.default", "selu.default",
        "celu.default", "gelu.default", "silu.default", "mish.default", "sigmoid.default",
        "tanh.default", "hardtanh.default", "hardswish.default", "hardsigmoid.default",
        "softplus.default", "prelu.default", "_prelu_kernel.default", "log_sigmoid.default",
        "softmax.int", "_softmax.default", "log_softmax.int", "_log_softmax.default",
        "softsign.default", "threshold.default", "rrelu.default",
    ),
    **_many(
        OpKind.DROPOUT,
        "dropout.default", "native_dropout.default", "feature_dropout.default",
        "alpha_dropout.default", "feature_alpha_dropout.default",
    ),
    **_many(OpKind.ADD, "add.Tensor"),
    **_many(
        OpKind.ELEMENTWISE,
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
        "masked_fill.Scalar", "masked_fill.Tensor", "lerp.Scalar", "addcmul.default",
        "addcdiv.default", "fmod.Scalar", "remainder.Scalar", "remainder.Tensor",
        "isnan.default", "nan_to_num.default", "bitwise_and.Tensor", "bitwise_or.Tensor",
        "atan2.default", "hypot.default",
    ),
    **_many(
        OpKind.REDUCTION,
        "mean.dim", "mean.default", "sum.dim_IntList", "sum.default", "amax.default",
        "amin.default", "max.dim", "min.dim", "max.default", "min.default", "argmax.default",
        "argmin.default", "logsumexp.default", "var.correction", "var.dim", "std.correction",
        "std.dim", "var_mean.correction", "norm.ScalarOpt_dim", "linalg_vector_norm.default",
        "prod.dim_int", "cumsum.default", "all.default", "any.default", "topk.default",
        "sort.default",
    ),
    **_many(
        OpKind.SHAPE,
        "view.default", "_unsafe_view.default", "reshape.default", "flatten.using_ints",
        "unflatten.int", "permute.default", "transpose.int", "t.default", "contiguous.default",
        "clone.default", "expand.default", "expand_as.default", "view_as.default",
        "reshape_as.default", "squeeze.dim", "squeeze.dims", "squeeze.default",
        "unsqueeze.default", "cat.default", "stack.default", "split.Tensor",
        "split_with_sizes.default", "chunk.default", "unbind.int", "slice.Tensor", "select.int",
        "narrow.default", "pad.default", "constant_pad_nd.default", "reflection_pad1d.default",
        "reflection_pad2d.default", "replication_pad2d.default", "repeat.default",
        "flip.default", "roll.default", "alias.default", "detach.default", "_to_copy.default",
        "to.dtype", "to.dtype_layout", "to.device", "type_as.default", "index_select.default",
        "gather.default", "index.Tensor", "upsample_nearest2d.vec", "upsample_bilinear2d.vec",
        "upsample_nearest2d.default", "upsample_bilinear2d.default", "_upsample_bilinear2d_aa.vec",
        "upsample_bicubic2d.vec", "_upsample_bicubic2d_aa.vec", "_upsample_nearest_exact2d.vec",
        "pixel_shuffle.default",
        "pixel_unshuffle.default", "channel_shuffle.default", "movedim.int", "tril.default",
        "triu.default", "one_hot.default", "lift_fresh_copy.default", "tile.default",
        "diagonal.default", "flatten.default",
    ),
    **_many(
        OpKind.CREATE,
        "zeros_like.default", "ones_like.default", "full_like.default", "zeros.default",
        "ones.default", "full.default", "arange.default", "arange.start", "arange.start_step",
        "scalar_tensor.default", "new_zeros.default", "new_ones.default", "new_full.default",
        "eye.default", "linspace.default", "tensor.default",
    ),
    "aten.sym_size.int": OpKind.SYMBOLIC,
    "aten.sym_numel.default": OpKind.SYMBOLIC,
    "operator.getitem": OpKind.SYMBOLIC,
    "operator.add": OpKind.SYMBOLIC,
    "operator.sub": OpKind.SYMBOLIC,
    "operator.mul": OpKind.SYMBOLIC,
    "operator.floordiv": OpKind.SYMBOLIC,
    "operator.mod": OpKind.SYMBOLIC,
    "operator.neg": OpKind.SYMBOLIC,
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
"""Kinds whose operations carry learned weights in the layers the rules talk about."""


def op_kind(op: str) -> OpKind | None:
    """The kind of ``op`` (e.g. ``aten.conv2d.default``), or None when it is not allowed."""
    return OPS.get(op)
