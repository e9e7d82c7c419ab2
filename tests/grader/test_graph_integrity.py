"""Checks that measure what the graph computes, attacked as a hostile student would.

Each model here is an ordinary ``torch.export``-able model (or a small hand-made artifact) that
earned a verified grade or a passed check from a grader reading op names, gradients or
parameters only: a stateful graph, a ``detach`` pad, a ``round`` hider, weights kept as buffers
and constants, layers written as a multiply and a sum or as ``einsum`` over shifted slices, a
skip connection that is subtracted again, public models with an extra parameter or a wrapper, and
a lookup table of the test images and their public variants. The stages run in this process
(their confinement is tested elsewhere); every number comes from the verified evaluation.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import SIMPLENN_CODE, block, graph_of, run_stages

from grader.assignment import parse_assignment
from grader.models.fingerprint import Candidate, contains, public_models_inside
from grader.models.graph import Graph, LayerKind
from grader.models.graph_ops import OPS, node_flops
from grader.models.inside.artifact import (
    GRAPH_FILE,
    TENSORS_FILE,
    ArtifactError,
    load_program,
    read_tensors,
    resolve_op,
)
from grader.models.inside.evaluate import evaluate
from grader.models.inside.export import export_model, write_artifact, write_tensors
from grader.models.pipeline import verified_result
from grader.models.records import EvaluateArgs
from grader.models.rules import RuleContext, check_rules, parameter_checks
from grader.sandbox.inside.tasks import JobContext

NONE = RuleContext()
IMPORTS = "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n"


def spec(**model):
    return parse_assignment({"name": "lab", "dataset": "cifar10", "model": model}).model


def rule(graph: Graph, name: str) -> tuple[bool, str]:
    (check,) = check_rules((name,), graph, NONE)
    return check.passed, check.message


# --- the op table ---------------------------------------------------------------------------------


def test_every_allowed_op_exists_and_its_purity_arguments_are_in_its_schema():
    for name, op_spec in OPS.items():
        function = resolve_op(name)
        if not op_spec.pure_when:
            continue
        arguments = {a.name for a in function._schema.arguments}
        for group in op_spec.pure_when:
            for argument in group:
                assert argument.removeprefix("none:") in arguments, (name, argument)


def test_conv_and_matmul_flops_agree_with_torch_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    cases = [
        ("aten.conv2d.default", [torch.rand(2, 3, 16, 16), torch.rand(8, 3, 3, 3), None, [2, 2],
                                 [1, 1], [1, 1], 1]),
        ("aten.conv2d.default", [torch.rand(2, 8, 9, 9), torch.rand(8, 1, 3, 3), None, [1, 1],
                                 [0, 0], [1, 1], 8]),
        ("aten.mm.default", [torch.rand(5, 7), torch.rand(7, 3)]),
        ("aten.bmm.default", [torch.rand(4, 5, 7), torch.rand(4, 7, 3)]),
        ("aten.einsum.default", ["bik,kj->bij", [torch.rand(4, 5, 7), torch.rand(7, 3)]]),
    ]  # fmt: skip
    for name, args in cases:
        with FlopCounterMode(display=False) as counter:
            result = resolve_op(name)(*args)
        assert node_flops(name, args, result) == counter.get_total_flops(), name


def test_a_batch_norm_in_training_mode_is_refused_before_anything_runs():
    code = IMPORTS + (
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)\n"
        "        self.fc = nn.Linear(4, 10)\n"
        "    def forward(self, x):\n"
        "        y = F.batch_norm(self.conv(x), self.bn.running_mean, self.bn.running_var,\n"
        "                         training=True)\n"
        "        return self.fc(y.mean((2, 3)))\n"
    )
    record = run_stages(code)
    assert record.status == "invalid"
    assert "model.eval()" in record.message, record.message


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    """A real artifact of a small conv + BN net, to be doctored."""
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(4 * 30 * 30, 10),
    ).eval()  # fmt: skip
    tensors = write_artifact(export_model(model, (3, 32, 32)), tmp_path, graph_file=GRAPH_FILE)
    write_tensors(tensors, tmp_path)
    return tmp_path


def _doctor(folder: Path, change) -> dict:
    graph = json.loads((folder / GRAPH_FILE).read_text())
    change(graph)
    (folder / GRAPH_FILE).write_text(json.dumps(graph))
    return graph


def _names(graph: dict) -> dict[str, int]:
    return {i["name"]: n for n, i in enumerate(graph["inputs"])}


def test_a_dead_batch_norm_counter_is_refused(artifact):
    """The stateful-graph attack: a dead ``native_batch_norm`` with training=True turns a
    running mean into a counter of the runs (probe, determinism, FLOPs, effect, logits), so a
    later run could answer from stored labels. It never runs: the reader refuses it."""

    def counter(graph):
        names = _names(graph)
        graph["nodes"].append({
            "op": "aten.native_batch_norm.default",
            "args": [{"ref": 0}, None, None, {"ref": names["1.running_mean"]},
                     {"ref": names["1.running_var"]}, True, 1.0, 1e-5],
        })  # fmt: skip

    _doctor(artifact, counter)
    with pytest.raises(ArtifactError, match="training not a literal False"):
        load_program(artifact, device=torch.device("cpu"))


def test_a_computed_training_flag_is_refused(artifact):
    def computed(graph):
        node = next(n for n in graph["nodes"] if "batch_norm" in n["op"])
        node["args"][5] = {"ref": 0}

    _doctor(artifact, computed)
    with pytest.raises(ArtifactError, match="not a literal False"):
        load_program(artifact, device=torch.device("cpu"))


def test_only_the_operations_the_logits_depend_on_run(artifact):
    def dead_failure(graph):
        graph["nodes"].append({
            "op": "aten.index_select.default",
            "args": [{"ref": _names(graph)["0.weight"]}, 0, {"ref": len(graph["inputs"]) - 1}],
        })  # fmt: skip

    _doctor(artifact, dead_failure)
    program = load_program(artifact, device=torch.device("cpu"))
    assert len(program.plan) == len(program.artifact.nodes) - 1
    assert program.logits(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_each_run_starts_fresh_and_a_changed_tensor_is_caught(artifact):
    program = load_program(artifact, device=torch.device("cpu"))
    stats = {program.input_name(v) for v in program.guarded}
    assert {"1.running_mean", "1.running_var"} <= stats
    env = program.fresh_env(torch.rand(2, 3, 32, 32))
    for value in program.guarded:  # the batch norm's tensors: a copy per run
        assert env[value] is not program.tensors[program.input_name(value)]
    stored = read_tensors(artifact / TENSORS_FILE, program.artifact, max_bytes=1 << 30)
    assert program.unchanged(stored) is None
    program.tensors["4.weight"].add_(1.0)  # what an op writing to its argument would do
    assert program.unchanged(stored) == "4.weight"


# --- effect by perturbation, capacity of every tensor -----------------------------------------


WRONG_SIMPLENN = SIMPLENN_CODE.replace("nn.Conv2d(8, 16, 3)", "nn.Conv2d(8, 16, 5)").replace(
    "16 * 6 * 6", "16 * 5 * 5"
)  # 62,958 parameters


def _with(code: str, init: str, forward_return: str) -> str:
    return (
        ("import torch\n" + code)
        .replace("self.fc3 = nn.Linear(84, 10)", "self.fc3 = nn.Linear(84, 10)\n        " + init)
        .replace("return self.fc3(x)", forward_return)
    )


def test_a_detach_pad_adds_nothing_and_is_not_counted():
    """``x + (pad - pad.detach()).sum()`` is 0 forward with gradient 1: a gradient called it an
    effect and 62,958 + 19,072 passed params_exact = 82,030."""
    code = _with(
        WRONG_SIMPLENN,
        "self.pad = nn.Parameter(torch.randn(19_072))",
        "return self.fc3(x) + (self.pad - self.pad.detach()).sum()",
    )
    graph = graph_of(code)
    assert graph.parameter_count == 62_958
    assert [u.name for u in graph.unused] == ["pad"]
    (check,) = parameter_checks(graph, exact=82_030, most=None, context=NONE)
    assert not check.passed and "62,958 parameters" in check.message and "pad" in check.message


def test_parameters_behind_round_are_counted():
    """``round`` has a zero gradient: a gradient test called such parameters unused and hid
    them, though they change the logits."""
    code = _with(
        SIMPLENN_CODE,
        "self.hidden = nn.Linear(84, 10)",
        "return self.fc3(x) + torch.round(self.hidden(x) * 4)",
    )
    graph = graph_of(code)
    assert graph.unused == []
    assert graph.parameter_count == 82_030 + 850


def test_a_pad_read_only_through_its_sum_counts_one_value():
    """A checksum: the pad changes the logits only through one number."""
    code = _with(
        SIMPLENN_CODE,
        "self.pad = nn.Parameter(torch.randn(5_000))",
        "return self.fc3(x) + self.pad.sum() * 1e-3",
    )
    record = run_stages(code)
    graph = Graph(record.graph)
    assert graph.parameter_count == 82_030 + 1
    flags = verified_result(record, spec()).flags
    assert any("pad (5,000 values) reaches the image data only through 1 values" in f
               for f in flags), flags  # fmt: skip


BUFFERED = (
    IMPORTS
    + """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("w1", torch.randn(256, 3, 3, 3) * 0.1)
        self.register_buffer("w2", torch.randn(256, 256, 3, 3) * 0.01)
        self.w3 = torch.randn(10, 256) * 0.1  # a plain attribute: a constant of the graph
        self.scale = nn.Parameter(torch.ones(10))

    def forward(self, x):
        y = F.relu(F.conv2d(x, self.w1, padding=1))
        y = F.relu(F.conv2d(F.max_pool2d(y, 4), self.w2, padding=1))
        return F.linear(y.mean((2, 3)), self.w3) * self.scale
"""
)


def test_weights_kept_as_buffers_and_constants_are_counted_and_named():
    record = run_stages(BUFFERED)
    graph = Graph(record.graph)
    assert graph.parameter_count == 10
    assert graph.other_count == 256 * 27 + 256 * 256 * 9 + 2_560 == 599_296
    result = verified_result(record, spec(params_max=300_000))
    failed = {c.name: c.message for c in result.failed_checks}
    assert "599,306 parameters; the limit is 300,000" in failed["params_max"]
    assert result.other_tensors == 599_296 and result.total_params == 10
    assert any(f.startswith("tensors read as weights that are not parameters") and "w2" in f
               and "a buffer" in f and "a constant" in f for f in result.flags)  # fmt: skip


# --- layers by what they compute ------------------------------------------------------------------


MULTIPLY_SUM = (
    IMPORTS
    + """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(1024, 3072) * 0.01)
        self.w2 = nn.Parameter(torch.randn(10, 1024) * 0.01)

    def forward(self, x):
        h = F.relu((x.flatten(1)[:, None, :] * self.w1).sum(-1))
        return (h[:, None, :] * self.w2).sum(-1)
"""
)


def test_a_layer_written_as_a_multiply_and_a_sum_counts_its_flops_and_is_named():
    """3072 -> 1024 -> 10 as broadcast products: matmul/conv-only counting saw 0 FLOPs."""
    record = run_stages(MULTIPLY_SUM)
    graph = Graph(record.graph)
    assert record.flops >= 2 * (3072 * 1024 + 1024 * 10)
    result = verified_result(record, spec(max_flops=4_000_000, rules=["has_linear"]))
    failed = {c.name: c.message for c in result.failed_checks}
    assert "the limit is 4,000,000" in failed["max_flops"]
    assert "has_linear" not in failed  # the products are fully connected layers
    assert len(graph.layer_values(LayerKind.LINEAR)) == 2
    assert any(f.startswith("review: forward (mul") and "w1" in f for f in result.flags)


EINSUM_CONV = (
    IMPORTS
    + """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(16, 3, 9) * 0.1)
        self.bn = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        p = F.pad(x, (1, 1, 1, 1))
        patches = torch.stack([p[:, :, i:i + 32, j:j + 32] for i in range(3) for j in range(3)], 2)
        y = {conv}
        y = {after}
        return self.fc(F.relu(y).mean((2, 3)))
"""
)
EINSUM = "torch.einsum('nckhw,ock->nohw', patches, self.w)"
MATMUL = "(patches.flatten(1, 2).flatten(2).transpose(1, 2) @ self.w.flatten(1).t()).transpose(1, 2).unflatten(2, (32, 32))"  # noqa: E501


@pytest.mark.parametrize("conv", [EINSUM, MATMUL], ids=["einsum", "matmul"])
def test_a_convolution_written_as_shifted_slices_is_a_convolution(conv):
    without = graph_of(EINSUM_CONV.replace("{conv}", conv).replace("{after}", "y"))
    assert without.layer_values(LayerKind.CONV)
    passed, message = rule(without, "batchnorm_after_conv")
    assert not passed and "is followed by forward (relu" in message
    assert rule(without, "has_conv")[0]
    record = run_stages(EINSUM_CONV.replace("{conv}", conv).replace("{after}", "self.bn(y)"))
    graph = Graph(record.graph)
    assert rule(graph, "batchnorm_after_conv") == (
        True, "every one of 1 convolutions feeds a BatchNorm"
    )  # fmt: skip
    flags = verified_result(record, spec()).flags
    assert any(f.startswith("review: forward (") and "reads w " in f and "convolution" in f
               for f in flags), flags  # fmt: skip
    assert record.flops >= 2 * 16 * 27 * 32 * 32  # the contraction is counted


# --- skip connections -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("skip", "passed", "why"),
    [
        ("f + y", True, "1 skip connection(s)"),
        ("(f + y) - y", False, "cancelled before the logits"),
        ("torch.relu(f + y)", True, "1 skip connection(s)"),
        ("(f + y) - y + 0.001 * y", False, "cancelled before the logits"),
    ],
)
def test_a_skip_that_is_subtracted_again_is_not_a_skip(skip, passed, why):
    code = block(f"f = self.bn2(self.conv2(y))\n        y = {skip}")
    ok, message = rule(graph_of(code), "residual")
    assert ok is passed, message
    assert why in message


# --- public models inside -------------------------------------------------------------------------


def _shapes(build) -> tuple[tuple[int, ...], ...]:
    with torch.device("meta"):
        return tuple(tuple(p.shape) for p in build().parameters())


def test_a_public_model_is_found_inside_with_an_extra_parameter_transposed_or_permuted():
    from torchvision.models import resnet18

    resnet = _shapes(lambda: resnet18(num_classes=10))
    names = [m.name for m in public_models_inside(list(resnet) + [(1,)])]
    assert names[0] == "torchvision resnet18"
    transposed = [tuple(reversed(s)) for s in resnet]
    assert contains(transposed, Candidate("resnet18", resnet)).model_share == 1.0
    head = list(resnet) + [(2_000, 512), (10, 2_000)]  # its own head of 1M values
    match = contains(head, Candidate("resnet18", resnet))
    assert match is not None and not match.exact and match.describe().startswith("contains")
    # a network of one's own that shares a layer shape with LeNet does not contain LeNet
    own = [(6, 3, 5, 5), (6,), (64, 6, 3, 3), (64,), (128, 64, 3, 3), (128,), (10, 128), (10,)]
    assert not [m for m in public_models_inside(own) if "lenet" in m.name]


PJ2 = {"public_models": "refuse", "num_classes": 10}


def test_a_reference_model_with_one_more_parameter_is_not_your_own_design():
    code = _with(
        SIMPLENN_CODE, "self.scale = nn.Parameter(torch.ones(1))", "return self.fc3(x) * self.scale"
    )
    result = verified_result(run_stages(code), spec(**PJ2))
    failed = {c.name: c.message for c in result.failed_checks}
    assert failed["own_model"].startswith(
        "the architecture contains reference simplenn (100% of its weights)"
    )


FLAT_SIMPLENN = (
    IMPORTS
    + """
class Net(nn.Module):
    # SimpleNN's weights kept flat, the first fully connected one in two halves: no stored
    # tensor has the shape of a SimpleNN weight
    def __init__(self):
        super().__init__()
        self.w1, self.b1 = nn.Parameter(torch.randn(8 * 3 * 25) * 0.1), nn.Parameter(torch.zeros(8))
        self.w2 = nn.Parameter(torch.randn(16 * 8 * 9) * 0.1)
        self.b2 = nn.Parameter(torch.zeros(16))
        self.f1a = nn.Parameter(torch.randn(60 * 576) * 0.05)
        self.f1b = nn.Parameter(torch.randn(60 * 576) * 0.05)
        self.c1 = nn.Parameter(torch.zeros(120))
        self.f2, self.c2 = nn.Parameter(torch.randn(84 * 120) * 0.1), nn.Parameter(torch.zeros(84))
        self.f3, self.c3 = nn.Parameter(torch.randn(10 * 84) * 0.1), nn.Parameter(torch.zeros(10))

    def forward(self, x):
        x = F.max_pool2d(F.relu(F.conv2d(x, self.w1.view(8, 3, 5, 5), self.b1)), 2)
        x = F.max_pool2d(F.relu(F.conv2d(x, self.w2.view(16, 8, 3, 3), self.b2)), 2)
        fc1 = torch.cat([self.f1a, self.f1b]).view(120, 576)
        x = F.relu(F.linear(x.flatten(1), fc1, self.c1))
        x = F.relu(F.linear(x, self.f2.view(84, 120), self.c2))
        return F.linear(x, self.f3.view(10, 84), self.c3)
"""
)


def test_a_public_model_stored_flat_or_in_pieces_is_found_by_the_shapes_its_layers_read():
    result = verified_result(run_stages(FLAT_SIMPLENN), spec(**PJ2))
    failed = {c.name: c.message for c in result.failed_checks}
    assert failed["own_model"].startswith("the architecture is exactly reference simplenn")


@pytest.mark.slow
@pytest.mark.parametrize("wrapper", [False, True])
def test_torchvision_resnet18_with_a_learnable_scale_or_in_a_wrapper_is_refused(wrapper):
    code = IMPORTS + "from torchvision.models import resnet18\n" + (
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.body = resnet18(num_classes=10)\n"
        + ("        self.scale = nn.Parameter(torch.ones(1))\n" if not wrapper else "")
        + "    def forward(self, x):\n"
        + ("        return self.body(x) * self.scale\n" if not wrapper else
           "        return self.body(x)\n")
    )  # fmt: skip
    result = verified_result(run_stages(code), spec(**PJ2))
    failed = {c.name: c.message for c in result.failed_checks}
    assert "torchvision resnet18" in failed["own_model"]


# --- memory --------------------------------------------------------------------------------------


HUGE = (
    IMPORTS
    + """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 64, 3, padding=1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        y = F.interpolate(x, scale_factor=16.0)  # 512 x 512
        return self.fc(F.relu(self.conv(y)).mean((2, 3)))
"""
)


def test_a_graph_that_needs_more_memory_per_image_than_the_box_says_how_much():
    record = run_stages(HUGE, memory_limit_mb=300)
    assert record.status == "invalid"
    assert "GB per image" in record.message and "the limit is 0.3 GB" in record.message


def test_sanity_evaluates_a_full_batch_of_the_size_grading_uses():
    record = run_stages(SIMPLENN_CODE)
    assert record.status == "ok" and record.batch_size == 16
    assert record.graph.probe_batch == record.batch_size and record.memory_per_image > 0


# --- the lookup table of the test images and their public variants ------------------------------


MEMORISER = (
    IMPORTS
    + """
class Net(nn.Module):
    \"\"\"Looks the exact test images (and their public flips and shifts) up: a random projection
    of the image, compared with stored keys; nothing stored looks like an image.\"\"\"

    def __init__(self):
        super().__init__()
        self.register_buffer("R", torch.zeros(16, 3072))
        self.register_buffer("keys", torch.zeros({n}, 16))
        self.register_buffer("table", torch.zeros({n}, 10))

    def forward(self, x):
        q = x.flatten(1) @ self.R.t()
        d = ((q[:, None, :] - self.keys[None]) ** 2).sum(-1)
        best = d.argmin(1)
        found = (d.amin(1) < 1e-6).float()[:, None]
        return self.table[best] * found * 10
"""
)


def test_a_lookup_of_the_test_images_and_their_public_variants_is_flagged(data_dir, tmp_path):
    from grader.data import load_dataset
    from grader.metrics import make_variants, model_metrics

    test = load_dataset("cifar10", "test", data_dir)
    images, labels = test.images[:200], test.labels[:200]
    public = make_variants(images, seed=0, budget=None)  # every public variant of every image
    stored = np.concatenate([images, public["flip"], public["shift"]])
    keys_labels = np.concatenate([labels] * 3)
    generator = torch.Generator().manual_seed(7)
    projection = torch.randn(16, 3072, generator=generator)
    keys = (torch.from_numpy(stored).float().div(255).flatten(1)) @ projection.t()
    state = {"R": projection, "keys": keys, "table": torch.eye(10)[keys_labels]}
    code = MEMORISER.replace("{n}", str(len(stored)))
    record = run_stages(code, images=images, out=tmp_path, robustness=True, seed=12345,
                        state=state)  # fmt: skip
    assert record.status == "ok", record.message
    logits = np.load(tmp_path / "logits.npy")
    variants = {n: np.load(tmp_path / f"logits_{n}.npy") for n in record.variants}
    metrics = model_metrics(labels, logits, variants, seed=12345)
    assert metrics.accuracy == 1.0 and metrics.flip_accuracy == 1.0  # it stored those
    assert metrics.secret_accuracy < 0.3  # but never saw the secret ones
    assert metrics.likely_memoriser and "secret seed" in metrics.memoriser_reason
    result = verified_result(record, spec(reference="simplenn", max_capacity_ratio=0.5))
    assert any(f.startswith("capacity: the graph reads") for f in result.flags), result.flags
    assert any("a weight looked up by values of the image" in f for f in result.flags)


# --- a 50,000-operation graph ---------------------------------------------------------------------


def test_host_analysis_of_a_50000_operation_graph_is_linear():
    """A legal graph at the loader's limit: 100 weights each transformed by a chain of 200
    operations, then 30,000 operations on the data with additions of earlier values. The old
    analysis walked every value's ancestors (quadratic: ~15 minutes here)."""
    from grader.models.records import GraphSummary, InputInfo, NodeInfo

    inputs = [InputInfo("image", "image", "float32", [3, 8, 8], 192)]
    inputs += [InputInfo(f"w{i}", "parameter", "float32", [3, 1, 1], 3) for i in range(100)]
    nodes: list[NodeInfo] = []
    offset = len(inputs)

    def add(op, reads, shape, spread=1.0):
        nodes.append(NodeInfo(op=op, inputs=reads, shape=shape, varies=spread > 0, spread=spread))
        return offset + len(nodes) - 1

    frontier = []
    for w in range(1, 101):
        value = w
        for _ in range(200):
            value = add("aten.mul.Scalar", [value], [3, 1, 1], 0.0)
        frontier.append(value)
    previous = [0, 0]
    for k in range(15_000):
        scaled = add("aten.mul.Tensor", [previous[-1], frontier[k % 100]], [4, 3, 8, 8])
        previous.append(add("aten.add.Tensor", [scaled, previous[-2]], [4, 3, 8, 8]))
    summary = GraphSummary(inputs, nodes, previous[-1], 4)
    assert len(nodes) == 50_000
    graph = Graph(summary)
    assert graph.parameter_count == 300 and graph.unused == []
    assert len(graph.layer_values(LayerKind.AFFINE)) == 15_000
    found = check_rules(("residual", "batchnorm_after_conv", "has_activation", "swish_activation"),
                        graph, NONE)  # fmt: skip
    assert [c.passed for c in found] == [False, False, False, False]
    assert sum(layer.flops for layer in graph.layers()) == 0
    assert math.isfinite(graph.capacity)


@pytest.mark.slow
def test_stage_two_evaluates_a_long_graph(tmp_path):
    """The same size through the evaluation itself: 50,000 operations, a chain of scalings and
    additions of the image in front of a linear layer."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 10)).eval()
    tensors = write_artifact(export_model(model, (3, 2, 2)), tmp_path, graph_file=GRAPH_FILE)
    write_tensors(tensors, tmp_path)
    graph = json.loads((tmp_path / GRAPH_FILE).read_text())
    start = len(graph["inputs"])
    chain, previous = [], 0
    for k in range(50_000 - len(graph["nodes"])):
        if k % 2:
            chain.append({"op": "aten.add.Tensor", "args": [{"ref": previous}, {"ref": 0}]})
        else:
            chain.append({"op": "aten.mul.Scalar", "args": [{"ref": previous}, 0.5]})
        previous = start + k

    def moved(value):
        if isinstance(value, list):
            return [moved(v) for v in value]
        if isinstance(value, dict) and set(value) == {"ref"}:
            ref = value["ref"]
            return {"ref": previous if ref == 0 else ref + len(chain) if ref >= start else ref}
        return value

    rest = [{**n, "args": moved(n["args"]), "kwargs": moved(n["kwargs"])} for n in graph["nodes"]]
    graph["nodes"] = chain + rest
    graph["outputs"] = [{**o, "ref": o["ref"] + len(chain)} for o in graph["outputs"]]
    (tmp_path / GRAPH_FILE).write_text(json.dumps(graph))
    out = tmp_path / "out"
    out.mkdir()
    record = evaluate(JobContext(tmp_path, out, {}, None), EvaluateArgs())
    assert record.status == "ok", record.message
    assert len(record.graph.nodes) == 50_000
    assert Graph(record.graph).parameter_count == 130
