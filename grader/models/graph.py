"""The verified graph, as the host reads it: data flow, layers, capacity and the layer table.

Built from the :class:`~grader.models.records.GraphSummary` of the verified evaluation. Values are
numbered as the artifact numbers them: the graph's inputs first, then its operations; every
reference points to an earlier value, so each question here is answered by one sweep over the
operations (linear in the size of the graph, whatever its shape).

- Only *live* operations count -- those the logits depend on.
- A **layer** is any live operation that reads the image's data and a weight (a tensor of the
  model, or a value computed from tensors alone), classified by what it computes
  (:class:`LayerKind`): a contraction whose weight is shared across positions is a convolution
  whatever operation computes it (``conv2d``, ``einsum`` over shifted slices, ``unfold`` and
  ``matmul``, a product then a sum); a contraction over features alone is a linear layer. Weights
  read any other way (looked up by index, concatenated, multiplied in full) are named for review.
- **Capacity** is every tensor the live graph reads: parameters (torchvision's convention),
  batch-norm statistics, and every other buffer or constant. A tensor counts only when perturbing
  it changes the logits, and counts at most as many values as reach the image's data from it
  (a pad read only through its sum counts one value).
"""

from __future__ import annotations

import enum
import math
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property

from grader.models.graph_ops import BATCH_NORM_STATISTICS, OpKind, op_kind
from grader.models.records import GraphSummary, InputInfo, NodeInfo

UNUSED_IS_NORMAL = ("num_batches_tracked",)
"""Buffers an eval-mode graph never reads although every model of that layer has them."""
SMALL_TENSOR = 64
"""Values of a non-parameter tensor small enough to be a constant such as a normalisation mean."""
SMALL_ALLOWANCE = 1024
"""Values of such small tensors, in all, that the parameter budgets leave out."""
CAPACITY_STEPS = 2_000_000
"""Steps the capacity bound may take; past them every tensor counts in full."""
TRANSPARENT_SUMS = ("aten.sum.dim_IntList", "aten.sum.default")
LISTED_WEIGHTS = 64
"""Tensors of the model named per value computed from them (a flag lists a few)."""


class LayerKind(str, enum.Enum):
    """What a weight-reading operation computes."""

    CONV = "convolution"
    LINEAR = "linear"
    NORM = "normalisation"
    ACTIVATION = "activation"
    AFFINE = "scale or shift"
    """An elementwise operation with a per-channel or scalar weight (a bias, a normalisation
    constant, a layer scale)."""
    OTHER = "other"

    def __str__(self) -> str:
        return self.value


STANDARD = {LayerKind.CONV, LayerKind.LINEAR, LayerKind.NORM, LayerKind.ACTIVATION,
            LayerKind.AFFINE}  # fmt: skip


@dataclass(frozen=True)
class Layer:
    """One row of the layer table: a module of the student's model, as the graph ran it."""

    name: str
    type: str
    output_shape: list[int]
    """Shape of its output for one image."""
    params: int
    flops: int = 0
    """FLOPs of its operations for one image."""
    source: str = ""


@dataclass(frozen=True)
class WeightRead:
    """A layer: a live operation that reads image data and a weight."""

    value: int
    kind: LayerKind
    weights: tuple[int, ...]
    """The model's tensors it reads (directly or through values computed from them alone)."""
    standard: bool
    """Whether it is one of the standard layers (else it is named for review)."""
    how: str = ""


class Graph:
    """Queries over a verified graph summary."""

    def __init__(self, summary: GraphSummary) -> None:
        self.summary = summary
        self.inputs = summary.inputs
        self.nodes = summary.nodes
        self.offset = len(summary.inputs)
        self.size = self.offset + len(self.nodes)

    def node(self, value: int) -> NodeInfo | None:
        """The operation that computes ``value``, or None for a graph input."""
        return self.nodes[value - self.offset] if value >= self.offset else None

    def input(self, value: int) -> InputInfo | None:
        """The graph input ``value``, or None for an operation."""
        return self.inputs[value] if value < self.offset else None

    def kind(self, value: int) -> OpKind | None:
        """The kind of the operation computing ``value`` (None for inputs)."""
        node = self.node(value)
        return op_kind(node.op) if node else None

    @cached_property
    def live(self) -> frozenset[int]:
        """Every value the logits depend on (inputs and operations): one backward sweep."""
        live = [False] * self.size
        live[self.summary.logits] = True
        for value in range(self.size - 1, self.offset - 1, -1):
            if live[value]:
                for source in self.nodes[value - self.offset].inputs:
                    if 0 <= source < value:
                        live[source] = True
        return frozenset(v for v in range(self.size) if live[v])

    @cached_property
    def users(self) -> dict[int, list[int]]:
        """Live operations reading each value."""
        readers: dict[int, list[int]] = defaultdict(list)
        for value in self.live_nodes():
            for source in self.nodes[value - self.offset].inputs:
                readers[source].append(value)
        return readers

    def live_nodes(self, *kinds: OpKind) -> list[int]:
        """Live operations of the given kinds (all kinds when none is given), in order."""
        return [
            v
            for v in range(self.offset, self.size)
            if v in self.live and (not kinds or op_kind(self.nodes[v - self.offset].op) in kinds)
        ]

    @cached_property
    def data(self) -> list[bool]:
        """Whether each value depends on the image's values (not on sizes or created tensors)."""
        data = [False] * self.size
        data[0] = True
        for value in range(self.offset, self.size):
            node = self.nodes[value - self.offset]
            if op_kind(node.op) in (OpKind.CREATE, OpKind.SYMBOLIC, None):
                continue
            data[value] = any(data[s] for s in node.inputs if 0 <= s < value)
        return data

    @cached_property
    def weights_of(self) -> list[tuple[int, ...]]:
        """For each value computed from the model's tensors alone (no image data, not a tensor
        created from sizes): those tensors (the first :data:`LISTED_WEIGHTS`); empty for every
        other value."""
        found: list[tuple[int, ...]] = [()] * self.size
        for value in range(1, self.offset):
            if self.inputs[value].kind != "image":
                found[value] = (value,)
        for value in range(self.offset, self.size):
            node = self.nodes[value - self.offset]
            if self.data[value] or op_kind(node.op) in (OpKind.CREATE, OpKind.SYMBOLIC, None):
                continue
            merged = {w for s in node.inputs if 0 <= s < value for w in found[s]}
            found[value] = tuple(sorted(merged))[:LISTED_WEIGHTS]
        return found

    def data_inputs(self, value: int) -> list[int]:
        """The inputs of operation ``value`` that carry image data (not weights or constants)."""
        node = self.node(value)
        return [v for v in node.inputs if self.carries_data(v)] if node else []

    def carries_data(self, value: int) -> bool:
        """Whether ``value`` differs between images (the image input itself does)."""
        graph_input = self.input(value)
        if graph_input is not None:
            return graph_input.kind == "image"
        node = self.node(value)
        return bool(node and node.varies)

    def per_image(self, value: int) -> list[int]:
        """The shape of ``value`` for one image (its shape without the batch dimension), or
        its whole shape for a value computed from the model's tensors alone."""
        graph_input = self.input(value)
        if graph_input is not None:
            return list(graph_input.shape)
        shape = self.nodes[value - self.offset].shape or []
        if self.data[value] and shape and shape[0] == self.summary.probe_batch:
            return list(shape[1:])
        return list(shape)

    # --- layers ----------------------------------------------------------------------------------

    @cached_property
    def layers_read(self) -> list[WeightRead]:
        """Every layer (see the module docstring), in the order they ran."""
        found = []
        for value in self.live_nodes():
            if not self.data[value]:
                continue
            node = self.nodes[value - self.offset]
            weight_values = [s for s in node.inputs if 0 < s < value and self.weights_of[s]]
            if not weight_values:
                continue
            tensors = tuple(sorted({w for s in weight_values for w in self.weights_of[s]}))
            kind, how = self._classify(value, weight_values)
            found.append(WeightRead(value, kind, tensors, _standard(node.op, kind, how), how))
        return found

    def _classify(self, value: int, weight_values: list[int]) -> tuple[LayerKind, str]:
        node = self.nodes[value - self.offset]
        kind = op_kind(node.op)
        op = node.op.split(".")[1]
        if kind is OpKind.CONV:
            return LayerKind.CONV, op
        if kind is OpKind.LINEAR:
            positions = [d for d in self.per_image(value) if d > 1]
            return (LayerKind.CONV if len(positions) >= 2 else LayerKind.LINEAR), op
        if kind is OpKind.NORM:
            return LayerKind.NORM, op
        if kind is OpKind.ACTIVATION:
            return LayerKind.ACTIVATION, op
        if kind in (OpKind.ELEMENTWISE, OpKind.ADD):
            full = [s for s in weight_values if sum(d > 1 for d in self.per_image(s)) > 1]
            if not full:
                return LayerKind.AFFINE, op
            data = [s for s in node.inputs if 0 <= s < value and self.data[s]]
            spread = max((sum(d > 1 for d in self.per_image(s)) for s in data), default=0)
            return (LayerKind.CONV if spread >= 2 else LayerKind.LINEAR), (
                f"{op} with a full weight tensor"
            )
        if kind is OpKind.SHAPE and op in ("index", "gather", "index_select"):
            return LayerKind.OTHER, f"{op}: a weight looked up by values of the image"
        return LayerKind.OTHER, op

    def layer_values(self, *kinds: LayerKind) -> list[int]:
        """Live layers of the given kinds, in order."""
        return [r.value for r in self.layers_read if r.kind in kinds]

    def outside_standard(self) -> list[WeightRead]:
        """Layers that read weights outside the standard layers (for an instructor's review)."""
        return [r for r in self.layers_read if not r.standard]

    # --- capacity --------------------------------------------------------------------------------

    @cached_property
    def batch_norm_statistics(self) -> frozenset[int]:
        """Buffers the live graph reads only as a batch norm's running mean or variance."""
        as_statistic: set[int] = set()
        otherwise: set[int] = set()
        for value in self.live_nodes():
            node = self.nodes[value - self.offset]
            statistics = set(_statistics(node))
            for source in node.inputs:
                if source < self.offset and self.inputs[source].kind == "buffer":
                    (as_statistic if source in statistics else otherwise).add(source)
        return frozenset(as_statistic - otherwise)

    @cached_property
    def reaching(self) -> dict[int, int]:
        """Per live tensor of the model: how many of its values can reach the image's data,
        bounded by the values that carry it there (at most its own size)."""
        frontier_size = {}
        for read in self.layers_read:
            node = self.nodes[read.value - self.offset]
            for source in node.inputs:
                if 0 < source < read.value and self.weights_of[source]:
                    frontier_size[source] = math.prod(self.per_image(source))
        readers: dict[int, list[int]] = defaultdict(list)
        for value in self.live_nodes():
            if not self.data[value]:
                for source in self.nodes[value - self.offset].inputs:
                    if 0 < source < value and self.weights_of[source]:
                        readers[source].append(value)
        bound: dict[int, int] = {}
        steps = 0
        for value in range(1, self.offset):
            graph_input = self.inputs[value]
            if value not in self.live:
                continue
            seen, pending, total = {value}, [value], 0
            while pending and steps < CAPACITY_STEPS:
                current = pending.pop()
                steps += 1
                total += frontier_size.get(current, 0)
                for reader in readers.get(current, ()):
                    if reader not in seen:
                        seen.add(reader)
                        pending.append(reader)
            full = graph_input.numel
            bound[value] = full if steps >= CAPACITY_STEPS else min(full, total)
        return bound

    def counted(self, value: int) -> int:
        """Values of tensor ``value`` that count: none without an effect on the logits, at most
        what reaches the image's data."""
        graph_input = self.inputs[value]
        if value not in self.live or not graph_input.effect:
            return 0
        return self.reaching.get(value, graph_input.numel)

    def tensors(self, kind: str, *, used: bool | None = None) -> list[InputInfo]:
        """Graph inputs of ``kind`` (parameter, buffer, constant), only used or unused ones if
        asked."""
        found = []
        for value, graph_input in enumerate(self.inputs):
            if graph_input.kind != kind:
                continue
            if used is None or (value in self.live) == used:
                found.append(graph_input)
        return found

    @property
    def parameter_count(self) -> int:
        """Values in the parameters the logits depend on (read by a live operation, with an
        effect on the logits, bounded by what reaches the data)."""
        return sum(
            self.counted(v) for v in range(1, self.offset) if self.inputs[v].kind == "parameter"
        )

    @property
    def buffer_count(self) -> int:
        """Values in the batch-norm statistics the logits depend on."""
        return sum(self.inputs[v].numel for v in self.batch_norm_statistics if v in self.live)

    @cached_property
    def other_tensors(self) -> list[tuple[InputInfo, int]]:
        """Every other tensor the logits depend on (buffers that are not batch-norm statistics,
        constants), with the values that count."""
        return [
            (self.inputs[v], self.counted(v))
            for v in range(1, self.offset)
            if self.inputs[v].kind in ("buffer", "constant")
            and v not in self.batch_norm_statistics
            and self.counted(v)
        ]

    @property
    def other_count(self) -> int:
        """Values in :attr:`other_tensors`."""
        return sum(count for _i, count in self.other_tensors)

    @property
    def budgeted_count(self) -> int:
        """What the parameter budgets apply to: parameters and every other tensor read, less
        small constants (normalisation statistics) up to :data:`SMALL_ALLOWANCE` values."""
        small = sum(c for i, c in self.other_tensors if i.numel <= SMALL_TENSOR)
        return self.parameter_count + self.other_count - min(small, SMALL_ALLOWANCE)

    @property
    def capacity(self) -> int:
        """Every value the logits depend on: parameters, batch-norm statistics, the rest."""
        return self.parameter_count + self.buffer_count + self.other_count

    @property
    def unused(self) -> list[InputInfo]:
        """Parameters, buffers and constants that no live operation reads, and those that are
        read but have no effect on the logits (multiplied by zero, subtracted from themselves)."""
        return [
            i
            for v, i in enumerate(self.inputs)
            if i.kind != "image"
            and (v not in self.live or not i.effect)
            and not i.name.endswith(UNUSED_IS_NORMAL)
        ]

    def bottlenecked(self) -> list[tuple[InputInfo, int]]:
        """Live tensors that reach the image's data through fewer values than they hold."""
        return [
            (self.inputs[v], bound)
            for v, bound in self.reaching.items()
            if bound < self.inputs[v].numel and self.inputs[v].effect
        ]

    def weight_shapes(self) -> list[tuple[int, ...]]:
        """The material of the public-model comparison: the shape of every weight operand as a
        layer reads it (after any view, reshape or concatenation of the stored tensors, so that
        a weight stored flat or in pieces has its layer's shape), then the stored shape of each
        other counted tensor read as a weight (parameters, and buffers or constants that are not
        batch-norm statistics), in the order the graph reads them."""

        def counted(tensors: tuple[int, ...]) -> bool:
            return any(v not in self.batch_norm_statistics and self.counted(v) for v in tensors)

        shapes: list[tuple[int, ...]] = []
        operands: set[int] = set()
        covered: set[int] = set()
        for read in self.layers_read:
            for source in self.nodes[read.value - self.offset].inputs:
                tensors = self.weights_of[source] if 0 < source < read.value else ()
                if source in operands or not tensors or not counted(tensors):
                    continue
                operands.add(source)
                covered.update(tensors)
                shapes.append(tuple(self.per_image(source)))
        seen: set[int] = set()
        for value in self.live_nodes():
            for source in self.nodes[value - self.offset].inputs:
                if 0 < source < self.offset and source not in seen and source not in covered:
                    seen.add(source)
                    if counted((source,)):
                        shapes.append(tuple(self.inputs[source].shape))
        return shapes

    def parameter_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the counted parameters, sorted."""
        return sorted(
            tuple(self.inputs[v].shape)
            for v in range(1, self.offset)
            if self.inputs[v].kind == "parameter" and self.counted(v)
        )

    # --- the layer table -------------------------------------------------------------------------

    def layers(self) -> list[Layer]:
        """One row per run of live operations inside one module of the student's model (a
        function called in ``forward`` itself is a row of its own), in the order they ran."""
        owner: set[int] = set()
        rows: list[dict] = []
        previous = None
        for value in self.live_nodes():
            node = self.nodes[value - self.offset]
            if op_kind(node.op) in (OpKind.SYMBOLIC, None):
                continue
            op = node.op.split(".")[1]
            key = node.module or None
            if key is None or key != previous:
                rows.append(
                    {
                        "name": node.module or f"({op})",
                        "type": (node.module_type if node.module else "") or op,
                        "shape": [],
                        "params": 0,
                        "flops": 0,
                        "source": node.source,
                    }
                )
            previous = key
            row = rows[-1]
            if node.shape and node.shape[0] == self.summary.probe_batch:
                row["shape"] = list(node.shape[1:])
            row["flops"] += node.flops
            for source in node.inputs:
                graph_input = self.input(source)
                if (
                    graph_input is not None
                    and graph_input.kind == "parameter"
                    and source not in owner
                ):
                    owner.add(source)
                    row["params"] += graph_input.numel
        return [
            Layer(r["name"], r["type"], r["shape"], r["params"], r["flops"], r["source"])
            for r in rows
        ]

    def describe(self, value: int) -> str:
        """``features.3 (Conv2d, model.py:12)`` for the operation computing ``value``."""
        node = self.node(value)
        if node is None:
            graph_input = self.input(value)
            return (
                "the input image"
                if graph_input and graph_input.kind == "image"
                else (graph_input.name if graph_input else "?")
            )
        where = node.module or "forward"
        what = (node.module_type if node.module else "") or node.op.split(".")[1]
        at = f", {node.source}" if node.source else ""
        return f"{where} ({what}{at})"


STANDARD_OPS = {
    LayerKind.CONV: {
        "conv1d", "conv2d", "conv3d", "convolution", "conv_transpose1d", "conv_transpose2d",
        "conv_transpose3d",
    },
    LayerKind.LINEAR: {"linear", "addmm", "mm", "matmul"},
}  # fmt: skip
"""The operations of the standard convolution and linear layers (``nn.Conv2d``, ``nn.Linear``,
``x @ w``); the same computation written any other way is counted, and named for review."""


def _standard(op: str, kind: LayerKind, how: str) -> bool:
    name = op.split(".")[1] if "." in op else op
    if kind in STANDARD_OPS:
        return name in STANDARD_OPS[kind] and "full weight" not in how
    return kind in STANDARD


def _statistics(node: NodeInfo) -> list[int]:
    """The running mean and variance a batch-norm operation reads (none for other operations).

    :attr:`NodeInfo.inputs` lists what an operation reads in argument order, None arguments
    left out; the batch-norm family reads (input, weight?, bias?, running_mean, running_var).
    """
    if node.op not in BATCH_NORM_STATISTICS or len(node.inputs) < 3:
        return []
    return list(node.inputs[-2:])
