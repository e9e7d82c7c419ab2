"""``grader serve`` and ``grader init-db``: run the leaderboard service."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option("--assignment", default=None, help="Built-in spec name or .toml path [cifar10].")
@click.option(
    "--database",
    default=None,
    help="Database URL [GRADER_DATABASE_URL, else sqlite:///grader.db].",
)
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn workers.")
@click.option("--upload-dir", type=click.Path(path_type=Path), help="Where uploads go [./uploads].")
@click.option("--pseudonyms", is_flag=True, help="Show pseudonyms instead of names on the board.")
@click.option("--dev", is_flag=True, help="Use Flask's development server instead of gunicorn.")
def serve(host, port, assignment, database, workers, upload_dir, pseudonyms, dev) -> None:
    """Serve the leaderboard (creates the database schema when missing)."""
    from grader.assignment import SpecError, load_assignment
    from leaderboard.server import serve as run

    if assignment:
        try:
            load_assignment(assignment)
        except SpecError as exc:
            raise click.BadParameter(str(exc), param_hint="--assignment") from None
    run(
        host=host,
        port=port,
        assignment=assignment,
        database=database,
        workers=workers,
        dev=dev,
        upload_dir=upload_dir,
        pseudonyms=pseudonyms,
    )


@click.command("init-db")
@click.option("--database", default=None, help="Database URL [GRADER_DATABASE_URL].")
def init_db(database) -> None:
    """Create the leaderboard's tables (safe to run again)."""
    from sqlalchemy.exc import SQLAlchemyError

    from leaderboard.server import init_database

    try:
        url = init_database(database=database)
    except SQLAlchemyError as exc:
        raise click.ClickException(
            f"cannot create the schema: {exc.__class__.__name__}: {exc}"
        ) from None
    click.echo(f"database ready: {url}")
