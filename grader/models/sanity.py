"""``grader sanity``: a student's check of a model before uploading it, through the boundary.

The model file (``model.py`` or a notebook), the Python modules and packages under its folder
(``helpers.py``, ``utils/nn.py``) and the optional weights are copied into a submission folder
and graded by :func:`grader.grading.grade_submission` on a random probe batch (no data set
needed): the layer table, parameters, FLOPs, output shape, the assignment's rules and the points
its checklist and sparsity levels give. Where bubblewrap is missing (a student's laptop) the same
stages run unconfined, and the report says so.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grader.assignment import Assignment, ModelSpec, SpecError, load_assignment
from grader.data import get_dataset
from grader.grading.grade import Grade, not_graded
from grader.grading.intake import IntakeLimits
from grader.grading.status import GradeStatus, SubmissionKind
from grader.grading.text import render_text
from grader.models.files import MODEL_FILE, WEIGHT_SUFFIXES, is_notebook, is_weights_file
from grader.records import to_data

LEFT_BEHIND = frozenset({"__pycache__", "node_modules", "site-packages", "data", "wandb"})
"""Folders under model.py's folder that are never copied (with every hidden folder and virtual
environment): caches, installed packages, data sets, run logs."""


def sanity_check(
    model_path: Path,
    *,
    weights: Path | None = None,
    assignment: Assignment | None = None,
    sandbox: bool | None = None,
    progress: Callable[[str], None] | None = None,
) -> Grade:
    """Check ``model_path`` (a model.py or a notebook, + optional weights) against
    ``assignment`` (default: a generic CIFAR-10 model) through
    :func:`grader.grading.grade_submission` on a probe batch: every check and the points the
    checks earn (the accuracy is scored after upload). ``sandbox=None`` uses the sandbox where
    bubblewrap is present; ``progress`` is called as each phase starts."""
    model_path, weights = Path(model_path), Path(weights) if weights else None
    for path in (model_path, weights):
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
    if weights is not None and not is_weights_file(weights):
        raise ValueError(f"{weights}: weights must be a {', '.join(WEIGHT_SUFFIXES)} file")
    spec = _sanity_spec(assignment)
    from grader.grading.submission import grade_submission  # after the cheap checks
    from grader.sandbox.jail import bubblewrap_available

    use_box = bubblewrap_available() if sandbox is None else sandbox
    with tempfile.TemporaryDirectory(prefix="grader-sanity-") as tmp:
        folder = Path(tmp) / "submission"
        folder.mkdir()
        notebook = is_notebook(model_path)
        for module in python_files(model_path.parent):  # model.py's own imports must work
            relative = module.relative_to(model_path.parent)
            if module != model_path and not (len(relative.parts) == 1 and (
                relative.name == MODEL_FILE or (notebook and relative.name.lower() == MODEL_FILE)
            )):  # fmt: skip
                (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(module, folder / relative)
        shutil.copy2(model_path, folder / (model_path.name if notebook else MODEL_FILE))
        if weights is not None:
            shutil.copy2(weights, folder / weights.name)
        return grade_submission(folder, spec, with_images=False, sandbox=use_box,
                                progress=progress)  # fmt: skip


def python_files(root: Path, limits: IntakeLimits | None = None) -> list[Path]:
    """The ``.py`` files under ``root`` a submission would carry: its own modules and packages,
    not hidden folders, virtual environments, caches or data (ValueError past the limits)."""
    limits = limits or IntakeLimits()
    found: list[Path] = []
    for folder, dirs, names in os.walk(root):
        depth = len(Path(folder).relative_to(root).parts)
        dirs[:] = sorted(
            d for d in dirs
            if not d.startswith(".") and d not in LEFT_BEHIND and depth + 1 < limits.max_depth
            and not (Path(folder) / d / "pyvenv.cfg").exists()
        )  # fmt: skip
        found += [Path(folder) / n for n in sorted(names) if n.endswith(".py")]
        if len(found) > limits.max_files:
            raise ValueError(
                f"{root} holds more than {limits.max_files} Python files; run grader sanity on "
                "a folder holding only your submission (model.py and its own modules)"
            )
    return found


def _sanity_spec(assignment: Assignment | None) -> Assignment:
    if assignment is not None and assignment.model is not None:
        return assignment
    dataset = get_dataset(assignment.dataset if assignment is not None else "cifar10")
    base = assignment or Assignment(name="sanity", dataset=dataset.name)
    model = ModelSpec(input_shape=dataset.input_shape, num_classes=dataset.num_classes)
    return dataclasses.replace(base, model=model)


def run_sanity(
    *,
    model_path: Path,
    weights: Path | None = None,
    assignment: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], bool]:
    """The JSON report (with a ``text`` rendering) and whether every required check passed.

    Every failure, a bad path or spec included, becomes the report's message: never a traceback.
    """
    try:
        spec = load_assignment(assignment) if assignment else None
        grade = sanity_check(model_path, weights=weights, assignment=spec, progress=progress)
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
