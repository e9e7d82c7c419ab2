"""``grader sanity``: a student's check of a model before uploading it, through the one pipeline.

The model file (with its sibling modules) and the optional weights are copied into a submission
folder and graded by :func:`grader.models.pipeline.grade_model` on a random probe batch (no data
set needed): the layer table, parameters, FLOPs, output shape and the assignment's rules. Where
bubblewrap is missing (a student's laptop) the same stages run unconfined, and the report says
so.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Any

from grader.assignment import INPUT_SHAPES, Assignment, ModelSpec, SpecError, load_assignment
from grader.models.files import MODEL_FILE, WEIGHT_SUFFIXES, is_weights_file
from grader.models.pipeline import grade_model
from grader.models.result import GradeStatus, ModelResult
from grader.sandbox.jail import bubblewrap_available


def sanity_check(
    model_path: Path,
    *,
    weights: Path | None = None,
    assignment: Assignment | None = None,
    sandbox: bool | None = None,
) -> ModelResult:
    """Check ``model_path`` (+ optional weights) against ``assignment`` (default: a generic
    CIFAR-10 model). ``sandbox=None`` uses the sandbox where bubblewrap is present."""
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
        return grade_model(folder, spec, require_weights=False, with_images=False, sandbox=use_box)


def _sanity_spec(assignment: Assignment | None) -> Assignment:
    if assignment is not None and assignment.model is not None:
        return assignment
    dataset = assignment.dataset if assignment is not None else "cifar10"
    base = assignment or Assignment(name="sanity", dataset=dataset)
    return dataclasses.replace(base, model=ModelSpec(input_shape=INPUT_SHAPES[dataset]))


def run_sanity(
    *, model_path: Path, weights: Path | None = None, assignment: str | None = None
) -> tuple[dict[str, Any], bool]:
    """The JSON report (with a ``text`` rendering) and whether every check passed.

    Every failure, a bad path or spec included, becomes the report's message: never a traceback.
    """
    try:
        spec = load_assignment(assignment) if assignment else None
        result = sanity_check(model_path, weights=weights, assignment=spec)
    except (SpecError, OSError, ValueError) as exc:
        result = ModelResult(GradeStatus.INVALID, str(exc), sandboxed=False)
        report = result.to_json()
        report["ran"] = False
        report["text"] = render_text(result, ran=False, names=(model_path, weights))
        return report, False
    report = result.to_json()
    report["ran"] = True
    report["text"] = render_text(result, names=(model_path, weights))
    return report, result.status is GradeStatus.OK


def render_text(
    result: ModelResult, *, ran: bool = True, names: tuple[Path, Path | None] | None = None
) -> str:
    """The report a student reads: the layer table, totals, each check and the verdict."""
    lines = []
    if names is not None and ran:
        model, weights = names
        loaded = f" with weights {weights.name}" if weights else " with its initial weights"
        lines.append(f"checked {model.name}{loaded}")
        lines.append("")
    if result.layers:
        lines.append(
            f"{'layer':<32} {'type':<18} {'output shape':<16} {'params':>10} {'FLOPs':>12}"
        )
        for layer in result.layers:
            shape = "x".join(map(str, layer.output_shape)) or "-"
            lines.append(
                f"{layer.name[:32]:<32} {layer.type[:18]:<18} {shape:<16} {layer.params:>10,} "
                f"{layer.flops:>12,}"
            )
        lines.append("")
    if result.total_params is not None:
        lines.append(f"total parameters: {result.total_params:,}")
    if result.other_tensors:
        lines.append(
            f"other tensors read: {result.other_tensors:,} values (buffers and constants used as "
            "weights: the parameter limits count them too)"
        )
    if result.unused:
        lines.append(f"unused (not counted): {', '.join(result.unused)}")
    if result.flops is not None:
        lines.append(f"FLOPs per image:  {result.flops:,}")
    if result.output_shape is not None:
        lines.append(f"output shape:     {tuple(result.output_shape)} on a probe batch")
    if ran and result.verified:
        lines.append("verified: every number above comes from running the captured graph")
    if ran and not result.sandboxed:
        lines.append("note: bubblewrap not found, so the model ran unconfined on this machine")
    lines.append("")
    for check in result.checks:
        lines.append(f"[{'PASS' if check.passed else 'FAIL'}] {check.name}: {check.message}")
    for flag in result.flags:
        lines.append(f"[FLAG] {flag}")
    verdict = "OK" if result.status is GradeStatus.OK else "NOT OK"
    lines.append(f"\n{verdict}: {result.message}")
    return "\n".join(lines)
