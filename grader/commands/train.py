"""``grader train``: train a reference model with the fast recipe.

The flags are made from the fields of ``reference.train_config.TrainConfig``: its defaults, help
texts and bounds are the only ones.
"""

from __future__ import annotations

import click

from grader.commands.options import settings_options
from reference.train_config import TrainConfig


@click.command()
@click.argument("model", required=False)
@settings_options(TrainConfig, skip=("model",))
@click.option(
    "--all-baselines",
    is_flag=True,
    help="Train every baseline record into reference/baselines/ (or --out) instead of MODEL.",
)
@click.option(
    "--only", multiple=True, help="With --all-baselines: only this baseline (repeatable)."
)
def train(model: str | None, all_baselines: bool, only: tuple[str, ...], **settings) -> None:
    """Train reference MODEL (e.g. resnet20, simplenn, lenet5) and write model.pt, record.json
    and predictions.csv."""
    from pathlib import Path

    from grader.data import DataError
    from reference.train import BASELINE_DIR, run_baselines
    from reference.train import train as run_training

    try:
        if all_baselines:
            out = Path(settings["out"]) if settings["out"] else BASELINE_DIR
            run_baselines(data_dir=settings["data_dir"], out=out, models=only)
            return
        if model is None:
            raise click.UsageError("give a MODEL (e.g. resnet20) or --all-baselines")
        result = run_training(model=model, **settings)
    except (ValueError, DataError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"{model}: test accuracy {result.accuracy:.4f} "
        f"({result.record['data']['test_images']} test images); files in {result.out}"
    )
