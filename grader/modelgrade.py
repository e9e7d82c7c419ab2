"""Grader-side model evaluation: run the model check in the sandbox, bring back the logits.

:func:`grade_model_folder` is what ``grader check`` and the leaderboard worker call for a model
submission: the test IMAGES go into the box as a ``.npy``, the logits come back, and accuracy is
computed by the caller against labels the box never saw. :func:`sanity_check` is the student's
local check (``grader sanity``); it runs in the sandbox when bubblewrap is present and in-process
(saying so) otherwise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from grader.assignment import INPUT_SHAPES, Assignment, ModelSpec
from grader.sandbox import (
    WEIGHT_SUFFIXES,
    Limits,
    SandboxUnavailable,
    TaskResult,
    bubblewrap_available,
    run_task,
)

if TYPE_CHECKING:
    from grader.zygote import Zygote

GradeStatus = Literal["ok", "invalid", "error"]
CHECK_TASK = "grader.modelcheck:check_task"


@dataclass
class Check:
    """One pass/fail line of a model check, with its reason."""

    name: str
    passed: bool
    message: str


@dataclass
class ModelGrade:
    """The outcome of checking (and evaluating) one model submission."""

    status: GradeStatus
    """``ok``: every check passed; ``invalid``: the submission is at fault; ``error``: grader."""
    message: str
    logits: np.ndarray | None = None
    """(N, num_classes) float32 on the test images, in the dataset's order."""
    total_params: int | None = None
    flops: int | None = None
    """Forward FLOPs for one image."""
    checks: list[Check] = field(default_factory=list)
    weights_sha256: str | None = None
    flags: list[str] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)
    images_per_s: float | None = None
    fingerprint_match: str | None = None
    output_shape: list[int] | None = None
    errors: list[str] = field(default_factory=list)
    sandboxed: bool | None = True
    """Whether the model ran in the sandbox; None when it never ran (bad path or spec)."""
    wall_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (without the logits) -- the ``grader sanity --json`` contract."""
        data = dataclasses.asdict(self)
        data.pop("logits")
        return data


def find_model_files(folder: Path) -> tuple[Path, Path | None]:
    """``model.py`` and the one weights file of a submission folder; ValueError says why not."""
    folder = Path(folder)
    model = folder / "model.py"
    if not model.is_file():
        raise ValueError(f"{folder}: no model.py (a model submission needs model.py + weights)")
    weights = sorted(
        p for p in folder.iterdir()
        if p.suffix in WEIGHT_SUFFIXES and p.is_file() and not p.is_symlink()
    )  # fmt: skip
    if len(weights) > 1:
        names = ", ".join(p.name for p in weights)
        raise ValueError(f"{folder}: more than one weights file ({names}); keep exactly one")
    return model, (weights[0] if weights else None)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_spec_args(spec: ModelSpec, *, require_weights: bool) -> dict[str, Any]:
    """The JSON-able ``args`` of the check task for ``spec``."""
    return {**dataclasses.asdict(spec), "require_weights": require_weights}


def grade_model_folder(
    folder: Path,
    spec: Assignment,
    *,
    data_dir: Path | None = None,
    slot: int = 0,
    zygote: Zygote | None = None,
) -> ModelGrade:
    """Check a model submission in the sandbox and return its logits on the test images.

    With ``zygote`` (a :class:`grader.zygote.Zygote` holding the same test images) the check
    runs in a child forked from that pre-forked jailed worker instead of a fresh box.
    Raises :class:`SandboxUnavailable` when bubblewrap is missing: never runs unjailed.
    """
    from grader.data import cached_dataset

    if not bubblewrap_available():
        raise SandboxUnavailable()
    if spec.model is None:
        return ModelGrade("error", f"assignment {spec.name!r} has no [model] table")
    try:
        _model, weights = find_model_files(Path(folder))
    except ValueError as exc:
        return ModelGrade("invalid", str(exc), errors=[str(exc)])
    digest = sha256_file(weights) if weights else None
    images = cached_dataset(spec.dataset, "test", data_dir).images  # labels stay out here
    args = model_spec_args(spec.model, require_weights=True)
    limits = Limits.from_model_spec(spec.model)
    if zygote is not None:
        result = zygote.run(Path(folder), args=args, limits=limits)
    else:
        result = run_task(
            Path(folder), task=CHECK_TASK, args=args, limits=limits, inputs={"images": images},
            slot=slot,
        )  # fmt: skip
    grade = grade_from_result(result, sandboxed=True)
    grade.weights_sha256 = digest
    if grade.status == "ok" and (grade.logits is None or len(grade.logits) != len(images)):
        grade.status, grade.message = "error", "the check returned no logits for the test images"
    if grade.status == "ok" and weights is not None:
        from grader.weights import count_mismatch_flag  # imports torch: only for graded models

        mismatch = count_mismatch_flag(grade.total_params, weights)
        if mismatch:
            grade.flags.append(mismatch)
    return grade


def grade_from_result(result: TaskResult, *, sandboxed: bool) -> ModelGrade:
    """Turn a box's :class:`TaskResult` into a :class:`ModelGrade`."""
    data = result.result
    checks = [Check(**c) for c in data.get("checks", [])]
    errors = list(data.get("errors", []))
    if result.status != "ok":
        errors = errors or [result.message]
        if not checks:
            checks = [Check("build", False, result.message)]
    status: GradeStatus
    if result.status == "error":
        status = "error"
    elif result.status == "ok" and all(c.passed for c in checks) and not errors:
        status = "ok"
    else:
        status = "invalid"
    failed = [c for c in checks if not c.passed]
    message = (
        "all checks passed" if status == "ok"
        else "; ".join(errors) if errors
        else f"failed check(s): {', '.join(c.name for c in failed)}"
    )  # fmt: skip
    return ModelGrade(
        status=status,
        message=message,
        logits=result.arrays.get("logits"),
        total_params=data.get("total_params"),
        flops=data.get("flops"),
        checks=checks,
        flags=list(data.get("flags", [])),
        layers=list(data.get("layers", [])),
        images_per_s=data.get("images_per_s"),
        fingerprint_match=data.get("fingerprint_match"),
        output_shape=data.get("output_shape"),
        errors=errors,
        sandboxed=sandboxed,
        wall_s=round(result.wall_s, 3),
    )


def sanity_check(
    model_path: Path,
    *,
    weights: Path | None = None,
    assignment: Assignment | None = None,
    sandbox: bool | None = None,
    slot: int = 0,
) -> ModelGrade:
    """The student's local check of ``model_path`` (+ optional weights) against ``assignment``.

    ``sandbox=None`` uses the sandbox when bubblewrap is present and runs in-process otherwise.
    """
    model_path, weights = Path(model_path), Path(weights) if weights else None
    for path in (model_path, weights):
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
    if weights is not None and weights.suffix not in WEIGHT_SUFFIXES:
        raise ValueError(f"{weights}: weights must be a .pt, .pth or .safetensors file")
    spec = _sanity_spec(assignment)
    use_box = bubblewrap_available() if sandbox is None else sandbox
    with tempfile.TemporaryDirectory(prefix="grader-sanity-") as tmp:
        work = Path(tmp) / "submission"
        work.mkdir()
        # model.py's sibling modules come along so that its own imports work
        for sibling in model_path.parent.glob("*.py"):
            if sibling != model_path and sibling.name != "model.py":
                shutil.copy2(sibling, work / sibling.name)
        shutil.copy2(model_path, work / "model.py")
        if weights is not None:
            shutil.copy2(weights, work / f"weights{weights.suffix}")
        args = model_spec_args(spec, require_weights=False)
        if use_box:
            result = run_task(work, task=CHECK_TASK, args=args, limits=Limits.from_model_spec(spec),
                              slot=slot)  # fmt: skip
        else:
            result = _run_in_process(work, args)
    grade = grade_from_result(result, sandboxed=use_box)
    grade.weights_sha256 = sha256_file(weights) if weights else None
    return grade


def _sanity_spec(assignment: Assignment | None) -> ModelSpec:
    if assignment is not None and assignment.model is not None:
        return assignment.model
    dataset = assignment.dataset if assignment is not None else "cifar10"
    return ModelSpec(input_shape=INPUT_SHAPES[dataset])


def _run_in_process(work: Path, args: dict[str, Any]) -> TaskResult:
    """The check without a sandbox (no bubblewrap on a student's machine): same task, same rules."""
    import time

    from grader.harness import StudentError, TaskContext, find_weights, import_student_module
    from grader.modelcheck import check_task

    started = time.perf_counter()
    ctx = TaskContext(work, work, args, {}, None, None)
    try:
        ctx.weights_path = find_weights(work)
        ctx.module = import_student_module(work)
        result = check_task(ctx)
    except StudentError as exc:
        return TaskResult("invalid", str(exc), {}, {}, time.perf_counter() - started)
    return TaskResult("ok", "", result, dict(ctx.arrays), time.perf_counter() - started)


def run_sanity(
    *, model_path: Path, weights: Path | None = None, assignment: str | None = None
) -> tuple[dict[str, Any], bool]:
    """``grader sanity``: the JSON report (with a ``text`` rendering) and whether all checks passed.

    Every failure, bad path or spec included, becomes the report's ``errors``: never a traceback.
    """
    from grader.assignment import SpecError, load_assignment

    try:
        spec = load_assignment(assignment) if assignment else None
        grade = sanity_check(model_path, weights=weights, assignment=spec)
    except (SpecError, OSError, ValueError) as exc:
        grade = ModelGrade("invalid", str(exc), errors=[str(exc)], sandboxed=None)
    report = grade.to_json()
    report["text"] = render_text(grade)
    return report, grade.status == "ok"


def render_text(grade: ModelGrade) -> str:
    """A human-readable report: the layer table, totals and each check."""
    lines = []
    if grade.layers:
        lines.append(f"{'layer':<32} {'type':<18} {'output shape':<20} {'params':>10}")
        for layer in grade.layers[1:] if len(grade.layers) > 1 else grade.layers:
            name = "  " * max(layer["depth"] - 1, 0) + (layer["name"] or "(model)")
            shape = "x".join(map(str, layer["output_shape"])) or "-"
            lines.append(f"{name:<32} {layer['type']:<18} {shape:<20} {layer['params']:>10,}")
        lines.append("")
    if grade.total_params is not None:
        lines.append(f"total parameters: {grade.total_params:,}")
    if grade.flops is not None:
        lines.append(f"FLOPs per image:  {grade.flops:,}")
    if grade.output_shape is not None:
        lines.append(f"output shape:     {tuple(grade.output_shape)} on a dummy batch")
    if grade.sandboxed is False:
        lines.append("note: bubblewrap not found, so the model ran in-process (not sandboxed)")
    lines.append("")
    for check in grade.checks:
        lines.append(f"[{'PASS' if check.passed else 'FAIL'}] {check.name}: {check.message}")
    for flag in grade.flags:
        lines.append(f"[FLAG] {flag}")
    for error in grade.errors:
        if not any(error == c.message for c in grade.checks):
            lines.append(f"[ERROR] {error}")
    lines.append(f"\n{'OK' if grade.status == 'ok' else 'NOT OK'}: {grade.message}")
    return "\n".join(lines)
