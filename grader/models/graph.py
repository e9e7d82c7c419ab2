"""The verified graph, as the host reads it: data flow, parameter counts and the layer table.

Built from the :class:`~grader.models.records.GraphSummary` of the verified evaluation. Values are
numbered as the artifact numbers them: the graph's inputs first, then its operations. Only
*live* operations count -- those the logits depend on -- so a layer whose output is thrown away,
or a parameter that no live operation reads, is seen as what it is.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property

from grader.models.ops import OpKind, op_kind
from grader.models.records import GraphSummary, InputInfo, NodeInfo

UNUSED_IS_NORMAL = ("num_batches_tracked",)
"""Buffers an eval-mode graph never reads although every model of that layer has them."""


@dataclass(frozen=True)
class Layer:
    """One row of the layer table: a module of the student's model, as the graph ran it."""

    name: str
    type: str
    output_shape: list[int]
    """Shape of its output for one image."""
    params: int
    flops: int = 0
    source: str = ""


class Graph:
    """Queries over a verified graph summary."""

    def __init__(self, summary: GraphSummary) -> None:
        self.summary = summary
        self.inputs = summary.inputs
        self.nodes = summary.nodes
        self.offset = len(summary.inputs)

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
        """Every value the logits depend on (inputs and operations)."""
        return self.ancestors(self.summary.logits)

    @cached_property
    def users(self) -> dict[int, list[int]]:
        """Live operations reading each value."""
        readers: dict[int, list[int]] = defaultdict(list)
        for index, node in enumerate(self.nodes):
            value = self.offset + index
            if value in self.live:
                for source in node.inputs:
                    readers[source].append(value)
        return readers

    def live_nodes(self, *kinds: OpKind) -> list[int]:
        """Live operations of the given kinds (all kinds when none is given), in order."""
        return [
            self.offset + i
            for i, node in enumerate(self.nodes)
            if self.offset + i in self.live and (not kinds or op_kind(node.op) in kinds)
        ]

    def ancestors(self, value: int) -> frozenset[int]:
        """Every value that ``value`` is computed from, itself included."""
        seen: set[int] = set()
        pending = [value]
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            node = self.node(current)
            if node is not None:
                pending.extend(node.inputs)
        return frozenset(seen)

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

    # --- counts ----------------------------------------------------------------------------------

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
        """Values in the parameters the logits depend on (read by a live operation, and with an
        effect on the logits)."""
        return sum(p.numel for p in self.tensors("parameter", used=True) if p.effect)

    @property
    def buffer_count(self) -> int:
        """Values in the buffers the logits depend on (BatchNorm's running statistics)."""
        return sum(b.numel for b in self.tensors("buffer", used=True))

    @property
    def unused(self) -> list[InputInfo]:
        """Parameters, buffers and constants that no live operation reads, and parameters that
        are read but have no effect on the logits (multiplied by zero)."""
        return [
            i
            for v, i in enumerate(self.inputs)
            if i.kind != "image"
            and (v not in self.live or not i.effect)
            and not i.name.endswith(UNUSED_IS_NORMAL)
        ]

    def parameter_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the used parameters, sorted: the architecture's fingerprint material."""
        return sorted(tuple(p.shape) for p in self.tensors("parameter", used=True) if p.effect)

    # --- the layer table -------------------------------------------------------------------------

    def layers(self) -> list[Layer]:
        """One row per run of live operations inside one module of the student's model (a
        function called in ``forward`` itself is a row of its own), in the order they ran."""
        owner: set[int] = set()
        rows: list[dict] = []
        previous = None
        for value in self.live_nodes():
            node = self.node(value)
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
