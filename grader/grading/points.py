"""Points, line by line: the accuracy rubric's tier, each checklist item, the sparsity level and
each op. The one place a grade's points are computed (:func:`point_lines`); pages and exports only
show them.
"""

from __future__ import annotations

from collections.abc import Sequence

from grader.assignment import Assignment, RubricLevel
from grader.grading.grade import PointLine, PointSource
from grader.models.result import Check

SPARSITY_CHECK = "sparsity"
CHECKLIST_PREFIX = "checklist: "


def checklist_name(label: str) -> str:
    """The check name of a checklist item (its points line has the same name)."""
    return f"{CHECKLIST_PREFIX}{label}"


def point_lines(
    spec: Assignment, *, accuracy: float | None, checks: Sequence[Check] = ()
) -> list[PointLine]:
    """Every line of points ``spec`` gives, for the graded split's ``accuracy`` (None: not
    scored, e.g. ``grader sanity``) and the submission's ``checks`` (checklist items, sparsity
    and ops carry the points they earned)."""
    lines = []
    if spec.rubric:
        earned = spec.points_for(accuracy) if accuracy is not None else 0.0
        lines.append(
            PointLine(
                PointSource.RUBRIC,
                f"{spec.grade_split} accuracy",
                earned,
                spec.rubric_points,
                rubric_words(spec, accuracy),
            )
        )
    by_name = {c.name: c for c in checks}
    if spec.model is not None:
        for item in spec.model.checklist:
            name = checklist_name(item.label or item.rule)
            lines.append(_from_check(PointSource.CHECKLIST, name, item.points, by_name.get(name)))
        if spec.model.sparsity:
            lines.append(
                _from_check(
                    PointSource.SPARSITY,
                    SPARSITY_CHECK,
                    spec.model.sparsity_points,
                    by_name.get(SPARSITY_CHECK),
                )
            )
    if spec.ops is not None:
        for op in spec.ops.op:
            lines.append(_from_check(PointSource.OPS, op.name, op.points, by_name.get(op.name)))
    return lines


def _from_check(source: PointSource, name: str, possible: float, check: Check | None) -> PointLine:
    if check is None:
        return PointLine(source, name, 0.0, possible, "not checked")
    earned = float(check.points or 0.0) if check.passed else 0.0
    return PointLine(source, name, min(earned, possible), possible, check.message)


def rubric_words(spec: Assignment, accuracy: float | None) -> str:
    """The rubric in words for ``accuracy`` on the graded split: the tier reached and the next
    one ("private accuracy 72.3% reaches 70%: 7/10; next tier at 80%: 9/10"), or every tier when
    the accuracy is not known yet."""
    top = spec.rubric_points
    tiers = sorted(spec.rubric, key=lambda level: level.min_accuracy)
    if accuracy is None:
        listed = ", ".join(_tier(level, top) for level in tiers)
        return f"graded on the {spec.grade_split} split's accuracy: {listed}"
    reached = [level for level in tiers if accuracy >= level.min_accuracy]
    above = [level for level in tiers if accuracy < level.min_accuracy]
    words = f"{spec.grade_split} accuracy {accuracy:.1%}"
    if reached:
        words += f" reaches {_tier(reached[-1], top)}"
    else:
        words += f" is below every tier: 0/{top:g}"
    if above:
        words += f"; next tier at {_tier(above[0], top)}"
    return words


def _tier(level: RubricLevel, top: float) -> str:
    return f"{level.min_accuracy:.0%}: {level.points:g}/{top:g}"


def total(lines: Sequence[PointLine]) -> float:
    """The points of ``lines`` together."""
    return float(sum(line.earned for line in lines))
