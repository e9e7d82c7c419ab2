"""Helpers of the leaderboard tests: tokens for a roster, API actions, live servers, databases."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import socket
import subprocess
import time
import uuid
import zipfile
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port free on localhost right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def new_postgres_database(server_url: str) -> str:
    """Create an empty database on the server; return its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    plain = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@dataclasses.dataclass
class People:
    """Tokens created for a test: students by id, and one instructor."""

    students: dict[str, str]
    instructor: str


def enrol(app, roster: str = "student,name\nalice,Alice\nbob,Bob\ncarol,Carol\n") -> People:
    """Import a roster and an instructor into the app's database; return the tokens."""
    from leaderboard.auth import create_instructor_token, import_roster
    from leaderboard.db import session_scope

    with session_scope(app.extensions["leaderboard_engine"]) as session:
        created = dict(import_roster(session, roster.encode(), name="roster.csv"))
        instructor = create_instructor_token(session)
    return People(students=created, instructor=instructor)


class Submitter:
    """Small actions against the API of a test client."""

    def __init__(self, client, people: People):
        self.client = client
        self.people = people

    def api(self, student: str, content: bytes, name: str = "predictions.csv"):
        """POST a file to the API as ``student``."""
        return self.client.post(
            "/api/v1/submissions",
            headers={"Authorization": f"Bearer {self.people.students[student]}"},
            data={"file": (io.BytesIO(content), name)},
        )

    def login_instructor(self):
        """Sign the client in as the instructor."""
        return self.client.post("/instructor/login", data={"token": self.people.instructor})


@contextlib.contextmanager
def live_server(command: list[str], port: int, env: dict[str, str], log: Path):
    """Run a server subprocess until it answers on ``port``; stop it afterwards."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                requests.get(base + "/", timeout=5)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    pytest.fail(f"server did not answer within 60 s:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def zip_of(files: dict[str, bytes]) -> bytes:
    """A zip archive of ``files`` (name -> content), as a student's upload."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()
