"""The workers' API through the test client: worker tokens only, one stored result per attempt,
forged and replayed posts refused, and a strict parser for what a worker sends."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from lb_support import enrol
from sqlalchemy import func, select

from leaderboard.auth import create_token
from leaderboard.db import session_scope
from leaderboard.models import Score
from leaderboard.protocol import JobResult, ProtocolError
from leaderboard.status import GradeStatus, Role


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
    labels_out = [int(v) for v in np.zeros(n_test, dtype=int)]
    result = {"status": "ok", "labels": labels_out, "total_params": 82030, "flops": 10,
              "flags": ["unmodified public model: simplenn"],
              "checks": [{"name": "params", "passed": True, "message": "82,030"}]}  # fmt: skip

    def post(attempt: int, key: str):
        return client.post("/api/v1/worker/jobs/1/result", headers=auth,
                           json={"attempt": attempt, "key": key, "result": result})  # fmt: skip

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
        score = session.scalar(select(Score))
        assert score.flags == ["unmodified public model: simplenn"] and score.total_params == 82030
    status = client.get("/api/v1/submissions/1", headers=student).get_json()
    assert status["status"] == "graded" and status["checks"][0]["name"] == "params"
    assert 0.0 < status["scores"]["public"]["accuracy"] < 0.2  # all "airplane": about 10%


def test_a_result_that_cannot_be_scored_is_a_grader_error(model_app):
    people = enrol(model_app)
    _queued_model(model_app, people)
    with session_scope(model_app.extensions["leaderboard_engine"]) as session:
        worker = create_token(session, Role.WORKER)
    client = model_app.test_client()
    auth = {"Authorization": f"Bearer {worker}"}
    claim = client.post("/api/v1/worker/jobs/1/claim", headers=auth).get_json()
    body = {"attempt": 1, "key": claim["key"], "result": {"status": "ok", "labels": [1, 2, 3]}}
    assert client.post("/api/v1/worker/jobs/1/result", headers=auth, json=body).status_code == 200
    status = client.get(
        "/api/v1/submissions/1", headers={"Authorization": f"Bearer {people.students['alice']}"}
    ).get_json()
    assert status["status"] == "failed" and "3 predicted labels for 1017" in status["message"]
    broken = {"attempt": 1, "key": claim["key"], "result": {"status": "great"}}
    response = client.post("/api/v1/worker/jobs/1/result", headers=auth, json=broken)
    assert response.status_code == 422 and "result.status" in response.get_json()["errors"][0]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"status": "ok", "score": 1.0}, "unknown field(s) score"),
        ({"message": "x"}, "missing field(s) status"),
        ({"status": "ok", "labels": [0, -1]}, "class indices"),
        ({"status": "ok", "labels": [0, True]}, "class indices"),
        ({"status": "ok", "flags": ["x"] * 500}, "at most 200"),
        ({"status": "ok", "message": "x" * 30_000}, "longer than"),
        ({"status": "ok", "checks": [{"name": "a"}]}, "missing field(s) passed"),
        ({"status": "ok", "weights_sha256": "abc"}, "64 lowercase hex"),
        ({"status": "ok", "total_params": -5}, "non-negative integer"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_results_are_parsed_strictly(data, message):
    with pytest.raises(ProtocolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        JobResult.from_json(data)


def test_a_result_round_trips():
    result = JobResult(
        GradeStatus.OK, "fine", labels=np.array([1, 2, 3]), total_params=7, flags=("f",)
    )
    back = JobResult.from_json(result.to_json())
    assert back == result and list(back.labels) == [1, 2, 3]
