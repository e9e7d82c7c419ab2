"""``grader reproduce``: rerun the course's published experiments."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click


def _parse_lrs(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is None:
        return None
    try:
        lrs = tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: give comma-separated numbers, e.g. 1e-3,2e-3,1e-4,5e-4"
        ) from None
    if not lrs or any(lr <= 0 for lr in lrs):
        raise click.BadParameter(f"{value!r}: learning rates must be positive numbers")
    return lrs


@click.group()
def reproduce() -> None:
    """Reproduce the reference experiments."""


@reproduce.command("bn")
@click.option(
    "--scale",
    type=click.Choice(["small", "full"]),
    default="small",
    show_default=True,
    help="small: quarter-width VGG-A, 100 steps (CPU, minutes); full: VGG-A, 2000 steps (GPU).",
)
@click.option(
    "--lrs",
    callback=_parse_lrs,
    help="Comma-separated learning rates [default: 1e-3,2e-3,1e-4,5e-4].",
)
@click.option("--steps", type=click.IntRange(min=2), help="Steps per run [default: by scale].")
@click.option("--batch-size", type=click.IntRange(min=2), help="Batch size [default: by scale].")
@click.option("--width", type=click.FloatRange(min=0, min_open=True), help="Channel multiplier.")
@click.option("--probe-every", type=click.IntRange(min=1), help="Probe the gradient every N steps.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder holding CIFAR-10 [default: $GRADER_DATA_DIR].",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder [default: out/bn, out/bn-full at full scale].",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Initialisation seed.")
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True
)
def bn(scale: str, **options) -> None:
    """Loss landscape, gradient predictiveness and beta-smoothness of VGG-A with/without BN."""
    from grader.data import DataError
    from reference.bn_experiments import FULL, SMALL, BNExperimentError, run

    base = FULL if scale == "full" else SMALL
    overrides = {key: value for key, value in options.items() if value is not None}
    try:
        document = run(dataclasses.replace(base, **overrides))
    except BNExperimentError as exc:
        raise click.UsageError(str(exc)) from None
    except DataError as exc:
        raise click.ClickException(str(exc)) from None
    out = Path(document["provenance"]["config"]["out_dir"])
    for kind, entry in document["summary"].items():
        click.echo(
            f"{kind:9s} landscape band (along g) {entry['loss_band_width']:.4f}  "
            f"band over lrs {entry['lr_band_width']:.4f}  "
            f"final loss {entry['final_loss_mean']:.4f}"
        )
    click.echo(
        f"wall time {document['provenance']['wall_s']:.1f} s on {document['provenance']['device']}"
    )
    for name in document["files"].values():
        click.echo(f"wrote {out / name}")
    click.echo(f"wrote {out / 'bn_results.json'}")
