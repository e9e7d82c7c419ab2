"""The built-in specs of the seed assignments and their bundled examples.

Parameter counts are derived by hand from each example's layers and checked against the model
itself and against what ``grader sanity`` reports from the sandbox.
"""

from __future__ import annotations

import importlib.util
import os
import typing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from grader.assignment import (
    SpecError,
    StructureRule,
    builtin_names,
    load_assignment,
    parse_assignment,
)
from grader.grading.text import render_text
from grader.models.sanity import sanity_check
from grader.sandbox.jail import bubblewrap_available

REPO = Path(__file__).resolve().parents[2]
SUBMISSIONS = REPO / "submissions"


def conv(k: int, cin: int, cout: int, bias: bool = True) -> int:
    return k * k * cin * cout + (cout if bias else 0)


def fc(fan_in: int, fan_out: int) -> int:
    return fan_in * fan_out + fan_out


def bn(channels: int) -> int:
    return 2 * channels  # weight and bias; the running statistics are buffers


SIMPLENN = conv(5, 3, 8) + conv(3, 8, 16) + fc(16 * 6 * 6, 120) + fc(120, 84) + fc(84, 10)
SIMPLENN_BN = SIMPLENN - 8 - 16 + bn(8) + bn(16)  # conv biases dropped before BatchNorm
LENET5 = conv(5, 1, 6) + conv(5, 6, 16) + fc(16 * 5 * 5, 120) + fc(120, 84) + fc(84, 10)
LENET5_WIDE = conv(5, 1, 6) + conv(5, 6, 32) + fc(32 * 5 * 5, 120) + fc(120, 84) + fc(84, 10)
IVY = (
    conv(3, 3, 32, False) + bn(32)  # stem
    + 2 * (conv(3, 32, 32, False) + bn(32))  # residual block
    + conv(3, 32, 64, False) + bn(64)
    + fc(64, 10)
)  # fmt: skip
JACK = conv(5, 3, 16) + conv(5, 16, 32) + fc(32 * 5 * 5, 64) + fc(64, 10)
ALEXNET_EIGHTH = fc(32 * 4 * 4, 128) + fc(128, 64) + fc(64, 10)
LENA = ALEXNET_EIGHTH + sum(
    conv(3, a, b, False) + bn(b) for a, b in ((3, 8), (8, 24), (24, 48), (48, 32), (32, 32))
)
MO = ALEXNET_EIGHTH + sum(conv(3, a, b) for a, b in ((3, 8), (8, 24), (24, 48), (48, 32), (32, 32)))
TP4 = conv(3, 3, 16) + conv(3, 16, 32) + fc(32 * 8 * 8, 64) + fc(64, 10)
TP4_BN = TP4 - 16 - 32 + bn(16) + bn(32)
VGG16_CONVS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
               (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]  # fmt: skip
VGG16 = sum(conv(3, a, b) for a, b in VGG16_CONVS) + 2 * fc(512, 512) + fc(512, 10)
VGG16_BN = VGG16 + sum(bn(b) for _a, b in VGG16_CONVS)

# assignment -> student -> (entry, parameters by hand, weights file or None)
EXAMPLES: dict[str, dict[str, tuple[str, int, str | None]]] = {
    "simplenn-dev": {
        "gwen": ("Net", SIMPLENN_BN, "model.pt"),
        "hugo": ("Net", SIMPLENN, "model.pt"),
    },
    "pj2-cifar10": {
        "ivy": ("Net", IVY, "model.pt"),
        "jack": ("Net", JACK, "model.pt"),
        "kim": ("Net", SIMPLENN, "model.pt"),
    },
    "alexnet-cifar10": {"lena": ("Net", LENA, "model.pt"), "mo": ("Net", MO, "model.pt")},
    "tp4-cifar10": {
        "nora": ("MyConvolutionalNetwork", TP4_BN, "model.pt"),
        "omar": ("MyConvolutionalNetwork", TP4, "model.pt"),
    },
    "vgg16-cifar10": {"pax": ("VGG16", VGG16, None), "quin": ("VGG16", VGG16_BN, None)},
    "lenet-mnist": {"ruth": ("Net", LENET5, "model.pt"), "sol": ("Net", LENET5_WIDE, "model.pt")},
    "dessilbi-lenet": {
        "tess": ("Net", LENET5, "model.safetensors"),
        "uma": ("Net", LENET5, "model.pt"),
    },
}
CASES = [(a, s) for a, students in EXAMPLES.items() for s in students]


def test_hand_counts_match_the_handouts():
    assert SIMPLENN == 82_030 and SIMPLENN_BN == 82_054
    assert LENET5 == 61_706  # LeCun et al. 1998 with 28x28 inputs and padding 2
    assert TP4 == 136_874
    assert VGG16 == 15_245_130 and VGG16 - (2 * fc(512, 512) + fc(512, 10)) == 14_714_688


def build(assignment: str, student: str) -> torch.nn.Module:
    path = SUBMISSIONS / assignment / student / "model.py"
    spec = importlib.util.spec_from_file_location(f"example_{assignment}_{student}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, EXAMPLES[assignment][student][0])()


@pytest.mark.parametrize(("assignment", "student"), CASES)
def test_example_parameter_counts_and_output_shape(assignment, student):
    entry, expected, weights = EXAMPLES[assignment][student]
    spec = load_assignment(assignment)
    assert spec.model.entry == entry
    model = build(assignment, student)
    assert sum(p.numel() for p in model.parameters()) == expected
    if weights is None:
        assert not any((SUBMISSIONS / assignment / student).glob("model.*t*"))
    else:
        path = SUBMISSIONS / assignment / student / weights
        assert path.stat().st_size < 700_000  # tiny weights only
        state = (
            load_file(path)
            if path.suffix == ".safetensors"
            else torch.load(path, weights_only=True)
        )
        model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(2, *spec.model.input_shape)).shape == (2, 10)


@pytest.fixture(scope="module")
def sanity_reports():
    """``grader sanity`` of every example with its assignment, in the sandbox, in parallel."""
    if not bubblewrap_available():
        if os.environ.get("CI"):
            pytest.fail("bubblewrap is missing: apt-get install bubblewrap (scripts/setup.sh)")
        pytest.skip("bubblewrap not installed (apt-get install bubblewrap)")

    def one(assignment: str, student: str):
        _entry, _count, weights = EXAMPLES[assignment][student]
        folder = SUBMISSIONS / assignment / student
        return sanity_check(
            folder / "model.py",
            weights=folder / weights if weights else None,
            assignment=load_assignment(assignment),
        )

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {case: pool.submit(one, *case) for case in CASES}
        return {case: future.result() for case, future in futures.items()}


@pytest.mark.parametrize(("assignment", "student"), CASES)
def test_sanity_reports_the_hand_counted_parameters(sanity_reports, assignment, student):
    grade = sanity_reports[(assignment, student)]
    assert grade.sandboxed and grade.total_params == EXAMPLES[assignment][student][1]
    assert grade.output_shape[1:] == [10]


def test_sanity_names_the_wrong_layer_of_the_wide_lenet(sanity_reports):
    grade = sanity_reports[("lenet-mnist", "sol")]
    (check,) = [c for c in grade.checks if c.name == "params_exact"]
    assert not check.passed
    assert f"{LENET5_WIDE:,} parameters; the assignment requires exactly 61,706" in check.message
    assert "Your layer conv2 (Conv2d) outputs 32x10x10" in check.message


def test_the_copied_public_model_is_recognised(sanity_reports):
    assert sanity_reports[("pj2-cifar10", "kim")].fingerprint_match == "reference simplenn"
    assert sanity_reports[("pj2-cifar10", "ivy")].fingerprint_match is None
    assert load_assignment("pj2-cifar10").model.public_models == "refuse"


def weight_density(path: Path) -> float:
    state = (
        load_file(path) if path.suffix == ".safetensors" else torch.load(path, weights_only=True)
    )
    weights = [t for name, t in state.items() if name.endswith("weight") and t.ndim > 1]
    return sum(int((w != 0).sum()) for w in weights) / sum(w.numel() for w in weights)


def test_dessilbi_examples_are_sparse_and_dense_and_earn_their_points():
    spec = load_assignment("dessilbi-lenet").model
    sparse = weight_density(SUBMISSIONS / "dessilbi-lenet" / "tess" / "model.safetensors")
    dense = weight_density(SUBMISSIONS / "dessilbi-lenet" / "uma" / "model.pt")
    assert 0 < sparse <= 0.1 and dense == 1.0
    assert spec.points_for_density(sparse) == 3 and spec.points_for_density(dense) == 0
    assert spec.points_for_density(0.15) == 2 and spec.points_for_density(0.5) == 1


def test_rubrics_mirror_the_handouts():
    pj2 = load_assignment("pj2-cifar10")
    required = {"has_linear", "has_conv", "has_pooling", "has_activation"}
    optional = {"has_batchnorm", "has_dropout", "residual"}
    points = {item.rule: item.points for item in pj2.model.checklist}
    assert set(points) == required | optional
    assert sum(points[r] for r in required) == 20 and sum(points[r] for r in optional) == 10
    assert pj2.rubric_points == 70 and pj2.max_points == 100
    assert pj2.points_for(0.79) == 50 and pj2.points_for(0.91) == 70  # graded by test error
    tp4 = load_assignment("tp4-cifar10").model
    assert {"has_dropout", "has_pooling", "has_batchnorm"} <= set(tp4.rules)
    dev = load_assignment("simplenn-dev")
    assert dev.points_for(0.70) == 8 and dev.points_for(0.69) == 6 and dev.max_points == 10
    assert "batchnorm_after_conv" in dev.model.rules
    assert [i.rule for i in dev.model.checklist] == ["swish_activation"]
    alexnet = load_assignment("alexnet-cifar10").model
    assert alexnet.max_flops == 2_000_000_000 and "has_conv" in alexnet.rules
    assert load_assignment("lenet-mnist").model.input_shape == (1, 28, 28)


def test_every_rule_a_spec_names_is_a_known_structure_rule():
    known = set(typing.get_args(StructureRule))
    used = set()
    for name in builtin_names():
        model = load_assignment(name).model
        if model is not None:
            used |= set(model.rules) | {item.rule for item in model.checklist}
    assert used <= known
    assert {"has_dropout", "has_pooling", "has_activation", "swish_activation",
            "has_batchnorm"} <= used  # fmt: skip


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"checklist": [{"rule": "dropout", "points": 1}]}, "'dropout' is not allowed"),
        (
            {"rules": ["residual"], "checklist": [{"rule": "residual", "points": 2}]},
            "both a required rule and a checklist item",
        ),
        ({"checklist": [{"rule": "residual", "points": -1}]}, "must not be negative"),
        ({"sparsity": [{"max_density": 1.5, "points": 1}]}, "max_density must be in"),
        ({"public_models": "allow"}, "'allow' is not allowed; use one of 'flag', 'refuse'"),
    ],
)
def test_bad_model_tables_name_the_key(model, message):
    with pytest.raises(SpecError, match=message):
        parse_assignment({"name": "x", "dataset": "cifar10", "model": model})


def grade_examples(assignment: str, data_dir: Path, out: Path) -> dict[str, dict[str, str]]:
    import pandas as pd
    from click.testing import CliRunner

    from grader.cli import main

    args = ["check", str(SUBMISSIONS / assignment), "--assignment", assignment]
    args += ["--data-dir", str(data_dir), "--out", str(out), "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    grades = pd.read_csv(out / "grades.csv", dtype=str, keep_default_na=False)
    return {row["student"]: row for _, row in grades.iterrows()}


def test_check_grades_the_lenet_examples_with_rubric_points(data_dir, tmp_path):
    if not bubblewrap_available():
        pytest.skip("bubblewrap not installed (apt-get install bubblewrap)")
    spec = load_assignment("lenet-mnist")
    grades = grade_examples("lenet-mnist", data_dir, tmp_path)
    ruth, sol = grades["ruth"], grades["sol"]
    assert ruth["status"] == "ok"
    assert float(ruth["points"]) == spec.points_for(float(ruth["private_accuracy"])) == 6
    assert sol["status"] == "invalid" and "112,122 parameters" in sol["flags"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ("dessilbi-lenet", {"tess": ("ok", ""), "uma": ("ok", "")}),
        (
            "simplenn-dev",
            {
                "gwen": ("ok", ""),
                "hugo": ("invalid", "conv1 (Conv2d, model.py:18) is followed by forward (relu"),
            },
        ),
        (
            "pj2-cifar10",
            {
                "ivy": ("ok", ""),
                "jack": ("ok", ""),
                "kim": ("invalid", "own_model: the architecture is exactly reference simplenn"),
            },
        ),
        ("alexnet-cifar10", {"lena": ("ok", ""), "mo": ("ok", "")}),
        (
            "tp4-cifar10",
            {"nora": ("ok", ""), "omar": ("invalid", "has_batchnorm: the model has no normal")},
        ),
        (
            "vgg16-cifar10",  # model.py only: grader sanity checks them, grader check cannot
            {"pax": ("invalid", "nothing gradable"), "quin": ("invalid", "nothing gradable")},
        ),
    ],
)
def test_check_grades_every_example_folder(assignment, expected, data_dir, tmp_path):
    """Every example gets a row with its accuracy points; a failed required rule of the captured
    graph (a missing BatchNorm) makes it invalid, with the student's layer named."""
    spec = load_assignment(assignment)
    grades = grade_examples(assignment, data_dir, tmp_path)
    assert {student: row["status"] for student, row in grades.items()} == {
        student: status for student, (status, _message) in expected.items()
    }
    for student, row in grades.items():
        assert expected[student][1] in row["message"] + row["flags"]
        if row["private_accuracy"]:  # accuracy points, plus what the checklist and sparsity give
            assert float(row["points"]) >= spec.points_for(float(row["private_accuracy"]))
            assert float(row["points"]) <= spec.max_points


def test_checklist_and_sparsity_points_come_from_the_captured_graph(sanity_reports):
    def points(case):
        return {c.name: c.points for c in sanity_reports[case].checks if c.points is not None}

    ivy = points(("pj2-cifar10", "ivy"))
    assert set(ivy) == {f"checklist: {item.label or item.rule}"
                        for item in load_assignment("pj2-cifar10").model.checklist}  # fmt: skip
    ivy_grade = sanity_reports[("pj2-cifar10", "ivy")]
    assert ivy_grade.earned == sum(ivy.values()) > 0  # no accuracy yet: the checklist's points
    assert "points:" in render_text(ivy_grade) and "so far" in render_text(ivy_grade)
    tess, uma = (
        sanity_reports[("dessilbi-lenet", "tess")],
        sanity_reports[("dessilbi-lenet", "uma")],
    )
    assert tess.weight_density < 0.05 and points(("dessilbi-lenet", "tess")) == {"sparsity": 3}
    assert uma.weight_density > 0.5 and points(("dessilbi-lenet", "uma")) == {"sparsity": 0}
    kim = sanity_reports[("pj2-cifar10", "kim")]
    assert [c.name for c in kim.failed_checks] == ["own_model"]


def test_required_rules_hold_on_the_captured_graph_of_each_example(sanity_reports):
    def failed(case):
        return {c.name: c.message for c in sanity_reports[case].failed_checks}

    assert failed(("tp4-cifar10", "nora")) == {}
    omar = failed(("tp4-cifar10", "omar"))
    assert set(omar) == {"has_batchnorm"}
    assert "no normalisation layer" in omar["has_batchnorm"]
    assert set(failed(("simplenn-dev", "hugo"))) == {"batchnorm_after_conv"}
    assert failed(("simplenn-dev", "gwen")) == {}
    for case in [("alexnet-cifar10", "lena"), ("alexnet-cifar10", "mo"), ("lenet-mnist", "ruth")]:
        assert failed(case) == {}, case
    passed = {c.name for c in sanity_reports[("alexnet-cifar10", "mo")].checks if c.passed}
    assert {"has_conv", "has_pooling", "has_linear", "has_activation", "max_flops"} <= passed
