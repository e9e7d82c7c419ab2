"""``grader roster``: import students (printing their tokens once) and create instructor tokens."""

from __future__ import annotations

from pathlib import Path

import click


def _engine(database: str | None):
    from leaderboard.db import create_schema, database_url, make_engine

    engine = make_engine(database_url(database))
    create_schema(engine)
    return engine


@click.group()
def roster() -> None:
    """Manage the people who may submit."""


@roster.command("import")
@click.argument("roster_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--database", default=None, help="Database URL [GRADER_DATABASE_URL].")
def import_(roster_csv: Path, database: str | None) -> None:
    """Create new students from ROSTER_CSV and print `student,token` lines (shown only once)."""
    from leaderboard.auth import RosterError, import_roster
    from leaderboard.db import session_scope

    engine = _engine(database)
    try:
        with session_scope(engine) as session:
            created = import_roster(session, roster_csv)
    except RosterError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
    click.echo("student,token")
    for student, token in created:
        click.echo(f"{student},{token}")
    click.echo(
        f"{len(created)} new student(s); tokens are not stored and cannot be shown again", err=True
    )


@roster.command("instructor")
@click.option("--database", default=None, help="Database URL [GRADER_DATABASE_URL].")
def instructor(database: str | None) -> None:
    """Create and print a new instructor token (shown only once)."""
    from leaderboard.auth import create_instructor_token
    from leaderboard.db import session_scope

    engine = _engine(database)
    try:
        with session_scope(engine) as session:
            token = create_instructor_token(session)
    finally:
        engine.dispose()
    click.echo(token)
