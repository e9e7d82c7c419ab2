"""``grader sanity``: check a model locally before uploading it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.command()
@click.argument("model", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--weights",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="A state_dict (.pt, .pth or .safetensors); default: none (initial weights).",
)
@click.option(
    "--assignment",
    default=None,
    help="Built-in assignment (simplenn, resnet20, ...) or a spec .toml (default: generic).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def sanity(model: Path, weights: Path | None, assignment: str | None, as_json: bool) -> None:
    """Check MODEL (a model.py): layers, parameters, FLOPs, output shape and the assignment rules.

    Exits 0 when every check passes, 1 otherwise.
    """
    from grader.models.sanity import run_sanity

    report, ok = run_sanity(model_path=model, weights=weights, assignment=assignment)
    click.echo(json.dumps(report) if as_json else report["text"])
    sys.exit(0 if ok else 1)
