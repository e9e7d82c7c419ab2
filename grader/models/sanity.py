"""``grader sanity``: a student's check of a model before uploading it, through the boundary.

The model file (with its sibling modules) and the optional weights are copied into a submission
folder and graded by :func:`grader.grading.grade_submission` on a random probe batch (no data
set needed): the layer table, parameters, FLOPs, output shape, the assignment's rules and the
points its checklist and sparsity levels give. Where bubblewrap is missing (a student's laptop)
the same stages run unconfined, and the report says so.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Any

from grader.assignment import INPUT_SHAPES, Assignment, ModelSpec, SpecError, load_assignment
from grader.grading.grade import Grade, not_graded
from grader.grading.status import GradeStatus, SubmissionKind
from grader.grading.text import render_text
from grader.models.files import MODEL_FILE, WEIGHT_SUFFIXES, is_weights_file
from grader.records import to_data
from grader.sandbox.jail import bubblewrap_available


def sanity_check(
    model_path: Path,
    *,
    weights: Path | None = None,
    assignment: Assignment | None = None,
    sandbox: bool | None = None,
) -> Grade:
    """Check ``model_path`` (+ optional weights) against ``assignment`` (default: a generic
    CIFAR-10 model) through :func:`grader.grading.grade_submission` on a probe batch: every check
    and the points the checks earn (the accuracy is scored after upload). ``sandbox=None`` uses
    the sandbox where bubblewrap is present."""
    from grader.grading.submission import grade_submission

    model_path, weights = Path(model_path), Path(weights) if weights else None
    for path in (model_path, weights):
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
    if weights is not None and not is_weights_file(weights):
        raise ValueError(f"{weights}: weights must be a {', '.join(WEIGHT_SUFFIXES)} file")
    spec = _sanity_spec(assignment)
    use_box = bubblewrap_available() if sandbox is None else sandbox
    with tempfile.TemporaryDirectory(prefix="grader-sanity-") as tmp:
        folder = Path(tmp) / "submission"
        folder.mkdir()
        for sibling in model_path.parent.glob("*.py"):  # model.py's own imports must work
            if sibling != model_path and sibling.name != MODEL_FILE:
                shutil.copy2(sibling, folder / sibling.name)
        shutil.copy2(model_path, folder / MODEL_FILE)
        if weights is not None:
            shutil.copy2(weights, folder / weights.name)
        return grade_submission(folder, spec, with_images=False, sandbox=use_box)


def _sanity_spec(assignment: Assignment | None) -> Assignment:
    if assignment is not None and assignment.model is not None:
        return assignment
    dataset = assignment.dataset if assignment is not None else "cifar10"
    base = assignment or Assignment(name="sanity", dataset=dataset)
    return dataclasses.replace(base, model=ModelSpec(input_shape=INPUT_SHAPES[dataset]))


def run_sanity(
    *, model_path: Path, weights: Path | None = None, assignment: str | None = None
) -> tuple[dict[str, Any], bool]:
    """The JSON report (with a ``text`` rendering) and whether every required check passed.

    Every failure, a bad path or spec included, becomes the report's message: never a traceback.
    """
    try:
        spec = load_assignment(assignment) if assignment else None
        grade = sanity_check(model_path, weights=weights, assignment=spec)
    except (SpecError, OSError, ValueError) as exc:
        grade = not_graded(SubmissionKind.MODEL, str(exc), sandboxed=False)
        return sanity_report(grade, ran=False, names=(model_path, weights)), False
    report = sanity_report(grade, ran=True, names=(model_path, weights))
    return report, grade.status is GradeStatus.OK


def sanity_report(
    grade: Grade, *, ran: bool, names: tuple[Path, Path | None] | None = None
) -> dict[str, Any]:
    """``grader sanity --json``: the grade's fields (no labels, no log), ``points`` and
    ``point_lines`` included, whether it ran, and the text a student reads."""
    report = to_data(dataclasses.replace(grade, labels=None, log=""))
    report.pop("labels")
    report["earned"] = grade.earned
    report["ran"] = ran
    report["text"] = render_text(grade, ran=ran, names=names)
    return report
