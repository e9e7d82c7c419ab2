"""A model submission end to end: uploaded as a .zip, graded by the worker in the sandbox."""

from __future__ import annotations

import io
import zipfile

import pytest
from lb_support import REPO, Submitter, enrol

from grader.assignment import load_assignment
from leaderboard.db import make_engine
from leaderboard.grading import GradingConfig
from leaderboard.worker import WorkerConfig, process_one

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
    assert status["status"] == "graded", status
    assert status["assignment"] == "simplenn" and status["total_params"] == 82030
    assert {c["name"] for c in status["checks"]} and all(c["passed"] for c in status["checks"])
    assert 0.2 < status["scores"]["public"]["accuracy"] <= 1.0
    png = actions.client.get("/assignments/simplenn/accuracy-vs-params.png")
    assert png.data[:4] == b"\x89PNG"
