"""``grader score``: score one predictions.csv."""

from __future__ import annotations

import json
from pathlib import Path

import click

from grader.commands.options import (
    GraderSetupError,
    assignment_option,
    data_dir_option,
    solution_option,
)


@click.command()
@click.argument("predictions", type=click.Path(path_type=Path, dir_okay=False))
@assignment_option
@solution_option
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def score(
    predictions: Path, assignment: str, solution: Path | None, data_dir: Path | None, as_json: bool
) -> None:
    """Score PREDICTIONS (a CSV of id,label rows) and print the accuracy."""
    from grader.assignment import SpecError, load_assignment
    from grader.predictions.read import SubmissionError
    from grader.predictions.scoring import score_file
    from grader.predictions.solution import SolutionError, load_solution

    try:
        spec = load_assignment(assignment)
        answer_key = load_solution(spec, data_dir, path=solution)
    except (SpecError, SolutionError) as exc:
        if as_json:
            click.echo(json.dumps({"status": "error", "message": str(exc)}))
        raise GraderSetupError(str(exc)) from None
    try:
        result = score_file(predictions, spec=spec, solution=answer_key, name=predictions.name)
    except SubmissionError as exc:
        if as_json:
            click.echo(json.dumps({"status": "invalid", "errors": exc.errors}))
        else:
            click.echo(f"{predictions}: not gradable", err=True)
            for error in exc.errors:
                click.echo(f"  - {error}", err=True)
        raise SystemExit(1) from None
    if as_json:
        click.echo(json.dumps({"status": "ok", "assignment": spec.name, **result.details()}))
        return
    for split in ("public", "private", "all"):
        metrics = result.splits[split]
        shown = "  ".join(f"{name} {value:.4f}" for name, value in metrics.items())
        click.echo(f"{split:<8} ({result.counts[split]:>5} images)  {shown}")
    if result.max_points:
        click.echo(
            f"points   {result.points:g} / {result.max_points:g} "
            f"(graded on {result.grade_split} accuracy)"
        )
