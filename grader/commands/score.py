"""``grader score``: score one predictions.csv against the answer key."""

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

NEEDS_ANSWER_KEY = (
    "grader score needs the answer key (the test labels), which the instructor keeps; "
    "to check the file's format without it, run `grader validate {file}`"
)


@click.command()
@click.argument("predictions", type=click.Path(path_type=Path, dir_okay=False))
@assignment_option
@solution_option
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="Show every split and the points, not only what the assignment lets a student see.",
)
def score(
    predictions: Path,
    assignment: str,
    solution: Path | None,
    data_dir: Path | None,
    as_json: bool,
    show_all: bool,
) -> None:
    """Score PREDICTIONS (a CSV of id,label rows) against the answer key; print the accuracy.

    Shows the splits the assignment lets a student see (usually the public one); --all shows
    every split and the rubric points.
    """
    from grader.assignment import SpecError, load_assignment
    from grader.predictions.read import SubmissionError
    from grader.predictions.scoring import score_file
    from grader.predictions.solution import SolutionError, load_solution

    try:
        spec = load_assignment(assignment)
        answer_key = load_solution(spec, data_dir, path=solution)
    except SpecError as exc:
        _setup_error(str(exc), as_json)
    except SolutionError as exc:
        _setup_error(f"{exc}\n{NEEDS_ANSWER_KEY.format(file=predictions)}", as_json)
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
    splits = [s for s in ("public", "private", "all") if show_all or s in spec.student_splits]
    show_points = show_all or spec.grade_split in splits
    if as_json:
        details = result.details()
        shown = {
            "status": "ok",
            "assignment": spec.name,
            "scores": {s: details["scores"][s] for s in splits},
            "counts": {s: details["counts"][s] for s in splits},
            "per_class": {s: details["per_class"][s] for s in splits},
            "confusion": {s: details["confusion"][s] for s in splits},
        }
        if show_points:
            shown |= {k: details[k] for k in ("points", "max_points", "grade_split")}
        click.echo(json.dumps(shown))
        return
    for split in splits:
        metrics = result.splits[split]
        text = "  ".join(f"{name} {value:.4f}" for name, value in metrics.items())
        click.echo(f"{split:<8} ({result.counts[split]:>5} images)  {text}")
    if result.max_points and show_points:
        click.echo(
            f"points   {result.points:g} / {result.max_points:g} "
            f"(graded on {result.grade_split} accuracy)"
        )
    hidden = [s for s in ("public", "private", "all") if s not in splits]
    if hidden:
        click.echo(f"(not shown to students: {', '.join(hidden)} split; --all shows them)")


def _setup_error(message: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"status": "error", "message": message}))
    raise GraderSetupError(message) from None
