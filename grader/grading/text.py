"""A grade in words, for a terminal: what ``grader sanity`` prints for a model or an ``ops.py``.

The layer table and totals, each check with the points it earned, the flags, the points line by
line ("next tier at 70%: 7/10") and the verdict. Checks that cost points are never followed by
"all checks passed": the verdict is the grade's own message.
"""

from __future__ import annotations

from pathlib import Path

from grader.grading.grade import Grade, PointSource
from grader.grading.status import GradeStatus


def render_text(
    grade: Grade, *, ran: bool = True, names: tuple[Path, Path | None] | None = None
) -> str:
    """The report a student reads."""
    lines = []
    if names is not None and ran:
        model, weights = names
        if weights is not None:
            lines += [f"checked {model.name} with weights {weights.name}", ""]
        elif grade.layers or grade.total_params is not None:
            lines += [f"checked {model.name} with its initial weights", ""]
        else:
            lines += [f"checked {model.name}", ""]
    if grade.layers:
        lines.append(
            f"{'layer':<32} {'type':<18} {'output shape':<16} {'params':>10} {'FLOPs':>12}"
        )
        for layer in grade.layers:
            shape = "x".join(map(str, layer.output_shape)) or "-"
            lines.append(
                f"{layer.name[:32]:<32} {layer.type[:18]:<18} {shape:<16} {layer.params:>10,} "
                f"{layer.flops:>12,}"
            )
        lines.append("")
    if grade.total_params is not None:
        lines.append(f"total parameters: {grade.total_params:,}")
    if grade.other_tensors:
        lines.append(
            f"other tensors read: {grade.other_tensors:,} values (buffers and constants used as "
            "weights: the parameter limits count them too)"
        )
    if grade.unused:
        lines.append(f"unused (not counted): {', '.join(grade.unused)}")
    if grade.flops is not None:
        lines.append(f"FLOPs per image:  {grade.flops:,}")
    if grade.output_shape is not None:
        lines.append(f"output shape:     {tuple(grade.output_shape)} on a probe batch")
    if ran and grade.verified:
        lines.append("verified: every number above comes from running the captured graph")
    if ran and grade.runtime:
        lines.append(grade.runtime)
    if ran and grade.sandboxed is False:
        lines.append("note: bubblewrap not found, so the code ran unconfined on this machine")
    if lines and lines[-1] != "":
        lines.append("")
    for note in grade.notes:
        lines.append(f"[NOTE] {note}")
    possible = {line.name: line.possible for line in grade.point_lines}
    for check in grade.checks:
        worth = ""
        if check.name in possible:
            worth = f" ({check.points or 0:g}/{possible[check.name]:g} points)"
        lines.append(f"[{'PASS' if check.passed else 'FAIL'}] {check.name}: {check.message}{worth}")
    for flag in grade.flags:
        lines.append(f"[FLAG] {flag}")
    lines += points_text(grade)
    lines.append(f"\n{verdict(grade)}: {grade.message}")
    return "\n".join(lines)


def verdict(grade: Grade) -> str:
    """``OK``, ``POINTS MISSED`` (graded, but a check cost points) or ``NOT OK``."""
    if grade.status is not GradeStatus.OK:
        return "NOT OK"
    missed = any(
        line.earned < line.possible
        for line in grade.point_lines
        if line.source is not PointSource.RUBRIC
    )
    return "POINTS MISSED" if missed else "OK"


def points_text(grade: Grade) -> list[str]:
    """The points line by line and their total (of the assignment's maximum)."""
    if not grade.point_lines:
        return []
    width = max(len(line.name) for line in grade.point_lines)
    out = ["", "points:"]
    pending = 0.0
    for line in grade.point_lines:  # the checks above say why; the rubric says its tiers here
        rubric = line.source is PointSource.RUBRIC
        earned = f"{line.earned:g}"
        if rubric and not grade.scores:
            pending += line.possible
            earned = "-"
        why = f"  {line.detail}" if rubric else ""
        out.append(f"  {line.name:<{width}}  {earned}/{line.possible:g}{why}")
    earned = sum(line.earned for line in grade.point_lines)
    total = f"{earned:g} of {grade.max_points:g} points"
    if pending:
        total += f" so far (up to {pending:g} more from the accuracy, scored after you submit)"
    if grade.held:
        total += f"; held at 0 until an instructor reviews it: {grade.review.reason}"
    out.append(f"  {total}")
    return out
