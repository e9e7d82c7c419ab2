"""Structure rules and budgets, as data-flow rules on the verified graph.

A rule reads what the graph computes, not the modules a class declares: a convolution is any
layer whose weight is shared across positions (``conv2d``, an ``einsum`` over shifted slices...),
a BatchNorm whose output is thrown away does not count, a "skip connection" that adds zeros, a
scaled copy of its own input or an identity that is subtracted again downstream does not count,
and a tensor no live operation reads, or whose perturbation changes no logit, is not counted
(and is reported). Each rule returns a :class:`~grader.models.result.Check` whose message names
the student's layers. Rules are registered by name with :func:`rule`; specs list them by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from grader.models.graph import TRANSPARENT_SUMS, Graph, Layer, LayerKind
from grader.models.graph_ops import OpKind
from grader.models.registry import LAYER_TYPES, ReferenceLayer
from grader.models.result import Check

RELATIVE_SPREAD = 1e-3
"""A branch of a skip connection must carry at least this fraction of the other's variation."""
KEPT_IDENTITY = 0.5
"""Share of the identity path's effect on the logits that must survive what follows the skip."""
MAX_LISTED = 5


@dataclass(frozen=True)
class RuleContext:
    """What a rule may look at besides the graph."""

    reference: tuple[ReferenceLayer, ...] = ()
    """The layers of the assignment's reference model, if it names one."""


RuleFunction = Callable[[Graph, RuleContext], Check]
RULES: dict[str, RuleFunction] = {}


def rule(name: str) -> Callable[[RuleFunction], RuleFunction]:
    """Register a structure rule under ``name`` (the name specs use)."""

    def register(function: RuleFunction) -> RuleFunction:
        RULES[name] = function
        return function

    return register


def check_rules(names: tuple[str, ...], graph: Graph, context: RuleContext) -> list[Check]:
    """Every rule of ``names`` on ``graph``, in order."""
    return [RULES[name](graph, context) for name in names]


def _listing(items: list[str]) -> str:
    shown = "; ".join(items[:MAX_LISTED])
    return shown + (f"; and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def _is_batch_norm(graph: Graph, value: int) -> bool:
    node = graph.node(value)
    return node is not None and "batch_norm" in node.op


def _passes_on(graph: Graph, value: int) -> bool:
    """Whether operation ``value`` hands a layer's output on unchanged in kind: a view or copy,
    a per-channel bias or scale, or the sum that completes a product written elementwise."""
    node = graph.node(value)
    if node is None:
        return False
    kind = graph.kind(value)
    if kind is OpKind.SHAPE and len(graph.data_inputs(value)) <= 1:
        return True
    if node.op in TRANSPARENT_SUMS:
        return True
    return any(r.value == value and r.kind is LayerKind.AFFINE for r in graph.layers_read)


def _normalised(graph: Graph, conv: int) -> tuple[bool, int | None]:
    """Whether every path from ``conv`` reaches a BatchNorm (through views, biases and the like)
    that takes it as its input; else the first other operation found."""
    pending, seen = [conv], {conv}
    reached = False
    while pending:
        value = pending.pop()
        users = graph.users.get(value, [])
        if not users:
            return False, None
        for user in users:
            if user in seen:
                continue
            seen.add(user)
            if _is_batch_norm(graph, user) and graph.node(user).inputs[:1] == [value]:
                reached = True
            elif _passes_on(graph, user):
                pending.append(user)
            else:
                return False, user
    return reached, None


@rule("batchnorm_after_conv")
def batchnorm_after_conv(graph: Graph, _context: RuleContext) -> Check:
    """Every convolution's output feeds a BatchNorm, and only BatchNorms, whose result is used.
    A convolution is any layer whose weight is shared across positions, whatever computes it."""
    convs = graph.layer_values(LayerKind.CONV)
    bad = []
    for conv in convs:
        ok, other = _normalised(graph, conv)
        if ok:
            continue
        after = graph.describe(other) if other is not None else "nothing the logits depend on"
        bad.append(f"{graph.describe(conv)} is followed by {after}")
    if not convs:
        return Check("batchnorm_after_conv", False, "the model runs no convolution")
    if bad:
        return Check(
            "batchnorm_after_conv",
            False,
            "a BatchNorm must take every convolution's output: " + _listing(bad),
        )
    return Check(
        "batchnorm_after_conv", True, f"every one of {len(convs)} convolutions feeds a BatchNorm"
    )


@rule("no_batchnorm")
def no_batchnorm(graph: Graph, _context: RuleContext) -> Check:
    """No normalisation layer on the path to the logits."""
    norms = graph.live_nodes(OpKind.NORM)
    if not norms:
        return Check("no_batchnorm", True, "no normalisation layers")
    listing = _listing([graph.describe(v) for v in norms])
    return Check("no_batchnorm", False, f"normalisation layers are not allowed here: {listing}")


@rule("residual")
def residual(graph: Graph, _context: RuleContext) -> Check:
    """At least one addition of two feature maps where one is an identity path (views, slices,
    padding) from a value the other is computed from through a layer, both carry data, and the
    identity survives to the logits (changing the source on the skip path alone changes them as
    much as through the skip edge: nothing downstream cancels it)."""
    found, refused = [], []
    for add in graph.live_nodes(OpKind.ADD):
        node = graph.node(add)
        operands = [v for v in node.inputs if graph.input(v) is None or graph.carries_data(v)]
        if len(node.shape or []) != 4 or len(set(node.inputs)) != 2 or len(operands) != 2:
            continue
        a, b = operands
        spreads = [_spread(graph, a), _spread(graph, b)]
        if min(spreads) <= RELATIVE_SPREAD * max(spreads):
            refused.append(f"{graph.describe(add)} adds a branch that carries no data")
            continue
        test = node.skip
        if test is None or not test.branch_layer:
            refused.append(f"{graph.describe(add)} adds two copies of the same path")
            continue
        if not test.kept >= KEPT_IDENTITY:
            refused.append(
                f"{graph.describe(add)} adds an identity path that is cancelled before the "
                f"logits (keeps {max(test.kept, 0.0):.0%} of its effect)"
            )
            continue
        found.append(graph.describe(add))
    if found:
        return Check("residual", True, f"{len(found)} skip connection(s), e.g. at {found[0]}")
    why = f" ({_listing(refused)})" if refused else ""
    return Check(
        "residual",
        False,
        f"no skip connection: no feature map is added to the output of a branch of layers{why}",
    )


def _spread(graph: Graph, value: int) -> float:
    node = graph.node(value)
    if node is not None:
        return node.spread
    return 1.0 if graph.carries_data(value) else 0.0  # the input image itself


def _present(name: str, kind: OpKind | LayerKind, label: str) -> RuleFunction:
    def check(graph: Graph, _context: RuleContext) -> Check:
        if isinstance(kind, LayerKind):
            live = graph.layer_values(kind)
        else:
            live = [v for v in graph.live_nodes(kind) if graph.data_inputs(v)]
        if kind is OpKind.DROPOUT:
            live = [v for v in live if _dropout_rate(graph, v) > 0]
        if live:
            return Check(name, True, f"{label}: {_listing([graph.describe(v) for v in live])}")
        return Check(name, False, f"the model has no {label} on the path to its output")

    check.__doc__ = f"At least one live {label} that the image data flows through."  # noqa
    return check


def _dropout_rate(graph: Graph, value: int) -> float:
    node = graph.node(value)
    return (node.rate or 0.0) if node is not None else 0.0


for _name, _kind, _label in (
    ("has_dropout", OpKind.DROPOUT, "dropout layer"),
    ("has_pooling", OpKind.POOL, "pooling layer"),
    ("has_activation", OpKind.ACTIVATION, "activation function"),
    ("has_conv", LayerKind.CONV, "convolution"),
    ("has_linear", LayerKind.LINEAR, "fully connected layer"),
    ("has_batchnorm", OpKind.NORM, "normalisation layer"),
):
    rule(_name)(_present(_name, _kind, _label))


SIGMOID, SILU, MULTIPLY = "aten.sigmoid.default", "aten.silu.default", "aten.mul.Tensor"


@rule("swish_activation")
def swish_activation(graph: Graph, _context: RuleContext) -> Check:
    """Swish, x * sigmoid(x) (Ramachandran et al. 2017), on the data path: a SiLU, or a product
    of a value with the sigmoid of that same value."""
    found = []
    for value in graph.live_nodes(OpKind.ACTIVATION, OpKind.ELEMENTWISE):
        node = graph.node(value)
        # it must read image data and hand it on: a Swish multiplied by zero does not count
        users = graph.users.get(value, [])
        feeds = value == graph.summary.logits or any(graph.carries_data(u) for u in users)
        if not graph.data_inputs(value) or not feeds:
            continue
        if node.op == SILU:
            found.append(value)
        elif node.op == MULTIPLY and len(node.inputs) == 2:
            a, b = node.inputs
            if any(
                (sig := graph.node(s)) is not None and sig.op == SIGMOID and sig.inputs[:1] == [x]
                for x, s in ((a, b), (b, a))
            ):
                found.append(value)
    if found:
        listing = _listing([graph.describe(v) for v in found])
        return Check("swish_activation", True, f"Swish (x * sigmoid(x)): {listing}")
    others = [graph.describe(v) for v in graph.live_nodes(OpKind.ACTIVATION)]
    why = f"; its activations are {_listing(others)}" if others else ""
    return Check("swish_activation", False, f"the model computes no Swish, x * sigmoid(x){why}")


@rule("reference_layers")
def reference_layers_rule(graph: Graph, context: RuleContext) -> Check:
    """The convolutions and linear layers produce the reference model's shapes with its
    parameter counts, in the same order."""
    if not context.reference:
        return Check("reference_layers", False, "the assignment names no reference model")
    weighted = ("conv", "linear")
    ours = [x for x in graph.layers() if any(w in x.type.lower() for w in weighted)]
    theirs = [x for x in context.reference if any(w in x.type.lower() for w in weighted)]
    for index, (mine, ref) in enumerate(zip(ours, theirs, strict=False)):
        if (mine.output_shape, mine.params) != (ref.output_shape, ref.params):
            return Check(
                "reference_layers",
                False,
                f"layer #{index + 1}, {mine.name} ({mine.type}), outputs "
                f"{_shape(mine.output_shape)} with {mine.params:,} parameters; the reference's "
                f"{ref.name} outputs {_shape(ref.output_shape)} with {ref.params:,}",
            )
    if len(ours) != len(theirs):
        return Check(
            "reference_layers",
            False,
            f"the model runs {len(ours)} convolution and linear layers; the reference "
            f"has {len(theirs)}",
        )
    return Check(
        "reference_layers",
        True,
        f"{len(ours)} convolution and linear layers with the reference's shapes",
    )


# --- parameter and FLOP budgets -------------------------------------------------------------------


def parameter_checks(
    graph: Graph,
    *,
    exact: int | None,
    most: int | None,
    context: RuleContext,
) -> list[Check]:
    """``params_exact`` and ``params_max`` on every tensor the logits depend on: the parameters,
    and every buffer or constant read besides batch-norm statistics (small constants such as
    normalisation statistics left out, up to a total of 1,024 values)."""
    total = graph.budgeted_count
    params = graph.parameter_count
    unused = graph.unused
    notes = []
    if total != params:
        others = ", ".join(f"{i.name} ({c:,})" for i, c in graph.other_tensors[:MAX_LISTED])
        notes.append(f"{params:,} in parameters and {total - params:,} in other tensors: {others}")
    if unused:
        notes.append(
            f"{sum(u.numel for u in unused):,} values no operation reads, or that change no "
            f"logit, are not counted: {', '.join(u.name for u in unused[:MAX_LISTED])}"
        )
    for graph_input, bound in graph.bottlenecked()[:MAX_LISTED]:
        notes.append(
            f"{graph_input.name} reaches the image data through {bound:,} of its "
            f"{graph_input.numel:,} values: counted {bound:,}"
        )
    note = f" ({'; '.join(notes)})" if notes else ""
    checks = []
    if exact is not None:
        if total == exact:
            checks.append(Check("params_exact", True, f"{total:,} parameters, as required{note}"))
        else:
            hint = layer_difference(graph.layers(), context.reference)
            checks.append(
                Check(
                    "params_exact",
                    False,
                    f"{total:,} parameters; the assignment requires exactly {exact:,}{note}"
                    + (f". {hint}" if hint else ""),
                )
            )
    if most is not None:
        checks.append(
            Check("params_max", total <= most, f"{total:,} parameters; the limit is {most:,}{note}")
        )
    return checks


def flop_check(flops: int | None, most: int | None) -> list[Check]:
    """``max_flops``: forward FLOPs for one image within the budget."""
    if most is None or flops is None:
        return []
    return [Check("max_flops", flops <= most, f"{flops:,} FLOPs per image; the limit is {most:,}")]


def _shape(shape: list[int]) -> str:
    return "x".join(map(str, shape)) or "-"


def _lines_up(layer_type: str) -> bool:
    role = layer_type.lower().replace("_", "")
    return any(part in role for part in LAYER_TYPES)


def layer_difference(layers: list[Layer], reference: tuple[ReferenceLayer, ...]) -> str | None:
    """A sentence naming the FIRST of the student's layers whose output shape (then parameter
    count) differs from the reference model's layer at the same place."""
    ours = [layer for layer in layers if _lines_up(layer.type)]
    theirs = [layer for layer in reference if _lines_up(layer.type)]
    if not theirs:
        return None
    for mine, ref in zip(ours, theirs, strict=False):
        if mine.output_shape and mine.output_shape != ref.output_shape:
            return (
                f"Your layer {mine.name} ({mine.type}) outputs {_shape(mine.output_shape)}, the "
                f"reference's {ref.name} ({ref.type}) outputs {_shape(ref.output_shape)}: check "
                "its channels, kernel size, stride and padding"
            )
    for mine, ref in zip(ours, theirs, strict=False):
        if mine.params != ref.params:
            return (
                f"Your layer {mine.name} ({mine.type}) has {mine.params:,} parameters, the "
                f"reference's {ref.name} ({ref.type}) has {ref.params:,}"
            )
    if len(ours) != len(theirs):
        extra = ours[len(theirs)] if len(ours) > len(theirs) else None
        if extra is not None:
            return f"Your layer {extra.name} ({extra.type}) is not in the reference model"
        missing = theirs[len(ours)]
        return f"The reference model has {missing.name} ({missing.type}) after your last layer"
    return None
