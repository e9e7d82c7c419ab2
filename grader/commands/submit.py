"""``grader submit``: upload a file to a course's leaderboard server."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--server", required=True, envvar="GRADER_SERVER", help="Server URL [GRADER_SERVER].")
@click.option("--token", required=True, envvar="GRADER_TOKEN", help="Your token [GRADER_TOKEN].")
@click.option(
    "--assignment", default=None, help="The assignment to submit to [the course's first]."
)
@click.option(
    "--wait", is_flag=True, help="For a queued model: wait until it is graded and print the score."
)
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for an answer.")
@click.option(
    "--wait-timeout", default=900.0, show_default=True, help="Seconds --wait waits for a grade."
)
def submit(files, server, token, assignment, wait, timeout, wait_timeout) -> None:
    """Submit FILES (a predictions.csv, or a model's .zip / files) and print the result."""
    from leaderboard.client import SubmitFailed, submit_files, wait_for_grade

    try:
        body, lines = submit_files(
            list(files), server=server, token=token, assignment=assignment, timeout=timeout
        )
        for line in lines:
            click.echo(line)
        if wait and body.get("status") == "queued":
            lines = wait_for_grade(
                body["submission_id"],
                server=server,
                token=token,
                timeout=wait_timeout,
                on_wait=lambda text: click.echo(text, err=True),
            )
            for line in lines:
                click.echo(line)
    except SubmitFailed as exc:
        raise click.ClickException(str(exc)) from None
