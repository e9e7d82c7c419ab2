"""``grader train``: train a reference model with the fast recipe."""

from __future__ import annotations

import click

SCHEDULES = ("onecycle", "cosine", "step")


@click.command()
@click.argument("model")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=2), default=256, show_default=True)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Peak learning rate [default: per model, 0.2 for BatchNorm nets].",
)
@click.option("--schedule", type=click.Choice(SCHEDULES), default="onecycle", show_default=True)
@click.option(
    "--l1",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="L1 penalty coefficient on the weights.",
)
@click.option(
    "--tta/--no-tta",
    default=True,
    show_default=True,
    help="Average logits with the mirrored test image (CIFAR-10 only).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Data folder [default: $GRADER_DATA_DIR, else ~/.cache/grader/data].",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Output folder [default: out/train/MODEL].",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--limit-train",
    type=click.IntRange(min=2),
    default=None,
    help="Train on the first N training images only [default: all].",
)
@click.option(
    "--predictions/--no-predictions",
    default=True,
    show_default=True,
    help="Write the test set's predictions.csv (Id,Category).",
)
@click.option(
    "--plots/--no-plots",
    default=False,
    show_default=True,
    help="Write weight-histogram and first-layer-filter plots.",
)
def train(model: str, **options) -> None:
    """Train reference MODEL (e.g. resnet20, simplenn, lenet5) and write model.pt, record.json
    and predictions.csv."""
    from grader.data import DataError
    from reference.train import train as run_training

    try:
        result = run_training(model=model, **options)
    except (ValueError, DataError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"{model}: test accuracy {result.accuracy:.4f} "
        f"({result.record['data']['test_images']} test images); files in {result.out}"
    )
