"""ops.py submissions: hand-written backwards checked against torch's autograd, outside the box.

The bundled examples and a few hostile ops.py files are graded in the real sandbox, in parallel
(one slot each); every comparison is made by the grader from the arrays the box returns.
"""

from __future__ import annotations

import os
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.assignment import load_assignment
from grader.cli import main
from grader.ops.grade import OpsGrade, grade_ops_folder
from grader.sandbox.jail import bubblewrap_available

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "submissions"

IDENTITY_SWISH = """
import torch


class Swish(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x

    @staticmethod
    def backward(ctx, grad):
        return grad
"""

FORGE_AND_EXIT = (
    IDENTITY_SWISH
    + """
import inspect, json, os
from pathlib import Path

# walk up the stack to the grader's task wrapper, write its report for it, and leave
report = {"status": "ok", "message": "", "arrays": [],
          "result": {"errors": {}, "rows": [{"name": "Swish", "passed": True, "earned": 2}]}}
for frame in inspect.stack():
    ctx = frame.frame.f_locals.get("ctx")
    out = getattr(ctx, "output_dir", None)
    if out is not None:
        (Path(out) / "report.json").write_text(json.dumps(report))
        os._exit(0)  # before the grader's task runs
"""
)

PATCH_THE_GRADER = (
    IDENTITY_SWISH
    + """
import numpy as np
import torch
import grader.ops.grade as grade
import grader.ops.inside as inside

# make every comparison pass and every op "evaluate" to zeros, in this process
grade.compare_case = lambda *a, **k: ({"forward": 0.0, "backward": 0.0, "gradcheck": 0.0}, [])
def fake(inputs, produced, fn, op):
    for case in range(op["cases"]):
        for suffix in ("out", "plus_out", "minus_out", "grad_x"):
            produced[f"{op['key']}_c{case}_{suffix}"] = np.zeros(3)
inside.evaluate_op = fake
"""
)

AUTOGRAD_ONLY = """
import torch

def Swish(x):
    return x * torch.sigmoid(x)  # torch's autograd does the backward: not what was asked
"""

WRONG_SHAPE = """
import torch

class Swish(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return (x * torch.sigmoid(x)).sum()

    @staticmethod
    def backward(ctx, grad):
        return grad
"""

HOSTILE = {
    "forge_and_exit": FORGE_AND_EXIT,
    "patch_the_grader": PATCH_THE_GRADER,
    "autograd_only": AUTOGRAD_ONLY,
    "wrong_shape": WRONG_SHAPE,
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict[str, OpsGrade]:
    """Every example and hostile ops.py, graded in its own box, all at once."""
    if not bubblewrap_available():
        if os.environ.get("CI"):
            pytest.fail("bubblewrap is missing: apt-get install bubblewrap (scripts/setup.sh)")
        pytest.skip("bubblewrap not installed (apt-get install bubblewrap)")
    jobs = {
        "alex": (EXAMPLES / "vu-autograd" / "alex", "vu-autograd"),
        "blake": (EXAMPLES / "vu-autograd" / "blake", "vu-autograd"),
        "dana": (EXAMPLES / "ece661-swish" / "dana", "ece661-swish"),
        "eli": (EXAMPLES / "ece661-swish" / "eli", "ece661-swish"),
    }
    root = tmp_path_factory.mktemp("hostile")
    for name, code in HOSTILE.items():
        (root / name).mkdir()
        (root / name / "ops.py").write_text(textwrap.dedent(code))
        jobs[name] = (root / name, "ece661-swish")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            name: pool.submit(grade_ops_folder, folder, load_assignment(spec))
            for name, (folder, spec) in jobs.items()
        }
        return {name: future.result() for name, future in futures.items()}


def rows(grade: OpsGrade) -> dict[str, object]:
    return {row.name: row for row in grade.rows}


def test_correct_ops_pass_with_float64_errors(graded):
    grade = graded["alex"]
    assert grade.status == "ok" and grade.sandboxed
    assert grade.points == grade.max_points == 20
    for row in grade.rows:
        assert row.passed, (row.name, row.message)
        assert row.forward_error < 1e-12 and row.backward_error < 1e-12
        assert row.gradcheck_error < 1e-6  # central differences, h = 1e-6
        assert len(row.shapes) == 3  # three cases of different shapes
    assert rows(grade)["Linear"].shapes[0] == [[4, 3], [5, 3], [5]]


def test_a_wrong_backward_is_caught_and_names_the_input(graded):
    grade = graded["blake"]
    by_name = rows(grade)
    sigmoid, divide, total = by_name["Sigmoid"], by_name["Divide"], by_name["Sum"]
    assert not sigmoid.passed and sigmoid.forward_error == 0.0
    assert sigmoid.backward_error > 0.5 and sigmoid.gradcheck_error > 1e-3
    assert "backward for x differs from sigmoid's" in sigmoid.message
    assert not divide.passed and "backward for y" in divide.message
    assert total.passed
    assert grade.points == 1
    assert "defines no class or function ReLU" in by_name["ReLU"].message


def test_swish_as_a_module_wrapping_a_wrong_function_is_caught(graded):
    (row,) = graded["eli"].rows
    assert not row.passed and row.earned == 0
    assert row.forward_error == 0.0 and row.backward_error > 0.1
    (good,) = graded["dana"].rows
    assert good.passed and good.earned == 2


def test_a_forged_report_and_an_early_exit_earn_nothing(graded):
    grade = graded["forge_and_exit"]
    (row,) = grade.rows
    assert not row.passed and grade.points == 0
    assert row.forward_error is None  # no array came back: nothing was compared
    assert "no forward output" in row.message


def test_patching_the_grader_in_the_box_changes_nothing_outside(graded):
    grade = graded["patch_the_grader"]
    (row,) = grade.rows
    assert grade.status == "ok" and not row.passed and grade.points == 0
    assert "shape (3,)" in row.message


def test_autograd_instead_of_a_hand_written_backward_is_refused(graded):
    (row,) = graded["autograd_only"].rows
    assert row.forward_error == 0.0 and row.backward_error < 1e-12  # right values...
    assert not row.passed  # ...but no backward of its own
    assert "Swish has no hand-written backward" in row.message


def test_an_output_of_the_wrong_shape_fails_the_case(graded):
    (row,) = graded["wrong_shape"].rows
    assert not row.passed and "the reference's is (7,)" in row.message


def test_sanity_command_reports_rows_and_exit_code(tmp_path):
    ops = EXAMPLES / "ece661-swish" / "eli" / "ops.py"
    result = CliRunner().invoke(main, ["sanity", str(ops), "--assignment", "ece661-swish"])
    assert result.exit_code == 1
    assert "[FAIL] Swish: case 1 ((7,),): backward for x differs" in result.output
    assert "0 of 2 points" in result.output
    result = CliRunner().invoke(main, ["sanity", str(ops)])
    assert result.exit_code == 2 and "--assignment NAME" in result.output


def test_grader_check_grades_a_class_of_ops_folders(tmp_path):
    """``grader check`` on an [ops] assignment: one row per student, each op a check worth its
    points, the report listing every op; a folder without ops.py is a clear invalid row."""
    import pandas as pd

    from grader.assignment import load_assignment
    from grader.batch.run import grade_folder

    root = tmp_path / "class"
    for student in ("alex", "blake"):
        source = REPO / "submissions" / "vu-autograd" / student
        (root / student).mkdir(parents=True)
        (root / student / "ops.py").write_bytes((source / "ops.py").read_bytes())
    (root / "casey").mkdir()
    (root / "casey" / "notes.txt").write_text("forgot the file")
    spec = load_assignment("vu-autograd")
    batch = grade_folder(root, spec=spec, out_dir=tmp_path / "out", progress=False)
    rows = {r.student: r for r in batch.results}
    assert rows["alex"].status == "ok" and rows["alex"].points == spec.ops.max_points == 20
    blake = {c.name: c for c in rows["blake"].grade.checks}
    assert not blake["Sigmoid"].passed and not blake["Divide"].passed and blake["Sum"].passed
    assert rows["blake"].points == blake["Sum"].points == 1
    assert rows["casey"].status == "invalid" and "no ops.py" in rows["casey"].message
    grades = pd.read_csv(batch.grades_csv).set_index("student")
    assert grades.loc["alex", "points"] == 20 and grades.loc["alex", "kind"] == "ops"
    html = batch.report_html.read_text()
    assert "MatrixMultiply" in html and "blake" in html
