"""Batch grading of a folder of real-label submissions: rows, flags, cache, report, model rows."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from grader.assignment import load_assignment
from grader.batch.results import GRADES_COLUMNS
from grader.batch.run import grade_folder
from grader.data import load_dataset
from grader.models import pipeline
from grader.models.result import Check, GradeStatus, ModelResult

REPO = Path(__file__).resolve().parents[2]


def load_make_examples():
    spec = importlib.util.spec_from_file_location(
        "make_examples", REPO / "submissions" / "make_examples.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def spec():
    return load_assignment("cifar10")


@pytest.fixture(scope="module")
def examples_dir(tmp_path_factory, data_dir) -> Path:
    root = tmp_path_factory.mktemp("submissions")
    load_make_examples().main(["--data-dir", str(data_dir), "--out", str(root)])
    return root


@pytest.fixture(scope="module")
def first_run(examples_dir, spec, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    return grade_folder(examples_dir, spec=spec, data_dir=data_dir, out_dir=out, progress=False)


def rows(batch) -> dict[str, object]:
    return {r.student: r for r in batch.results}


def test_committed_examples_are_what_the_script_writes(examples_dir):
    for folder in sorted(p for p in examples_dir.iterdir() if p.is_dir()):
        for file in folder.iterdir():
            committed = REPO / "submissions" / "cifar10" / folder.name / file.name
            assert committed.read_bytes() == file.read_bytes(), committed


def test_every_student_gets_a_row_even_when_broken(first_run, examples_dir):
    students = sorted(p.name for p in examples_dir.iterdir() if p.is_dir())
    grades = pd.read_csv(first_run.grades_csv, keep_default_na=False)
    assert list(grades.columns) == list(GRADES_COLUMNS)
    assert grades["student"].tolist() == students
    status = dict(zip(grades["student"], grades["status"], strict=True))
    assert {s for s, v in status.items() if v == "invalid"} == {
        "mallory", "nina", "oscar", "peggy", "quentin",
    }  # fmt: skip
    messages = dict(zip(grades["student"], grades["message"], strict=True))
    assert "semicolon" in messages["mallory"]
    assert "137 of the 10,000 test ids are missing" in messages["nina"]
    assert "binary" in messages["oscar"]
    assert "empty" in messages["peggy"]
    assert "nothing gradable" in messages["quentin"] and "notes.txt" in messages["quentin"]
    # BOM + CRLF and class names are accepted.
    assert status["laura"] == status["ken"] == "ok"


def test_accuracies_match_the_real_labels(first_run, examples_dir, labels_csv):
    truth = pd.read_csv(labels_csv).set_index("Id")["Category"]
    submitted = pd.read_csv(examples_dir / "bob" / "predictions.csv").set_index("Id")["Category"]
    bob = rows(first_run)["bob"]
    assert bob.grade.all_accuracy == pytest.approx((submitted == truth.loc[submitted.index]).mean())
    assert 0.78 < bob.private_accuracy < 0.84 and bob.points == 9.0


def test_flags_fire_on_copies_and_not_on_independent_students(first_run):
    by_student = rows(first_run)
    flagged = {s for s, r in by_student.items() if r.flags}
    assert flagged == {"dave", "heidi", "erin", "ivan", "judy"}
    assert "near-identical predictions" in by_student["heidi"].flags[0]
    assert "dave" in by_student["heidi"].flags[0]
    assert by_student["ivan"].flags == ["identical predictions file to erin"]
    assert "perfect" in by_student["judy"].flags[0]


def test_report_has_plots_and_flags(first_run):
    html = first_run.report_html.read_text(encoding="utf-8")
    out = first_run.report_html.parent
    for png in ("score_histogram.png", "per_class_accuracy.png"):
        assert f'src="{png}"' in html
        assert (out / png).read_bytes().startswith(b"\x89PNG")
    assert "near-identical predictions" in html and "mallory" in html


def test_rerun_uses_the_cache_and_regrades_what_changed(examples_dir, spec, data_dir, tmp_path):
    first = grade_folder(examples_dir, spec=spec, data_dir=data_dir, out_dir=tmp_path, jobs=2,
                         progress=False)  # fmt: skip
    changed = examples_dir / "grace" / "predictions.csv"
    original = changed.read_bytes()
    try:
        frame = pd.read_csv(changed)
        frame.loc[0, "Category"] = (frame.loc[0, "Category"] + 1) % 10
        frame.to_csv(changed, index=False)
        second = grade_folder(examples_dir, spec=spec, data_dir=data_dir, out_dir=tmp_path,
                              jobs=2, progress=False)  # fmt: skip
    finally:
        changed.write_bytes(original)
    # Everything but the changed file is cached (a folder with nothing gradable is re-listed).
    assert {r.student for r in second.results if not r.cached} == {"grace", "quentin"}
    assert second.cache_hits == len(second.results) - 2
    assert not rows(second)["grace"].cached and rows(second)["bob"].cached
    assert rows(second)["heidi"].flags == rows(first)["heidi"].flags
    assert rows(second)["bob"].private_accuracy == rows(first)["bob"].private_accuracy


# --- model submissions, through a stand-in for grader.models.pipeline.grade_model ------------


def test_model_folders_are_scored_and_flagged(tmp_path, data_dir, monkeypatch):
    spec = load_assignment("simplenn")
    labels = load_dataset("cifar10", "test", data_dir).labels
    rng = np.random.default_rng(0)

    def logits(accuracy: float) -> np.ndarray:
        predicted = np.where(
            rng.random(len(labels)) < accuracy, labels, rng.integers(0, 10, len(labels))
        )
        return np.eye(10, dtype=np.float32)[predicted] + rng.normal(0, 0.01, (len(labels), 10))

    ok, invalid = GradeStatus.OK, GradeStatus.INVALID
    grades = {
        "m_good": ModelResult(ok, "", True, logits(0.6), total_params=82030, parameter_digest="a"),
        "m_copy": ModelResult(ok, "", True, logits(0.5), total_params=90000, parameter_digest="a"),
        "m_wrong_shape": ModelResult(
            invalid,
            "failed check(s): params_exact",
            True,
            logits(0.4),
            total_params=99000,
            parameter_digest="b",
            checks=[Check("params_exact", False, "99000 parameters, expected 82030")],
        ),  # fmt: skip
        "m_crash": ModelResult(invalid, "model.py line 3: NameError: nn"),
        "m_short": ModelResult(ok, "", True, logits(0.5)[:10], total_params=5),
    }
    pools = []

    def grade_model(folder, spec, *, pool, **kwargs):
        pools.append(pool)
        return grades[folder.name]

    for student in grades:
        (tmp_path / "subs" / student).mkdir(parents=True)
        (tmp_path / "subs" / student / "model.py").write_text(f"# {student}\n")
        (tmp_path / "subs" / student / "weights.pt").write_bytes(student.encode())
    monkeypatch.setattr(pipeline, "grade_model", grade_model)
    batch = grade_folder(tmp_path / "subs", spec=spec, data_dir=data_dir, out_dir=tmp_path / "out",
                         jobs=2, progress=False)  # fmt: skip
    by_student = rows(batch)
    good = by_student["m_good"]
    assert good.status == "ok" and good.kind == "model" and good.grade.total_params == 82030
    expected = (grades["m_good"].logits.argmax(1) == labels).mean()
    assert good.grade.all_accuracy == pytest.approx(expected)
    assert good.flags == ["identical weights to m_copy"]
    assert "failed structure check: params_exact" in by_student["m_wrong_shape"].flags[0]
    assert by_student["m_wrong_shape"].status == "invalid"
    assert (
        by_student["m_crash"].status == "invalid" and "NameError" in by_student["m_crash"].message
    )
    short = by_student["m_short"]  # logits for 10 of 1017 images: the grader's set-up is wrong
    assert short.status == "error" and "the answer key has 1017" in short.message
    assert len({id(p) for p in pools}) == 1  # one pool of boxes for the whole batch
    assert (tmp_path / "out" / "params_vs_accuracy.png").is_file()
