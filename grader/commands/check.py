"""``grader check``: grade a folder of student submissions."""

from __future__ import annotations

from pathlib import Path

import click

from grader.commands.options import (
    GraderSetupError,
    assignment_option,
    data_dir_option,
    retired_option,
    solution_option,
)
from grader.exports import ExportFormat


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
@retired_option(
    "--pre-fork",
    is_flag=True,
    why="model folders are always graded in pre-forked boxes that import torch once per batch",
)
@click.option(
    "--lms",
    type=click.Choice([f.value for f in ExportFormat]),
    default=None,
    help="Also write OUT/grades-<LMS>.csv in that gradebook's import format.",
)
@click.option(
    "--roster",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Roster CSV: the LMS's own export (Canvas gradebook, Moodle grading worksheet, "
    "Gradescope roster) or student,name,email,sis_id,login_id,section. Submissions are matched "
    "to it; what does not match is listed.",
)
@click.option(
    "--lms-title",
    default=None,
    help="Title of the gradebook column [the assignment's title].",
)
@click.option(
    "--lms-column-id",
    default=None,
    help="Canvas id of the gradebook column, so that the import updates it [found in a Canvas "
    "gradebook --roster by its title].",
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
    lms: str | None,
    roster: Path | None,
    lms_title: str | None,
    lms_column_id: str | None,
    missing_grade: str,
) -> None:
    """Grade every student in FOLDER; write grades.csv, results.json, report.html and students/.

    FOLDER holds one folder per student, or an LMS bulk download (Canvas's flat files, Moodle's
    per-student folders, Gradescope's export, or their zips).
    """
    from grader.assignment import SpecError, load_assignment
    from grader.batch.run import BatchError, grade_folder
    from grader.grading.status import SubmissionKind
    from grader.predictions.solution import SolutionError
    from grader.roster import RosterError, read_roster_file

    try:
        listed = read_roster_file(roster) if roster is not None else None
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
            solution_path=solution,
            roster=listed.people if listed is not None else None,
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
    models = [r for r in batch.results if r.kind is SubmissionKind.MODEL and r.grade.graded]
    if models:
        verified = sum(bool(r.grade.verified) for r in models)
        others = len(models) - verified
        rest = f"; {others} graded UNVERIFIED (flagged)" if others else ""
        click.echo(f"models: {verified} of {len(models)} graded models verified from their "
                   f"captured graph{rest}")  # fmt: skip
    held = [r.student for r in batch.results if r.grade.held]
    if held:
        click.echo(f"held for review (0 points until accepted): {', '.join(held)}")
    click.echo(f"grades:  {batch.grades_csv}")
    click.echo(f"results: {batch.results_json}")
    click.echo(f"report:  {batch.report_html}")
    if batch.students_dir is not None:
        click.echo(f"student pages: {batch.students_dir}/")
    _say_what_did_not_match(batch)
    if lms is not None:
        from grader.batch.lms import write_lms_export

        export = write_lms_export(batch, spec, lms, out_dir, roster=listed, title=lms_title,
                                  column_id=lms_column_id, missing=missing_grade)  # fmt: skip
        click.echo(f"{lms}: {export.path} ({export.rows} rows)")
        for note in export.notes:
            click.echo(f"  {note}")
        for problem in export.problems:
            click.echo(f"warning: {problem}", err=True)


def _say_what_did_not_match(batch) -> None:
    """The roster match, loudly: every unmatched submission and every student without one."""
    match = batch.roster
    if match is None or match.people is None:
        return
    click.echo(f"roster: {match.summary()}")
    for line in match.messages():
        click.echo(f"warning: {line}", err=True)
    superseded = [n for r in batch.results for n in r.ignored if "superseded by" in n]
    if superseded:
        uploads = "upload" if len(superseded) == 1 else "uploads"
        click.echo(f"{len(superseded)} earlier {uploads} superseded by a later one (listed in "
                   "the report)")  # fmt: skip
