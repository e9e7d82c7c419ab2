"""The trusted task that runs the student's ``ops.py`` INSIDE the sandbox.

It only evaluates: for every op and every case the grader prepared, the forward output at the
grader's inputs, the vector-Jacobian product (the student's backward) with the grader's cotangent,
and the forward outputs at the grader's two probe points ``x + h v`` and ``x - h v``. They go back
packed in two arrays (:mod:`grader.ops.packing`). Nothing here compares or judges: whatever this
process says could be forged by the student's code, so the comparison with the references
happens outside the box (:mod:`grader.ops.grade`).

Names: inputs ``<key>_c<j>_<input>``, ``<key>_c<j>_plus_<input>``, ``<key>_c<j>_minus_<input>``
and ``<key>_c<j>_cot``; outputs ``<key>_c<j>_out``, ``<key>_c<j>_grad_<input>``,
``<key>_c<j>_plus_out`` and ``<key>_c<j>_minus_out``.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import numpy as np

from grader.ops.packing import pack_outputs, unpack_inputs

OPS_FILE = "ops.py"
MAX_MESSAGE = 300


def describe(exc: BaseException) -> str:
    """``Type: message (ops.py line N)``, cut to a readable length."""
    from grader.sandbox.inside.student import describe_error

    return describe_error(exc, OPS_FILE)[:MAX_MESSAGE]


def resolve_op(module: types.ModuleType, attr: str, input_names: list[str]) -> Callable[..., Any]:
    """A callable for ``attr``: a Function's ``apply``, a Module built with no arguments (its
    parameters bound by name to the inputs of the same name), or a plain function."""
    import torch
    from torch import nn

    obj = getattr(module, attr, None)
    if obj is None:
        raise LookupError(f"{OPS_FILE} defines no {attr}")
    if isinstance(obj, type) and issubclass(obj, torch.autograd.Function):
        return obj.apply
    if isinstance(obj, type) and issubclass(obj, nn.Module):
        layer = obj()
        own = {name for name, _ in layer.named_parameters()}

        def call(*tensors: Any) -> Any:
            bound = {n: t for n, t in zip(input_names, tensors, strict=True) if n in own}
            rest = [t for n, t in zip(input_names, tensors, strict=True) if n not in own]
            return torch.func.functional_call(layer, bound, tuple(rest))

        return call
    if callable(obj):
        return obj
    raise TypeError(f"{attr} is a {type(obj).__name__}, not a Function, Module or function")


def evaluate_op(
    inputs: dict[str, np.ndarray],
    produced: dict[str, np.ndarray],
    fn: Callable[..., Any],
    op: dict[str, Any],
) -> None:
    """Forward, vector-Jacobian product and both probe forwards of every case of ``op``, from
    ``inputs`` into ``produced``."""
    import torch

    key, names, grads_for = op["key"], op["inputs"], op["differentiable"]
    for case in range(int(op["cases"])):
        prefix = f"{key}_c{case}"

        def tensors(point: str, prefix: str = prefix) -> list[Any]:
            found = []
            for name, wanted in zip(names, grads_for, strict=True):
                array = inputs.get(f"{prefix}_{point}{name}") if wanted else None
                if array is None:
                    array = inputs[f"{prefix}_{name}"]
                tensor = torch.from_numpy(np.array(array))
                found.append(tensor.requires_grad_(True) if wanted and point == "" else tensor)
            return found

        arguments = tensors("")
        out = fn(*arguments)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"returned a {type(out).__name__}, not a tensor")
        produced[f"{prefix}_out"] = out.detach().cpu().numpy()
        wanted = [t for t, w in zip(arguments, grads_for, strict=True) if w]
        cotangent = torch.from_numpy(np.array(inputs[f"{prefix}_cot"])).to(out.dtype)
        grads = torch.autograd.grad(out, wanted, grad_outputs=cotangent, allow_unused=True)
        wanted_names = [n for n, w in zip(names, grads_for, strict=True) if w]
        for name, grad in zip(wanted_names, grads, strict=True):
            if grad is not None:
                produced[f"{prefix}_grad_{name}"] = grad.detach().cpu().numpy()
        with torch.no_grad():
            for point in ("plus", "minus"):
                moved = fn(*tensors(f"{point}_"))
                if isinstance(moved, torch.Tensor):
                    produced[f"{prefix}_{point}_out"] = moved.detach().cpu().numpy()


def ops_task(ctx: Any) -> dict[str, Any]:
    """Evaluate every op of ``ctx.args["ops"]`` on the grader's inputs; save the arrays.

    The sandbox's wrapper has imported the student's ``ops.py`` as ``ctx.module`` (the job's
    ``module`` argument). Returns, per op key, the error that stopped it (text for the report,
    never a verdict).
    """
    import torch

    from grader.sandbox.inside.student import StudentError

    if ctx.module is None:
        raise StudentError(f"no {ctx.args.get('module', OPS_FILE)} in the submission")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # tensors the ops make match the float64 inputs
    produced: dict[str, np.ndarray] = {}
    try:
        errors = _evaluate_all(ctx, ctx.module, produced)
    finally:
        torch.set_default_dtype(previous)
    values, layout = pack_outputs(produced, ctx.args["outputs"])
    ctx.save_array("values", values)
    ctx.save_array("layout", layout)
    return {"errors": errors}


def _evaluate_all(
    ctx: Any, module: types.ModuleType, produced: dict[str, np.ndarray]
) -> dict[str, str]:
    inputs = unpack_inputs(ctx.inputs, ctx.args["inputs"])
    errors: dict[str, str] = {}
    for op in ctx.args["ops"]:
        try:
            evaluate_op(inputs, produced, resolve_op(module, op["attr"], list(op["inputs"])), op)
        except MemoryError:
            raise
        except Exception as exc:  # the student's op failed: its row says why, the others go on
            errors[op["key"]] = describe(exc)
    return errors
