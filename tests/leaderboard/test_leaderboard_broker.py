"""The server's side of the broker: a model upload sends its job id to the assignment's queue on
a real Redis; a broker that is down loses nothing (the job waits, to be sent again)."""

from __future__ import annotations

import base64
import io
import json
import zipfile

import pytest
from lb_support import Submitter, enrol, free_port
from sqlalchemy import select

from grader.assignment import load_assignment
from leaderboard.course import CourseAssignment, course_of
from leaderboard.db import session_scope
from leaderboard.models import Job
from leaderboard.status import JobQueue


def _model_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.py", "x = 1\n")
        archive.writestr("model.pt", b"w")
    return buffer.getvalue()


@pytest.fixture
def gpu_course():
    import dataclasses

    course = course_of(["cifar10"])
    resnet = CourseAssignment(spec=load_assignment("resnet20"), queue=JobQueue.GPU)
    return dataclasses.replace(course, assignments=(*course.assignments, resnet))


def _messages(redis_url: str, queue: str) -> list[dict]:
    import redis

    client = redis.Redis.from_url(redis_url)
    return [json.loads(m) for m in client.lrange(queue, 0, -1)]


def test_a_model_upload_is_sent_to_its_queue(make_app, redis_url, gpu_course):
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    app = make_app(course=gpu_course, config={"BROKER_URL": redis_url, "REDIS_URL": None})
    people = enrol(app)
    client = app.test_client()
    response = client.post(
        "/api/v1/assignments/resnet20/submissions",
        headers={"Authorization": f"Bearer {people.students['alice']}"},
        data={"file": (io.BytesIO(_model_zip()), "m.zip")},
    )
    assert response.status_code == 202
    (message,) = _messages(redis_url, "gpu")
    assert message["headers"]["task"] == "grader.grade_job"
    args, _kwargs, _options = json.loads(base64.b64decode(message["body"]))
    with session_scope(app.extensions["leaderboard_engine"]) as session:
        job = session.scalar(select(Job))
        assert args == [job.id] and job.queue is JobQueue.GPU  # only the id travels
    assert _messages(redis_url, "cpu") == []
    Submitter(client, people).login_instructor()
    page = client.post("/instructor/requeue?assignment=resnet20", follow_redirects=True)
    assert "Sent 1 queued job(s) to the broker again." in page.get_data(as_text=True)
    assert len(_messages(redis_url, "gpu")) == 2


def test_a_broker_that_is_down_loses_no_upload(make_app, gpu_course, caplog):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    app = make_app(course=gpu_course, config={"BROKER_URL": dead, "REDIS_URL": None})
    people = enrol(app)
    response = app.test_client().post(
        "/api/v1/assignments/resnet20/submissions",
        headers={"Authorization": f"Bearer {people.students['alice']}"},
        data={"file": (io.BytesIO(_model_zip()), "m.zip")},
    )
    assert response.status_code == 202 and response.get_json()["status"] == "queued"
    assert "could not be sent to the broker" in caplog.text
    status = app.test_client().get(
        "/api/v1/submissions/1", headers={"Authorization": f"Bearer {people.students['alice']}"}
    )
    assert status.get_json()["status"] == "queued"
