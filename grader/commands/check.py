"""``grader check``: grade a folder of student submissions."""

from __future__ import annotations

from pathlib import Path

import click

from grader.commands.options import (
    GraderSetupError,
    assignment_option,
    data_dir_option,
    solution_option,
)


@click.command()
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@assignment_option
@solution_option
@data_dir_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("out"),
    show_default=True,
    help="Folder for grades.csv, report.html, the plots and the cache.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Parallel workers, one warm box each for models (default: one per core).",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--pre-fork",
    is_flag=True,
    help="Grade model submissions in pre-forked jailed workers that import torch once per batch.",
)
@click.option(
    "--lms",
    type=click.Choice(["canvas", "moodle", "gradescope", "plain"]),
    default=None,
    help="Also write OUT/grades-<LMS>.csv in that gradebook's import format.",
)
@click.option(
    "--roster",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Roster CSV (student, name, email, sis_id, login_id, section) for the --lms export.",
)
@click.option(
    "--missing-grade",
    type=click.Choice(["zero", "blank"]),
    default="zero",
    show_default=True,
    help="What an invalid or missing submission gets in the --lms export.",
)
def check(
    folder: Path,
    assignment: str,
    solution: Path | None,
    data_dir: Path | None,
    out_dir: Path,
    jobs: int | None,
    quiet: bool,
    pre_fork: bool,
    lms: str | None,
    roster: Path | None,
    missing_grade: str,
) -> None:
    """Grade every student in FOLDER; write grades.csv, results.json, report.html and students/.

    FOLDER holds one folder per student, or an LMS bulk download (Canvas's flat files, Moodle's
    per-student folders, or their zips).
    """
    from grader.assignment import SpecError, load_assignment
    from grader.batch.run import BatchError, grade_folder
    from grader.predictions.solution import SolutionError
    from grader.roster import RosterError, read_roster

    try:
        people = read_roster(roster) if roster is not None else None
    except RosterError as exc:
        raise GraderSetupError(str(exc)) from None
    try:
        spec = load_assignment(assignment)
        batch = grade_folder(
            folder,
            spec=spec,
            data_dir=data_dir,
            jobs=jobs,
            out_dir=out_dir,
            progress=not quiet,
            pre_fork=pre_fork,
            solution_path=solution,
        )
    except (SpecError, SolutionError, BatchError) as exc:
        raise GraderSetupError(str(exc)) from None
    counts = batch.counts
    flagged = sum(bool(r.flags) for r in batch.results)
    cached = f"{batch.cache_hits} from the cache, " if batch.cache_hits else ""
    click.echo(
        f"{len(batch.results)} submissions: {counts['ok']} graded, {counts['invalid']} invalid, "
        f"{counts['error']} errors, {flagged} flagged ({cached}{batch.elapsed_s:.1f} s)"
    )
    models = [r for r in batch.results if r.kind == "model" and r.status == "ok"]
    if models:
        verified = sum(bool(r.verified) for r in models)
        others = len(models) - verified
        rest = f"; {others} graded UNVERIFIED (flagged)" if others else ""
        click.echo(f"models: {verified} of {len(models)} graded models verified from their "
                   f"captured graph{rest}")  # fmt: skip
    click.echo(f"grades:  {batch.grades_csv}")
    click.echo(f"results: {batch.results_json}")
    click.echo(f"report:  {batch.report_html}")
    if batch.students_dir is not None:
        click.echo(f"student pages: {batch.students_dir}/")
    if lms is not None:
        from grader.exports import GradeItem, rows_from_results, write_export

        item = GradeItem(name=spec.name, title=spec.title, max_points=spec.total_points)
        export = out_dir / f"grades-{lms}.csv"
        rows = rows_from_results(batch.results, people)
        export.write_text(write_export(rows, item, lms, missing=missing_grade), encoding="utf-8")
        click.echo(f"{lms}: {export}")
