"""Points, line by line: the accuracy rubric's tier, each checklist item, the sparsity level and
each op. The one place a grade's points are computed (:func:`point_lines`); pages and exports only
show them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from grader.assignment import Assignment, RubricLevel
from grader.grading.grade import Grade, PointLine, PointSource
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


@dataclass(frozen=True)
class ShownLine:
    """A line of points as a student may see it."""

    source: PointSource
    name: str
    earned: float | None
    """None while hidden: the rubric of a split the student may not see yet."""
    possible: float
    detail: str


@dataclass(frozen=True)
class ShownPoints:
    """A grade's points as a student may see them (pages, ``/me``, the API, the upload)."""

    points: float | None
    """The visible total; None when not graded, or when every line is hidden."""
    max_points: float
    hidden: bool
    """Some points hang on a split the student may not see yet (shown after the reveal)."""
    held: bool
    """0 points until an instructor accepts the grade."""
    lines: list[ShownLine] = field(default_factory=list)

    def words(self) -> str:
        """``7 / 10``, ``3 / 10 so far``, ``hidden / 10``, ``- / 10``."""
        total = f"{self.max_points:g}"
        if self.points is None:
            return f"{'hidden' if self.hidden else '-'} / {total}"
        return f"{self.points:g} / {total}" + (" so far" if self.hidden else "")

    def to_json(self) -> dict:
        """For the API."""
        return {
            "points": self.points,
            "max_points": self.max_points,
            "hidden": self.hidden,
            "held_for_review": self.held,
            "lines": [
                {
                    "for": line.name,
                    "source": line.source.value,
                    "points": line.earned,
                    "possible": line.possible,
                    "why": line.detail,
                }
                for line in self.lines
            ],  # fmt: skip
        }


def graded_split_visible(spec: Assignment, splits: Sequence[str]) -> bool:
    """Whether a viewer who may see ``splits`` may see the split the rubric grades."""
    return spec.grade_split in splits or "all" in splits or {"public", "private"} <= set(splits)


def shown_points(grade: Grade, spec: Assignment, splits: Sequence[str]) -> ShownPoints:
    """``grade``'s points for a viewer who may see ``splits``: the rubric's line and its share
    of the total stay hidden while the graded split is (its tiers are shown instead)."""
    visible = graded_split_visible(spec, splits)
    lines = []
    for line in grade.point_lines:
        if line.source is PointSource.RUBRIC and not visible:
            detail = f"shown when the {spec.grade_split} split is revealed; "
            lines.append(ShownLine(line.source, line.name, None, line.possible,
                                   detail + rubric_words(spec, None)))  # fmt: skip
        else:
            lines.append(ShownLine(line.source, line.name, line.earned, line.possible,
                                   line.detail))  # fmt: skip
    hidden = any(line.earned is None for line in lines) and grade.points is not None
    points = grade.points
    if hidden:
        shown = [line.earned for line in lines if line.earned is not None]
        points = None if not shown else 0.0 if grade.held else sum(shown)
    return ShownPoints(points, grade.max_points, hidden, grade.held, lines)
