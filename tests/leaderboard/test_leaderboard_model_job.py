"""A model submission end to end: uploaded as a .zip, graded by the worker in the sandbox."""

from __future__ import annotations

import io
import time
import zipfile

import pytest
from lb_support import REPO, Submitter, enrol

from grader.assignment import load_assignment
from leaderboard.db import make_engine
from leaderboard.grading import GradingConfig, SubmissionGrader
from leaderboard.worker import WorkerConfig, known_datasets, process_one

EXAMPLE = REPO / "submissions" / "simplenn" / "ada"


@pytest.mark.slow  # runs torch inside the sandbox on the CIFAR-10 test images
def test_model_zip_is_graded_by_the_worker(make_app, data_dir):
    if not EXAMPLE.is_dir():
        pytest.fail(f"{EXAMPLE} is missing: run submissions/make_model_examples.py")
    app = make_app(**{f: getattr(load_assignment("simplenn"), f) for f in ("name", "model",
                      "solution", "rubric", "source")})  # fmt: skip
    actions = Submitter(app.test_client(), enrol(app))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in EXAMPLE.iterdir():
            archive.write(path, arcname=f"ada/{path.name}")
    body = actions.api("alice", buffer.getvalue(), name="ada.zip").get_json()
    assert body["status"] == "queued", body
    engine = make_engine(app.config["DATABASE_URL"])
    config = WorkerConfig(
        database_url=app.config["DATABASE_URL"], grading=GradingConfig(data_dir=data_dir)
    )
    assert process_one(engine, config)
    engine.dispose()
    status = actions.client.get(
        f"/api/v1/submissions/{body['submission_id']}",
        headers={"Authorization": f"Bearer {actions.people.students['alice']}"},
    ).get_json()
    assert status["status"] == "graded", status["message"]
    assert status["assignment"] == "simplenn" and status["total_params"] == 82030
    assert {c["name"] for c in status["checks"]} and all(c["passed"] for c in status["checks"])
    assert 0.2 < status["scores"]["public"]["accuracy"] <= 1.0
    png = actions.client.get("/assignments/simplenn/accuracy-vs-params.png")
    assert png.data[:4] == b"\x89PNG"
    board = actions.client.get("/api/v1/leaderboard").get_json()
    assert board["rows"][0]["verified"] is True  # the board says where its numbers come from
    page = actions.client.get("/assignments/simplenn/").get_data(as_text=True)
    assert '<span class="tag verified"' in page


FORGER = """
import json, os, pathlib, sys
import numpy
out = pathlib.Path(sys.path[-1]).parent / "out"
json.dump({"status": "exported"}, open(out / "capture.json", "w"))
json.dump({"status": "ok", "flops": 1, "finite": True, "deterministic": True, "images": 1017},
          open(out / "evaluation.json", "w"))
numpy.save(out / "logits.npy", numpy.eye(10, dtype="float32")[[3] * 1017])
os._exit(0)
"""


def test_a_forging_model_gets_no_score_on_the_board(make_app, data_dir):
    """The worker's grade comes from the verified evaluation: forged files earn nothing."""
    app = make_app(**{f: getattr(load_assignment("simplenn"), f) for f in ("name", "model",
                      "solution", "rubric", "source")})  # fmt: skip
    actions = Submitter(app.test_client(), enrol(app))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("forger/model.py", FORGER)
        archive.write(EXAMPLE / "model.pt", arcname="forger/model.pt")
    body = actions.api("alice", buffer.getvalue(), name="forger.zip").get_json()
    assert body["status"] == "queued", body
    engine = make_engine(app.config["DATABASE_URL"])
    config = WorkerConfig(
        database_url=app.config["DATABASE_URL"], grading=GradingConfig(data_dir=data_dir)
    )
    grader = SubmissionGrader(config.grading)
    try:
        # a worker starting up warms the boxes of the datasets its queue holds jobs for
        assert known_datasets(engine) == ["cifar10"]
        grader.warm(known_datasets(engine))
        pool = grader._box(load_assignment("simplenn"))
        deadline = time.monotonic() + 300
        while pool.running == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pool.running == 1, "the box was not started before the first job"
        assert process_one(engine, config, grader)
        assert pool.running == 1  # the same box, still warm for the next job
    finally:
        grader.close()
        engine.dispose()
    status = actions.client.get(
        f"/api/v1/submissions/{body['submission_id']}",
        headers={"Authorization": f"Bearer {actions.people.students['alice']}"},
    ).get_json()
    assert status["status"] == "invalid", status["message"]
    assert "no graph artifact" in status["message"]
    assert not status.get("scores")
    board = actions.client.get("/api/v1/leaderboard").get_json()
    assert board["rows"] == []  # the only submission earned no row
