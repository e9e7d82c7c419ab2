"""Starting the service: schema creation and gunicorn (or the development server)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from leaderboard.db import create_schema, database_url, make_engine
from leaderboard.serving import (
    HEADER_TIMEOUT_ENV,
    HEADER_TIMEOUT_S,
    READ_TIMEOUT_ENV,
    READ_TIMEOUT_S,
)


def _gunicorn_major() -> int:
    from importlib.metadata import version

    return int(version("gunicorn").split(".")[0])


def init_database(*, database: str | None = None) -> str:
    """Create the schema in ``database`` (idempotent); return the URL used."""
    url = database_url(database)
    engine = make_engine(url)
    try:
        create_schema(engine)
    finally:
        engine.dispose()
    return url


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    assignments: Sequence[str] = (),
    course: Path | None = None,
    database: str | None = None,
    broker: str | None = None,
    workers: int = 2,
    threads: int = 8,
    header_timeout: float = HEADER_TIMEOUT_S,
    read_timeout: float = READ_TIMEOUT_S,
    dev: bool = False,
    real_names: bool = False,
) -> None:
    """Create the schema if needed, then serve with gunicorn (or Flask's server with ``dev``).

    The course is ``course`` (a TOML file) or the ``assignments`` (names or spec paths); the
    settings reach every gunicorn worker through the environment. Each of the ``workers``
    processes serves ``threads`` connections at once and drops a client whose headers take over
    ``header_timeout`` seconds or whose body stalls for ``read_timeout`` seconds
    (:class:`leaderboard.serving.GuardedThreadWorker`).
    """
    url = init_database(database=database)
    os.environ["GRADER_DATABASE_URL"] = url
    if course is not None:
        os.environ["GRADER_COURSE"] = str(Path(course).resolve())
    elif assignments:
        resolved = [str(Path(a).resolve()) if a.endswith(".toml") else a for a in assignments]
        os.environ["GRADER_ASSIGNMENT"] = ",".join(resolved)
    if broker:
        os.environ["GRADER_BROKER_URL"] = broker
    if real_names:
        os.environ["GRADER_PSEUDONYMS"] = "0"
    os.environ[HEADER_TIMEOUT_ENV] = str(header_timeout)
    os.environ[READ_TIMEOUT_ENV] = str(read_timeout)
    if dev:
        from leaderboard import create_app

        create_app().run(host=host, port=port, debug=False, threaded=True)
        return
    argv = [
        sys.executable, "-m", "gunicorn",
        "--workers", str(workers),
        "--worker-class", "leaderboard.serving.GuardedThreadWorker",
        "--threads", str(threads),
        "--bind", f"{host}:{port}",
        "--preload",  # import once in the master, then fork the workers
        "--timeout", "120",
        "--access-logfile", "-",
    ]  # fmt: skip
    if _gunicorn_major() >= 27:
        # One control socket per user by default: several servers on a machine would share it.
        argv.append("--no-control-socket")
    argv.append("leaderboard:create_app()")
    os.execv(sys.executable, argv)
