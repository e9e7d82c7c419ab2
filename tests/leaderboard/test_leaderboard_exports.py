"""The server's grades for the LMS (the writer ``grader check --lms`` uses) and the live flags on
the instructor view and in the exports."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from lb_support import Submitter, enrol

from grader.exports import write_export
from leaderboard.db import session_scope
from leaderboard.grades import grade_rows

ROSTER = (
    "student,name,email,sis_id,login_id,section\n"
    "alice,Alice,alice@uni.edu,S1,al1,L01\n"
    'bob,"=HYPERLINK(""http://evil"",""x"")",bob@uni.edu,S2,bo2,L02\n'
    "carol,Carol,carol@uni.edu,S3,ca3,@L01\n"
    "dan,Dan,dan@uni.edu,S4,da4,L02\n"
)


def _read(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


def _setup(make_app, make_predictions):
    app = make_app()
    actions = Submitter(app.test_client(), enrol(app, roster=ROSTER))
    actions.api("alice", make_predictions(500))
    actions.api("bob", b"Id,Category\n1,2\n")  # invalid: costs nothing, is not a grade
    actions.api("carol", make_predictions(2500))
    actions.login_instructor()
    return app, actions


def test_server_exports_are_the_shared_writer(make_app, make_predictions):
    app, actions = _setup(make_app, make_predictions)
    client = actions.client
    course = app.config["COURSE"]
    for fmt in ("canvas", "moodle", "gradescope", "plain"):
        response = client.get(f"/instructor/grades.csv?assignment=cifar10&format={fmt}")
        assert response.status_code == 200 and response.mimetype == "text/csv"
        assert f"cifar10-grades-{fmt}.csv" in response.headers["Content-Disposition"]
        with app.app_context(), session_scope(app.extensions["leaderboard_engine"]) as session:
            rows = grade_rows(session, course.first, data_dir=app.config["DATA_DIR"])
            assert response.text == write_export(rows, course.first.grade_item, fmt)
    canvas = _read(client.get("/instructor/grades.csv?format=canvas").text)
    column = "CIFAR-10 image classification"
    assert list(canvas.columns) == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
                                    column]  # fmt: skip
    assert canvas.iloc[0]["Student"] == "Points Possible" and canvas.iloc[0][column] == "10"
    body = canvas.iloc[1:].set_index("SIS User ID")
    assert body.loc["S1", column] == "10" and body.loc["S1", "SIS Login ID"] == "al1"
    assert body.loc["S2", "Student"] == '\'=HYPERLINK("http://evil","x")'  # neutralised
    assert body.loc["S3", "Section"] == "'@L01"
    assert body.loc["S2", column] == "0" and body.loc["S4", column] == "0"  # invalid, missing
    blank = _read(client.get("/instructor/grades.csv?format=moodle&missing=blank").text)
    assert list(blank.columns) == ["ID number", "Email address", "Username", column]
    assert dict(zip(blank["Email address"], blank[column], strict=True)) == {
        "alice@uni.edu": "10", "bob@uni.edu": "-", "carol@uni.edu": "7", "dan@uni.edu": "-"
    }  # fmt: skip
    gradescope = _read(client.get("/instructor/grades.csv?format=gradescope").text)
    assert list(gradescope[f"{column} - Max Points"]) == ["10"] * 4
    assert client.get("/instructor/grades.csv?format=excel").status_code == 400


def test_plain_export_and_instructor_view_carry_live_flags(make_app, make_predictions):
    app = make_app()
    roster = "student,name\n" + "".join(f"s{i},Student {i}\n" for i in range(6))
    actions = Submitter(app.test_client(), enrol(app, roster=roster))
    copied = make_predictions(1200)
    for student in ("s0", "s1", "s2"):  # three byte-identical uploads
        actions.api(student, copied)
    actions.api("s3", make_predictions(0))  # perfect
    rng = np.random.default_rng(0)
    honest = pd.read_csv(io.BytesIO(make_predictions(0)))
    wrong = rng.choice(len(honest), 3000, replace=False)
    honest.loc[wrong, "Category"] = rng.integers(0, 10, size=3000)
    actions.api("s4", honest.to_csv(index=False).encode())
    near = honest.copy()
    near.loc[:50, "Category"] = (near.loc[:50, "Category"] + 3) % 10  # a lightly edited copy
    actions.api("s5", near.to_csv(index=False).encode())
    actions.login_instructor()
    plain = _read(actions.client.get("/instructor/grades.csv?format=plain").text).set_index(
        "student"
    )
    assert "identical predictions file to s1, s2" in plain.loc["s0", "flags"]
    assert "identical predictions file to s0, s1" in plain.loc["s2", "flags"]
    assert "suspiciously perfect score" in plain.loc["s3", "flags"]
    assert (
        "near-identical predictions" in plain.loc["s4", "flags"]
        and "s5" in plain.loc["s4", "flags"]
    )
    assert plain.loc["s3", "flags"].count("identical") == 0  # fmt: skip
    page = actions.client.get("/instructor/?assignment=cifar10").get_data(as_text=True)
    assert "identical predictions file to s1, s2" in page and "near-identical predictions" in page
    canvas = actions.client.get("/instructor/grades.csv?format=canvas").text
    assert "identical" not in canvas  # flags stay out of what students can see in the LMS


def test_model_flags_from_grading_reach_the_export(make_app, make_predictions):
    from grader.assignment import load_assignment
    from grader.grading import Evidence, GradeStatus, SubmissionKind
    from grader.models.result import Check, ModelResult
    from leaderboard.jobs import claim_next, store_result

    simplenn = load_assignment("simplenn")
    app = make_app(**{f: getattr(simplenn, f) for f in ("name", "model", "solution", "rubric")})
    actions = Submitter(app.test_client(), enrol(app))
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.py", "x = 1\n")
        archive.writestr("model.pt", b"w")
    assert actions.api("alice", buffer.getvalue(), name="m.zip").status_code == 202
    engine = app.extensions["leaderboard_engine"]
    claim = claim_next(engine, "w", 60)
    result = Evidence(
        SubmissionKind.MODEL,
        model=ModelResult(
            GradeStatus.OK,
            "all checks passed",
            True,
            logits=np.eye(10, dtype=np.float32)[np.zeros(1017, dtype=np.int64)],
            total_params=82030,
            weights_sha256="a" * 64,
            flags=["unmodified public model: reference simplenn", "parameter count differs"],
            checks=[Check("params_exact", True, "82,030")],
        ),
    )
    spec = app.config["COURSE"].first.spec
    assert store_result(engine, claim.job_id, claim.attempt, claim.key, result,
                        spec_of=lambda _n: spec).value == "stored"  # fmt: skip
    actions.login_instructor()
    plain = _read(actions.client.get("/instructor/grades.csv?assignment=simplenn").text)
    flags = plain.set_index("student").loc["alice", "flags"]
    assert "unmodified public model: reference simplenn" in flags
    assert "parameter count differs" in flags


def test_a_graded_submission_without_points_is_a_blank_cell_not_a_zero(make_app, make_predictions):
    """A model graded without weights (checked, not evaluated) has no points: the LMS file
    leaves its cell blank, as grader check's does, instead of giving the student 0."""
    import dataclasses

    from sqlalchemy import select

    from leaderboard.models import Student, Submission
    from leaderboard.scoring import store_grade, stored_grade

    app, actions = _setup(make_app, make_predictions)
    with app.app_context(), session_scope(app.extensions["leaderboard_engine"]) as session:
        alice = session.scalars(
            select(Submission).join(Student).where(Student.student == "alice")
        ).one()
        no_points = dataclasses.replace(stored_grade(alice), points=None, scores={})
        store_grade(session, alice, no_points)
    canvas = _read(actions.client.get("/instructor/grades.csv?format=canvas").text)
    body = canvas.iloc[1:].set_index("SIS User ID")
    assert body.loc["S1", "CIFAR-10 image classification"] == ""
    assert body.loc["S4", "CIFAR-10 image classification"] == "0"  # no submission: still 0
