"""LMS round trips: a bulk download graded with the LMS's own roster export gives every submitter
their points on their own gradebook row, no orphan rows, and a loud list of what did not match."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from lms_files import (
    CANVAS_GRADEBOOK,
    CANVAS_POINTS,
    GRADESCOPE_POINTS,
    GRADESCOPE_ROSTER,
    MOODLE_GRADEBOOK,
    MOODLE_WORKSHEET,
    canvas_download,
    gradescope_export,
    moodle_download,
    predictions,
    zip_folder,
)

from grader.cli import main


@pytest.fixture(scope="module")
def truth(labels_csv) -> pd.DataFrame:
    return pd.read_csv(labels_csv)


def check(folder: Path, out: Path, data_dir: Path, *args: str):
    result = CliRunner().invoke(
        main,
        ["check", str(folder), "--out", str(out), "--quiet", "--data-dir", str(data_dir), *args],
    )
    assert result.exit_code == 0, result.output
    return result


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def canvas(tmp_path_factory, truth, data_dir):
    """A Canvas download graded with the Canvas gradebook export, flat and zipped."""
    root = tmp_path_factory.mktemp("canvas")
    (root / "gradebook.csv").write_text(CANVAS_GRADEBOOK, encoding="utf-8")
    download = canvas_download(root / "download", truth)
    zipped = root / "zipped"
    zipped.mkdir()
    zip_folder(download, zipped / "ECE661-Lab 1 submissions.zip")
    runs = {}
    for name, folder in (("flat", download), ("zipped", zipped)):
        out = root / f"out-{name}"
        args = ["--roster", str(root / "gradebook.csv"), "--lms", "canvas", "--lms-title", "Lab 1"]
        runs[name] = (check(folder, out, data_dir, *args), out)
    return runs


@pytest.mark.parametrize("layout", ["flat", "zipped"])
def test_canvas_points_land_on_each_submitters_own_row(canvas, layout):
    result, out = canvas[layout]
    text = (out / "grades-canvas.csv").read_text()
    frame = read(out / "grades-canvas.csv")
    assert list(frame.columns) == [
        "Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Lab 1 (4411)"
    ]  # fmt: skip
    assert list(frame.iloc[0]) == ["Points Possible", "", "", "", "", "10"]
    body = frame.iloc[1:].set_index("ID")
    assert sorted(body.index) == ["12345", "12346", "12347", "12348", "12399"]  # the roster only
    for canvas_id, points in CANVAS_POINTS.items():
        assert body.loc[canvas_id, "Lab 1 (4411)"] == str(points), canvas_id
    assert body.loc["12348", "Lab 1 (4411)"] == "0"  # Park, Min: no submission
    assert body.loc["12345", "Student"] == "Smith, Alice"
    assert body.loc["12345", "SIS Login ID"] == "asmith"
    assert '"Smith, Alice",12345,S001,asmith,ECE661-001,10' in text
    assert "nobodyhere" not in text and "55555" not in text  # no orphan row
    assert "Canvas column 'Lab 1' (4411) found in the roster" in result.output
    assert "3 of 4 submissions matched (3 by LMS user id)" in result.output
    assert "no roster student for submission nobodyhere (nobodyhere, Canvas user id 55555)" in (
        result.stderr
    )
    assert "no submission from roster student mpark (Park, Min)" in result.stderr


def test_canvas_resubmissions_grade_the_latest_and_list_the_others(canvas):
    result, out = canvas["flat"]
    data = json.loads((out / "results.json").read_text())
    john = next(r for r in data["results"] if r["student"] == "doejohn")
    assert john["files"] == ["predictions.csv"] and john["late"] and john["points"] == 9
    assert john["ignored"] == [
        "predictions.csv (superseded by predictions-1.csv, uploaded later; predictions-1.csv is "
        "graded as predictions.csv)"
    ]
    assert "invalid" not in {r["status"] for r in data["results"]}
    assert data["roster"]["matched"]["doejohn"] == [{"student": "jdoe", "by": "LMS user id"}]
    assert data["roster"]["missing"] == ["mpark", "12399"]
    report = (out / "report.html").read_text()
    assert "Submissions without a roster student" in report and "nobodyhere" in report
    assert "superseded by predictions-1.csv" in report
    assert "1 earlier upload superseded by a later one" in result.output


def test_canvas_without_a_roster_keys_rows_by_the_canvas_user_id(tmp_path, truth, data_dir):
    download = canvas_download(tmp_path / "download", truth)
    result = check(download, tmp_path / "out", data_dir, "--lms", "canvas",
                   "--lms-column-id", "4411")  # fmt: skip
    frame = read(tmp_path / "out" / "grades-canvas.csv")
    assert frame.columns[-1] == "CIFAR-10 image classification (4411)"
    body = frame.iloc[1:].set_index("ID")
    assert body.loc["12346", "Student"] == "doejohn" and body.loc["12346"].iloc[-1] == "9"
    assert body.loc["55555", "SIS Login ID"] == ""  # never a guessed login
    assert "roster:" not in result.output


@pytest.fixture(scope="module")
def moodle(tmp_path_factory, truth):
    root = tmp_path_factory.mktemp("moodle")
    download = moodle_download(root / "download", truth)
    zip_folder(download, root / "ECE661-Lab 1-1234.zip")
    shutil.rmtree(download)
    (root / "download").mkdir()
    shutil.move(root / "ECE661-Lab 1-1234.zip", root / "download")
    (root / "worksheet.csv").write_text(MOODLE_WORKSHEET, encoding="utf-8")
    (root / "gradebook.csv").write_text(MOODLE_GRADEBOOK, encoding="utf-8")
    return root


def test_moodle_worksheet_round_trip_by_participant_id(moodle, data_dir):
    out = moodle / "out-worksheet"
    result = check(moodle / "download", out, data_dir, "--roster", str(moodle / "worksheet.csv"),
                   "--lms", "moodle-worksheet")  # fmt: skip
    frame = read(out / "grades-moodle-worksheet.csv").set_index("Identifier")
    assert list(frame.columns) == ["Full name", "Email address", "Grade", "Maximum Grade",
                                   "Last modified (grade)"]  # fmt: skip
    assert sorted(frame.index) == [f"Participant {n}" for n in (1938475, 1938476, 1938477)]
    assert frame.loc["Participant 1938475", "Grade"] == "10"
    assert frame.loc["Participant 1938476", "Grade"] == "7"
    assert frame.loc["Participant 1938477", "Grade"] == "0"  # Grace Hopper: no submission
    assert frame.loc["Participant 1938475", "Maximum Grade"] == "10"
    assert "2 by LMS user id" in result.output
    assert "no roster student for submission Charles Babbage" in result.stderr
    assert "no submission from roster student grace@uni.edu (Grace Hopper)" in result.stderr


def test_moodle_gradebook_round_trip_by_name_with_real_identity_columns(moodle, data_dir):
    out = moodle / "out-gradebook"
    result = check(moodle / "download", out, data_dir, "--roster", str(moodle / "gradebook.csv"),
                   "--lms", "moodle", "--lms-title", "Lab 1")  # fmt: skip
    frame = read(out / "grades-moodle.csv")
    assert list(frame.columns) == ["ID number", "Email address", "Lab 1"]
    grades = dict(zip(frame["ID number"], frame["Lab 1"], strict=True))
    assert grades == {"U1001": "10", "U1002": "7", "U1003": "0"}
    assert "2 by name" in result.output and "Charles Babbage" in result.stderr
    roster = str(moodle / "gradebook.csv")
    check(moodle / "download", moodle / "out-blank", data_dir, "--roster", roster, "--lms",
          "moodle", "--missing-grade", "blank")  # fmt: skip
    assert "U1003,grace@uni.edu,-" in (moodle / "out-blank" / "grades-moodle.csv").read_text()


def test_gradescope_export_round_trip_a_pair_gets_one_grade_each(tmp_path, truth, data_dir):
    build, folder = tmp_path / "build", tmp_path / "download"
    build.mkdir()
    folder.mkdir()
    shutil.move(gradescope_export(build, truth), folder / "submissions.zip")
    (tmp_path / "roster.csv").write_text(GRADESCOPE_ROSTER)
    result = check(folder, tmp_path / "out", data_dir, "--roster", str(tmp_path / "roster.csv"),
                   "--lms", "gradescope", "--lms-title", "Lab 1")  # fmt: skip
    frame = read(tmp_path / "out" / "grades-gradescope.csv")
    assert list(frame.columns) == ["First Name", "Last Name", "SID", "Email", "Sections", "Lab 1",
                                   "Lab 1 - Max Points"]  # fmt: skip
    by_sid = frame.set_index("SID")
    assert sorted(by_sid.index) == ["2001", "2002", "2003", "2004"]
    for sid, points in GRADESCOPE_POINTS.items():
        assert by_sid.loc[sid, "Lab 1"] == str(points), sid
    assert by_sid.loc["2004", "Lab 1"] == "0" and by_sid.loc["2001", "First Name"] == "Marie"
    assert "3 by SIS id" in result.output
    assert "submission Otto Hahn (Otto Hahn, SID 2999, otto@elsewhere.edu)" in result.stderr


def test_every_csv_we_write_neutralises_formulas(tmp_path, truth, data_dir):
    folder = tmp_path / "subs"
    evil = '=HYPERLINK("evil.example","click")'
    for name, accuracy in ((evil, 0.95), ("+cmd", 0.75), ("alice", 0.6)):
        (folder / name).mkdir(parents=True)
        (folder / name / "predictions.csv").write_bytes(predictions(truth, accuracy, 7))
    out = tmp_path / "out"
    check(folder, out, data_dir, "--lms", "plain")
    for path in (out / "grades.csv", out / "grades-plain.csv"):
        text = path.read_text()
        cells = [c for row in pd.read_csv(io.StringIO(text), dtype=str).to_numpy() for c in row]
        students = read(path)["student"].tolist()
        assert f"'{evil}" in students and "'+cmd" in students, path
        assert not [c for c in cells if isinstance(c, str) and c.startswith(("=", "+", "@"))]
