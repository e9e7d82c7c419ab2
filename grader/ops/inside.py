"""The trusted task that runs the student's ``ops.py`` INSIDE the sandbox.

It only evaluates: for every op and every case the grader prepared, the forward output at the
grader's inputs, the vector-Jacobian product (the student's backward) with the grader's cotangent,
and the forward outputs at the grader's two probe points ``x + h v`` and ``x - h v``. They go back
as ``.npy`` arrays. Nothing here compares or judges: whatever this process says could be forged
by the student's code, so the comparison with the references happens outside the box
(:mod:`grader.ops.grade`).

Array names: inputs ``<key>_c<j>_<input>``, ``<key>_c<j>_plus_<input>``,
``<key>_c<j>_minus_<input>`` and ``<key>_c<j>_cot``; outputs ``<key>_c<j>_out``,
``<key>_c<j>_grad_<input>``, ``<key>_c<j>_plus_out`` and ``<key>_c<j>_minus_out``.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

OPS_FILE = "ops.py"
MAX_MESSAGE = 300


class OpsStudentError(Exception):
    """A problem with the submission as a whole (status ``invalid``)."""


@dataclass
class LocalContext:
    """The attributes :func:`ops_task` uses, for running it in this process (no sandbox)."""

    work_dir: Path
    args: dict[str, Any]
    inputs: dict[str, np.ndarray]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def save_array(self, name: str, array: np.ndarray) -> None:
        """Keep ``array`` as output ``name``."""
        self.arrays[name] = np.asarray(array)


def describe(exc: BaseException, file_name: str = OPS_FILE) -> str:
    """``Type: message (ops.py line N)``, cut to a readable length."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(file_name)]
    where = f" ({file_name} line {frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}"[:MAX_MESSAGE] + where


def import_ops(work_dir: Path, file_name: str = OPS_FILE) -> types.ModuleType:
    """Import the student's ops file from ``work_dir`` (its siblings importable)."""
    path = work_dir / file_name
    if not path.is_file():
        raise OpsStudentError(f"no {file_name} in the submission")
    sys.path.append(str(work_dir))  # after the trusted paths: a student torch.py cannot shadow
    spec = importlib.util.spec_from_file_location("student_ops", path)
    if spec is None or spec.loader is None:
        raise OpsStudentError(f"{file_name} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules["student_ops"] = module
    try:
        spec.loader.exec_module(module)
    except MemoryError:
        raise
    except BaseException as exc:  # SystemExit too: importing must not end the check
        raise OpsStudentError(f"importing {file_name} failed: {describe(exc, file_name)}") from exc
    return module


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


def evaluate_op(ctx: Any, fn: Callable[..., Any], op: dict[str, Any]) -> None:
    """Forward, vector-Jacobian product and both probe forwards of every case of ``op``."""
    import torch

    key, names, grads_for = op["key"], op["inputs"], op["differentiable"]
    for case in range(int(op["cases"])):
        prefix = f"{key}_c{case}"

        def tensors(point: str, prefix: str = prefix) -> list[Any]:
            found = []
            for name, wanted in zip(names, grads_for, strict=True):
                array = ctx.inputs.get(f"{prefix}_{point}{name}") if wanted else None
                if array is None:
                    array = ctx.inputs[f"{prefix}_{name}"]
                tensor = torch.from_numpy(np.array(array))
                found.append(tensor.requires_grad_(True) if wanted and point == "" else tensor)
            return found

        inputs = tensors("")
        out = fn(*inputs)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"returned a {type(out).__name__}, not a tensor")
        ctx.save_array(f"{prefix}_out", out.detach().cpu().numpy())
        wanted = [t for t, w in zip(inputs, grads_for, strict=True) if w]
        cotangent = np.array(ctx.inputs[f"{prefix}_cot"])
        if cotangent.size == out.numel():  # a scalar output's cotangent may arrive as shape (1,)
            cotangent = cotangent.reshape(tuple(out.shape))
        cotangent = torch.from_numpy(cotangent).to(out.dtype)
        grads = torch.autograd.grad(out, wanted, grad_outputs=cotangent, allow_unused=True)
        wanted_names = [n for n, w in zip(names, grads_for, strict=True) if w]
        for name, grad in zip(wanted_names, grads, strict=True):
            if grad is not None:
                ctx.save_array(f"{prefix}_grad_{name}", grad.detach().cpu().numpy())
        with torch.no_grad():
            for point in ("plus", "minus"):
                moved = fn(*tensors(f"{point}_"))
                if isinstance(moved, torch.Tensor):
                    ctx.save_array(f"{prefix}_{point}_out", moved.detach().cpu().numpy())


def ops_task(ctx: Any) -> dict[str, Any]:
    """Evaluate every op of ``ctx.args["ops"]`` on the grader's inputs; save the arrays.

    Returns, per op key, the error that stopped it (text for the report, never a verdict).
    """
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # tensors the ops make match the float64 inputs
    try:
        return {"errors": _evaluate_all(ctx)}
    finally:
        torch.set_default_dtype(previous)  # the in-process check shares this interpreter


def _evaluate_all(ctx: Any) -> dict[str, str]:
    try:
        module = import_ops(Path(ctx.work_dir), ctx.args.get("file", OPS_FILE))
    except OpsStudentError as exc:
        from grader.harness import StudentError

        raise StudentError(str(exc)) from None
    errors: dict[str, str] = {}
    for op in ctx.args["ops"]:
        try:
            evaluate_op(ctx, resolve_op(module, op["attr"], list(op["inputs"])), op)
        except MemoryError:
            raise
        except Exception as exc:  # the student's op failed: its row says why, the others go on
            errors[op["key"]] = describe(exc)
    return errors
