"""Starting the service: schema creation and gunicorn (or the development server)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from leaderboard.db import create_schema, database_url, make_engine


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
    assignment: str | None = None,
    database: str | None = None,
    workers: int = 2,
    dev: bool = False,
    upload_dir: Path | None = None,
    pseudonyms: bool = False,
) -> None:
    """Create the schema if needed, then serve with gunicorn (or Flask's server with ``dev``)."""
    url = init_database(database=database)
    os.environ["GRADER_DATABASE_URL"] = url
    if assignment:
        os.environ["GRADER_ASSIGNMENT"] = str(assignment)
    if upload_dir is not None:
        os.environ["GRADER_UPLOAD_DIR"] = str(Path(upload_dir).resolve())
    if pseudonyms:
        os.environ["GRADER_PSEUDONYMS"] = "1"
    if dev:
        from leaderboard import create_app

        create_app().run(host=host, port=port, debug=False, threaded=True)
        return
    argv = [
        sys.executable, "-m", "gunicorn",
        "--workers", str(workers),
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
