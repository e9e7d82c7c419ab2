"""``grader roster``: students (their tokens printed once), instructor and worker tokens,
token resets, deadline extensions and limit overrides."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

database_option = click.option(
    "--database", default=None, help="Database URL [GRADER_DATABASE_URL]."
)


def _engine(database: str | None):
    from leaderboard.db import create_schema, database_url, make_engine

    engine = make_engine(database_url(database))
    create_schema(engine)
    return engine


def _in_session(database: str | None, action):
    """Run ``action(session)`` in one transaction; roster errors become clean CLI errors."""
    from leaderboard.auth import RosterError
    from leaderboard.db import session_scope

    engine = _engine(database)
    try:
        with session_scope(engine) as session:
            return action(session)
    except RosterError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()


@click.group()
def roster() -> None:
    """Manage the people (and grading workers) who may use the server."""


@roster.command("import")
@click.argument("roster_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@database_option
def import_(roster_csv: Path, database: str | None) -> None:
    """Create new students from ROSTER_CSV and print `student,token` lines (shown only once).

    Columns: student (or an LMS login / SIS id), name, email, sis_id, login_id, section, team;
    a Canvas gradebook export works as it is.
    """
    from leaderboard.auth import import_roster

    created = _in_session(database, lambda session: import_roster(session, roster_csv))
    click.echo("student,token")
    for student, token in created:
        click.echo(f"{student},{token}")
    click.echo(
        f"{len(created)} new student(s); tokens are not stored and cannot be shown again", err=True
    )


@roster.command("instructor")
@database_option
def instructor(database: str | None) -> None:
    """Create and print a new instructor token (shown only once)."""
    from leaderboard.auth import create_token
    from leaderboard.status import Role

    click.echo(_in_session(database, lambda session: create_token(session, Role.INSTRUCTOR)))


@roster.command("worker")
@database_option
def worker(database: str | None) -> None:
    """Create and print a token for grading workers (`grader worker --token ...`)."""
    from leaderboard.auth import create_token
    from leaderboard.status import Role

    click.echo(_in_session(database, lambda session: create_token(session, Role.WORKER)))


@roster.command("reset-token")
@click.argument("student")
@database_option
def reset_token(student: str, database: str | None) -> None:
    """Revoke STUDENT's tokens (signing them out everywhere) and print a new one."""
    from leaderboard.auth import reset_student_token

    click.echo(_in_session(database, lambda session: reset_student_token(session, student)))


def _deadline(ctx, param, value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: use a date-time such as 2026-12-20T23:59:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


@roster.command("extend")
@click.argument("student")
@click.option("--assignment", required=True, help="The assignment the exception is for.")
@click.option(
    "--deadline", callback=_deadline, help="The student's own deadline (UTC unless given)."
)
@click.option("--daily-limit", type=click.IntRange(min=0), help="The student's own daily limit.")
@database_option
def extend(student: str, assignment: str, deadline, daily_limit, database) -> None:
    """Give STUDENT an extension and/or another daily limit for one assignment."""
    from sqlalchemy import select

    from grader.assignment import SpecError, load_assignment
    from leaderboard.auth import RosterError
    from leaderboard.models import Event, Student
    from leaderboard.rules import set_override

    if deadline is None and daily_limit is None:
        raise click.UsageError("give --deadline, --daily-limit or both")
    try:
        spec = load_assignment(assignment)
    except SpecError as exc:
        raise click.BadParameter(str(exc), param_hint="--assignment") from None

    def action(session) -> str:
        row = session.scalar(select(Student).where(Student.student == student))
        if row is None:
            raise RosterError(f"no student {student!r} on the roster")
        override = set_override(session, spec, row.id, deadline=deadline, daily_limit=daily_limit)
        parts = []
        if override.deadline is not None:
            parts.append(f"deadline {override.deadline:%Y-%m-%d %H:%M:%S} UTC")
        if override.daily_limit is not None:
            parts.append(f"daily limit {override.daily_limit}")
        text = f"{student} on {spec.name}: {', '.join(parts)}"
        session.add(Event(kind="override", student_id=row.id, assignment=spec.name, message=text))
        return text

    click.echo(_in_session(database, action))
