"""``grader fetch-data``: download registered data sets into the data folder (needs internet)."""

from __future__ import annotations

from pathlib import Path

import click

from grader.commands.options import GraderSetupError, data_dir_option


class _DatasetName(click.ParamType):
    """A registered data set's name (the registry is read when the command runs)."""

    name = "dataset"

    def convert(self, value, param, ctx):
        from grader.data import DATASETS

        if value not in DATASETS:
            self.fail(f"{value!r}: use one of {', '.join(map(repr, DATASETS))}", param, ctx)
        return value


@click.command("fetch-data")
@click.argument("datasets", nargs=-1, type=_DatasetName(), required=True)
@data_dir_option
def fetch_data(datasets: tuple[str, ...], data_dir: Path | None) -> None:
    """Download DATASETS (e.g. cifar10, mnist) into the data folder; files already there are
    kept."""
    from grader.data import DataError, fetch_dataset

    for name in datasets:
        try:
            folder = fetch_dataset(name, data_dir)
        except DataError as exc:
            raise GraderSetupError(str(exc)) from None
        click.echo(f"{name}: {folder}")
