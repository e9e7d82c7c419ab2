"""Database engine and session lifecycle.

SQLite (the embedded default) runs in WAL mode with a busy timeout, and transactions start with an
explicit ``BEGIN`` so a caller can ask for ``BEGIN IMMEDIATE`` (the job claim). PostgreSQL is
selected by a ``postgresql+psycopg://`` URL.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import click
from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event, select, update
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

import leaderboard.wakeup  # noqa: F401 - registers the NOTIFY sent for every new job
from leaderboard.models import SCHEMA_VERSION, Base, Setting

DEFAULT_URL = "sqlite:///grader.db"


class DatabaseError(click.ClickException):
    """The database cannot be used as configured; the message says what to do."""


def database_url(url: str | None = None) -> str:
    """The URL to use: the argument, else ``GRADER_DATABASE_URL``, else ``sqlite:///grader.db``."""
    return url or os.environ.get("GRADER_DATABASE_URL") or DEFAULT_URL


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL mode, a busy timeout and explicit BEGIN statements."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" hook below emit BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())

    return engine


def create_schema(engine: Engine) -> None:
    """Create every table that does not exist yet, and the shared secret key."""
    Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        if session.get(Setting, "secret_key") is None:
            session.add(Setting(key="secret_key", value=secrets.token_hex(32)))
            session.add(Setting(key="schema_version", value=SCHEMA_VERSION))
    check_schema_version(engine)


def check_schema_version(engine: Engine) -> None:
    """Refuse a database whose tables were made by another version of the leaderboard."""
    with Session(engine) as session:
        found = session.scalar(select(Setting.value).where(Setting.key == "schema_version"))
    if found != SCHEMA_VERSION:
        raise DatabaseError(
            f"database {engine.url.render_as_string(hide_password=True)} holds leaderboard "
            f"tables of schema {found or 1}, this version needs schema {SCHEMA_VERSION}: export "
            "the grades, then start on a new database (grader init-db --database NEW_URL)"
        )


def begin_write(session: Session) -> None:
    """End the session's read transaction and start a write one.

    On SQLite the new transaction is ``BEGIN IMMEDIATE``: a deferred read transaction that later
    writes fails with "database is locked" when another process wrote in between, whereas an
    immediate one waits for the lock (busy timeout). Elsewhere it is a plain transaction.
    """
    session.commit()
    if session.get_bind().dialect.name == "sqlite":
        session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})


def read_setting(session: Session, key: str, default: str | None = None) -> str | None:
    """The value of a setting, or ``default``."""
    row = session.get(Setting, key)
    return row.value if row is not None else default


def write_setting(session: Session, key: str, value: str) -> None:
    """Insert or replace a setting (inside the caller's transaction)."""
    row = session.get(Setting, key)
    if row is None:
        session.add(Setting(key=key, value=value))
    else:
        row.value = value


def bump_board_version(session: Session) -> None:
    """Mark every cached board stale (inside the caller's transaction)."""
    updated = session.execute(
        update(Setting)
        .where(Setting.key == "board_version")
        .values(value=str(secrets.randbits(48)))
    ).rowcount
    if not updated:
        session.add(Setting(key="board_version", value=str(secrets.randbits(48))))


def load_secret_key(engine: Engine) -> str:
    """The secret key every server process shares; a clear error when the schema is missing."""
    try:
        with Session(engine) as session:
            value = session.scalar(select(Setting.value).where(Setting.key == "secret_key"))
    except (OperationalError, ProgrammingError):
        value = None
    if value is None:
        raise DatabaseError(
            f"database {engine.url.render_as_string(hide_password=True)} has no leaderboard "
            "schema; run `grader init-db` (with the same --database) first"
        )
    check_schema_version(engine)
    return value


SERVED_MODELS = "served_models"
"""Setting: JSON ``{queue: [dataset, ...]}`` of the model assignments the server last served."""


def note_served_models(engine: Engine, course) -> None:
    """Record the datasets of ``course``'s model assignments by queue (when they changed)."""
    served: dict[str, list[str]] = {}
    for assignment in course.assignments:
        if assignment.spec.model is not None:
            datasets = served.setdefault(assignment.queue.value, [])
            if assignment.spec.dataset not in datasets:
                datasets.append(assignment.spec.dataset)
    value = json.dumps(served, sort_keys=True)
    with Session(engine) as session, session.begin():
        if read_setting(session, SERVED_MODELS) != value:
            write_setting(session, SERVED_MODELS, value)


def init_app(app: Flask) -> None:
    """Attach the engine and session factory to ``app``; sessions close on teardown."""
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["leaderboard_engine"] = engine
    app.extensions["leaderboard_sessions"] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


def get_session() -> Session:
    """The request's session (created on first use, closed when the app context ends)."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["leaderboard_sessions"]()
    return g.db_session


def get_engine() -> Engine:
    """The app's engine."""
    return current_app.extensions["leaderboard_engine"]


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on error."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
