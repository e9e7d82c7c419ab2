"""The server and the grading boundary: every built-in kind of assignment is served (the kind of
file each takes is refused elsewhere with the same words), points wherever a score is shown, and
a grade held for review counts nothing until an instructor accepts it."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from lb_jobs import model_evidence
from lb_support import enrol

from grader.assignment import load_assignment
from grader.data import load_dataset
from grader.grading import SubmissionKind
from leaderboard.course import course_of
from leaderboard.jobs import claim_next, store_result


def _post(client, token, assignment, content, name):
    return client.post(
        f"/api/v1/assignments/{assignment}/submissions",
        headers={"Authorization": f"Bearer {token}"},
        data={"file": (io.BytesIO(content), name)},
    )


def test_each_assignment_takes_its_own_kind_of_file(make_app, make_predictions):
    app = make_app(course=course_of(["cifar10", "simplenn", "vu-autograd"]))
    people = enrol(app)
    client, alice = app.test_client(), people.students["alice"]
    kinds = {a["assignment"]: a["kind"] for a in client.get("/api/v1/assignments").get_json()[
        "assignments"]}  # fmt: skip
    assert kinds == {"cifar10": "predictions", "simplenn": "model", "vu-autograd": "ops"}
    csv = make_predictions(100)
    refused = _post(client, alice, "vu-autograd", csv, "predictions.csv")
    assert refused.status_code == 422
    assert "this assignment takes ops.py" in refused.get_json()["errors"][0]
    model = _post(client, alice, "cifar10", b"import torch\n", "model.py")
    assert model.status_code == 422 and "not a model" in model.get_json()["errors"][0]
    assert (
        _post(client, alice, "simplenn", csv, "p.csv")
        .get_json()["errors"][0]
        .startswith("this assignment takes a model")
    )
    ops = _post(client, alice, "vu-autograd", b"import torch\n", "ops.py")
    assert ops.status_code == 202 and ops.get_json()["status"] == "queued"
    claim = claim_next(app.extensions["leaderboard_engine"], "w", 60)
    assert claim.kind is SubmissionKind.OPS and claim.assignment == "vu-autograd"
    graded = _post(client, alice, "cifar10", csv, "predictions.csv").get_json()
    assert graded["points"]["points"] is None and graded["points"]["hidden"] is True
    assert graded["points"]["max_points"] == 10  # the rubric hangs on the private split


def test_a_held_grade_counts_nothing_until_an_instructor_accepts_it(make_app, data_dir):
    simplenn = load_assignment("simplenn")
    app = make_app(course=course_of([simplenn]))
    people = enrol(app)
    client = app.test_client()
    upload = _post(client, people.students["alice"], "simplenn", _model_zip(), "m.zip")
    submission = upload.get_json()["submission_id"]
    engine = app.extensions["leaderboard_engine"]
    claim = claim_next(engine, "w", 60)
    evidence = model_evidence(load_dataset("cifar10", "test", data_dir).labels)
    evidence.model.needs_review = True
    evidence.model.message = "graded UNVERIFIED: the accuracy comes from the model's own process"
    store_result(engine, claim.job_id, 1, claim.key, evidence, spec_of=lambda _n: simplenn)

    client.post("/login", data={"token": people.students["alice"]})
    token = {"Authorization": f"Bearer {people.students['alice']}"}
    mine = client.get(f"/api/v1/submissions/{submission}", headers=token).get_json()
    assert mine["points"]["held_for_review"] is True
    page = client.get(f"/submissions/{submission}").get_data(as_text=True)
    assert "Held for your instructor's review" in page and "Accept this grade" not in page
    client.post("/logout")

    client.post("/instructor/login", data={"token": people.instructor})
    export = _plain(client)
    assert (
        export.loc["alice", "points"] == 0
        and "held for instructor review" in (export.loc["alice", "flags"])
    )
    overview = client.get("/instructor/").get_data(as_text=True)
    assert f"submission {submission}</a> of alice: 0 points until accepted" in overview
    assert "Accept this grade (10 points)" in client.get(f"/submissions/{submission}").text
    accepted = client.post(f"/instructor/submissions/{submission}/accept")
    assert accepted.status_code == 302
    export = _plain(client)
    assert export.loc["alice", "points"] == 10  # the top tier it earned
    assert "held for instructor review" not in str(export.loc["alice", "flags"])
    assert "Review accepted by instructor" in client.get(f"/submissions/{submission}").text


def _plain(client) -> pd.DataFrame:
    text = client.get("/instructor/grades.csv?assignment=simplenn&format=plain").text
    return pd.read_csv(io.StringIO(text)).set_index("student")


def _model_zip() -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.py", "import torch\n")
        archive.writestr("model.pt", np.zeros(4).tobytes())
    return buffer.getvalue()


def test_a_queued_submission_page_reloads_until_graded(make_app, data_dir):
    simplenn = load_assignment("simplenn")
    app = make_app(course=course_of([simplenn]))
    people = enrol(app)
    client = app.test_client()
    form = {"token": people.students["bob"], "file": (io.BytesIO(_model_zip()), "m.zip")}
    response = client.post("/assignments/simplenn/submit", data=form)
    assert response.status_code == 303  # signed in as Bob, sent to the submission's page
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="3">' in page
    assert "Grading is in progress (queued): this page reloads itself every 3 seconds" in page
    engine = app.extensions["leaderboard_engine"]
    claim = claim_next(engine, "w", 60)
    evidence = model_evidence(load_dataset("cifar10", "test", data_dir).labels, wrong=500)
    store_result(engine, claim.job_id, 1, claim.key, evidence, spec_of=lambda _n: simplenn)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'http-equiv="refresh"' not in page and "Feedback for Bob" in page
    assert "all checks passed" in page and "hidden / 10" in page
    assert "hidden / 10" in client.get("/me").get_data(as_text=True)
