"""Scale-out for real: ``grader serve --broker`` (gunicorn) with a real Redis, and ``grader
worker --server --token --broker`` processes in another folder without database access."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from lb_jobs import SLEEPING_MODEL, queue_jobs, slow_spec
from lb_support import REPO, enrol, free_port, live_server
from sqlalchemy import func, select

from grader.cli import main
from leaderboard.db import make_engine, session_scope
from leaderboard.models import GradeRecord, Job
from leaderboard.status import JobQueue, JobStatus

EXAMPLE = REPO / "submissions" / "simplenn" / "ada"


@pytest.fixture(scope="module")
def course_server(tmp_path_factory, data_dir, redis_url):
    """A two-assignment server with a broker; yields (url, people, worker token, db url)."""
    from leaderboard import create_app
    from leaderboard.auth import create_token
    from leaderboard.server import init_database
    from leaderboard.status import Role

    root = tmp_path_factory.mktemp("course-server")
    url = f"sqlite:///{root / 'grader.db'}"
    init_database(database=url)
    app = create_app({"DATABASE_URL": url})
    people = enrol(app)
    with session_scope(app.extensions["leaderboard_engine"]) as session:
        worker_token = create_token(session, Role.WORKER)
    app.extensions["leaderboard_engine"].dispose()
    port = free_port()
    command = [
        sys.executable, "-m", "grader.cli", "serve", "--port", str(port), "--database", url,
        "--workers", "2", "--assignment", "cifar10", "--assignment", "simplenn",
        "--broker", redis_url,
    ]  # fmt: skip
    env = {**os.environ, "GRADER_DATA_DIR": str(data_dir)}
    with live_server(command, port, env, root / "server.log") as base:
        yield base, people, worker_token, url


def _remote_worker(base, token, broker, folder: Path, log, *extra) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "GRADER_DATABASE_URL"}
    command = [
        sys.executable, "-m", "grader.cli", "worker", "--server", base, "--token", token,
        "--broker", broker, *extra,
    ]  # fmt: skip
    return subprocess.Popen(
        command, cwd=folder, env={**env, "PYTHONPATH": str(REPO)}, stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def _wait_for(predicate, timeout: float, what: str, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_remote_worker_without_database_grades_a_model(course_server, redis_url, tmp_path):
    base, people, worker_token, _url = course_server
    elsewhere = tmp_path / "gpu-box"
    elsewhere.mkdir()
    log_path = tmp_path / "worker.log"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in EXAMPLE.iterdir():
            archive.write(path, arcname=path.name)
    headers = {"Authorization": f"Bearer {people.students['alice']}"}
    with open(log_path, "wb") as log:
        worker = _remote_worker(base, worker_token, redis_url, elsewhere, log)
        try:
            _wait_for(lambda: "ready" in log_path.read_text(), 90, "the worker", log_path)
            start = log_path.read_text()
            assert "queue(s) cpu" in start and "assignments simplenn" in start
            archive_path = tmp_path / "ada.zip"
            archive_path.write_bytes(buffer.getvalue())
            result = CliRunner().invoke(
                main,
                ["submit", str(archive_path), "--server", base, "--token",
                 people.students["alice"], "--assignment", "simplenn", "--wait",
                 "--wait-timeout", "240"],
            )  # fmt: skip
            assert result.exit_code == 0, (result.output, log_path.read_text()[-3000:])
            assert "queued: submission" in result.output
            assert "graded: public accuracy" in result.output
            assert "parameters 82,030" in result.output
            submission = int(result.output.split("queued: submission ")[1].split()[0])
            status_url = f"{base}/api/v1/submissions/{submission}"
        finally:
            _stop(worker)
    body = requests.get(status_url, headers=headers, timeout=10).json()
    assert body["status"] == "graded", (body, log_path.read_text()[-3000:])
    assert body["assignment"] == "simplenn" and body["total_params"] == 82030
    assert 0.1 < body["scores"]["public"]["accuracy"] <= 1.0
    assert not list(elsewhere.iterdir())  # no database, no files left where the worker ran
    board = requests.get(f"{base}/api/v1/assignments/simplenn/leaderboard", timeout=10).json()
    assert [r["assignment"] for r in board["rows"]] == ["simplenn"]


def test_a_worker_killed_mid_job_is_replaced_and_the_result_stored_once(
    course_server, redis_url, tmp_path
):
    from leaderboard.broker import JobPublisher

    base, _people, worker_token, url = course_server
    engine = make_engine(url)
    files = {"model.py": SLEEPING_MODEL, "model.pt": b"weights"}
    (job_id,) = queue_jobs(engine, files, spec=slow_spec(3))  # the job carries its spec
    JobPublisher(redis_url).send(job_id, JobQueue.CPU)
    log_path = tmp_path / "workers.log"
    extra = ("--visibility-timeout", "4", "--no-pre-fork")

    def job() -> Job:
        with session_scope(engine) as session:
            return session.get(Job, job_id)

    with open(log_path, "ab") as log:
        first = _remote_worker(base, worker_token, redis_url, tmp_path, log, *extra)
        try:
            _wait_for(lambda: job().status is JobStatus.RUNNING, 90, "the first claim", log_path)
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
        finally:
            if first.poll() is None:
                first.kill()
        assert first.returncode == -signal.SIGKILL and job().attempts == 1
        second = _remote_worker(base, worker_token, redis_url, tmp_path, log, *extra)
        try:
            _wait_for(lambda: job().status.finished, 120, "the redelivered job", log_path)
            time.sleep(3)  # room for a duplicate delivery, which must not store again
        finally:
            _stop(second)
    finished = job()
    assert finished.status is JobStatus.DONE, log_path.read_text()[-3000:]
    assert finished.attempts == 2
    with session_scope(engine) as session:
        count = select(func.count(GradeRecord.id)).where(
            GradeRecord.submission_id == finished.submission_id
        )
        assert session.scalar(count) == 1
        submission = session.get(Job, job_id).submission
        assert "wall-clock limit of 3 s" in submission.message, log_path.read_text()[-3000:]
    engine.dispose()
