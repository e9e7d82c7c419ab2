"""Fixtures for the leaderboard: real data, apps on SQLite or a real PostgreSQL, live servers."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from glob import glob
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lb_support import REPO, enrol, free_port, live_server, new_postgres_database

from grader.assignment import Assignment, load_assignment
from grader.predictions.solution import split_ids


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real data (``GRADER_DATA_DIR``, else ``<repo>/../shared/data``)."""
    path = Path(os.environ.get("GRADER_DATA_DIR") or REPO.parent / "shared" / "data")
    if not (path / "cifar10-test-labels.csv").is_file():
        pytest.fail(f"no CIFAR-10 labels under {path}; set GRADER_DATA_DIR to the shared data")
    os.environ["GRADER_DATA_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def labels(data_dir: Path) -> pd.DataFrame:
    """The real CIFAR-10 test labels (Id, Category)."""
    return pd.read_csv(data_dir / "cifar10-test-labels.csv")


@pytest.fixture(scope="session")
def make_predictions(labels: pd.DataFrame):
    """``make_predictions(wrong)``: predictions.csv bytes with the first ``wrong`` rows wrong."""

    def build(wrong: int = 0) -> bytes:
        frame = labels.copy()
        frame.loc[: wrong - 1, "Category"] = (frame.loc[: wrong - 1, "Category"] + 1) % 10
        return frame.to_csv(index=False).encode()

    return build


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server for the session: ``GRADER_TEST_POSTGRES_URL`` or a fresh local one.

    Yields the URL of its maintenance database; tests create their own databases in it.
    """
    url = os.environ.get("GRADER_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    bins = sorted(glob("/usr/lib/postgresql/*/bin"))
    if not bins:
        pytest.fail(
            "PostgreSQL is not installed (Debian package postgresql): run scripts/setup.sh as "
            "root, or set GRADER_TEST_POSTGRES_URL to a server the tests may use"
        )
    bindir = Path(bins[-1])
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="grader-pg-", dir="/tmp"))
    if as_postgres:
        shutil.chown(root, "postgres", "postgres")
    datadir, port = root / "data", free_port()
    run = {"cwd": "/tmp", "check": True, "capture_output": True, "text": True}
    try:
        subprocess.run(
            [
                *as_postgres,
                bindir / "initdb",
                "-D",
                datadir,
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
            ],
            **run,
        )
        subprocess.run(
            [
                *as_postgres,
                bindir / "pg_ctl",
                "-D",
                datadir,
                "-w",
                "-l",
                root / "log",
                "-o",
                f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -F",
                "start",
            ],
            **run,
        )
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"could not start PostgreSQL in {root}: {exc.stderr or exc.stdout}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_postgres, bindir / "pg_ctl", "-D", datadir, "-m", "immediate", "stop"],
            cwd="/tmp",
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path: Path) -> str:
    """An empty database with the schema: SQLite in a temp dir, or a new PostgreSQL database."""
    from leaderboard.server import init_database

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'grader.db'}"
    else:
        url = new_postgres_database(request.getfixturevalue("postgres_server"))
    init_database(database=url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An SQLite database with the schema."""
    from leaderboard.server import init_database

    url = f"sqlite:///{tmp_path / 'grader.db'}"
    init_database(database=url)
    return url


@pytest.fixture
def cifar_spec(data_dir: Path) -> Assignment:
    """The built-in CIFAR-10 predictions assignment."""
    return load_assignment("cifar10")


@pytest.fixture
def make_app(tmp_path: Path, data_dir: Path, cifar_spec: Assignment):
    """``make_app(database_url=None, config=None, course=None, **spec_changes)``: an app serving
    ``course`` (a Course), else the cifar10 spec with ``spec_changes``, on ``database_url`` or
    a fresh SQLite database of its own.

    Real names are shown unless ``config`` says ``PSEUDONYMS``: most tests read names."""
    from leaderboard import create_app
    from leaderboard.server import init_database

    made = iter(range(1000))

    def build(database_url: str | None = None, config: dict | None = None, course=None,
              **spec_changes):  # fmt: skip
        spec = dataclasses.replace(cifar_spec, **spec_changes)
        if database_url is None:
            database_url = f"sqlite:///{tmp_path / f'app-{next(made)}.db'}"
            init_database(database=database_url)
        settings = {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "ASSIGNMENT": spec,
            "COURSE": course,
            "DATA_DIR": str(data_dir),
            "BASELINE_DIR": tmp_path / "baselines",
            "WTF_CSRF_ENABLED": False,
            "PSEUDONYMS": False,
            "RATE_WINDOW_S": 3600,
            **(config or {}),
        }
        return create_app(settings)

    return build


@pytest.fixture(scope="session")
def redis_url():
    """A real Redis server (Debian's redis-server) on a free port for the session."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        pytest.fail("redis-server is missing: install Debian's redis-server (scripts/setup.sh)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start on port {port}")
            time.sleep(0.05)
    client.close()
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def gunicorn_server(tmp_path_factory, data_dir: Path, labels: pd.DataFrame):
    """``grader serve`` (gunicorn, SQLite) on a free port with a roster and a resnet20 baseline
    (85% of the real test labels); yields (url, People)."""
    import json

    from leaderboard import create_app

    root = tmp_path_factory.mktemp("server")
    baseline = root / "baselines" / "resnet20"
    baseline.mkdir(parents=True)
    predicted = labels.copy()
    predicted.loc[:1499, "Category"] = (predicted.loc[:1499, "Category"] + 1) % 10
    (baseline / "predictions.csv").write_bytes(predicted.to_csv(index=False).encode())
    (baseline / "record.json").write_text(json.dumps({
        "model": "resnet20", "accuracy": 0.85, "parameters": 269_722, "epochs": 40,
        "data": {"dataset": "cifar10", "train_images": 4068}, "flattened": {"flat": True},
    }))  # fmt: skip
    url = f"sqlite:///{root / 'grader.db'}"
    from leaderboard.server import init_database

    init_database(database=url)
    app = create_app({"DATABASE_URL": url})
    people = enrol(app)
    app.extensions["leaderboard_engine"].dispose()
    port = free_port()
    env = {**os.environ, "GRADER_DATA_DIR": str(data_dir),
           "GRADER_BASELINE_DIR": str(root / "baselines")}  # fmt: skip
    command = [
        sys.executable,
        "-m",
        "grader.cli",
        "serve",
        "--port",
        str(port),
        "--database",
        url,
        "--workers",
        "2",
        "--real-names",
    ]
    with live_server(command, port, env, root / "server.log") as base:
        yield base, people


@pytest.fixture
def public_mask(labels):
    spec = load_assignment("cifar10")
    return split_ids(labels["Id"].to_numpy(), spec.public_fraction, spec.split_seed)


@pytest.fixture
def predictions_with(labels, public_mask):
    """``predictions_with(public_wrong, private_wrong)``: bytes with that many wrong rows in each
    split (so public and private accuracy differ at will)."""

    def build(public_wrong: int, private_wrong: int) -> bytes:
        frame = labels.copy()
        public = np.flatnonzero(public_mask)[:public_wrong]
        private = np.flatnonzero(~public_mask)[:private_wrong]
        rows = np.concatenate([public, private])
        frame.loc[rows, "Category"] = (frame.loc[rows, "Category"] + 1) % 10
        return frame.to_csv(index=False).encode()

    return build
