"""``grader fetch-data``: download CIFAR-10 / MNIST into the data folder (needs internet)."""

from __future__ import annotations

from pathlib import Path

import click

from grader.commands.options import GraderSetupError, data_dir_option


@click.command("fetch-data")
@click.argument("datasets", nargs=-1, type=click.Choice(["cifar10", "mnist"]), required=True)
@data_dir_option
def fetch_data(datasets: tuple[str, ...], data_dir: Path | None) -> None:
    """Download DATASETS (cifar10, mnist) into the data folder; files already there are kept."""
    from grader.data import DataError, fetch_dataset

    for name in datasets:
        try:
            folder = fetch_dataset(name, data_dir)
        except DataError as exc:
            raise GraderSetupError(str(exc)) from None
        click.echo(f"{name}: {folder}")
