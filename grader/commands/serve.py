"""``grader serve`` and ``grader init-db``: run a course's leaderboard service."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--assignment",
    "assignments",
    multiple=True,
    help="Built-in spec name or .toml path; repeat for several assignments [cifar10].",
)
@click.option(
    "--course",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="A course TOML listing the assignments and their rules (instead of --assignment).",
)
@click.option(
    "--database",
    default=None,
    help="Database URL [GRADER_DATABASE_URL, else sqlite:///grader.db].",
)
@click.option(
    "--broker",
    default=None,
    envvar="GRADER_BROKER_URL",
    help="Redis URL: send model jobs to Celery workers on any machine [GRADER_BROKER_URL; "
    "default: none, the embedded `grader worker` takes them from the database].",
)
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn workers.")
@click.option(
    "--threads",
    default=8,
    show_default=True,
    type=click.IntRange(min=1),
    help="Connections each worker serves at once (gunicorn's gthread worker).",
)
@click.option(
    "--header-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a client has to send its request line and headers.",
)
@click.option(
    "--read-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a request body may stall between two reads.",
)
@click.option(
    "--real-names",
    is_flag=True,
    help="Show real names until the instructor switches (default: pseudonyms).",
)
@click.option("--dev", is_flag=True, help="Use Flask's development server instead of gunicorn.")
def serve(
    host, port, assignments, course, database, broker, workers, threads, header_timeout,
    read_timeout, real_names, dev,
) -> None:  # fmt: skip
    """Serve the course's boards, upload form and API (creates the database schema when missing)."""
    from grader.assignment import SpecError
    from leaderboard.course import CourseError, course_of, load_course
    from leaderboard.server import serve as run

    if course is not None and assignments:
        raise click.UsageError("give either --course or --assignment, not both")
    try:
        if course is not None:
            load_course(course)
        if assignments:
            course_of(list(assignments))
    except CourseError as exc:
        hint = "--course" if course is not None else "--assignment"
        raise click.BadParameter(str(exc), param_hint=hint) from None
    except SpecError as exc:
        raise click.BadParameter(str(exc), param_hint="--assignment") from None
    run(
        host=host,
        port=port,
        assignments=assignments,
        course=course,
        database=database,
        broker=broker,
        workers=workers,
        threads=threads,
        header_timeout=header_timeout,
        read_timeout=read_timeout,
        dev=dev,
        real_names=real_names,
    )


@click.command("init-db")
@click.option("--database", default=None, help="Database URL [GRADER_DATABASE_URL].")
def init_db(database) -> None:
    """Create the leaderboard's tables (safe to run again)."""
    from sqlalchemy.exc import SQLAlchemyError

    from leaderboard.db import DatabaseError
    from leaderboard.server import init_database

    try:
        url = init_database(database=database)
    except DatabaseError:
        raise
    except SQLAlchemyError as exc:
        raise click.ClickException(
            f"cannot create the schema: {exc.__class__.__name__}: {exc}"
        ) from None
    click.echo(f"database ready: {url}")
