"""Capturing a model as a graph artifact with ``torch.export`` (INSIDE a box, next to the
student's code: what is written here is checked again by the verified evaluation).

The model is exported in eval mode with a dynamic batch dimension. ``torch.export`` keeps the
layers' own operations (``conv2d``, ``batch_norm``, ``linear``, ``dropout``...), which the
structure rules name; its in-place operations (``relu_``) are replaced by their functional
forms where no later operation reads the overwritten value, and otherwise the whole program is
functionalised by ``run_decompositions``.
"""

from __future__ import annotations

import json
import math
import operator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from grader.models.graph_ops import OPS, SKIPPED_OPS
from grader.models.inside.artifact import FORMAT, TENSORS_FILE

MAX_BATCH = 65_536
PYTHON_OP_NAMES = {
    operator.getitem: "operator.getitem",
    operator.add: "operator.add",
    operator.sub: "operator.sub",
    operator.mul: "operator.mul",
    operator.floordiv: "operator.floordiv",
    operator.mod: "operator.mod",
    operator.neg: "operator.neg",
}
INPUT_KINDS = {
    "USER_INPUT": "image",
    "PARAMETER": "parameter",
    "BUFFER": "buffer",
    "CONSTANT_TENSOR": "constant",
}


class NotExportable(Exception):
    """The model runs but cannot be captured as a graph; the message says why, for a student."""


def export_model(model: nn.Module, input_shape: tuple[int, ...]) -> Any:
    """``torch.export`` the model for image batches of any size; NotExportable says why not."""
    example = torch.rand((2, *input_shape), generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    try:
        program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    except Exception as exc:  # the exporter's many error types: each becomes a student's reason
        raise NotExportable(explain_export_error(exc)) from exc
    return functional(program)


def explain_export_error(exc: BaseException) -> str:
    """The exporter's failure in words a student understands."""
    text = f"{type(exc).__name__}: {exc}"
    first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    if "Constraints violated" in text or "specialized" in text or "batch" in text.lower():
        return (
            "the model works for one batch size only (the batch dimension became a constant); "
            "do not write the batch size into the model: use x.flatten(1) or "
            f"x.view(x.size(0), -1). Exporter: {first}"
        )
    if "data-dependent" in text.lower() or "GuardOnDataDependent" in text:
        return (
            "the forward pass decides on the VALUES of a tensor (if x.sum() > 0: ..., a loop "
            "over x.item()), which cannot be captured as a graph; compute both branches and "
            f"select with torch.where. Exporter: {first}"
        )
    return f"torch.export could not capture the model: {first}"


def functional(program: Any) -> Any:
    """The exported program without in-place operations (see the module docstring)."""
    graph = program.graph
    nodes = list(graph.nodes)
    position = {node: i for i, node in enumerate(nodes)}
    replacements = []
    for node in nodes:
        target = node.target
        if node.op != "call_function" or not isinstance(target, torch._ops.OpOverload):
            continue
        if not target._schema.is_mutable:
            continue
        name = target._schema.name.split("::")[-1]
        functional_op = getattr(
            getattr(torch.ops.aten, name.rstrip("_"), None) or object(), target._overloadname, None
        )
        mutated = node.args[0] if node.args else None
        later_readers = [
            user
            for user in getattr(mutated, "users", ())
            if user is not node and position[user] > position[node]
        ]
        if (
            not name.endswith("_")
            or functional_op is None
            or later_readers
            or getattr(mutated, "op", "") == "placeholder"
        ):
            return program.run_decompositions({})
        replacements.append((node, functional_op))
    for node, functional_op in replacements:
        node.target = functional_op
    graph.lint()
    return program


def write_artifact(
    program: Any,
    folder: Path,
    *,
    graph_file: str,
    strip_prefix: str = "",
    tensors: dict | None = None,
) -> dict[str, torch.Tensor]:
    """Write ``program`` as ``graph_file`` (+ its tensors into ``tensors``, written by
    :func:`write_tensors`); returns the tensors by input name."""
    signature = program.graph_signature
    kinds = {spec.arg.name: spec for spec in signature.input_specs}
    tensors = {} if tensors is None else tensors
    values: dict[Any, int] = {}
    inputs, nodes, outputs = [], [], []
    state = {**program.state_dict, **program.constants}
    for node in program.graph.nodes:
        if node.op == "placeholder":
            spec = kinds[node.name]
            kind = INPUT_KINDS.get(spec.kind.name)
            if kind is None:
                raise NotExportable(
                    f"the model holds a {spec.kind.name.lower()} ({node.name}); only tensors can "
                    "be graded"
                )
            if kind == "image":
                shape = list(node.meta["val"].shape[1:])
                inputs.append(
                    {
                        "kind": "image",
                        "name": "image",
                        "dtype": "float32",
                        "shape": [int(s) for s in shape],
                    }
                )
            else:
                name = str(spec.target).removeprefix(strip_prefix)
                tensor = state[spec.target]
                if not isinstance(tensor, torch.Tensor):
                    raise NotExportable(f"{name} is not a tensor; only tensors can be graded")
                tensors[name] = tensor.detach().to("cpu").contiguous().clone()
                inputs.append(
                    {
                        "kind": kind,
                        "name": name,
                        "dtype": str(tensor.dtype).removeprefix("torch."),
                        "shape": list(tensor.shape),
                    }
                )
            values[node] = len(values)
        elif node.op == "call_function":
            op = _op_name(node.target)
            module, module_type = _module_of(node, strip_prefix)
            nodes.append(
                {
                    "op": op,
                    "args": [_encode(a, values) for a in node.args],
                    "kwargs": {k: _encode(v, values) for k, v in node.kwargs.items()},
                    "module": module,
                    "module_type": module_type,
                    "source": _source_of(node),
                }
            )
            values[node] = len(values)
        elif node.op == "output":
            specs = signature.output_specs
            for spec, ref in zip(specs, node.args[0], strict=True):
                kind = "logits" if spec.kind.name == "USER_OUTPUT" else "buffer_update"
                outputs.append(
                    {
                        "ref": values[ref],
                        "kind": kind,
                        "name": str(spec.target or "").removeprefix(strip_prefix),
                    }
                )
    # Image first: the exporter lists parameters before the user input; refs are renumbered.
    order = sorted(range(len(inputs)), key=lambda i: inputs[i]["kind"] != "image")
    renumber = {old: new for new, old in enumerate(order)}
    renumber.update({i: i for i in range(len(inputs), len(values))})
    artifact = {
        "format": FORMAT,
        "inputs": [inputs[i] for i in order],
        "nodes": [_renumber(n, renumber) for n in nodes],
        "outputs": [{**o, "ref": renumber[o["ref"]]} for o in outputs],
    }
    (folder / graph_file).write_text(json.dumps(artifact), encoding="utf-8")
    return tensors


def write_tensors(tensors: dict[str, torch.Tensor], folder: Path) -> None:
    """Write the tensors of the artifact (safetensors; tied tensors are stored once each)."""
    from safetensors.torch import save_file

    save_file(tensors, str(folder / TENSORS_FILE))


def _op_name(target: Any) -> str:
    if target in PYTHON_OP_NAMES:
        return PYTHON_OP_NAMES[target]
    name = str(target)
    if name not in OPS and name not in SKIPPED_OPS:
        raise NotExportable(
            f"the model uses {name}, which the grader does not run; use standard torch layers "
            "and functions"
        )
    return name


def _module_of(node: Any, strip_prefix: str) -> tuple[str, str]:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "", ""
    path, kind = list(stack.values())[-1]
    kind_name = kind.rsplit(".", 1)[-1] if isinstance(kind, str) else getattr(kind, "__name__", "")
    path = str(path).removeprefix("L['self'].").removeprefix(strip_prefix.rstrip(".")).lstrip(".")
    return (path, kind_name) if path else ("", "")


def _source_of(node: Any) -> str:
    trace = node.meta.get("stack_trace") or ""
    for line in reversed(trace.splitlines()):
        line = line.strip()
        if line.startswith("File ") and "model.py" in line and ", line " in line:
            return "model.py:" + line.split(", line ")[1].split(",")[0]
    return ""


def _encode(value: Any, values: dict[Any, int]) -> Any:
    if isinstance(value, torch.fx.Node):
        return {"ref": values[value]}
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": str(value)}
    if isinstance(value, (list, tuple)):
        return [_encode(v, values) for v in value]
    if isinstance(value, str):
        return {"str": value}
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {"device": value.type}
    if isinstance(value, torch.layout):
        return {"layout": str(value).removeprefix("torch.")}
    if isinstance(value, torch.memory_format):
        return {"memory_format": str(value).removeprefix("torch.")}
    raise NotExportable(
        f"the graph holds a value of type {type(value).__name__}, which the grader cannot store"
    )


def _renumber(node: dict[str, Any], renumber: dict[int, int]) -> dict[str, Any]:
    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict) and set(value) == {"ref"}:
            return {"ref": renumber[value["ref"]]}
        return value

    return {**node, "args": walk(node["args"]), "kwargs": walk(node["kwargs"])}
