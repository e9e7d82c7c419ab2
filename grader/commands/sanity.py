"""``grader sanity``: check a model, or an ops.py of hand-written operations, before uploading."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click


@click.command()
@click.argument("model", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--weights",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The weights: a state_dict or training checkpoint (.pt, .pth, .th, .tar, .ckpt) or "
    ".safetensors; default: none (initial weights).",
)
@click.option(
    "--assignment",
    default=None,
    help="Built-in assignment (simplenn, resnet20, vu-autograd, ...) or a spec .toml "
    "(default: generic; an ops.py needs one).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def sanity(model: Path, weights: Path | None, assignment: str | None, as_json: bool) -> None:
    """Check MODEL (a model.py or a notebook): layers, parameters, FLOPs, output shape and the
    assignment rules. Given an ops.py, check each hand-written operation against torch's
    autograd instead.

    Exits 0 when every check passes, 1 otherwise.
    """
    if _is_ops(model, assignment):
        from grader.ops.sanity import run_ops_sanity

        if assignment is None:
            raise click.UsageError("an ops.py is checked against an assignment: --assignment NAME")
        report, ok = run_ops_sanity(ops_path=model, assignment=assignment)
    else:
        from grader.models.sanity import run_sanity

        report, ok = run_sanity(model_path=model, weights=weights, assignment=assignment,
                                progress=_phase_printer())  # fmt: skip
    click.echo(json.dumps(report) if as_json else report["text"])
    sys.exit(0 if ok else 1)


def _phase_printer():
    """Print each phase of the check to stderr with the seconds since the start."""
    started = time.perf_counter()

    def show(phase: str) -> None:
        click.echo(f"[{time.perf_counter() - started:6.1f} s] {phase}...", err=True)

    return show


def _is_ops(path: Path, assignment: str | None) -> bool:
    """An ops submission: a file named ops.py, or an assignment with an [ops] table."""
    if path.name == "ops.py":
        return True
    if assignment is None:
        return False
    from grader.assignment import SpecError, load_assignment

    try:
        return load_assignment(assignment).ops is not None
    except SpecError:
        return False  # the model check reports the bad spec
