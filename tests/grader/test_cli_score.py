"""``grader score`` and ``grader check`` through click's runner and as real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from grader.cli import main

HEAVY = ("torch", "torchvision", "sklearn", "scipy", "matplotlib")


@pytest.fixture(scope="module")
def truth(labels_csv) -> pd.DataFrame:
    return pd.read_csv(labels_csv)


@pytest.fixture
def predictions(tmp_path, truth) -> Path:
    rng = np.random.default_rng(7)
    labels = truth["Category"].to_numpy().copy()
    wrong = rng.random(len(labels)) < 0.3
    labels[wrong] = (labels[wrong] + 1) % 10
    path = tmp_path / "predictions.csv"
    pd.DataFrame({"Id": truth["Id"], "Category": labels}).to_csv(path, index=False)
    return path


@pytest.fixture
def broken(tmp_path, truth) -> Path:
    frame = truth.iloc[:9990].astype(str)
    frame.loc[[1, 2, 3], "Category"] = ["11", "puppy", ""]
    frame.loc[4, "Id"] = "four"
    frame = pd.concat([frame, frame.iloc[[20]]])
    path = tmp_path / "broken.csv"
    frame.to_csv(path, index=False)
    return path


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_score_json_ok(predictions, data_dir, truth):
    result = invoke("score", str(predictions), "--data-dir", str(data_dir), "--json", "--all")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["status"] == "ok"
    assert set(out["scores"]) == {"public", "private", "all"}
    submitted = pd.read_csv(predictions)["Category"].to_numpy()
    expected = (submitted == truth["Category"].to_numpy()).mean()
    assert out["scores"]["all"]["accuracy"] == pytest.approx(expected)
    assert 0 < out["scores"]["public"]["macro_f1"] < 1


def test_score_text(predictions, data_dir):
    result = invoke("score", str(predictions), "--data-dir", str(data_dir), "--all")
    assert result.exit_code == 0
    assert "private" in result.output and "points   4 / 10" in result.output


def test_score_shows_a_student_only_the_public_split(predictions, data_dir):
    """cifar10's student_splits is the default ("public",): no private score, no points."""
    text = invoke("score", str(predictions), "--data-dir", str(data_dir))
    assert text.exit_code == 0
    assert text.output.startswith("public ") and "points" not in text.output
    assert "private" not in text.output.split("\n")[0]
    assert "not shown to students: private, all split; --all shows them" in text.output
    as_json = invoke("score", str(predictions), "--data-dir", str(data_dir), "--json")
    out = json.loads(as_json.stdout)
    assert set(out["scores"]) == set(out["counts"]) == set(out["confusion"]) == {"public"}
    assert "points" not in out and "private" not in json.dumps(out)


def test_score_without_the_answer_key_says_so_and_points_to_validate(predictions, tmp_path):
    result = invoke("score", str(predictions), "--data-dir", str(tmp_path / "empty"), "--json")
    assert result.exit_code == 2
    message = json.loads(result.stdout.splitlines()[0])["message"]
    assert "needs the answer key" in message and f"grader validate {predictions}" in message
    assert "GRADER_DATA_DIR" in message  # what to set


def test_invalid_file_exits_1_listing_every_problem(broken, data_dir):
    result = invoke("score", str(broken), "--data-dir", str(data_dir), "--json")
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["status"] == "invalid"
    text = "\n".join(out["errors"])
    for piece in ("'11', 'puppy', ''", "'four'", "appear more than once (20)", "missing (4, 9990"):
        assert piece in text
    human = invoke("score", str(broken), "--data-dir", str(data_dir))
    assert (
        human.exit_code == 1 and "not gradable" in human.output and "Traceback" not in human.output
    )


def test_messages_do_not_depend_on_the_labels(broken, data_dir, truth, tmp_path):
    """Scoring an invalid file against a permuted answer key gives the very same messages."""
    permuted = truth.assign(Category=np.random.default_rng(0).permutation(truth["Category"]))
    key = tmp_path / "permuted.csv"
    permuted.to_csv(key, index=False)
    real = invoke("score", str(broken), "--data-dir", str(data_dir), "--json")
    other = invoke("score", str(broken), "--solution", str(key), "--json")
    assert json.loads(real.stdout) == json.loads(other.stdout)


def test_setup_problems_exit_2(predictions, tmp_path):
    bad_spec = invoke("score", str(predictions), "--assignment", "no-such-course")
    assert bad_spec.exit_code == 2 and "unknown assignment 'no-such-course'" in bad_spec.output
    missing = invoke("score", str(predictions), "--solution", str(tmp_path / "none.csv"), "--json")
    assert missing.exit_code == 2
    assert json.loads(missing.stdout.splitlines()[0])["status"] == "error"


def test_check_through_the_runner(tmp_path, predictions, broken, data_dir):
    root = tmp_path / "subs"
    for student, source in (("ann", predictions), ("ben", broken)):
        (root / student).mkdir(parents=True)
        (root / student / "predictions.csv").write_bytes(source.read_bytes())
    out = tmp_path / "out"
    result = invoke("check", str(root), "--data-dir", str(data_dir), "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    assert "2 submissions: 1 graded, 1 invalid" in result.output
    grades = pd.read_csv(out / "grades.csv")
    assert grades["status"].tolist() == ["ok", "invalid"]
    missing = invoke("check", str(tmp_path / "nowhere"), "--data-dir", str(data_dir))
    assert missing.exit_code == 2 and "no such folder" in missing.output


def test_real_processes_without_heavy_imports(predictions, data_dir, tmp_path):
    probe = (
        "import sys\nfrom grader.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exit:\n"
        f"    heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "    print('HEAVY', heavy, file=sys.stderr)\n    raise\n"
    )
    args = [str(predictions), "--data-dir", str(data_dir), "--json"]
    done = subprocess.run(
        [sys.executable, "-c", probe, "score", *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "ok"
    assert "HEAVY []" in done.stderr
    root = tmp_path / "subs" / "ann"
    root.mkdir(parents=True)
    (root / "predictions.csv").write_bytes(predictions.read_bytes())
    check = subprocess.run(
        [sys.executable, "-m", "grader.cli", "check", str(tmp_path / "subs"), "--data-dir",
         str(data_dir), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert "1 submissions: 1 graded" in check.stdout
    assert (tmp_path / "out" / "report.html").is_file()
