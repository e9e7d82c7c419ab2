"""The graph artifact: a captured model as plain data, and the only way the grader runs one.

Written by the capture stage (next to the student's code, so its content is untrusted) and read
by the verified evaluation (a box with no student code). Two files:

- ``graph.json`` -- the inputs (the image, then every lifted parameter, buffer and constant by
  name), the operations in order and the outputs. An argument is a JSON number, boolean, null or
  list, or a one-key object: ``{"ref": i}`` (value ``i``: inputs first, then operations),
  ``{"float": "inf"|"-inf"|"nan"}``, ``{"str": s}``, ``{"dtype": name}``, ``{"device": name}``,
  ``{"layout": name}`` or ``{"memory_format": name}``.
- ``tensors.safetensors`` -- the tensors by input name (safetensors: a header and raw bytes, no
  code).

Reading never unpickles and never evaluates text: every operation must be in
:data:`grader.models.graph_ops.OPS` and pure as it is called, every reference must point
backwards, every tensor must have an allowed dtype and the shape the graph states, and the sizes
are capped before anything runs. :class:`Program` then runs the operations the outputs depend on
with a plain loop, dropping each intermediate after its last reader.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from grader.models.graph_ops import OPS, SKIPPED_OPS, op_kind
from grader.sandbox.protocol import ProtocolError, read_record

FORMAT = "grader-graph/1"
GRAPH_FILE = "graph.json"
TRAIN_GRAPH_FILE = "graph_train.json"
TENSORS_FILE = "tensors.safetensors"
MAX_GRAPH_BYTES = 32 * 1024 * 1024
MAX_NODES = 50_000
MAX_INPUTS = 20_000
MAX_ARG_DEPTH = 4
MAX_STR = 64
MAX_TENSOR_BYTES = 4 << 30
ALLOWED_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
LAYOUTS = {"strided": torch.strided}
MEMORY_FORMATS = {
    "contiguous_format": torch.contiguous_format,
    "preserve_format": torch.preserve_format,
    "channels_last": torch.channels_last,
}
PYTHON_OPS: dict[str, Callable[..., Any]] = {
    "operator.getitem": operator.getitem,
    "operator.add": operator.add,
    "operator.sub": operator.sub,
    "operator.mul": operator.mul,
    "operator.floordiv": operator.floordiv,
    "operator.mod": operator.mod,
    "operator.neg": operator.neg,
}
NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,300}$")
InputKind = Literal["image", "parameter", "buffer", "constant"]
OutputKind = Literal["logits", "buffer_update"]
Mode = Literal["inference", "training"]
"""``inference``: the graph that is evaluated, pure operations only; ``training``: the graph an
experiment trains (batch statistics, dropout)."""


class ArtifactError(ValueError):
    """A graph artifact that is malformed or uses something the grader does not run."""


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 300 characters), for a record's message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


@dataclass(frozen=True)
class GraphInput:
    """One input of the graph: the image batch, or a named tensor of the model."""

    kind: InputKind
    name: str
    """The tensor's name in the model (``features.0.weight``); ``image`` for the image."""
    dtype: str = "float32"
    shape: tuple[int, ...] = ()
    """The tensor's shape; for the image, the shape of one image."""


@dataclass(frozen=True)
class GraphNode:
    """One operation, with the layer it came from (labels for people, never trusted)."""

    op: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    module: str = ""
    """Path of the innermost module that ran it (``layer1.0.conv1``), as the capture saw it."""
    module_type: str = ""
    """Class name of that module (``Conv2d``)."""
    source: str = ""
    """``model.py:LINE`` of the call, where the capture found one."""


@dataclass(frozen=True)
class GraphOutput:
    """One output: the logits, or the new value of a buffer (a training-mode graph)."""

    ref: int
    kind: OutputKind = "logits"
    name: str = ""


@dataclass(frozen=True)
class Artifact:
    """The content of ``graph.json``."""

    format: str
    inputs: list[GraphInput]
    nodes: list[GraphNode]
    outputs: list[GraphOutput]


# --- reading --------------------------------------------------------------------------------------


def read_artifact(graph_file: Path, *, mode: Mode = "inference") -> Artifact:
    """Read and check ``graph.json``: sizes, operations, references, and (in inference mode)
    that every operation is pure as called; ArtifactError says why."""
    try:
        artifact = read_record(graph_file, Artifact, max_bytes=MAX_GRAPH_BYTES, max_depth=12)
    except ProtocolError as exc:
        raise ArtifactError(f"the captured graph is malformed: {exc}") from None
    if artifact.format != FORMAT:
        raise ArtifactError(f"the captured graph has format {artifact.format!r}, not {FORMAT!r}")
    if len(artifact.inputs) > MAX_INPUTS or len(artifact.nodes) > MAX_NODES:
        raise ArtifactError(
            f"the captured graph has {len(artifact.inputs):,} inputs and {len(artifact.nodes):,}"
            f" operations; at most {MAX_INPUTS:,} and {MAX_NODES:,} are graded"
        )
    images = [i for i in artifact.inputs if i.kind == "image"]
    if len(images) != 1 or artifact.inputs[0].kind != "image":
        raise ArtifactError("the captured graph must take the image batch as its first input")
    names = set()
    for graph_input in artifact.inputs:
        if not NAME.match(graph_input.name) or graph_input.name in names:
            raise ArtifactError(f"input name {graph_input.name[:80]!r} is not allowed")
        names.add(graph_input.name)
        if graph_input.dtype not in ALLOWED_DTYPES:
            raise ArtifactError(f"input {graph_input.name} has dtype {graph_input.dtype!r}")
        if any(d < 0 for d in graph_input.shape) or len(graph_input.shape) > 8:
            raise ArtifactError(f"input {graph_input.name} has shape {graph_input.shape}")
    count = len(artifact.inputs)
    for index, node in enumerate(artifact.nodes):
        if node.op not in OPS and node.op not in SKIPPED_OPS:
            raise ArtifactError(
                f"operation {index} ({node.op[:80]}, in layer {node.module[:80] or '?'}) is not "
                "one the grader runs; build the model from standard torch layers and functions"
            )
        _check_args(node.args, count + index, 0, node.op)
        _check_args(list(node.kwargs.values()), count + index, 0, node.op)
        for key in node.kwargs:
            if not key.isidentifier():
                raise ArtifactError(f"operation {index} has a keyword {key[:40]!r}")
        if mode == "inference":
            check_pure(index, node)
    if not artifact.outputs or not any(o.kind == "logits" for o in artifact.outputs):
        raise ArtifactError("the captured graph has no logits output")
    if mode == "inference" and any(o.kind != "logits" for o in artifact.outputs):
        raise ArtifactError(
            "the captured graph writes model state (a buffer update) while it is evaluated; "
            "evaluate the model in eval mode (model.eval())"
        )
    for output in artifact.outputs:
        if not 0 <= output.ref < count + len(artifact.nodes):
            raise ArtifactError(f"an output refers to value {output.ref}, which does not exist")
    return artifact


def check_pure(index: int, node: GraphNode) -> None:
    """Refuse an operation that would change state or draw random numbers as it is called:
    each of its :attr:`~grader.models.graph_ops.OpSpec.pure_when` groups needs one argument
    passed as the literal ``False`` (``none:`` names: the literal ``None``)."""
    spec = OPS.get(node.op)
    if spec is None or not spec.pure_when:
        return
    schema = resolve_op(node.op)._schema.arguments
    position = {argument.name: i for i, argument in enumerate(schema)}

    def passed(name: str) -> Any:
        i = position[name]
        if i < len(node.args):
            return node.args[i]
        if name in node.kwargs:
            return node.kwargs[name]
        argument = schema[i]
        return argument.default_value if argument.has_default_value() else _MISSING

    for group in spec.pure_when:
        if any(
            passed(n.removeprefix("none:")) is None if n.startswith("none:") else passed(n) is False
            for n in group
        ):
            continue
        names = " or ".join(n.removeprefix("none:") for n in group)
        raise ArtifactError(
            f"operation {index} ({node.op.split('.')[1]}, in layer {node.module[:80] or '?'}) "
            f"is called with {names} not a literal False: evaluated that way it changes the "
            "model's state (running statistics) or draws random numbers on every run. Put the "
            "model in eval mode (model.eval()) and pass training=False to functional calls"
        )


_MISSING = object()


def _check_args(args: Sequence[Any], limit: int, depth: int, op: str) -> None:
    if depth > MAX_ARG_DEPTH:
        raise ArtifactError(f"an argument of {op} nests too deeply")
    for arg in args:
        if isinstance(arg, list):
            _check_args(arg, limit, depth + 1, op)
        elif isinstance(arg, dict):
            if len(arg) != 1:
                raise ArtifactError(f"an argument of {op} is not a tagged value")
            ((tag, value),) = arg.items()
            if tag == "ref":
                if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
                    raise ArtifactError(f"an argument of {op} refers to a later or missing value")
            elif tag in ("str", "device"):
                if not isinstance(value, str) or len(value) > MAX_STR:
                    raise ArtifactError(f"a text argument of {op} is too long")
            elif tag == "float":
                if value not in ("inf", "-inf", "nan"):
                    raise ArtifactError(f"a float argument of {op} is not inf, -inf or nan")
            elif tag == "dtype":
                if value not in ALLOWED_DTYPES:
                    raise ArtifactError(f"dtype {str(value)[:40]!r} of {op} is not allowed")
            elif tag == "layout":
                if value not in LAYOUTS:
                    raise ArtifactError(f"layout {str(value)[:40]!r} of {op} is not allowed")
            elif tag == "memory_format":
                if value not in MEMORY_FORMATS:
                    raise ArtifactError(f"memory format {str(value)[:40]!r} of {op} is not allowed")
            else:
                raise ArtifactError(f"an argument of {op} has the unknown tag {tag[:40]!r}")
        elif arg is not None and not isinstance(arg, (bool, int, float)):
            raise ArtifactError(f"an argument of {op} has an unsupported type")
        elif isinstance(arg, float) and not math.isfinite(arg):
            raise ArtifactError(f"an argument of {op} is not a finite number")


def read_tensors(
    tensors_file: Path, artifact: Artifact, *, max_bytes: int
) -> dict[str, torch.Tensor]:
    """The tensors of every non-image input, checked against the graph's dtypes and shapes."""
    from safetensors import SafetensorError, safe_open

    try:
        size = tensors_file.lstat().st_size
    except OSError:
        raise ArtifactError("the captured weights (tensors.safetensors) are missing") from None
    if tensors_file.is_symlink() or not tensors_file.is_file() or size > max_bytes:
        raise ArtifactError(
            f"the captured weights file is not a plain file of at most {max_bytes:,} bytes"
        )
    wanted = {i.name: i for i in artifact.inputs if i.kind != "image"}
    tensors: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(tensors_file), framework="pt", device="cpu") as reader:
            stored = set(reader.keys())
            for name, graph_input in wanted.items():
                if name not in stored:
                    raise ArtifactError(f"the captured weights hold no tensor {name}")
                tensor = reader.get_tensor(name)
                if str(tensor.dtype).removeprefix("torch.") != graph_input.dtype:
                    raise ArtifactError(
                        f"tensor {name} is {tensor.dtype}, the graph says {graph_input.dtype}"
                    )
                if tuple(tensor.shape) != tuple(graph_input.shape):
                    raise ArtifactError(
                        f"tensor {name} has shape {tuple(tensor.shape)}, the graph"
                        f" says {tuple(graph_input.shape)}"
                    )
                tensors[name] = tensor
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        if isinstance(exc, ArtifactError):
            raise
        raise ArtifactError(
            f"the captured weights are not a valid safetensors file ({exc})"
        ) from None
    return tensors


# --- running --------------------------------------------------------------------------------------


def resolve_op(name: str) -> Callable[..., Any]:
    """The callable of an allowed operation name (``aten.conv2d.default``)."""
    if name in PYTHON_OPS:
        return PYTHON_OPS[name]
    if name not in OPS and name not in SKIPPED_OPS:
        raise ArtifactError(f"operation {name!r} is not allowed")
    namespace, op, overload = name.split(".")
    try:
        return getattr(getattr(getattr(torch.ops, namespace), op), overload)
    except AttributeError:
        raise ArtifactError(f"operation {name} does not exist in this torch version") from None


Substitutes = dict[int, dict[int, Any]]
"""``{operation value: {value it reads: what it reads instead}}``: a value changed on some edges
of the graph only (the skip-connection test)."""


class Program:
    """A checked artifact, ready to run: ``program.logits(x)`` computes the graph's logits.

    Only the operations the outputs depend on run (in inference mode: the logits alone), each
    intermediate is dropped as soon as its last reader has run, and every run starts from fresh
    copies of the model's tensors: a run keeps nothing for the next one.
    """

    def __init__(
        self,
        artifact: Artifact,
        tensors: dict[str, torch.Tensor],
        device: torch.device,
        *,
        mode: Mode = "inference",
    ) -> None:
        self.artifact = artifact
        self.device = device
        self.mode = mode
        self.offset = len(artifact.inputs)
        self.functions = [
            None if node.op in SKIPPED_OPS else resolve_op(node.op) for node in artifact.nodes
        ]
        self.kinds = [op_kind(node.op) for node in artifact.nodes]
        # Own, aligned copies: tensors read from the file may sit at any offset of its mapping.
        self.tensors = {name: t.to(device, copy=True) for name, t in tensors.items()}
        self.reads = [
            tuple(dict.fromkeys(refs_of(node.args) + refs_of(list(node.kwargs.values()))))
            for node in artifact.nodes
        ]
        self.outputs = [o.ref for o in artifact.outputs if mode == "training" or o.kind == "logits"]
        live = self._live()
        self.plan = [i for i in range(len(artifact.nodes)) if live[self.offset + i]]
        """The operations that run, in order (indices into ``artifact.nodes``)."""
        self.first_read: dict[int, int] = {}
        """Value -> the position in :attr:`plan` of the first operation reading it."""
        self.last_read: dict[int, int] = {}
        for position, index in enumerate(self.plan):
            for ref in self.reads[index]:
                self.first_read.setdefault(ref, position)
                self.last_read[ref] = position
        self.release: list[tuple[int, ...]] = [() for _ in self.plan]
        """Per position: the values no later operation reads (dropped after it ran)."""
        kept = set(self.outputs)
        for ref, position in self.last_read.items():
            if ref not in kept:
                self.release[position] += (ref,)
        self.live_inputs = [i for i in range(1, self.offset) if live[i]]
        self.guarded = {
            ref
            for index in self.plan
            if (spec := OPS.get(artifact.nodes[index].op)) is not None and spec.pure_when
            for ref in self.reads[index]
            if 0 < ref < self.offset
        }
        """Tensors read by operations that write when called otherwise: copied for every run."""

    def _live(self) -> list[bool]:
        """Whether each value is one the outputs depend on (one backward sweep: references
        always point to earlier values)."""
        live = [False] * (self.offset + len(self.artifact.nodes))
        for ref in self.outputs:
            live[ref] = True
        for index in range(len(self.artifact.nodes) - 1, -1, -1):
            if live[self.offset + index] and self.functions[index] is not None:
                for ref in self.reads[index]:
                    live[ref] = True
            elif self.functions[index] is None:
                live[self.offset + index] = False
        return live

    @property
    def image_shape(self) -> tuple[int, ...]:
        """The shape of one input image the graph was captured with."""
        return tuple(self.artifact.inputs[0].shape)

    def input_name(self, value: int) -> str:
        """The name of graph input ``value``."""
        return self.artifact.inputs[value].name

    def fresh_env(
        self, x: torch.Tensor, tensors: dict[str, torch.Tensor] | None = None
    ) -> list[Any]:
        """The values a run starts from: the image batch and the model's tensors (``tensors``
        instead when given). No operation of an evaluated graph writes to its arguments (the
        allowlist holds pure operations only); the tensors of the operations that would write
        if called otherwise (the batch-norm family's statistics) are fresh copies all the same,
        and :meth:`unchanged` checks the rest after the evaluation."""
        env: list[Any] = [None] * (self.offset + len(self.artifact.nodes))
        env[0] = x
        for value in self.live_inputs:
            name = self.artifact.inputs[value].name
            if tensors is not None:
                env[value] = tensors[name]
            elif value in self.guarded:
                env[value] = self.tensors[name].clone()
            else:
                env[value] = self.tensors[name]
        return env

    def unchanged(self, tensors: dict[str, torch.Tensor]) -> str | None:
        """The name of a tensor of the model whose values differ from ``tensors`` (the file's),
        or None: no run changed a tensor."""
        for name, tensor in self.tensors.items():
            original = tensors.get(name)
            if original is None or not torch.equal(tensor.cpu(), original):
                return name
        return None

    def run(
        self,
        x: torch.Tensor,
        *,
        tensors: dict[str, torch.Tensor] | None = None,
        observe: Callable[[int, list[Any], dict[str, Any], Any], None] | None = None,
        before: Callable[[int, list[Any]], None] | None = None,
        device: torch.device | None = None,
    ) -> list[Any]:
        """Run the graph on the image batch ``x``; the values of :attr:`outputs`.

        ``observe(index, args, kwargs, result)`` sees every operation as it runs;
        ``before(position, env)`` is called before the operation at each position of the plan
        (to branch off a changed run with :meth:`resume`). ``tensors`` replaces the model's
        tensors; ``device`` runs on another device (``meta``: shapes only).
        """
        return self.resume(
            self.fresh_env(x, tensors), 0, observe=observe, before=before, device=device
        )

    def resume(
        self,
        env: list[Any],
        start: int,
        *,
        substitute: Substitutes | None = None,
        observe: Callable[[int, list[Any], dict[str, Any], Any], None] | None = None,
        before: Callable[[int, list[Any]], None] | None = None,
        device: torch.device | None = None,
    ) -> list[Any]:
        """Run the plan from position ``start`` on ``env`` (a run's values, which it consumes);
        ``substitute`` changes what given operations read."""
        nodes, functions = self.artifact.nodes, self.functions
        target = device or self.device
        for position in range(start, len(self.plan)):
            if before is not None:
                before(position, env)
            index = self.plan[position]
            node, function = nodes[index], functions[index]
            swap = substitute.get(self.offset + index) if substitute else None
            args = [_decode(a, env, target, swap) for a in node.args]
            kwargs = {k: _decode(v, env, target, swap) for k, v in node.kwargs.items()}
            if node.op.startswith("operator."):
                _check_python_op(node.op, args)
            result = function(*args, **kwargs)
            env[self.offset + index] = result
            if observe is not None:
                observe(index, args, kwargs, result)
            for ref in self.release[position]:
                env[ref] = None
        return [env[ref] for ref in self.outputs]

    def values(self, x: torch.Tensor, **kw: Any) -> list[Any]:
        """The values of :attr:`outputs` for ``x`` (see :meth:`run`)."""
        return self.run(x, **kw)

    def logits(self, x: torch.Tensor, **kw: Any) -> torch.Tensor:
        """The graph's logits output for ``x``."""
        return self.logits_of(self.run(x, **kw))

    def logits_of(self, outputs: list[Any]) -> torch.Tensor:
        """The logits among a run's outputs."""
        logits_ref = next(o.ref for o in self.artifact.outputs if o.kind == "logits")
        result = outputs[self.outputs.index(logits_ref)]
        if not isinstance(result, torch.Tensor):
            raise ArtifactError(f"the graph's logits are a {type(result).__name__}, not a tensor")
        return result


def refs_of(args: Sequence[Any]) -> list[int]:
    """Every value an operation's (encoded) arguments refer to, in order."""
    found: list[int] = []
    for arg in args:
        if isinstance(arg, list):
            found += refs_of(arg)
        elif isinstance(arg, dict) and "ref" in arg:
            found.append(int(arg["ref"]))
    return found


def _decode(arg: Any, env: list[Any], device: torch.device, swap: dict[int, Any] | None) -> Any:
    if isinstance(arg, list):
        return [_decode(a, env, device, swap) for a in arg]
    if isinstance(arg, dict):
        ((tag, value),) = arg.items()
        if tag == "ref":
            if swap is not None and value in swap:
                return swap[value]
            return env[value]
        if tag == "float":
            return float(value)
        if tag == "str":
            return value
        if tag == "dtype":
            return ALLOWED_DTYPES[value]
        if tag == "device":
            return device  # every tensor lives on the evaluation device
        if tag == "layout":
            return LAYOUTS[value]
        return MEMORY_FORMATS[value]
    return arg


def _check_python_op(op: str, args: list[Any]) -> None:
    if op == "operator.getitem":
        container, index = (args + [None, None])[:2]
        if not isinstance(container, (tuple, list)) or type(index) is not int:
            raise ArtifactError("operator.getitem may only take an item of an operation's result")
        return
    if not all(type(a) is int for a in args):
        raise ArtifactError(f"{op} may only compute with integer sizes")


def load_program(
    folder: Path,
    *,
    device: torch.device,
    graph_file: str = GRAPH_FILE,
    max_tensor_bytes: int = MAX_TENSOR_BYTES,
) -> Program:
    """Read, check and prepare the artifact in ``folder``; ArtifactError says what is wrong.

    The training graph (``graph_train.json``) is read in training mode, every other graph in
    inference mode (only pure operations).
    """
    mode: Mode = "training" if graph_file == TRAIN_GRAPH_FILE else "inference"
    artifact = read_artifact(folder / graph_file, mode=mode)
    tensors = read_tensors(folder / TENSORS_FILE, artifact, max_bytes=max_tensor_bytes)
    return Program(artifact, tensors, device, mode=mode)
