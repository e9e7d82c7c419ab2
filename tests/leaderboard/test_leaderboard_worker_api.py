"""The workers' API through the test client: worker tokens only, one stored result per attempt,
forged and replayed posts refused, and a strict parser for what a worker sends."""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np
import pytest
from lb_support import enrol
from sqlalchemy import func, select

from grader.grading import Evidence, EvidenceError, GradeStatus, SubmissionKind
from grader.models.result import Check, ModelResult
from leaderboard.auth import create_token
from leaderboard.db import session_scope
from leaderboard.models import GradeRecord, Score, Submission
from leaderboard.scoring import stored_grade
from leaderboard.status import Role


@pytest.fixture
def model_app(make_app):
    from grader.assignment import load_assignment

    simplenn = load_assignment("simplenn")
    return make_app(**{f: getattr(simplenn, f) for f in ("name", "model", "solution", "rubric")})


def _queued_model(app, people) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.py", "import torch\n")
        archive.writestr("model.pt", b"weights")
    response = app.test_client().post(
        "/api/v1/submissions",
        headers={"Authorization": f"Bearer {people.students['alice']}"},
        data={"file": (io.BytesIO(buffer.getvalue()), "m.zip")},
    )
    assert response.status_code == 202, response.get_json()
    return response.get_json()["submission_id"]


def test_worker_api_stores_one_result_and_refuses_stale_and_forged_posts(model_app, labels):
    people = enrol(model_app)
    _queued_model(model_app, people)
    with session_scope(model_app.extensions["leaderboard_engine"]) as session:
        worker = create_token(session, Role.WORKER)
    client = model_app.test_client()
    auth = {"Authorization": f"Bearer {worker}"}
    student = {"Authorization": f"Bearer {people.students['alice']}"}
    assert client.post("/api/v1/worker/jobs/1/claim", headers=student).status_code == 401
    hello = client.get("/api/v1/worker/hello", headers=auth).get_json()
    assert [a["assignment"] for a in hello["assignments"]] == ["simplenn"]

    first = client.post("/api/v1/worker/jobs/1/claim", headers=auth, json={"owner": "a"})
    second = client.post("/api/v1/worker/jobs/1/claim", headers=auth, json={"owner": "b"})
    one, two = first.get_json(), second.get_json()
    assert (one["attempt"], two["attempt"], one["kind"]) == (1, 2, "model")
    assert one["spec"]["name"] == "simplenn" and one["assignment"] == "simplenn"
    files = client.post("/api/v1/worker/jobs/1/files", headers=auth,
                        json={"attempt": 2, "key": two["key"]})  # fmt: skip
    with zipfile.ZipFile(io.BytesIO(files.data)) as archive:
        assert sorted(archive.namelist()) == ["model.pt", "model.py"]
    stale_files = client.post("/api/v1/worker/jobs/1/files", headers=auth,
                              json={"attempt": 1, "key": one["key"]})  # fmt: skip
    assert stale_files.status_code == 409

    n_test = 1017  # the model is scored on the data set's own test images
    evidence = Evidence(SubmissionKind.MODEL, model=ModelResult(
        GradeStatus.OK, "all checks passed", verified=True,
        logits=np.eye(10, dtype=np.float32)[np.zeros(n_test, dtype=int)], total_params=82030,
        flops=10, flags=["unmodified public model: simplenn"],
        checks=[Check("params", True, "82,030")],
    ))  # fmt: skip

    def post(attempt: int, key: str):
        return client.post("/api/v1/worker/jobs/1/result", headers=auth,
                           json={"attempt": attempt, "key": key,
                                 "evidence": evidence.to_record()})  # fmt: skip

    replayed = post(1, one["key"])
    assert replayed.status_code == 409 and replayed.get_json()["outcome"] == "stale"
    forged = post(2, "not-the-key")
    assert forged.status_code == 403 and forged.get_json()["outcome"] == "forged"
    assert post(2, two["key"]).get_json()["outcome"] == "stored"
    again = post(2, two["key"])
    assert again.status_code == 200 and again.get_json()["outcome"] == "duplicate"
    assert client.post("/api/v1/worker/jobs/1/claim", headers=auth).status_code == 409
    with session_scope(model_app.extensions["leaderboard_engine"]) as session:
        assert session.scalar(select(func.count(Score.id))) == 1
        assert session.scalar(select(func.count(GradeRecord.id))) == 1
        score = session.scalar(select(Score))
        grade = stored_grade(session.get(Submission, score.submission_id))
        assert grade.flags == ["unmodified public model: simplenn"] and score.total_params == 82030
        assert grade.points == score.points == 0  # about 10%: below every tier of the rubric
    status = client.get("/api/v1/submissions/1", headers=student).get_json()
    assert status["status"] == "graded" and status["checks"][0]["name"] == "params"
    assert 0.0 < status["scores"]["public"]["accuracy"] < 0.2  # all "airplane": about 10%
    assert status["points"]["max_points"] == 10 and status["points"]["hidden"] is True
    assert "flags" not in status  # the grade's flags are for the instructor


def _claimed(model_app):
    people = enrol(model_app)
    _queued_model(model_app, people)
    with session_scope(model_app.extensions["leaderboard_engine"]) as session:
        worker = create_token(session, Role.WORKER)
    client = model_app.test_client()
    auth = {"Authorization": f"Bearer {worker}"}
    claim = client.post("/api/v1/worker/jobs/1/claim", headers=auth).get_json()
    return people, client, auth, claim


def test_evidence_that_cannot_be_graded_is_a_grader_error(model_app):
    people, client, auth, claim = _claimed(model_app)
    short = Evidence(SubmissionKind.MODEL, model=ModelResult(
        GradeStatus.OK, "", True, np.zeros((3, 10), dtype=np.float32)))  # fmt: skip
    body = {"attempt": 1, "key": claim["key"], "evidence": short.to_record()}
    assert client.post("/api/v1/worker/jobs/1/result", headers=auth, json=body).status_code == 200
    status = client.get(
        "/api/v1/submissions/1", headers={"Authorization": f"Bearer {people.students['alice']}"}
    ).get_json()
    assert status["status"] == "failed" and "evaluated on 3 test images" in status["message"]


def test_a_post_off_the_protocol_is_refused_with_the_field_named(model_app):
    _people, client, auth, claim = _claimed(model_app)
    broken = Evidence(SubmissionKind.MODEL).to_record()
    broken["evidence"]["status"] = "great"
    body = {"attempt": 1, "key": claim["key"], "evidence": broken}
    response = client.post("/api/v1/worker/jobs/1/result", headers=auth, json=body)
    assert response.status_code == 422 and "evidence: status" in response.get_json()["errors"][0]
    deep = b'{"attempt": 1, "key": "k", "evidence": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    response = client.post("/api/v1/worker/jobs/1/result", headers=auth, data=deep,
                           content_type="application/json")  # fmt: skip
    assert response.status_code == 422 and "nests deeper" in response.get_json()["errors"][0]


def _model_record(**changes) -> dict:
    result = ModelResult(GradeStatus.OK, "ok", True, np.zeros((2, 10), dtype=np.float32))
    record = Evidence(SubmissionKind.MODEL, model=result).to_record()
    record["evidence"]["model"].update(changes)
    return record


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (_model_record(score=1.0), "unknown key(s) 'score'"),
        (_model_record(total_params="many"), "total_params must be an integer"),
        (_model_record(flags=["x"] * 100_001), "more than 100,000 items"),
        (_model_record(message="x" * 300_000), "longer than 200,000"),
        (_model_record(checks=[{"name": "a"}]), "missing required key(s) 'passed'"),
        (_model_record(logits={"dtype": "object", "shape": [1], "base64": ""}), "dtype"),
        (_model_record(logits={"dtype": "float32", "shape": [2, 10], "base64": "AAAA"}),
         "bytes for shape"),
        ({"format": "grader.evidence", "version": 99, "evidence": {}}, "version 99"),
        ([1, 2], "expected a table"),
    ],
)  # fmt: skip
def test_evidence_is_parsed_strictly(record, message):
    with pytest.raises(EvidenceError, match=re.escape(message)):
        Evidence.from_record(record)


def test_evidence_round_trips_every_field_of_the_model_result():
    result = ModelResult(
        GradeStatus.OK, "fine", True, np.arange(20, dtype=np.float32).reshape(2, 10),
        {"flip": np.ones((1, 10), dtype=np.float32)}, total_params=7, flags=["f"],
        checks=[Check("c", False, "why", 0.0)], needs_review=True,
    )  # fmt: skip
    back = Evidence.from_json_bytes(Evidence(SubmissionKind.MODEL, model=result).to_json_bytes())
    assert back.model.needs_review and back.model.checks == result.checks
    np.testing.assert_array_equal(back.model.logits, result.logits)
    np.testing.assert_array_equal(back.model.variant_logits["flip"], result.variant_logits["flip"])
