"""``grader validate`` and ``grader sample-submission``: a student's format check, no answer key."""

from __future__ import annotations

import json
from pathlib import Path

import click

from grader.commands.options import GraderSetupError, assignment_option


@click.command()
@click.argument("predictions", type=click.Path(path_type=Path, dir_okay=False))
@assignment_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def validate(predictions: Path, assignment: str, as_json: bool) -> None:
    """Check PREDICTIONS for every problem `grader score` would find, without the answer key.

    Exit status 0: the file is valid; 1: it is not (every problem is listed).
    """
    from grader.assignment import SpecError, load_assignment
    from grader.predictions.read import SubmissionError, probabilities, validate_predictions

    try:
        spec = load_assignment(assignment)
    except SpecError as exc:
        if as_json:
            click.echo(json.dumps({"status": "error", "message": str(exc)}))
        raise GraderSetupError(str(exc)) from None
    try:
        frame = validate_predictions(predictions, spec, name=predictions.name)
    except SubmissionError as exc:
        if as_json:
            click.echo(json.dumps({"status": "invalid", "errors": exc.errors}))
        else:
            click.echo(f"{predictions}: not gradable", err=True)
            for error in exc.errors:
                click.echo(f"  - {error}", err=True)
        raise SystemExit(1) from None
    with_probabilities = probabilities(frame, spec) is not None
    if as_json:
        click.echo(
            json.dumps(
                {
                    "status": "ok",
                    "assignment": spec.name,
                    "rows": len(frame),
                    "probabilities": with_probabilities,
                }
            )
        )
        return
    extra = " with class probabilities" if with_probabilities else ""
    click.echo(
        f"{predictions}: valid for {spec.name} ({len(frame):,} predictions{extra}); "
        f"`grader submit` it, or score it with the answer key"
    )


@click.command("sample-submission")
@assignment_option
def sample_submission(assignment: str) -> None:
    """Print a predictions file in the expected format (every test id, class 0)."""
    from grader.assignment import SpecError, load_assignment
    from grader.predictions.read import sample_submission as sample

    try:
        spec = load_assignment(assignment)
    except SpecError as exc:
        raise GraderSetupError(str(exc)) from None
    click.echo(sample(spec), nl=False)
