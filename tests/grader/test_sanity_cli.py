"""``grader sanity`` as a student runs it: a real process, the sandbox, JSON on stdout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from grader.sandbox.jail import bubblewrap_available

HERE = Path(__file__).resolve().parent
SIMPLENN = HERE / "attacks" / "simplenn.py"


def _sanity(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "grader.cli", "sanity", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture
def sandboxed():
    if not bubblewrap_available():
        pytest.skip("bubblewrap not installed: grader sanity would run in-process")


@pytest.mark.slow  # the same check runs in-process in test_modelcheck; this adds the CLI text
def test_sanity_prints_the_simplenn_table_and_passes(sandboxed):
    right = _sanity(str(SIMPLENN), "--assignment", "simplenn")
    assert right.returncode == 0, right.stdout + right.stderr
    assert "total parameters: 82,030" in right.stdout
    assert "[PASS] params_exact: 82,030 parameters, as required" in right.stdout
    assert "verified: every number above comes from running the captured graph" in right.stdout
    assert "unconfined" not in right.stdout


def test_sanity_json_fails_a_wrong_simplenn_naming_the_layer(sandboxed, tmp_path):
    wrong = tmp_path / "model.py"
    code = SIMPLENN.read_text().replace("nn.Conv2d(8, 16, 3)", "nn.Conv2d(8, 16, 5)")
    wrong.write_text(code.replace("16 * 6 * 6", "16 * 5 * 5"))
    bad = _sanity(str(wrong), "--assignment", "simplenn", "--json")
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert report["total_params"] == 62_958 and report["output_shape"] == [16, 10]  # one batch
    assert isinstance(report["flops"], int) and report["sandboxed"] is True
    assert report["verified"] is True
    failed = {c["name"]: c["message"] for c in report["checks"] if not c["passed"]}
    assert "Your layer conv2 (Conv2d) outputs 16x10x10" in failed["params_exact"]
    assert "the reference's features.4 (Conv2d) outputs 16x12x12" in failed["params_exact"]


def test_sanity_reports_a_missing_file_without_traceback(tmp_path):
    result = _sanity(str(tmp_path / "nope.py"), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert "nope.py: no such file" in report["message"]
    assert report["ran"] is False
    assert "Traceback" not in result.stderr


def test_a_model_that_never_ran_is_not_called_unsandboxed(tmp_path):
    result = _sanity(str(tmp_path / "nope.py"))
    assert result.returncode == 1
    assert "no such file" in result.stdout
    assert "unconfined" not in result.stdout and "verified" not in result.stdout
