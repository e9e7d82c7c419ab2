"""Structure rules, counts, FLOPs and fingerprints on the verified graph (stages run in-process).

Each hostile model here is written as a student would write it to fool a rule that reads
module declarations or forward hooks; the data-flow rules must see through it.
"""

from __future__ import annotations

import pytest
from model_helpers import SIMPLENN_CODE, SUBMISSIONS, block, graph_of

from grader.assignment import StructureRule
from grader.models.fingerprint import TORCHVISION_PARAMS, match_public_model
from grader.models.registry import reference_layers
from grader.models.rules import (
    RULES,
    RuleContext,
    check_rules,
    layer_difference,
    parameter_checks,
)

NONE = RuleContext()


def rules(graph, *names: str) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.passed, c.message) for c in check_rules(names, graph, NONE)}


RESNET = """
from reference.models import get_model

def build_model():
    return get_model("resnet20")
"""


def test_every_rule_name_a_spec_may_use_is_implemented():
    import typing

    assert set(typing.get_args(StructureRule)) == set(RULES)


def test_resnet20_has_skips_and_batch_norm_after_every_conv():
    graph = graph_of(RESNET)
    found = rules(graph, "residual", "batchnorm_after_conv", "has_pooling")
    assert found["residual"][0], found["residual"]
    assert found["batchnorm_after_conv"] == (True, "every one of 19 convolutions feeds a BatchNorm")
    assert graph.parameter_count == 269_722
    assert graph.buffer_count == 2 * (16 * 7 + 32 * 6 + 64 * 6)  # BN running mean + var


def test_a_real_residual_block_counts():
    graph = graph_of(block("y = y + self.bn2(self.conv2(y))"))
    assert rules(graph, "residual")["residual"][0]


@pytest.mark.parametrize(
    ("skip", "why"),
    [
        ("y = y + torch.zeros_like(y)", "carries no data"),
        ("y = y + 0 * y", "carries no data"),
        ("y = y + 1e-9 * y", "carries no data"),
        ("y = y + 0.5 * y", "same path"),
        ("y = y + y", ""),
        ("z = self.bn2(self.conv2(y)) * 0\n        y = y + z", "carries no data"),
    ],
)
def test_fake_skip_connections_do_not_count(skip, why):
    passed, message = rules(graph_of(block(skip)), "residual")["residual"]
    assert not passed, message
    assert message.startswith("no skip connection")
    assert why in message


def test_a_batch_norm_whose_output_is_thrown_away_does_not_count():
    code = block("").replace(
        "y = torch.relu(self.bn(self.conv(x)))",
        "c = self.conv(x)\n        _ = self.bn(c)\n        y = torch.relu(c)",
    )
    passed, message = rules(graph_of(code), "batchnorm_after_conv")["batchnorm_after_conv"]
    assert not passed
    assert "conv (Conv2d, model.py:" in message and "is followed by forward (relu" in message


def test_batch_norm_rules_name_the_layers():
    found = rules(graph_of(SIMPLENN_CODE), "batchnorm_after_conv", "no_batchnorm", "has_batchnorm")
    passed, message = found["batchnorm_after_conv"]
    assert not passed and "conv1 (Conv2d" in message and "conv2 (Conv2d" in message
    assert found["no_batchnorm"][0] and not found["has_batchnorm"][0]
    norm = rules(graph_of(block("")), "no_batchnorm")["no_batchnorm"]
    assert norm == (False, norm[1]) and "bn (BatchNorm2d" in norm[1]


def test_presence_rules_need_live_layers_on_the_data_path():
    dropout = block("y = nn.functional.dropout(y, 0.5, self.training)")
    found = rules(graph_of(dropout), "has_dropout", "has_pooling", "has_activation", "has_linear")
    assert all(passed for passed, _ in found.values()), found
    zero_rate = block("y = nn.functional.dropout(y, 0.0, self.training)")
    assert not rules(graph_of(zero_rate), "has_dropout")["has_dropout"][0]
    unused = block("_ = nn.functional.max_pool2d(y, 2)").replace(
        "adaptive_avg_pool2d(y, 1)", "adaptive_avg_pool2d(y, 1)"
    )
    graph = graph_of(unused.replace("nn.functional.adaptive_avg_pool2d(y, 1)", "y.mean((2, 3))"))
    assert not rules(graph, "has_pooling")["has_pooling"][0]  # the only pooling is thrown away


def test_an_unread_padding_parameter_is_not_counted_and_is_named():
    padded = SIMPLENN_CODE.replace(
        "self.fc3 = nn.Linear(84, 10)",
        "self.fc3 = nn.Linear(84, 10)\n        self.pad = nn.Parameter(torch.zeros(1234))",
    ).replace("import torch.nn.functional as F", "import torch\nimport torch.nn.functional as F")
    graph = graph_of(padded)
    assert graph.parameter_count == 82_030
    assert [u.name for u in graph.unused] == ["pad"]
    (check,) = parameter_checks(graph, exact=83_264, most=None, context=NONE)
    assert not check.passed
    assert "1,234 values no operation reads, or that change no logit, are not counted: pad" in (
        check.message
    )


def test_a_parameter_multiplied_by_zero_has_no_effect_and_is_not_counted():
    padded = SIMPLENN_CODE.replace(
        "self.fc3 = nn.Linear(84, 10)",
        "self.fc3 = nn.Linear(84, 10)\n        self.pad = nn.Parameter(torch.ones(1234))",
    ).replace("return self.fc3(x)", "return self.fc3(x) + 0 * self.pad.sum()")
    padded = padded.replace(
        "import torch.nn.functional", "import torch\nimport torch.nn.functional"
    )
    graph = graph_of(padded)
    assert graph.parameter_count == 82_030
    assert [u.name for u in graph.unused] == ["pad"]


def test_simplenn_flops_and_layers_by_hand():
    graph = graph_of(SIMPLENN_CODE)
    flops = sum(node.flops for node in graph.nodes)
    macs = 2 * (28 * 28 * 8 * 75 + 12 * 12 * 16 * 72 + 576 * 120 + 120 * 84 + 840)
    biases = 28 * 28 * 8 + 12 * 12 * 16 + 120 + 84 + 10  # one addition per output
    relus = 28 * 28 * 8 + 12 * 12 * 16 + 120 + 84  # one comparison per element
    pools = 14 * 14 * 8 * 4 + 6 * 6 * 16 * 4  # a 2x2 window per output
    assert flops == macs + biases + relus + pools == 1_458_802
    layers = {layer.name: layer for layer in graph.layers()}
    assert layers["conv1"].params == 608 and layers["conv2"].output_shape == [16, 12, 12]
    assert layers["fc1"].params == 576 * 120 + 120


def test_the_first_layer_whose_shape_differs_is_named():
    wrong = SIMPLENN_CODE.replace("nn.Conv2d(8, 16, 3)", "nn.Conv2d(8, 16, 5)")
    graph = graph_of(wrong.replace("16 * 6 * 6", "16 * 5 * 5"))
    hint = layer_difference(graph.layers(), reference_layers("simplenn", (3, 32, 32)))
    assert hint == (
        "Your layer conv2 (Conv2d) outputs 16x10x10, the reference's features.4 (Conv2d) outputs "
        "16x12x12: check its channels, kernel size, stride and padding"
    )


def test_public_models_are_recognised_whatever_their_attribute_names():
    assert match_public_model(graph_of(SIMPLENN_CODE).parameter_shapes()) == "reference simplenn"
    renamed = SIMPLENN_CODE.replace("conv1", "first").replace("fc1", "dense")
    assert match_public_model(graph_of(renamed).parameter_shapes()) == "reference simplenn"
    tv = (
        "from torchvision.models import resnet18\n\ndef build_model():\n"
        "    return resnet18(num_classes=10)\n"
    )
    assert match_public_model(graph_of(tv).parameter_shapes()) == "torchvision resnet18"


def test_torchvision_parameter_table_is_current():
    import torch
    import torchvision.models as tvm

    from grader.models.fingerprint import EXTRA_KWARGS

    for name, count in TORCHVISION_PARAMS.items():
        with torch.device("meta"):
            model = getattr(tvm, name)(weights=None, num_classes=10, **EXTRA_KWARGS.get(name, {}))
        assert sum(p.numel() for p in model.parameters()) == count, name


SWISH = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        y = self.conv(x)
        y = {activation}
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))
"""


@pytest.mark.parametrize(
    ("activation", "passed"),
    [
        ("y * torch.sigmoid(y)", True),  # written out, as ECE 661's lab asks
        ("torch.sigmoid(y) * y", True),
        ("nn.functional.silu(y)", True),
        ("y * torch.sigmoid(2 * y)", False),  # not x * sigmoid(x)
        ("torch.relu(y)", False),
        ("y + 0 * (y * torch.sigmoid(y))", False),  # a Swish whose result is thrown away
    ],
)
def test_swish_is_a_value_times_its_own_sigmoid_on_the_data_path(activation, passed):
    graph = graph_of(SWISH.replace("{activation}", activation))
    ok, message = rules(graph, "swish_activation")["swish_activation"]
    assert ok is passed, message
    if passed:
        assert message.startswith("Swish (x * sigmoid(x)):")
    else:
        assert "computes no Swish" in message


def test_swish_rule_on_the_simplenn_dev_examples():
    gwen = (SUBMISSIONS / "simplenn-dev" / "gwen" / "model.py").read_text()
    hugo = (SUBMISSIONS / "simplenn-dev" / "hugo" / "model.py").read_text()
    ok, message = rules(graph_of(gwen), "swish_activation")["swish_activation"]
    assert ok and "model.py:" in message  # names the student's line
    ok, message = rules(graph_of(hugo), "swish_activation")["swish_activation"]
    assert not ok and "its activations are" in message and "relu" in message.lower()
