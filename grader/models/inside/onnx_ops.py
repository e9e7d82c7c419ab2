"""One ONNX translation per ATen operation of the allowlist (INSIDE a box).

Each handler gets the :class:`~grader.models.inside.onnx_build.Builder` and the operation as a
:class:`~grader.models.inside.onnx_build.Call` and returns the translated result. A handler
translates only what has the same meaning in ONNX as in torch; anything else (a training-mode
operation, a size that follows the batch where ONNX needs a constant, a dtype ONNX Runtime does
not compute in the same way) raises :class:`~grader.models.inside.onnx_build.Untranslatable`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from grader.models.inside.onnx_build import (
    ONNX_DTYPES,
    Builder,
    Call,
    Size,
    Tensor,
    Untranslatable,
    check_dtype,
    has_dynamic,
    int_list,
    normalise_dim,
    numpy_dtype,
)

INT64_MAX = 2**63 - 1

Handler = Callable[[Builder, Call], Any]
HANDLERS: dict[str, Handler] = {}


def handles(*ops: str) -> Callable[[Handler], Handler]:
    def register(function: Handler) -> Handler:
        for op in ops:
            HANDLERS[f"aten.{op}"] = function
        return function

    return register


# element-wise, one input


UNARY = {
    "relu.default": "Relu",
    "sigmoid.default": "Sigmoid",
    "tanh.default": "Tanh",
    "neg.default": "Neg",
    "exp.default": "Exp",
    "log.default": "Log",
    "sqrt.default": "Sqrt",
    "abs.default": "Abs",
    "sign.default": "Sign",
    "reciprocal.default": "Reciprocal",
    "floor.default": "Floor",
    "ceil.default": "Ceil",
    "round.default": "Round",
    "erf.default": "Erf",
    "sin.default": "Sin",
    "cos.default": "Cos",
    "mish.default": "Mish",
    "hardswish.default": "HardSwish",
    "isnan.default": "IsNaN",
    "logical_not.default": "Not",
}


def _unary(onnx_op: str) -> Handler:
    def translate(b: Builder, c: Call) -> Tensor:
        dtype = c.out.dtype
        x = c.tensor(b).name if dtype == torch.bool else b.cast(c.args["self"], dtype)
        return c.result(b.op(onnx_op, [x]))

    return translate


for _aten, _onnx in UNARY.items():
    handles(_aten)(_unary(_onnx))


@handles(
    "clone.default", "contiguous.default", "alias.default", "detach.default",
    "lift_fresh_copy.default",
)  # fmt: skip
def _identity(b: Builder, c: Call) -> Tensor:
    return c.tensor(b)


@handles("dropout.default", "feature_dropout.default", "alpha_dropout.default",
         "feature_alpha_dropout.default")  # fmt: skip
def _dropout(b: Builder, c: Call) -> Tensor:
    if c.static("train"):
        raise Untranslatable(c.op, "dropout in training mode is random")
    return c.tensor(b, "input")


@handles("native_dropout.default")
def _native_dropout(b: Builder, c: Call) -> tuple:
    if c.static("train") is not False:
        raise Untranslatable(c.op, "dropout in training mode is random")
    return (c.tensor(b, "input"), None)


def _scalar_op(
    b: Builder, onnx_op: str, x: str, value: float, dtype: torch.dtype = torch.float32
) -> str:
    """``x <onnx_op> value`` with the number as a constant of ``dtype``."""
    return b.op(onnx_op, [x, b.const(value, dtype)])


@handles("rsqrt.default")
def _rsqrt(b: Builder, c: Call) -> Tensor:
    return c.result(b.op("Reciprocal", [b.op("Sqrt", [c.tensor(b).name])]))


@handles("square.default")
def _square(b: Builder, c: Call) -> Tensor:
    x = c.tensor(b).name
    return c.result(b.op("Mul", [x, x]))


@handles("exp2.default")
def _exp2(b: Builder, c: Call) -> Tensor:
    return c.result(b.op("Pow", [b.const(2.0, torch.float32), c.tensor(b).name]))


@handles("expm1.default")
def _expm1(b: Builder, c: Call) -> Tensor:
    return c.result(_scalar_op(b, "Sub", b.op("Exp", [c.tensor(b).name]), 1.0))


@handles("log1p.default")
def _log1p(b: Builder, c: Call) -> Tensor:
    return c.result(b.op("Log", [_scalar_op(b, "Add", c.tensor(b).name, 1.0)]))


@handles("log2.default", "log10.default")
def _log_base(b: Builder, c: Call) -> Tensor:
    base = 2.0 if c.name == "log2" else 10.0
    log = b.op("Log", [c.tensor(b).name])
    return c.result(_scalar_op(b, "Div", log, math.log(base)))


@handles("trunc.default", "frac.default")
def _trunc(b: Builder, c: Call) -> Tensor:
    x = c.tensor(b).name
    negative = b.op("Less", [x, b.const(0.0, torch.float32)])
    trunc = b.op("Where", [negative, b.op("Ceil", [x]), b.op("Floor", [x])])
    return c.result(trunc if c.name == "trunc" else b.op("Sub", [x, trunc]))


@handles("relu6.default", "hardtanh.default")
def _clip(b: Builder, c: Call) -> Tensor:
    if c.name == "relu6":
        low, high = 0.0, 6.0
    else:
        low, high = c.static("min_val"), c.static("max_val")
    x = c.tensor(b)
    return c.result(b.op("Clip", [x.name, b.const(low, x.dtype), b.const(high, x.dtype)]))


@handles("leaky_relu.default")
def _leaky_relu(b: Builder, c: Call) -> Tensor:
    return c.result(b.op("LeakyRelu", [c.tensor(b).name], alpha=float(c.static("negative_slope"))))


@handles("rrelu.default")
def _rrelu(b: Builder, c: Call) -> Tensor:
    if c.static("training"):
        raise Untranslatable(c.op, "rrelu in training mode is random")
    slope = (float(c.static("lower")) + float(c.static("upper"))) / 2
    return c.result(b.op("LeakyRelu", [c.tensor(b).name], alpha=slope))


@handles("elu.default")
def _elu(b: Builder, c: Call) -> Tensor:
    alpha, scale, input_scale = (float(c.static(k)) for k in ("alpha", "scale", "input_scale"))
    x = c.tensor(b).name
    if input_scale != 1.0:
        x = _scalar_op(b, "Mul", x, input_scale)
    y = b.op("Elu", [x], alpha=alpha)
    if scale != 1.0:
        y = _scalar_op(b, "Mul", y, scale)
    return c.result(y)


@handles("selu.default")
def _selu(b: Builder, c: Call) -> Tensor:
    alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
    return c.result(b.op("Selu", [c.tensor(b).name], alpha=alpha, gamma=scale))


@handles("celu.default")
def _celu(b: Builder, c: Call) -> Tensor:
    return c.result(b.op("Celu", [c.tensor(b).name], alpha=float(c.static("alpha"))))


@handles("gelu.default")
def _gelu(b: Builder, c: Call) -> Tensor:
    x = c.tensor(b).name
    if c.static("approximate") == "tanh":
        cube = b.op("Mul", [b.op("Mul", [x, x]), x])
        inner = b.op("Add", [x, _scalar_op(b, "Mul", cube, 0.044715)])
        t = b.op("Tanh", [_scalar_op(b, "Mul", inner, math.sqrt(2 / math.pi))])
    else:
        t = b.op("Erf", [_scalar_op(b, "Mul", x, 1 / math.sqrt(2))])
    half_x = _scalar_op(b, "Mul", x, 0.5)
    return c.result(b.op("Mul", [half_x, _scalar_op(b, "Add", t, 1.0)]))


@handles("silu.default")
def _silu(b: Builder, c: Call) -> Tensor:
    x = c.tensor(b).name
    return c.result(b.op("Mul", [x, b.op("Sigmoid", [x])]))


@handles("hardsigmoid.default")
def _hardsigmoid(b: Builder, c: Call) -> Tensor:
    return c.result(b.op("HardSigmoid", [c.tensor(b).name], alpha=1 / 6, beta=0.5))


def _softplus(b: Builder, x: str, beta: float, threshold: float) -> str:
    f = torch.float32
    scaled = x if beta == 1.0 else _scalar_op(b, "Mul", x, beta)
    soft = b.op("Log", [_scalar_op(b, "Add", b.op("Exp", [scaled]), 1.0)])
    if beta != 1.0:
        soft = _scalar_op(b, "Div", soft, beta)
    linear = b.op("Greater", [scaled, b.const(threshold, f)])
    return b.op("Where", [linear, x, soft])


@handles("softplus.default")
def _softplus_op(b: Builder, c: Call) -> Tensor:
    beta, threshold = float(c.static("beta")), float(c.static("threshold"))
    return c.result(_softplus(b, c.tensor(b).name, beta, threshold))


@handles("log_sigmoid.default")
def _log_sigmoid(b: Builder, c: Call) -> Tensor:
    minus = b.op("Neg", [c.tensor(b).name])
    return c.result(b.op("Neg", [_softplus(b, minus, 1.0, 20.0)]))


@handles("prelu.default", "_prelu_kernel.default")
def _prelu(b: Builder, c: Call) -> Tensor:
    x, weight = c.tensor(b), c.tensor(b, "weight")
    w = weight.name
    if weight.rank == 1 and weight.shape[0] != 1 and x.rank > 2:
        w = b.op("Reshape", [w, b.const([-1] + [1] * (x.rank - 2), torch.int64)])
    return c.result(b.op("PRelu", [x.name, w]))


@handles("softmax.int", "_softmax.default", "log_softmax.int", "_log_softmax.default")
def _softmax(b: Builder, c: Call) -> Tensor:
    if c.args.get("dtype") not in (None, torch.float32) or c.args.get("half_to_float"):
        raise Untranslatable(c.op, "softmax in another dtype")
    x = c.tensor(b)
    onnx_op = "LogSoftmax" if "log_softmax" in c.name else "Softmax"
    return c.result(b.op(onnx_op, [x.name], axis=x.dim(c.static("dim"))))


@handles("threshold.default")
def _threshold(b: Builder, c: Call) -> Tensor:
    x = c.tensor(b)
    above = b.op("Greater", [x.name, b.cast(c.static("threshold"), x.dtype)])
    return c.result(b.op("Where", [above, x.name, b.cast(c.static("value"), x.dtype)]))


# element-wise, two or more inputs


def _operands(b: Builder, c: Call, names: Sequence[str], dtype: torch.dtype) -> list[str]:
    return [b.cast(c.args[n], dtype) for n in names]


def _compute_dtype(c: Call, names: Sequence[str]) -> torch.dtype:
    """The dtype torch computes a comparison in (its operands' promoted type)."""
    first, second = (c.probe[n] for n in names)
    dtype = torch.result_type(first, second)
    check_dtype(dtype, c.op)
    return dtype


BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div"}


@handles("add.Tensor", "add.Scalar", "sub.Tensor", "sub.Scalar", "mul.Tensor", "mul.Scalar",
         "div.Tensor", "div.Scalar", "rsub.Scalar", "rsub.Tensor")  # fmt: skip
def _arithmetic(b: Builder, c: Call) -> Tensor:
    dtype = c.out.dtype
    check_dtype(dtype, c.op)
    base = c.op.split(".")[1]
    x, other = _operands(b, c, ("self", "other"), dtype)
    alpha = c.args.get("alpha", 1)
    if has_dynamic(alpha):
        raise Untranslatable(c.op, "alpha follows the batch size")
    if alpha != 1:
        scaled = x if base == "rsub" else other
        scaled = b.op("Mul", [scaled, b.const(alpha, dtype)])
        x, other = (scaled, other) if base == "rsub" else (x, scaled)
    if base == "rsub":
        return c.result(b.op("Sub", [other, x]))
    return c.result(b.op(BINARY[base], [x, other]))


@handles("div.Tensor_mode", "div.Scalar_mode")
def _div_mode(b: Builder, c: Call) -> Tensor:
    if c.static("rounding_mode") is not None:
        raise Untranslatable(c.op, "division with a rounding mode")
    x, other = _operands(b, c, ("self", "other"), c.out.dtype)
    return c.result(b.op("Div", [x, other]))


@handles("pow.Tensor_Scalar", "pow.Tensor_Tensor", "pow.Scalar")
def _pow(b: Builder, c: Call) -> Tensor:
    dtype = c.out.dtype
    if dtype != torch.float32:
        raise Untranslatable(c.op, f"power in {dtype}")
    if c.op == "aten.pow.Scalar":
        base, exponent = b.cast(c.args["self"], dtype), b.cast(c.args["exponent"], dtype)
    else:
        base, exponent = _operands(b, c, ("self", "exponent"), dtype)
    if c.op == "aten.pow.Tensor_Scalar" and c.args["exponent"] == 2:
        return c.result(b.op("Mul", [base, base]))
    return c.result(b.op("Pow", [base, exponent]))


COMPARE = {
    "eq": ("Equal", False), "ne": ("Equal", True), "gt": ("Greater", False),
    "lt": ("Less", False), "ge": ("GreaterOrEqual", False), "le": ("LessOrEqual", False),
}  # fmt: skip


@handles(*(f"{name}.{kind}" for name in COMPARE for kind in ("Tensor", "Scalar")))
def _compare(b: Builder, c: Call) -> Tensor:
    onnx_op, negate = COMPARE[c.op.split(".")[1]]
    x, other = _operands(b, c, ("self", "other"), _compute_dtype(c, ("self", "other")))
    result = b.op(onnx_op, [x, other])
    return c.result(b.op("Not", [result]) if negate else result, torch.bool)


@handles("logical_and.default", "logical_or.default")
def _logical(b: Builder, c: Call) -> Tensor:
    x, other = _operands(b, c, ("self", "other"), torch.bool)
    return c.result(b.op("And" if c.name == "logical_and" else "Or", [x, other]), torch.bool)


@handles("minimum.default", "maximum.default")
def _min_max(b: Builder, c: Call) -> Tensor:
    x, other = _operands(b, c, ("self", "other"), c.out.dtype)
    return c.result(b.op("Min" if c.name == "minimum" else "Max", [x, other]))


@handles("clamp.default", "clamp_min.default", "clamp_max.default", "clamp.Tensor")
def _clamp(b: Builder, c: Call) -> Tensor:
    dtype = c.out.dtype
    y = b.cast(c.args["self"], dtype)
    low = c.args.get("min") if "clamp_max" not in c.op else None
    high = c.args.get("max") if "clamp_min" not in c.op else None
    if low is not None:
        y = b.op("Max", [y, b.cast(low, dtype)])
    if high is not None:
        y = b.op("Min", [y, b.cast(high, dtype)])
    return c.result(y)


@handles("where.self", "where.ScalarOther", "where.ScalarSelf")
def _where(b: Builder, c: Call) -> Tensor:
    dtype = c.out.dtype
    condition = b.cast(c.args["condition"], torch.bool)
    return c.result(
        b.op("Where", [condition, b.cast(c.args["self"], dtype), b.cast(c.args["other"], dtype)])
    )


@handles("masked_fill.Scalar", "masked_fill.Tensor")
def _masked_fill(b: Builder, c: Call) -> Tensor:
    x = c.tensor(b)
    mask = b.cast(c.args["mask"], torch.bool)
    return c.result(b.op("Where", [mask, b.cast(c.args["value"], x.dtype), x.name]))


@handles("lerp.Scalar")
def _lerp(b: Builder, c: Call) -> Tensor:
    dtype = c.out.dtype
    start, end = _operands(b, c, ("self", "end"), dtype)
    step = b.op("Mul", [b.op("Sub", [end, start]), b.cast(c.static("weight"), dtype)])
    return c.result(b.op("Add", [start, step]))


@handles("addcmul.default", "addcdiv.default")
def _addc(b: Builder, c: Call) -> Tensor:
    dtype = c.out.dtype
    x, t1, t2 = _operands(b, c, ("self", "tensor1", "tensor2"), dtype)
    term = b.op("Mul" if c.name == "addcmul" else "Div", [t1, t2])
    if c.static("value") != 1:
        term = b.op("Mul", [term, b.const(c.static("value"), dtype)])
    return c.result(b.op("Add", [x, term]))


@handles("fmod.Scalar")
def _fmod(b: Builder, c: Call) -> Tensor:
    x, other = _operands(b, c, ("self", "other"), c.out.dtype)
    return c.result(b.op("Mod", [x, other], fmod=1))


@handles("remainder.Scalar", "remainder.Tensor")
def _remainder(b: Builder, c: Call) -> Tensor:
    dtype = c.out.dtype
    x, other = _operands(b, c, ("self", "other"), dtype)
    if dtype != torch.float32:
        return c.result(b.op("Mod", [x, other], fmod=0))
    # torch's: fmod (exact), moved by the divisor where its sign differs from the divisor's.
    # ``x - floor(x / other) * other`` is not: it loses the remainder of large quotients.
    mod = b.op("Mod", [x, other], fmod=1)
    zero = b.const(0.0, dtype)
    signs_differ = b.op("Xor", [b.op("Less", [other, zero]), b.op("Less", [mod, zero])])
    nonzero = b.op("Not", [b.op("Equal", [mod, zero])])
    moved = b.op("Add", [mod, other])
    return c.result(b.op("Where", [b.op("And", [nonzero, signs_differ]), moved, mod]))


@handles("hypot.default")
def _hypot(b: Builder, c: Call) -> Tensor:
    x, other = _operands(b, c, ("self", "other"), c.out.dtype)
    squares = b.op("Add", [b.op("Mul", [x, x]), b.op("Mul", [other, other])])
    return c.result(b.op("Sqrt", [squares]))


@handles("nan_to_num.default")
def _nan_to_num(b: Builder, c: Call) -> Tensor:
    x = c.tensor(b)
    if x.dtype != torch.float32:
        return x
    info = torch.finfo(torch.float32)
    values = [c.static(k) for k in ("nan", "posinf", "neginf")]
    nan, posinf, neginf = (d if v is None else v for v, d in zip(values, (0.0, info.max, info.min),
                                                                   strict=True))  # fmt: skip
    y = b.op("Where", [b.op("IsNaN", [x.name]), b.const(nan, x.dtype), x.name])
    y = b.op("Where", [b.op("IsInf", [x.name], detect_negative=0), b.const(posinf, x.dtype), y])
    y = b.op("Where", [b.op("IsInf", [x.name], detect_positive=0), b.const(neginf, x.dtype), y])
    return c.result(y)


# matrix products


@handles("linear.default")
def _linear(b: Builder, c: Call) -> Tensor:
    x, weight = c.tensor(b, "input"), c.tensor(b, "weight")
    bias = c.args.get("bias")
    if x.rank == 2 and weight.rank == 2:
        inputs = [x.name, weight.name] + ([b.tensor(bias).name] if bias is not None else [])
        return c.result(b.op("Gemm", inputs, transB=1))
    y = b.op("MatMul", [x.name, b.op("Transpose", [weight.name])])
    return c.result(b.op("Add", [y, b.tensor(bias).name]) if bias is not None else y)


@handles("addmm.default")
def _addmm(b: Builder, c: Call) -> Tensor:
    bias, m1, m2 = (c.tensor(b, n).name for n in ("self", "mat1", "mat2"))
    beta, alpha = float(c.static("beta")), float(c.static("alpha"))
    return c.result(b.op("Gemm", [m1, m2, bias], alpha=alpha, beta=beta))


@handles("mm.default", "bmm.default", "matmul.default")
def _matmul(b: Builder, c: Call) -> Tensor:
    other = "mat2" if "mat2" in c.args else "other"
    return c.result(b.op("MatMul", [c.tensor(b).name, c.tensor(b, other).name]))


@handles("baddbmm.default")
def _baddbmm(b: Builder, c: Call) -> Tensor:
    dtype = c.out.dtype
    product = b.op("MatMul", [c.tensor(b, "batch1").name, c.tensor(b, "batch2").name])
    if c.static("alpha") != 1:
        product = b.op("Mul", [product, b.const(c.static("alpha"), dtype)])
    base = c.tensor(b).name
    if c.static("beta") != 1:
        base = b.op("Mul", [base, b.const(c.static("beta"), dtype)])
    return c.result(b.op("Add", [base, product]))


@handles("einsum.default")
def _einsum(b: Builder, c: Call) -> Tensor:
    operands = [b.tensor(t).name for t in c.args["tensors"]]
    return c.result(b.op("Einsum", operands, equation=c.static("equation").replace(" ", "")))


# convolutions


@handles("conv1d.default", "conv2d.default", "conv3d.default", "conv1d.padding",
         "conv2d.padding", "conv3d.padding", "convolution.default",
         "conv_transpose1d.default", "conv_transpose2d.input",
         "conv_transpose3d.input")  # fmt: skip
def _conv(b: Builder, c: Call) -> Tensor:
    x, weight = c.tensor(b, "input"), c.tensor(b, "weight")
    spatial = weight.rank - 2
    transposed = "transpose" in c.op or bool(c.args.get("transposed"))
    stride = int_list(c.static("stride"), spatial)
    dilation = int_list(c.static("dilation"), spatial)
    padding = c.static("padding")
    kernel = [int(k) for k in weight.shape[2:]]
    if padding == "valid":
        pads = [0] * (2 * spatial)
    elif padding == "same":
        total = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
        pads = [t // 2 for t in total] + [t - t // 2 for t in total]
    else:
        pads = int_list(padding, spatial) * 2
    attrs: dict[str, Any] = dict(
        strides=stride, dilations=dilation, pads=pads, group=int(c.static("groups"))
    )
    inputs = [x.name, weight.name]
    if c.args.get("bias") is not None:
        inputs.append(c.tensor(b, "bias").name)
    if not transposed:
        return c.result(b.op("Conv", inputs, **attrs))
    attrs["output_padding"] = int_list(c.static("output_padding"), spatial)
    return c.result(b.op("ConvTranspose", inputs, **attrs))


# normalisation


def _normalised(c: Call, name: str, plain: str) -> Any:
    """The result of a normalisation: a tensor for the ``plain`` overload, else the native
    overloads' (output, statistics...) tuple, whose statistics have no translation."""
    if c.op == plain:
        return c.result(name)
    return (Tensor(name, c.out[0].dtype, tuple(c.shape[0])), None, None)


def _ones_or(b: Builder, value: Any, size: int, fill: float) -> str:
    if value is None:
        return b.const(np.full(size, fill, np.float32), torch.float32)
    return b.tensor(value).name


@handles("batch_norm.default", "native_batch_norm.default",
         "_native_batch_norm_legit_no_training.default")  # fmt: skip
def _batch_norm(b: Builder, c: Call) -> Any:
    if c.args.get("training", False):
        raise Untranslatable(c.op, "batch norm with batch statistics (training mode)")
    x = c.tensor(b, "input")
    channels = x.shape[1]
    if channels is None or c.args["running_mean"] is None or c.args["running_var"] is None:
        raise Untranslatable(c.op, "batch norm without running statistics")
    inputs = [
        x.name,
        _ones_or(b, c.args["weight"], channels, 1.0),
        _ones_or(b, c.args["bias"], channels, 0.0),
        c.tensor(b, "running_mean").name,
        c.tensor(b, "running_var").name,
    ]
    name = b.op("BatchNormalization", inputs, epsilon=float(c.static("eps")))
    return _normalised(c, name, "aten.batch_norm.default")


@handles("layer_norm.default", "native_layer_norm.default")
def _layer_norm(b: Builder, c: Call) -> Any:
    x = c.tensor(b, "input")
    normalized = list(c.static("normalized_shape"))
    size = int(np.prod(normalized))
    scale = _ones_or(b, c.args["weight"], size, 1.0)
    bias = _ones_or(b, c.args["bias"], size, 0.0)
    if c.args["weight"] is None:
        scale = b.op("Reshape", [scale, b.const(normalized, torch.int64)])
    if c.args["bias"] is None:
        bias = b.op("Reshape", [bias, b.const(normalized, torch.int64)])
    name = b.op(
        "LayerNormalization",
        [x.name, scale, bias],
        axis=-len(normalized),
        epsilon=float(c.static("eps")),
    )
    return _normalised(c, name, "aten.layer_norm.default")


@handles("group_norm.default", "native_group_norm.default")
def _group_norm(b: Builder, c: Call) -> Any:
    x = c.tensor(b, "input")
    groups = int(c.static("num_groups" if "num_groups" in c.args else "group"))
    channels = x.shape[1]
    eps = float(c.static("eps"))
    grouped = b.op("Reshape", [x.name, b.const([0, groups, -1], torch.int64)])
    axes = b.const([2], torch.int64)
    mean = b.op("ReduceMean", [grouped, axes], keepdims=1)
    centred = b.op("Sub", [grouped, mean])
    var = b.op("ReduceMean", [b.op("Mul", [centred, centred]), axes], keepdims=1)
    std = b.op("Sqrt", [b.op("Add", [var, b.const(eps, torch.float32)])])
    normed = b.op("Reshape", [b.op("Div", [centred, std]), b.op("Shape", [x.name])])
    broadcast = b.const([channels] + [1] * (x.rank - 2), torch.int64)
    y = normed
    if c.args["weight"] is not None:
        y = b.op("Mul", [y, b.op("Reshape", [c.tensor(b, "weight").name, broadcast])])
    if c.args["bias"] is not None:
        y = b.op("Add", [y, b.op("Reshape", [c.tensor(b, "bias").name, broadcast])])
    return _normalised(c, y, "aten.group_norm.default")


@handles("instance_norm.default")
def _instance_norm(b: Builder, c: Call) -> Tensor:
    x = c.tensor(b, "input")
    channels = x.shape[1]
    scale = _ones_or(b, c.args["weight"], channels, 1.0)
    bias = _ones_or(b, c.args["bias"], channels, 0.0)
    eps = float(c.static("eps"))
    if c.static("use_input_stats"):
        return c.result(b.op("InstanceNormalization", [x.name, scale, bias], epsilon=eps))
    stats = [c.tensor(b, "running_mean").name, c.tensor(b, "running_var").name]
    return c.result(b.op("BatchNormalization", [x.name, scale, bias, *stats], epsilon=eps))


@handles("rms_norm.default")
def _rms_norm(b: Builder, c: Call) -> Tensor:
    x = c.tensor(b, "input")
    normalized = list(c.static("normalized_shape"))
    eps = c.args.get("eps")
    eps = float(torch.finfo(torch.float32).eps) if eps is None else float(eps)
    axes = b.const(list(range(x.rank - len(normalized), x.rank)), torch.int64)
    mean_square = b.op("ReduceMean", [b.op("Mul", [x.name, x.name]), axes], keepdims=1)
    rms = b.op("Sqrt", [b.op("Add", [mean_square, b.const(eps, torch.float32)])])
    y = b.op("Mul", [x.name, b.op("Reciprocal", [rms])])
    if c.args.get("weight") is not None:
        y = b.op("Mul", [y, c.tensor(b, "weight").name])
    return c.result(y)


# pooling and other selections of the largest or smallest value


def _keep_nan(b: Builder, x: Tensor, selected: str, select: Callable[[str], str]) -> str:
    """``selected`` with NaN wherever the same selection (``select``) over ``x`` met a NaN.

    torch's max pooling and max/min reductions propagate NaN; ONNX Runtime's skip it (measured:
    MaxPool, GlobalMaxPool, ReduceMax), and a graph could turn that difference into a branch
    that only one runtime takes. The selection is repeated over a NaN indicator instead.
    """
    if x.dtype != torch.float32:
        return selected
    f = torch.float32
    seen = select(b.op("Cast", [b.op("IsNaN", [x.name])], to=ONNX_DTYPES[f]))
    nan_here = b.op("Greater", [seen, b.const(0.0, f)])
    return b.op("Where", [nan_here, b.const(float("nan"), f), selected])


def _arg_keep_nan(b: Builder, x: Tensor, onnx_op: str, axis: int, keep: int) -> str:
    """ArgMax/ArgMin of ``x`` along ``axis`` as torch's: the first NaN where there is one, else
    the first extreme value."""
    plain = b.op(onnx_op, [x.name], axis=axis, keepdims=keep)
    if x.dtype != torch.float32:
        return plain
    flag = b.op("Cast", [b.op("IsNaN", [x.name])], to=ONNX_DTYPES[torch.float32])
    first_nan = b.op("ArgMax", [flag], axis=axis, keepdims=keep)
    any_nan = b.op("Greater", [_reduce(b, "ReduceMax", flag, [axis], bool(keep)),
                               b.const(0.0, torch.float32)])  # fmt: skip
    return b.op("Where", [any_nan, first_nan, plain])


def _window(c: Call, spatial: int) -> dict[str, Any]:
    """A pooling's window as ONNX attributes (torch's empty stride means the kernel's)."""
    kernel = int_list(c.static("kernel_size"), spatial)
    return dict(
        kernel_shape=kernel,
        strides=int_list(c.static("stride"), spatial) if c.static("stride") else kernel,
        pads=int_list(c.static("padding"), spatial) * 2,
        ceil_mode=int(bool(c.static("ceil_mode"))),
    )


@handles("max_pool1d.default", "max_pool2d.default", "max_pool3d.default",
         "max_pool2d_with_indices.default")  # fmt: skip
def _max_pool(b: Builder, c: Call) -> Any:
    x = c.tensor(b)
    attrs = _window(c, x.rank - 2)
    attrs["dilations"] = int_list(c.static("dilation"), x.rank - 2)
    name = _keep_nan(b, x, b.op("MaxPool", [x.name], **attrs),
                     lambda flag: b.op("MaxPool", [flag], **attrs))  # fmt: skip
    if c.op == "aten.max_pool2d_with_indices.default":
        return (Tensor(name, x.dtype, tuple(c.shape[0])), None)
    return c.result(name)


@handles("avg_pool1d.default", "avg_pool2d.default", "avg_pool3d.default")
def _avg_pool(b: Builder, c: Call) -> Tensor:
    if c.args.get("divisor_override") is not None:
        raise Untranslatable(c.op, "average pooling with a divisor override")
    x = c.tensor(b)
    attrs = _window(c, x.rank - 2)
    attrs["count_include_pad"] = int(bool(c.static("count_include_pad")))
    return c.result(b.op("AveragePool", [x.name], **attrs))


@handles("adaptive_avg_pool1d.default", "adaptive_avg_pool2d.default",
         "_adaptive_avg_pool2d.default", "adaptive_max_pool2d.default")  # fmt: skip
def _adaptive_pool(b: Builder, c: Call) -> Any:
    x = c.tensor(b)
    spatial = x.rank - 2
    sizes = x.shape[2:]
    wanted = [s if w is None else w for w, s in zip(int_list(c.static("output_size"), spatial),
                                                    sizes, strict=True)]  # fmt: skip
    is_max = "max" in c.op
    if any(s is None for s in sizes) or any(s % w for s, w in zip(sizes, wanted, strict=True)):
        raise Untranslatable(c.op, f"adaptive pooling from {sizes} to {wanted} is uneven")
    kernel = [s // w for s, w in zip(sizes, wanted, strict=True)]

    def pool(name: str) -> str:
        if all(w == 1 for w in wanted):
            return b.op("GlobalMaxPool" if is_max else "GlobalAveragePool", [name])
        if list(sizes) == wanted:
            return name
        onnx_op = "MaxPool" if is_max else "AveragePool"
        return b.op(onnx_op, [name], kernel_shape=kernel, strides=kernel)

    name = pool(x.name)
    if is_max:
        name = _keep_nan(b, x, name, pool) if name != x.name else name
        return (Tensor(name, x.dtype, tuple(c.shape[0])), None)
    return c.result(name)


# reductions


def _axes(c: Call, x: Tensor, name: str = "dim") -> list[int] | None:
    dims = c.static(name) if name in c.args else None
    if dims is None:
        return None
    dims = [dims] if isinstance(dims, int) else list(dims)
    return [x.dim(d) for d in dims] or None


def _reduce(b: Builder, onnx_op: str, x: str, axes: list[int] | None, keepdim: bool) -> str:
    inputs = [x] if axes is None else [x, b.const(axes, torch.int64)]
    return b.op(onnx_op, inputs, keepdims=int(keepdim))


def _no_dtype(c: Call) -> None:
    if c.args.get("dtype") not in (None, c.out.dtype if isinstance(c.out, torch.Tensor) else None):
        raise Untranslatable(c.op, "a reduction that changes the dtype")


REDUCE = {
    "mean": "ReduceMean", "sum": "ReduceSum", "amax": "ReduceMax", "amin": "ReduceMin",
    "logsumexp": "ReduceLogSumExp", "prod": "ReduceProd",
}  # fmt: skip


@handles("mean.dim", "mean.default", "sum.dim_IntList", "sum.default", "amax.default",
         "amin.default", "logsumexp.default", "prod.dim_int", "max.default",
         "min.default")  # fmt: skip
def _reduction(b: Builder, c: Call) -> Tensor:
    _no_dtype(c)
    x = c.tensor(b)
    base = c.op.split(".")[1]
    onnx_op = REDUCE.get(base) or ("ReduceMax" if base == "max" else "ReduceMin")
    if x.dtype == torch.bool:
        raise Untranslatable(c.op, "a reduction of booleans")
    axes, keep = _axes(c, x), bool(c.args.get("keepdim"))
    y = _reduce(b, onnx_op, b.cast(x, c.out.dtype), axes, keep)
    if onnx_op in ("ReduceMax", "ReduceMin"):
        y = _keep_nan(b, x, y, lambda flag: _reduce(b, "ReduceMax", flag, axes, keep))
    return c.result(y)


@handles("max.dim", "min.dim")
def _max_dim(b: Builder, c: Call) -> tuple:
    x = c.tensor(b)
    axis = x.dim(c.static("dim"))
    keep = int(bool(c.static("keepdim")))
    is_max = c.name == "max"
    values = _reduce(b, "ReduceMax" if is_max else "ReduceMin", x.name, [axis], bool(keep))
    values = _keep_nan(b, x, values, lambda flag: _reduce(b, "ReduceMax", flag, [axis], bool(keep)))
    indices = _arg_keep_nan(b, x, "ArgMax" if is_max else "ArgMin", axis, keep)
    return (Tensor(values, x.dtype, tuple(c.shape[0])),
            Tensor(indices, torch.int64, tuple(c.shape[1])))  # fmt: skip


@handles("argmax.default", "argmin.default")
def _argmax(b: Builder, c: Call) -> Tensor:
    x = c.tensor(b)
    onnx_op = "ArgMax" if c.name == "argmax" else "ArgMin"
    if c.args.get("dim") is None:
        flat = b.op("Reshape", [x.name, b.const([-1], torch.int64)])
        whole = Tensor(flat, x.dtype, (None,))
        return c.result(_arg_keep_nan(b, whole, onnx_op, 0, 0), torch.int64)
    axis = x.dim(c.static("dim"))
    keep = int(bool(c.static("keepdim")))
    return c.result(_arg_keep_nan(b, x, onnx_op, axis, keep), torch.int64)


@handles("var.correction", "var.dim", "std.correction", "std.dim", "var_mean.correction")
def _variance(b: Builder, c: Call) -> Any:
    x = c.tensor(b)
    axes = _axes(c, x) or list(range(x.rank))
    if "correction" in c.op:
        correction = c.static("correction")
        correction = 1.0 if correction is None else float(correction)
    else:
        correction = 1.0 if c.static("unbiased") else 0.0
    sizes = [x.shape[a] for a in axes]
    if any(s is None for s in sizes):
        raise Untranslatable(c.op, "a variance over the batch dimension")
    count = float(np.prod(sizes)) - correction
    keep = bool(c.static("keepdim"))
    mean = _reduce(b, "ReduceMean", x.name, axes, True)
    centred = b.op("Sub", [x.name, mean])
    total = _reduce(b, "ReduceSum", b.op("Mul", [centred, centred]), axes, keep)
    var = b.op("Div", [total, b.const(count, torch.float32)])
    if c.name == "std":
        return c.result(b.op("Sqrt", [var]))
    if c.op == "aten.var_mean.correction":
        mean_out = mean if keep else _reduce(b, "ReduceMean", x.name, axes, False)
        return (Tensor(var, x.dtype, tuple(c.shape[0])),
                Tensor(mean_out, x.dtype, tuple(c.shape[1])))  # fmt: skip
    return c.result(var)


@handles("norm.ScalarOpt_dim", "linalg_vector_norm.default")
def _norm(b: Builder, c: Call) -> Tensor:
    _no_dtype(c)
    x = c.tensor(b)
    order = c.static("p" if "p" in c.args else "ord")
    order = 2.0 if order is None else float(order)
    onnx_op = {1.0: "ReduceL1", 2.0: "ReduceL2"}.get(order)
    if onnx_op is None:
        raise Untranslatable(c.op, f"a norm of order {order}")
    return c.result(_reduce(b, onnx_op, x.name, _axes(c, x), bool(c.static("keepdim"))))


@handles("cumsum.default")
def _cumsum(b: Builder, c: Call) -> Tensor:
    _no_dtype(c)
    x = c.tensor(b)
    axis = b.const(x.dim(c.static("dim")), torch.int64)
    return c.result(b.op("CumSum", [b.cast(x, c.out.dtype), axis]))


# shapes


def _reshape(b: Builder, c: Call, x: Tensor) -> Tensor:
    """``x`` reshaped to the call's result shape: static sizes, and -1 for the one dimension
    that follows the batch; the program's own sizes when there are several."""
    shape = list(c.shape)
    dynamic = [i for i, s in enumerate(shape) if s is None]
    if len(dynamic) <= 1:
        target = [-1 if s is None else s for s in shape]
        return c.result(b.op("Reshape", [x.name, b.const(target, torch.int64)], allowzero=0))
    sizes = c.args.get("size", c.args.get("shape"))
    if sizes is None:
        raise Untranslatable(c.op, "several dimensions follow the batch size")
    return c.result(b.op("Reshape", [x.name, b.ints(list(sizes))]))


@handles("view.default", "_unsafe_view.default", "reshape.default", "flatten.using_ints",
         "unflatten.int", "squeeze.dim", "squeeze.dims", "squeeze.default",
         "unsqueeze.default")  # fmt: skip
def _view(b: Builder, c: Call) -> Tensor:
    return _reshape(b, c, c.tensor(b))


@handles("view_as.default", "reshape_as.default")
def _view_as(b: Builder, c: Call) -> Tensor:
    return c.result(b.op("Reshape", [c.tensor(b).name, b.op("Shape", [c.tensor(b, "other").name])]))


@handles("permute.default", "movedim.int", "transpose.int", "t.default")
def _permute(b: Builder, c: Call) -> Tensor:
    x = c.tensor(b)
    order = list(range(x.rank))
    if c.op == "aten.permute.default":
        order = [x.dim(d) for d in c.static("dims")]
    elif c.op == "aten.movedim.int":
        source, target = x.dim(c.static("source")), x.dim(c.static("destination"))
        order.remove(source)
        order.insert(target, source)
    elif c.op == "aten.transpose.int":
        d0, d1 = x.dim(c.static("dim0")), x.dim(c.static("dim1"))
        order[d0], order[d1] = order[d1], order[d0]
    else:
        order = order[::-1]
    if order == list(range(x.rank)):
        return x
    return c.result(b.op("Transpose", [x.name], perm=order))


@handles("expand.default")
def _expand(b: Builder, c: Call) -> Tensor:
    x = c.tensor(b)
    sizes = [1 if isinstance(s, int) and s == -1 else s for s in c.args["size"]]
    return c.result(b.op("Expand", [x.name, b.ints(sizes)]))


@handles("expand_as.default")
def _expand_as(b: Builder, c: Call) -> Tensor:
    return c.result(b.op("Expand", [c.tensor(b).name, b.op("Shape", [c.tensor(b, "other").name])]))


@handles("cat.default", "stack.default")
def _cat(b: Builder, c: Call) -> Tensor:
    dtype = c.out.dtype
    rank = len(c.shape)
    axis = normalise_dim(c.static("dim"), rank)
    parts = [b.cast(t, dtype) for t in c.args["tensors"]]
    if c.op == "aten.stack.default":
        parts = [b.op("Unsqueeze", [p, b.const([axis], torch.int64)]) for p in parts]
    return c.result(b.op("Concat", parts, axis=axis))


def _split_sizes(c: Call, axis: int) -> list[int]:
    sizes = [int(t.shape[axis]) for t in c.out]
    if any(s[axis] is None for s in c.shape):
        raise Untranslatable(c.op, "a split along the batch dimension")
    return sizes


@handles("split.Tensor", "split_with_sizes.default", "chunk.default", "unbind.int")
def _split(b: Builder, c: Call) -> tuple:
    x = c.tensor(b)
    axis = x.dim(c.static("dim"))
    sizes = _split_sizes(c, axis)
    names = b.op("Split", [x.name, b.const(sizes, torch.int64)], outputs=len(sizes), axis=axis)
    names = [names] if isinstance(names, str) else names
    if c.op == "aten.unbind.int":
        axes = b.const([axis], torch.int64)
        names = [b.op("Squeeze", [n, axes]) for n in names]
    return tuple(Tensor(n, x.dtype, tuple(s)) for n, s in zip(names, c.shape, strict=True))


@handles("slice.Tensor", "narrow.default")
def _slice(b: Builder, c: Call) -> Tensor:
    x = c.tensor(b)
    axis = x.dim(c.static("dim"))
    if c.op == "aten.narrow.default":
        start, length = c.args["start"], c.args["length"]
        if isinstance(start, Tensor) or not isinstance(length, int):
            raise Untranslatable(c.op, "a narrow of varying length")
        end: Any = start + length if isinstance(start, int) else None
        if end is None:
            raise Untranslatable(c.op, "a narrow from a varying start")
        step = 1
    else:
        start = c.args["start"] if c.args["start"] is not None else 0
        end = c.args["end"] if c.args["end"] is not None else INT64_MAX
        step = c.static("step")
    if start == 0 and end == INT64_MAX and step == 1:
        return x
    inputs = [x.name, b.ints([start]), b.ints([end]), b.const([axis], torch.int64),
              b.const([step], torch.int64)]  # fmt: skip
    return c.result(b.op("Slice", inputs))


@handles("select.int")
def _select(b: Builder, c: Call) -> Tensor:
    x = c.tensor(b)
    axis = x.dim(c.static("dim"))
    index = c.args["index"]
    indices = (
        b.const(index, torch.int64) if isinstance(index, int) else b.op("Squeeze", [index.name])
    )
    return c.result(b.op("Gather", [x.name, indices], axis=axis))


PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}


@handles("pad.default", "constant_pad_nd.default", "reflection_pad1d.default",
         "reflection_pad2d.default", "replication_pad2d.default")  # fmt: skip
def _pad(b: Builder, c: Call) -> Tensor:
    x = c.tensor(b)
    pad = [int(p) for p in c.static("pad" if "pad" in c.args else "padding")]
    if c.name.startswith("reflection"):
        mode = "reflect"
    elif c.name.startswith("replication"):
        mode = "edge"
    else:
        mode = PAD_MODES.get(c.static("mode") if "mode" in c.args else "constant")
    if mode is None:
        raise Untranslatable(c.op, f"padding mode {c.args.get('mode')!r}")
    begins, ends = [0] * x.rank, [0] * x.rank
    for i in range(len(pad) // 2):
        axis = x.rank - 1 - i
        begins[axis], ends[axis] = pad[2 * i], pad[2 * i + 1]
    inputs = [x.name, b.const(begins + ends, torch.int64)]
    if mode == "constant":
        value = c.args.get("value")
        inputs.append(b.const(0.0 if value is None else value, x.dtype))
    return c.result(b.op("Pad", inputs, mode=mode))


@handles("repeat.default", "tile.default")
def _repeat(b: Builder, c: Call) -> Tensor:
    x = c.tensor(b)
    repeats = list(c.static("repeats" if "repeats" in c.args else "dims"))
    name = x.name
    if len(repeats) > x.rank:
        new = len(repeats) - x.rank
        name = b.op("Unsqueeze", [name, b.const(list(range(new)), torch.int64)])
    elif len(repeats) < x.rank:
        repeats = [1] * (x.rank - len(repeats)) + repeats
    return c.result(b.op("Tile", [name, b.const(repeats, torch.int64)]))


@handles("flip.default")
def _flip(b: Builder, c: Call) -> Tensor:
    x = c.tensor(b)
    axes = [x.dim(d) for d in c.static("dims")]
    n = len(axes)
    inputs = [x.name, b.const([-1] * n, torch.int64), b.const([-(2**63)] * n, torch.int64),
              b.const(axes, torch.int64), b.const([-1] * n, torch.int64)]  # fmt: skip
    return c.result(b.op("Slice", inputs))


@handles("_to_copy.default", "to.dtype", "to.dtype_layout", "to.device", "type_as.default")
def _to(b: Builder, c: Call) -> Tensor:
    return c.result(b.cast(c.args["self"], c.out.dtype))


@handles("index.Tensor")
def _index(b: Builder, c: Call) -> Tensor:
    x = c.tensor(b)
    indices = list(c.args["indices"])
    given = [i for i, index in enumerate(indices) if index is not None]
    if len(given) != 1:
        raise Untranslatable(c.op, "indexing with several index tensors")
    index = b.tensor(indices[given[0]])
    if index.dtype != torch.int64:
        raise Untranslatable(c.op, "indexing with a mask (the result's size depends on values)")
    return c.result(b.op("Gather", [x.name, index.name], axis=given[0]))


@handles("roll.default")
def _roll(b: Builder, c: Call) -> Tensor:
    x = c.tensor(b)
    shifts, dims = list(int_list(c.static("shifts"), 1)), list(int_list(c.static("dims"), 1))
    if not dims or len(shifts) != len(dims):
        raise Untranslatable(c.op, "a roll of the flattened tensor")
    name = x.name
    for shift, d in zip(shifts, dims, strict=True):
        axis = x.dim(d)
        size = x.shape[axis]
        if size is None:
            raise Untranslatable(c.op, "a roll along the batch dimension")
        cut = size - shift % size
        axes = b.const([axis], torch.int64)
        head = b.op("Slice", [name, b.const([0], torch.int64), b.const([cut], torch.int64), axes])
        tail = b.op(
            "Slice", [name, b.const([cut], torch.int64), b.const([size], torch.int64), axes]
        )
        name = b.op("Concat", [tail, head], axis=axis)
    return c.result(name)


@handles("index_select.default")
def _index_select(b: Builder, c: Call) -> Tensor:
    x = c.tensor(b)
    index = c.tensor(b, "index").name
    return c.result(b.op("Gather", [x.name, index], axis=x.dim(c.static("dim"))))


@handles("gather.default")
def _gather(b: Builder, c: Call) -> Tensor:
    x = c.tensor(b)
    index = c.tensor(b, "index").name
    return c.result(b.op("GatherElements", [x.name, index], axis=x.dim(c.static("dim"))))


@handles("upsample_nearest2d.vec", "upsample_nearest2d.default", "upsample_bilinear2d.vec",
         "upsample_bilinear2d.default")  # fmt: skip
def _upsample(b: Builder, c: Call) -> Tensor:
    x = c.tensor(b, "input" if "input" in c.args else "self")
    if any(s is None for s in c.shape[1:]):
        raise Untranslatable(c.op, "upsampling to a varying size")
    sizes = b.ints([Size(b.op("Shape", [x.name], start=0, end=1)), *c.shape[1:]])
    if "nearest" in c.op:
        attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                     nearest_mode="floor")  # fmt: skip
    else:
        align = c.static("align_corners")
        attrs = dict(mode="linear",
                     coordinate_transformation_mode="align_corners" if align
                     else "pytorch_half_pixel")  # fmt: skip
    return c.result(b.op("Resize", [x.name, "", "", sizes], **attrs))


@handles("pixel_shuffle.default", "pixel_unshuffle.default", "channel_shuffle.default")
def _shuffle(b: Builder, c: Call) -> Tensor:
    x = c.tensor(b)
    if x.rank != 4 or any(s is None for s in x.shape[1:]):
        raise Untranslatable(c.op, "a shuffle of a varying size")
    _, channels, height, width = x.shape
    if c.op == "aten.pixel_shuffle.default":
        r = int(c.static("upscale_factor"))
        split, perm = [-1, channels // (r * r), r, r, height, width], [0, 1, 4, 2, 5, 3]
    elif c.op == "aten.pixel_unshuffle.default":
        r = int(c.static("downscale_factor"))
        split, perm = [-1, channels, height // r, r, width // r, r], [0, 1, 3, 5, 2, 4]
    else:
        g = int(c.static("groups"))
        split, perm = [-1, g, channels // g, height, width], [0, 2, 1, 3, 4]
    parts = b.op("Reshape", [x.name, b.const(split, torch.int64)])
    moved = b.op("Transpose", [parts], perm=perm)
    return _reshape(b, c, Tensor(moved, x.dtype, ()))


@handles("tril.default", "triu.default")
def _tri(b: Builder, c: Call) -> Tensor:
    x = c.tensor(b)
    k = b.const(int(c.static("diagonal")), torch.int64)
    return c.result(b.op("Trilu", [x.name, k], upper=int(c.name == "triu")))


# new tensors shaped like the batch


@handles("zeros_like.default", "ones_like.default", "full_like.default")
def _fill_like(b: Builder, c: Call) -> Tensor:
    from onnx import numpy_helper

    value = {"zeros": 0, "ones": 1}.get(c.op.split(".")[1].split("_")[0], c.args.get("fill_value"))
    check_dtype(c.out.dtype, c.op)
    fill = numpy_helper.from_array(np.asarray([value], numpy_dtype(c.out.dtype)))
    shape = b.op("Shape", [c.tensor(b).name])
    return c.result(b.op("ConstantOfShape", [shape], value=fill))


@handles("zeros.default", "ones.default", "full.default", "new_zeros.default",
         "new_ones.default", "new_full.default")  # fmt: skip
def _fill(b: Builder, c: Call) -> Tensor:
    from onnx import numpy_helper

    kind = c.op.split(".")[1].removeprefix("new_")
    value = {"zeros": 0, "ones": 1}.get(kind, c.args.get("fill_value"))
    check_dtype(c.out.dtype, c.op)
    fill = numpy_helper.from_array(np.asarray([value], numpy_dtype(c.out.dtype)))
    return c.result(b.op("ConstantOfShape", [b.ints(list(c.args["size"]))], value=fill))


@handles("arange.default", "arange.start", "arange.start_step")
def _arange(b: Builder, c: Call) -> Tensor:
    dtype = c.out.dtype
    if dtype != torch.int64:
        raise Untranslatable(c.op, f"a range of {dtype} that follows the batch size")
    bounds = [c.args.get("start", 0), c.args["end"], c.args.get("step", 1)]
    scalars = [b.cast(v, torch.int64) for v in bounds]
    return c.result(b.op("Range", scalars))


# sizes


def _size_op(b: Builder, onnx_op: str, values: Sequence[int | Size], **attrs: Any) -> Size:
    return Size(b.op(onnx_op, [b.ints([v]) for v in values], **attrs))


@handles("sym_size.int")
def _sym_size(b: Builder, c: Call) -> int | Size:
    x = c.tensor(b)
    d = x.dim(c.static("dim"))
    if x.shape[d] is not None:
        return x.shape[d]
    return Size(b.op("Shape", [x.name], start=d, end=d + 1))


@handles("sym_numel.default")
def _sym_numel(b: Builder, c: Call) -> int | Size:
    x = c.tensor(b)
    if all(s is not None for s in x.shape):
        return int(np.prod(x.shape))
    return Size(b.op("Reshape", [b.op("Size", [x.name]), b.const([1], torch.int64)]))


PYTHON_INT_OPS = {
    "operator.add": ("Add", lambda a, b: a + b),
    "operator.sub": ("Sub", lambda a, b: a - b),
    "operator.mul": ("Mul", lambda a, b: a * b),
    "operator.floordiv": ("Div", lambda a, b: a // b),
    "operator.mod": ("Mod", lambda a, b: a % b),
}


def python_op(b: Builder, op: str, args: list[Any], probe: list[Any]) -> Any:
    """Python's integer operators on sizes, and taking an item of an operation's result."""
    if op == "operator.getitem":
        container, index = args
        item = container[index]
        if item is None:
            raise Untranslatable(op, f"output {index} of its operation has no translation")
        return item
    if op == "operator.neg":
        (value,) = args
        return -value if isinstance(value, int) else _size_op(b, "Neg", [value])
    onnx_op, function = PYTHON_INT_OPS[op]
    if all(isinstance(a, int) for a in args):
        return function(*args)
    if op == "operator.floordiv" and any(p < 0 for p in probe):
        raise Untranslatable(op, "a floor division of negative sizes")
    return _size_op(b, onnx_op, args)
