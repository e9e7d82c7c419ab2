"""A student's own feedback page: the points line by line, scores on the splits they may see,
per-class accuracy, the confusion matrix, the classes they confuse most, the test images they got
wrong, metrics, every check with its points, and for a model its layer table.

:func:`render_student_page` takes one :class:`~grader.batch.results.StudentResult` (a student and
their :class:`~grader.grading.grade.Grade`) and returns one self-contained HTML page (thumbnails
inline): ``grader check`` writes it to a file, and the course server serves the same page as a
submission's page. Everything on it is limited to ``visible_splits``: no score, confusion, image
or rubric points of a split the student may not see yet. Copy flags are for the instructor and
are not shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from grader.assignment import Assignment
from grader.batch.cohort import most_confused
from grader.batch.html import environment
from grader.batch.results import BatchResult, StudentResult
from grader.batch.thumbnails import Thumbnails
from grader.grading.complete import PROBLEM_SEPARATOR
from grader.grading.grade import Provenance
from grader.grading.points import shown_points
from grader.grading.status import GradeStatus
from grader.predictions.solution import split_ids

STATUS_WORDS = {
    GradeStatus.OK: "graded",
    GradeStatus.INVALID: "not gradable",
    GradeStatus.ERROR: "not graded (grader error)",
}
GALLERY_SIZE = 24


@dataclass(frozen=True)
class _Score:
    split: str
    accuracy: float
    macro_f1: float | None
    images: int


@dataclass(frozen=True)
class _ClassRow:
    name: str
    accuracy: float
    images: int


@dataclass(frozen=True)
class _Thumb:
    image_id: int
    caption: str
    uri: str


def render_student_page(
    result: StudentResult,
    *,
    spec: Assignment,
    answer_key: pd.DataFrame | None = None,
    thumbnails: Thumbnails | None = None,
    visible_splits: Sequence[str] | None = None,
    provenance: Provenance | None = None,
    link_base: str = "",
    gallery_size: int = GALLERY_SIZE,
    head: str = "",
    header: str = "",
) -> str:
    """The feedback page of ``result`` as HTML.

    ``answer_key`` (columns id, label, the order of the grade's labels) and ``thumbnails`` feed
    the gallery of wrong images; without them the page has no gallery. ``visible_splits``
    defaults to the spec's ``student_splits``. ``link_base`` prefixes links to files beside the
    page's folder (experiment plots): ``"../"`` for ``grader check``'s ``students/`` pages.
    ``head`` and ``header`` are trusted HTML (``markupsafe.Markup``) a server adds in the
    page's head and above the feedback (its navigation, a refresh while grading).
    """
    grade = result.grade
    splits = visible_splits or spec.student_splits
    visible = [s for s in splits if s in grade.scores] or []
    view = _view_split(visible)
    context: dict[str, object] = {
        "r": result,
        "g": grade,
        "spec": spec,
        "status_words": STATUS_WORDS,
        "problems": _problems(result),
        "scores": [],
        "hidden": [],
        "provenance": provenance or grade.provenance,
        "link_base": link_base,
        "thumbnails_note": thumbnails.note if thumbnails is not None else "",
        "head": head,
        "header": header,
        "possible": {line.name: line.possible for line in grade.point_lines},
        **_points_context(result, spec, splits),
    }
    if view is not None:
        context |= _scores_context(result, spec, visible, view)
        context |= _gallery_context(result, spec, answer_key, thumbnails, view, gallery_size)
    return environment().get_template("student.html.j2").render(**context)


def write_student_pages(
    batch: BatchResult,
    *,
    spec: Assignment,
    answer_key: pd.DataFrame | None,
    thumbnails: Thumbnails | None,
) -> list[Path]:
    """One page per student under ``batch.students_dir`` (``students/<student>.html``)."""
    if batch.students_dir is None:
        return []
    batch.students_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for result in batch.results:
        html = render_student_page(
            result,
            spec=spec,
            answer_key=answer_key,
            thumbnails=thumbnails,
            provenance=batch.provenance,
            link_base="../",
        )
        path = batch.students_dir / result.page_name
        path.write_text(html, encoding="utf-8")
        written.append(path)
    return written


def _view_split(visible: Sequence[str]) -> str | None:
    """The split the per-class table, the confusion matrix and the gallery are about."""
    if "all" in visible or {"public", "private"} <= set(visible):
        return "all"
    return visible[0] if visible else None


def _problems(result: StudentResult) -> list[str]:
    if result.status is GradeStatus.OK or not result.message:
        return []
    return [p for p in result.message.split(PROBLEM_SEPARATOR) if p]


def _points_context(result: StudentResult, spec: Assignment, splits: Sequence[str]) -> dict:
    """The points table: every line, the rubric's hidden while its split is."""
    shown = shown_points(result.grade, spec, splits)
    return {
        "point_rows": shown.lines,
        "points_total": shown.points,
        "points_partial": shown.hidden,
        "max_points": shown.max_points,
        "held": result.grade.review if shown.held else None,
    }


def _scores_context(
    result: StudentResult, spec: Assignment, visible: list[str], view: str
) -> dict[str, object]:
    order = [s for s in ("public", "private", "all") if s in visible]
    scores = [
        _Score(
            split,
            result.grade.scores[split]["accuracy"],
            result.grade.scores[split].get("macro_f1"),
            result.grade.counts.get(split, 0),
        )
        for split in order
    ]
    matrix = np.asarray(result.grade.confusion.get(view) or [], dtype=np.int64)
    per_class = []
    if matrix.size:
        support = matrix.sum(axis=1)
        for k, name in enumerate(spec.class_names):
            accuracy = matrix[k, k] / support[k] if support[k] else 0.0
            per_class.append(_ClassRow(name, float(accuracy), int(support[k])))
    hidden = [s for s in ("public", "private") if s not in visible and "all" not in visible]
    return {
        "scores": scores,
        "hidden": hidden,
        "per_class": per_class,
        "confusion": matrix.tolist(),
        "pairs": most_confused(matrix, spec.class_names, top=5) if matrix.size else [],
        "view_words": _view_words(view, result.grade.counts.get(view, 0)),
    }


def _view_words(view: str, images: int) -> str:
    if view == "all":
        return f"whole test set ({images:,} images)"
    return f"{view} split ({images:,} images)"


def _gallery_context(
    result: StudentResult,
    spec: Assignment,
    answer_key: pd.DataFrame | None,
    thumbnails: Thumbnails | None,
    view: str,
    size: int,
) -> dict[str, object]:
    empty = {"gallery": [], "wrong_total": 0, "wrong_with_images": 0}
    labels = result.grade.labels
    if answer_key is None or labels is None or len(labels) != len(answer_key):
        return empty
    ids = answer_key["id"].to_numpy(np.int64)
    truth = answer_key["label"].to_numpy(np.int64)
    public = split_ids(ids, spec.public_fraction, spec.split_seed)
    in_view = {"public": public, "private": ~public}.get(view, np.ones(len(ids), dtype=bool))
    labels = labels.astype(np.int64)
    wrong = in_view & (labels != truth)
    shown = wrong & (thumbnails.available(ids) if thumbnails is not None else False)
    rows = np.flatnonzero(shown)
    k = len(spec.class_names)
    # the most frequent (true, predicted) pairs first, then by id
    pair = truth[rows] * k + labels[rows]
    frequency = np.bincount(truth[wrong] * k + labels[wrong], minlength=k * k)
    chosen = rows[np.lexsort((ids[rows], -frequency[pair]))][:size]
    names = spec.class_names
    gallery = [
        _Thumb(
            int(ids[i]),
            f"{names[truth[i]]} \u2192 {names[labels[i]]}",
            thumbnails.data_uri(int(ids[i])),
        )
        for i in chosen
    ]
    return {
        "gallery": gallery,
        "wrong_total": int(wrong.sum()),
        "wrong_with_images": int(shown.sum()),
    }
