"""The checked graph artifact as an ONNX model, op by op, for ONNX Runtime (INSIDE a box).

:func:`to_onnx` translates a :class:`~grader.models.inside.artifact.Program` -- the artifact the
verified evaluation has already read and checked -- into an ``onnx.ModelProto`` whose tensors
are initializers and whose single input is the image batch (dynamic batch size). Nothing is
re-exported and no student code runs: the ONNX graph is built from the artifact's own
operations with the ``onnx.helper`` API.

How it works:

- The program runs once on two small batches (sizes 2 and 3). Their values give every value's
  dtype and shape; a dimension that differs between the two depends on the batch size and
  stays dynamic, every other one is a constant.
- Only what the logits need is translated. A value that does not depend on the image (a
  parameter, or an operation on parameters and constants alone) becomes an initializer holding
  the value the interpreter computed, so operations on weights alone never need an ONNX form.
- Sizes taken from the image batch (``x.size(0)``) and the integer arithmetic on them become
  small int64 ONNX computations; every other size is a constant.
- A value of a dtype ONNX Runtime does not compute in the same way (anything but float32,
  int64 and bool), weights holding NaN, a training-mode operation, or an operation without a
  translation raises :class:`Untranslatable` naming the operation and its layer: the
  interpreter then runs the graph, as it always can.

The interpreter remains the reference: ONNX Runtime runs a translation only after its logits on
the probe batch agree with the interpreter's (:func:`grader.models.inside.evaluate.stream_logits`).
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from grader.models.inside.artifact import ALLOWED_DTYPES, ArtifactError, Program
from grader.models.inside.onnx_build import (
    Builder,
    Call,
    Folded,
    Tensor,
    Untranslatable,
    check_dtype,
)
from grader.models.inside.onnx_ops import HANDLERS, python_op

OPSET = 18
IR_VERSION = 8
"""ONNX opset 18 (IR version 8): read by every ONNX Runtime since 1.14."""
PROBE_BATCHES = (2, 3)
INPUT_NAME = "image"


@functools.cache
def _schema_arguments(op: str) -> tuple[Any, ...]:
    namespace, name, overload = op.split(".")
    return tuple(getattr(getattr(getattr(torch.ops, namespace), name), overload)._schema.arguments)


def _bind(op: str, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Arguments by their schema names, defaults filled in."""
    bound: dict[str, Any] = {}
    for position, argument in enumerate(_schema_arguments(op)):
        if position < len(args) and not argument.kwarg_only:
            bound[argument.name] = args[position]
        elif argument.name in kwargs:
            bound[argument.name] = kwargs[argument.name]
        elif argument.has_default_value():
            bound[argument.name] = argument.default_value
    return bound


def _decode(arg: Any, env: list[Any]) -> Any:
    if isinstance(arg, list):
        return [_decode(a, env) for a in arg]
    if isinstance(arg, dict):
        ((tag, value),) = arg.items()
        if tag == "ref":
            return env[value]
        if tag == "float":
            return float(value)
        if tag == "dtype":
            return ALLOWED_DTYPES[value]
        if tag in ("str", "device", "layout", "memory_format"):
            return value
    return arg


def _refs(arg: Any) -> list[int]:
    if isinstance(arg, list):
        return [r for a in arg for r in _refs(a)]
    if isinstance(arg, dict) and "ref" in arg:
        return [int(arg["ref"])]
    return []


def _shape_of(first: Any, second: Any) -> Any:
    """The shape of a value with the dimensions that differ between two batch sizes as None."""
    if isinstance(first, torch.Tensor):
        return tuple(a if a == b else None for a, b in zip(first.shape, second.shape, strict=True))
    if isinstance(first, (tuple, list)):
        return [_shape_of(a, b) for a, b in zip(first, second, strict=True)]
    return None


def probe_values(program: Program) -> tuple[list[Any], list[Any]]:
    """Every value of the program on two small batches of images (sizes :data:`PROBE_BATCHES`):
    the inputs, and the result of every operation the logits depend on (None for the others)."""
    generator = torch.Generator().manual_seed(0)
    runs = []
    with torch.inference_mode():
        for size in PROBE_BATCHES:
            x = torch.rand((size, *program.image_shape), generator=generator)
            values = program.fresh_env(x.to(program.device))

            def keep(index: int, _args: Any, _kwargs: Any, result: Any, into=values) -> None:
                into[program.offset + index] = result

            program.resume(list(values), 0, observe=keep)
            runs.append(values)
    return runs[0], runs[1]


def to_onnx(program: Program) -> Any:
    """The program's logits as an ``onnx.ModelProto`` (see the module docstring).

    Raises :class:`Untranslatable` naming the first operation without an ONNX form; the
    interpreter then runs the graph.
    """
    from onnx import TensorProto, helper

    artifact = program.artifact
    try:
        first, second = probe_values(program)
    except (ArtifactError, RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise Untranslatable("probe", f"the graph fails on a small batch ({exc})") from None
    offset = len(artifact.inputs)
    logits_ref = next(o.ref for o in artifact.outputs if o.kind == "logits")

    # which values depend on the image, and which of those the logits need
    on_image = [False] * len(first)
    on_image[0] = True
    for index, node in enumerate(artifact.nodes):
        refs = _refs(node.args) + _refs(list(node.kwargs.values()))
        on_image[offset + index] = any(on_image[r] for r in refs)
    if not on_image[logits_ref]:
        raise Untranslatable("logits", "the logits do not depend on the image")
    needed = {logits_ref}
    for index in range(len(artifact.nodes) - 1, -1, -1):
        value = offset + index
        if value in needed and on_image[value]:
            node = artifact.nodes[index]
            needed.update(_refs(node.args) + _refs(list(node.kwargs.values())))

    b = Builder()
    env: list[Any] = [None] * len(first)
    image_shape = (None, *program.image_shape)
    env[0] = Tensor(INPUT_NAME, torch.float32, image_shape)
    for value in needed:
        if not on_image[value]:
            env[value] = _folded(first[value], value)
    for index, node in enumerate(artifact.nodes):
        value = offset + index
        if value not in needed or not on_image[value]:
            continue
        try:
            shape = _shape_of(first[value], second[value])
            env[value] = _translate(b, node, env, first, value, shape)
        except Untranslatable as exc:
            raise Untranslatable(node.op, exc.reason, index=index, module=node.module) from None
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise Untranslatable(
                node.op, f"its arguments do not translate ({type(exc).__name__}: {exc})",
                index=index, module=node.module,
            ) from None  # fmt: skip
    logits = env[logits_ref]
    if not isinstance(logits, Tensor) or logits.dtype != torch.float32:
        raise Untranslatable("logits", "the logits are not a float32 tensor")
    if logits.name == INPUT_NAME:
        raise Untranslatable("logits", "the logits are the image itself")
    graph = helper.make_graph(
        b.nodes,
        "grader",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", *image_shape[1:]])],
        [
            helper.make_tensor_value_info(
                logits.name, TensorProto.FLOAT, ["batch" if d is None else d for d in logits.shape]
            )
        ],
        b.initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="grader"
    )
    model.ir_version = IR_VERSION
    return model


def _folded(value: Any, key: int) -> Any:
    if isinstance(value, torch.Tensor):
        return Folded(value, key)
    if isinstance(value, (tuple, list)):
        return type(value)(
            Folded(v, (key, i)) if isinstance(v, torch.Tensor) else v for i, v in enumerate(value)
        )
    return value


def _translate(
    b: Builder, node: Any, env: list[Any], probe_env: list[Any], value: int, shape: Any
) -> Any:
    """One operation: its arguments decoded, bound by name, and handed to its translation."""
    args = [_decode(a, env) for a in node.args]
    kwargs = {k: _decode(v, env) for k, v in node.kwargs.items()}
    out = probe_env[value]
    if node.op.startswith("operator."):
        probe = [_decode(a, probe_env) for a in node.args]
        return python_op(b, node.op, args, probe)
    handler = HANDLERS.get(node.op)
    if handler is None:
        raise Untranslatable(node.op, "no ONNX translation")
    probe_args = [_decode(a, probe_env) for a in node.args]
    probe_kwargs = {k: _decode(v, probe_env) for k, v in node.kwargs.items()}
    call = Call(
        node.op,
        _bind(node.op, args, kwargs),
        _bind(node.op, probe_args, probe_kwargs),
        out,
        shape,
    )
    result = handler(b, call)
    if isinstance(out, torch.Tensor) and isinstance(result, Tensor):
        check_dtype(out.dtype, node.op)
    return result
