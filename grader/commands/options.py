"""Options and errors shared by several commands."""

from __future__ import annotations

from pathlib import Path

import click


class GraderSetupError(click.ClickException):
    """A bad assignment spec, answer key or folder: the grader's setup, not a student's file."""

    exit_code = 2


assignment_option = click.option(
    "--assignment",
    default="cifar10",
    show_default=True,
    help="Built-in assignment name or path of a spec .toml file.",
)
solution_option = click.option(
    "--solution",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Labels CSV to grade against (default: the assignment's).",
)
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Data folder (default: $GRADER_DATA_DIR, else ~/.cache/grader/data).",
)
