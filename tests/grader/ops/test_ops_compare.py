"""The host-side comparisons of ops.py grading, on arrays made here (no sandbox)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from grader.assignment import SpecError, load_assignment, parse_assignment
from grader.ops.grade import (
    BoxOutput,
    backward_problem,
    box_inputs,
    compare_case,
    grade_ops_folder,
    grade_rows,
    prepare_cases,
)
from grader.ops.references import REFERENCES, get_reference

SPEC = load_assignment("ece661-swish").ops


def honest_arrays(key: str, reference, cases) -> dict[str, np.ndarray]:
    """What a correct op would return: the reference itself, evaluated here."""
    import torch

    arrays = {}
    inputs = box_inputs(key, reference, cases)
    for j, case in enumerate(cases):
        prefix = f"{key}_c{j}"
        arrays[f"{prefix}_out"] = case.out
        for name, grad in case.grads.items():
            arrays[f"{prefix}_grad_{name}"] = grad
        for point in ("plus", "minus"):
            moved = [
                torch.from_numpy(
                    inputs.get(f"{prefix}_{point}_{s.name}", inputs[f"{prefix}_{s.name}"])
                )
                for s in reference.inputs
            ]
            arrays[f"{prefix}_{point}_out"] = reference.function(*moved).numpy()
    return arrays


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_every_reference_passes_its_own_check(name):
    reference = get_reference(name)
    cases = prepare_cases(reference, np.random.default_rng(0))
    assert len({tuple(a.shape for a in case.inputs) for case in cases}) == 3  # three shapes
    arrays = honest_arrays("op0", reference, cases)
    for j, case in enumerate(cases):
        errors, problems = compare_case("op0", j, reference, case, arrays, SPEC)
        assert problems == [], problems
        assert errors["forward"] == 0 and errors["backward"] == 0
        assert errors["gradcheck"] < 1e-5


def test_a_scaled_gradient_fails_backward_and_gradcheck():
    reference = get_reference("swish")
    cases = prepare_cases(reference, np.random.default_rng(1))
    arrays = honest_arrays("op0", reference, cases)
    arrays["op0_c1_grad_x"] = arrays["op0_c1_grad_x"] * 1.01
    errors, problems = compare_case("op0", 1, reference, cases[1], arrays, SPEC)
    assert errors["backward"] == pytest.approx(0.01 * np.abs(cases[1].grads["x"]).max())
    assert problems[0].startswith("backward for x differs from swish's by up to")
    assert problems[1].startswith("backward disagrees with finite differences")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("op0_c0_out"), "no forward output"),
        (lambda a: a.update(op0_c0_out=np.zeros((2, 2))), "has shape (2, 2)"),
        (lambda a: a.update(op0_c0_out=np.full(7, np.nan)), "holds NaN or Inf"),
        (lambda a: a.update(op0_c0_out=np.array(["x"] * 7)), "not an array of numbers"),
        (lambda a: a.pop("op0_c0_grad_x"), "no gradient for x"),
        (lambda a: a.pop("op0_c0_plus_out"), "no output at x + h v"),
    ],
)
def test_missing_or_malformed_arrays_fail_with_a_reason(change, message):
    reference = get_reference("swish")
    cases = prepare_cases(reference, np.random.default_rng(2))
    arrays = honest_arrays("op0", reference, cases)
    change(arrays)
    _errors, problems = compare_case("op0", 0, reference, cases[0], arrays, SPEC)
    assert any(message in p for p in problems), problems


def test_rows_give_points_only_for_ops_that_pass():
    reference = get_reference("swish")
    check = SPEC.op[0]
    cases = prepare_cases(reference, np.random.default_rng(3))
    arrays = honest_arrays("op0", reference, cases)
    source = "import torch\nclass Swish(torch.autograd.Function):\n    def backward(ctx, g): ...\n"
    prepared = {"op0": (check, reference, cases)}
    (row,) = grade_rows(SPEC, prepared, BoxOutput("ok", "", {}, arrays), source)
    assert row.passed and row.earned == 2 and row.message == "matches swish on 3 cases"
    # the box claims an error: the row fails and says what the code raised
    told = BoxOutput("ok", "", {"op0": "ValueError: boom (ops.py line 3)"}, arrays)
    (row,) = grade_rows(SPEC, prepared, told, source)
    assert not row.passed and "your code raised ValueError: boom" in row.message


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("class Swish(F):\n    def forward(c, x): ...\n    def backward(c, g): ...\n", None),
        (
            "class F(Function):\n    def backward(c, g): ...\n"
            "class Swish(Module):\n    def forward(self, x):\n        return F.apply(x)\n",
            None,
        ),
        ("def Swish(x):\n    return x\n", "Swish has no hand-written backward"),
        ("class Other(F):\n    def backward(c, g): ...\n", "defines no class or function Swish"),
        ("def Swish(x:\n", "line 1: syntax error"),
        ("x = " + "(" * 500 + ")" * 500, "too many nested parentheses"),
        ("x = " + "-" * 200_000 + "1", "cannot be parsed"),
    ],
)
def test_hand_written_backward_is_read_from_the_source(source, problem):
    found = backward_problem(source, "Swish")
    assert (found is None) if problem is None else (problem in found)


def test_in_process_check_gives_the_same_rows(tmp_path):
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "ops.py").write_text(
        "import torch\n\nclass Swish(torch.autograd.Function):\n"
        "    @staticmethod\n    def forward(ctx, x):\n        ctx.save_for_backward(x)\n"
        "        return x * torch.sigmoid(x)\n\n    @staticmethod\n    def backward(ctx, g):\n"
        "        (x,) = ctx.saved_tensors\n        s = torch.sigmoid(x)\n"
        "        return g * (s + x * s * (1 - s))\n"
    )
    grade = grade_ops_folder(folder, load_assignment("ece661-swish"), sandbox=False)
    assert torch.get_default_dtype() == torch.float32  # the check leaves this process as it was
    assert grade.status == "ok" and not grade.sandboxed
    (row,) = grade.rows
    assert row.passed and row.backward_error < 1e-12


def test_no_ops_file_is_invalid(tmp_path):
    grade = grade_ops_folder(tmp_path, load_assignment("ece661-swish"), sandbox=False)
    assert grade.status == "invalid" and "no ops.py" in grade.message and grade.points == 0


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        ("[[ops.op]]\nname = 'Swish'\nreference = 'gelu'\n", "'gelu' is not allowed"),
        ("[[ops.op]]\nname = 'my op'\nreference = 'swish'\n", "is not a Python name"),
        ("[[ops.op]]\nname = 'A'\nreference = 'swish'\n" * 2, "appears twice"),
        ("file = 'ops.py'\n", "names no op"),
    ],
)
def test_bad_ops_specs_name_the_key(ops, message):
    import tomllib

    raw = tomllib.loads(f"name = 'x'\n[ops]\n{ops}")
    with pytest.raises(SpecError, match=message):
        parse_assignment(raw)


def test_specs_without_ops_still_need_a_dataset():
    with pytest.raises(SpecError, match="missing required key 'dataset'"):
        parse_assignment({"name": "x"})
    assert load_assignment("vu-autograd").ops.max_points == 20


def test_outputs_round_trip_through_their_packing():
    from grader.ops.packing import pack_outputs, unpack_outputs

    produced = {"a": np.arange(6.0).reshape(2, 3), "c": np.array(2.5)}
    values, layout = pack_outputs(produced, ["a", "b", "c"])
    assert layout.tolist() == [2, 2, 3, -1, 0]
    back = unpack_outputs(values, layout, ["a", "b", "c"], max_values=100)
    assert set(back) == {"a", "c"} and back["c"].shape == ()
    assert np.array_equal(back["a"], produced["a"])


@pytest.mark.parametrize(
    ("values", "layout", "message"),
    [
        (np.zeros(6), np.array([2, 2, 3, -1]), "ends early"),
        (np.zeros(6), np.array([2, 2, 4, -1, -1]), "more numbers than there are"),
        (np.zeros(7), np.array([2, 2, 3, -1, -1]), "do not match in length"),
        (np.zeros(6), np.array([99, 2, 3, -1, -1]), "99 dimensions"),
        (np.zeros(6), np.array([1, -6, -1, -1]), "out of range"),
        (np.zeros(6), np.array([1, 2**62, -1, -1]), "out of range"),
        (np.zeros((2, 3)), np.array([2, 2, 3, -1, -1]), "not flat"),
        (None, np.array([-1, -1, -1]), "missing"),
        (np.zeros(200), np.array([1, 200, -1, -1]), "more than 100 numbers"),
    ],
)
def test_malformed_packed_outputs_are_refused(values, layout, message):
    from grader.ops.packing import PackingError, unpack_outputs

    with pytest.raises(PackingError, match=message):
        unpack_outputs(values, layout, ["a", "b", "c"], max_values=100)
