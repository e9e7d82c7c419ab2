"""``grader submit``: upload a file to a leaderboard server."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--server", required=True, envvar="GRADER_SERVER", help="Server URL [GRADER_SERVER].")
@click.option("--token", required=True, envvar="GRADER_TOKEN", help="Your token [GRADER_TOKEN].")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for an answer.")
def submit(files: tuple[Path, ...], server: str, token: str, timeout: float) -> None:
    """Submit FILES (a predictions.csv, or a model's .zip / files) and print the result."""
    from leaderboard.client import SubmitFailed, submit_files

    try:
        lines = submit_files(list(files), server=server, token=token, timeout=timeout)
    except SubmitFailed as exc:
        raise click.ClickException(str(exc)) from None
    for line in lines:
        click.echo(line)
