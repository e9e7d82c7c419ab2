"""LMS grade exports and rosters: the formats read back, formulas neutralised, one writer for
``grader check --lms`` and the server."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from grader.cli import main
from grader.exports import (
    ExportFormat,
    GradeItem,
    GradeRow,
    MissingGrade,
    export_problems,
    neutralise,
    write_export,
)
from grader.grading.status import GradeStatus
from grader.roster import Person, RosterError, read_roster

REPO = Path(__file__).resolve().parents[2]
ITEM = GradeItem(name="lab1", title="Lab 1", max_points=10, lms_id="4411")
PEOPLE = [
    Person("alice", name="Alice Liddell", email="a@uni.edu", sis_id="S1", login_id="al1",
           section="L01"),
    Person("bob", name="=HYPERLINK(\"http://evil\",\"x\")", email="b@uni.edu", sis_id="S2",
           login_id="bo2", section="L02"),
    Person("carol", name="Carol", email="c@uni.edu", sis_id="S3", login_id="ca3", section="L01"),
    Person("dan", name="@SUM(A1)", email="d@uni.edu", sis_id="S4", login_id="-dan",
           section="+x"),
]  # fmt: skip
ROWS = [
    GradeRow(PEOPLE[0], GradeStatus.OK, points=9, public_accuracy=0.91, private_accuracy=0.9,
             flags=("near-identical predictions: shares 400 wrong answers with bob",)),
    GradeRow(PEOPLE[1], GradeStatus.INVALID, message="-1 rows missing"),
    GradeRow(PEOPLE[2], None),
    GradeRow(PEOPLE[3], GradeStatus.ERROR, message="\tthe sandbox timed out"),
]  # fmt: skip


def _read(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


def test_canvas_import_layout_with_points_possible():
    frame = _read(write_export(ROWS, ITEM, "canvas"))
    assert list(frame.columns) == [
        "Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Lab 1 (4411)"
    ]  # fmt: skip
    assert list(frame.iloc[0]) == ["Points Possible", "", "", "", "", "10"]
    body = frame.iloc[1:].set_index("SIS User ID")
    assert body.loc["S1", "Lab 1 (4411)"] == "9"
    assert body.loc["S2", "Lab 1 (4411)"] == "0"  # invalid -> zero by default
    assert body.loc["S3", "Lab 1 (4411)"] == "0"  # missing -> zero
    assert body.loc["S4", "Lab 1 (4411)"] == ""  # a grader error is never a zero
    assert body.loc["S1", "SIS Login ID"] == "al1" and body.loc["S1", "Section"] == "L01"


def test_blank_policy_leaves_invalid_and_missing_without_a_score():
    frame = _read(write_export(ROWS, ITEM, ExportFormat.CANVAS, missing=MissingGrade.BLANK))
    assert list(frame["Lab 1 (4411)"])[1:] == ["9", "", "", ""]
    moodle = _read(write_export(ROWS, ITEM, "moodle", missing="blank"))
    assert list(moodle["Lab 1"]) == ["9", "-", "-", "-"]  # Moodle's "no grade"


def test_every_cell_a_spreadsheet_would_evaluate_is_neutralised():
    for fmt in ExportFormat:
        text = write_export(ROWS, ITEM, fmt)
        for line in text.splitlines()[1:]:
            for cell in pd.read_csv(io.StringIO(line), header=None, dtype=str).iloc[0]:
                if isinstance(cell, str) and cell != "-":
                    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (fmt, cell)
    canvas = _read(write_export(ROWS, ITEM, "canvas"))
    assert '\'=HYPERLINK("http://evil","x")' in list(canvas["Student"])
    assert "'@SUM(A1)" in list(canvas["Student"]) and "'+x" in list(canvas["Section"])
    plain = _read(write_export(ROWS, ITEM, "plain"))
    assert plain.set_index("student").loc["dan", "message"] == "'\tthe sandbox timed out"
    assert plain.set_index("student").loc["dan", "login_id"] == "'-dan"
    assert neutralise("\rx") == "'\rx" and neutralise("plain") == "plain" and neutralise(3) == 3


def test_moodle_writes_the_identity_columns_every_student_has():
    frame = _read(write_export(ROWS, ITEM, "moodle"))
    assert list(frame.columns) == ["ID number", "Email address", "Username", "Lab 1"]
    assert list(frame["Email address"]) == ["a@uni.edu", "b@uni.edu", "c@uni.edu", "d@uni.edu"]
    assert list(frame["Username"])[-1] == "'-dan"
    no_email = [GradeRow(Person("eve", sis_id="S9"), GradeStatus.OK, points=4)]
    assert list(_read(write_export(no_email, ITEM, "moodle")).columns) == ["ID number", "Lab 1"]
    some = [*no_email, GradeRow(Person("fay", email="f@uni.edu"), GradeStatus.OK, points=2)]
    frame = _read(write_export(some, ITEM, "moodle"))  # no column every row has
    assert list(frame.columns) == ["ID number", "Lab 1"] and list(frame["ID number"]) == ["S9"]
    (problem,) = export_problems(some, "moodle")
    assert problem.startswith("fay: no ID number (Moodle aborts an import on one unknown user)")


def test_gradescope_layout_has_first_and_last_names_and_max_points():
    frame = _read(write_export(ROWS, ITEM, "gradescope"))
    assert list(frame.columns) == [
        "First Name", "Last Name", "SID", "Email", "Sections", "Lab 1", "Lab 1 - Max Points"
    ]  # fmt: skip
    assert list(frame["Lab 1 - Max Points"]) == ["10"] * 4
    assert frame.iloc[0].tolist() == ["Alice", "Liddell", "S1", "a@uni.edu", "L01", "9", "10"]


def test_plain_export_keeps_flags_and_messages():
    frame = _read(write_export(ROWS, ITEM, "plain"))
    alice = frame.set_index("student").loc["alice"]
    assert alice["flags"].startswith("near-identical predictions")
    assert alice["private_accuracy"] == "0.9" and alice["max_points"] == "10"
    assert frame.set_index("student").loc["carol", "status"] == "missing"


def test_roster_accepts_lms_columns_and_a_canvas_export(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text(
        "Student ID,First Name,Last Name,Email Address,SIS User ID,Username,Sections,Team\n"
        "alice,Alice,Liddell,a@uni.edu,S1,al1,L01,red\n"
    )
    # "Student ID" is not a known spelling: the ids come from the SIS columns then.
    (alice,) = read_roster(path)
    assert (alice.student, alice.name, alice.email, alice.sis_id, alice.login_id) == (
        "al1", "Alice Liddell", "a@uni.edu", "S1", "al1"
    )  # fmt: skip
    assert (alice.section, alice.team) == ("L01", "red")
    canvas = tmp_path / "canvas.csv"
    canvas.write_text(
        "Student,ID,SIS User ID,SIS Login ID,Section,Lab 1 (4411)\n"
        "    Points Possible,,,,,10\n"
        '"Liddell, Alice",1234,S1,al1,L01,9\n'
    )
    (person,) = read_roster(canvas)
    assert (person.student, person.name, person.canvas_id) == ("al1", "Liddell, Alice", "1234")


def test_roster_errors_name_the_file_and_row(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("name,section\nAlice,L01\n")
    with pytest.raises(RosterError, match=r"r\.csv: no 'student' column"):
        read_roster(path)
    path.write_text("student,name\nalice,A\nalice,B\n")
    with pytest.raises(RosterError, match=r"row 3: student 'alice' already on row 2"):
        read_roster(path)
    path.write_text("student,name\n,A\n")
    with pytest.raises(RosterError, match="row 2 has no student id"):
        read_roster(path)


def test_check_writes_the_lms_export_from_the_batch(tmp_path, data_dir):
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "student,name,email,sis_id,section\n"
        "alice,Alice,alice@uni.edu,S001,L01\n"
        "peggy,Peggy,peggy@uni.edu,S002,L01\n"
        "zoe,Zoe,zoe@uni.edu,S099,L02\n"  # on the roster, no folder
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["check", str(REPO / "submissions" / "cifar10"), "--out", str(out), "--quiet",
         "--data-dir", str(data_dir), "--lms", "canvas", "--roster", str(roster)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"canvas: {out / 'grades-canvas.csv'}" in result.output
    canvas = _read((out / "grades-canvas.csv").read_text())
    grades = pd.read_csv(out / "grades.csv").set_index("student")
    column = "CIFAR-10 image classification"
    assert canvas.iloc[0]["Student"] == "Points Possible" and canvas.iloc[0][column] == "10"
    by_sis = canvas.iloc[1:].set_index("SIS User ID")
    assert by_sis.loc["S001", "Student"] == "Alice"
    assert float(by_sis.loc["S001", column]) == grades.loc["alice", "points"]
    assert by_sis.loc["S099", column] == "0"  # missing
    assert len(canvas) == 1 + 3  # the points row and the roster: no orphan row for a folder
    assert grades.loc["peggy", "status"] == "invalid" and by_sis.loc["S002", column] == "0"
    assert "no roster student for submission bob" in result.stderr
