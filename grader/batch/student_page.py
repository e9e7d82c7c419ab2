"""A student's own feedback page: the points line by line, scores on the splits they may see,
per-class accuracy, the confusion matrix, the classes they confuse most, the test images they got
wrong, metrics, every check with its points, and for a model its layer table.

:func:`render_student_page` takes one :class:`~grader.batch.results.StudentResult` (a student and
their :class:`~grader.grading.grade.Grade`) and returns one HTML page: self-contained (stylesheet
and thumbnails inline) so the course server can serve it as a submission's page, or, for the
hundreds of pages ``grader check`` writes, linking one shared stylesheet and one sheet of
thumbnails under ``students/assets/`` (:class:`PageAssets`). Everything on it is limited to
``visible_splits``: no score, confusion, image or rubric points of a split the student may not
see yet. Copy flags are for the instructor and are not shown.
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
from grader.batch.thumbnails import Thumbnails, png_bytes
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
ASSETS_DIR = "assets"


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


@dataclass
class _Thumb:
    image_id: int
    caption: str
    uri: str
    """A data URI of the image, or empty when the page shows its cell of the shared sheet."""
    position: str = ""


class PageAssets:
    """The files the pages of a batch share, in one folder beside them: ``style.css`` and
    ``thumbnails.png``, one sheet holding every test image any page shows (one file, not one per
    image: a class of 300 students shows about 500 distinct images)."""

    SHEET = "thumbnails.png"
    COLUMNS = 32

    def __init__(self, folder: Path, thumbnails: Thumbnails | None) -> None:
        from grader.batch.html import environment

        self.folder, self.thumbnails = folder, thumbnails
        folder.mkdir(parents=True, exist_ok=True)
        css = environment().get_template("style.css.j2").render()
        (folder / "style.css").write_text(css, encoding="utf-8")
        self.css_href = f"{folder.name}/style.css"
        self.sheet_href = f"{folder.name}/{self.SHEET}"
        self._cells: dict[int, int] = {}
        self.columns = self.rows = 1
        """The sheet's grid, in images."""

    def write_sheet(self, image_ids: Sequence[int]) -> None:
        """Write the sheet of ``image_ids`` (the images the pages will show), row by row."""
        images = self.thumbnails.images
        self._cells = {int(i): k for k, i in enumerate(dict.fromkeys(int(i) for i in image_ids))}
        self.columns = max(1, min(self.COLUMNS, len(self._cells)))
        self.rows = max(1, -(-len(self._cells) // self.columns))
        if not self._cells:
            return
        channels, height, width = images.shape[1:]
        sheet = np.zeros((channels, self.rows * height, self.columns * width), dtype=np.uint8)
        for image_id, k in self._cells.items():
            row, column = divmod(k, self.columns)
            sheet[:, row * height : (row + 1) * height, column * width : (column + 1) * width] = (
                images[image_id]
            )
        (self.folder / self.SHEET).write_bytes(png_bytes(sheet))

    def position(self, image_id: int) -> str:
        """The CSS ``background-position`` of ``image_id``'s cell, in percent of the free space,
        so the thumbnail shows at any size."""
        row, column = divmod(self._cells[image_id], self.columns)
        x = 100 * column / (self.columns - 1) if self.columns > 1 else 0
        y = 100 * row / (self.rows - 1) if self.rows > 1 else 0
        return f"{x:.4g}% {y:.4g}%"


@dataclass(frozen=True)
class AnswerView:
    """What every page of a batch reads from the answer key, computed once: ids, true labels,
    the public split and which images have thumbnails."""

    ids: np.ndarray
    truth: np.ndarray
    public: np.ndarray
    pictured: np.ndarray

    @classmethod
    def of(cls, spec: Assignment, answer_key: pd.DataFrame, thumbnails: Thumbnails | None):
        ids = answer_key["id"].to_numpy(np.int64)
        pictured = thumbnails.available(ids) if thumbnails is not None else np.zeros(len(ids), bool)
        return cls(
            ids=ids,
            truth=answer_key["label"].to_numpy(np.int64),
            public=split_ids(ids, spec.public_fraction, spec.split_seed),
            pictured=pictured,
        )


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
    answers: AnswerView | None = None,
) -> str:
    """The feedback page of ``result`` as HTML.

    ``answer_key`` (columns id, label, the order of the grade's labels) and ``thumbnails`` feed
    the gallery of wrong images; without them the page has no gallery. ``visible_splits``
    defaults to the spec's ``student_splits``. ``link_base`` prefixes links to files beside the
    page's folder (experiment plots): ``"../"`` for ``grader check``'s ``students/`` pages.
    ``head`` and ``header`` are trusted HTML (``markupsafe.Markup``) a server adds in the
    page's head and above the feedback (its navigation, a refresh while grading). ``answers`` is
    the answer key's :class:`AnswerView`, when the caller renders many pages. The page is
    self-contained: stylesheet and thumbnails inline.
    """
    if answers is None and answer_key is not None:
        answers = AnswerView.of(spec, answer_key, thumbnails)
    context = _page_context(
        result, spec=spec, thumbnails=thumbnails, visible_splits=visible_splits,
        provenance=provenance, link_base=link_base, gallery_size=gallery_size, answers=answers,
        assets=None,
    )  # fmt: skip
    context |= {"head": head, "header": header}
    return environment().get_template("student.html.j2").render(**context)


def _page_context(
    result: StudentResult,
    *,
    spec: Assignment,
    thumbnails: Thumbnails | None,
    visible_splits: Sequence[str] | None,
    provenance: Provenance | None,
    link_base: str,
    gallery_size: int,
    answers: AnswerView | None,
    assets: PageAssets | None,
) -> dict[str, object]:
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
        "head": "",
        "header": "",
        "possible": {line.name: line.possible for line in grade.point_lines},
        "assets": assets,
        **_points_context(result, spec, splits),
    }
    if view is not None:
        context |= _scores_context(result, spec, visible, view)
        context |= _gallery_context(result, spec, answers, thumbnails, view, gallery_size, assets)
    return context


def write_student_pages(
    batch: BatchResult,
    *,
    spec: Assignment,
    answer_key: pd.DataFrame | None,
    thumbnails: Thumbnails | None,
) -> list[Path]:
    """One page per student under ``batch.students_dir`` (``students/<student>.html``), sharing
    one stylesheet and one sheet of the thumbnails they show under ``students/assets/``."""
    if batch.students_dir is None:
        return []
    batch.students_dir.mkdir(parents=True, exist_ok=True)
    assets = PageAssets(batch.students_dir / ASSETS_DIR, thumbnails)
    answers = AnswerView.of(spec, answer_key, thumbnails) if answer_key is not None else None
    pages = [
        _page_context(result, spec=spec, thumbnails=thumbnails, visible_splits=None,
                      provenance=batch.provenance, link_base="../", gallery_size=GALLERY_SIZE,
                      answers=answers, assets=assets)
        for result in batch.results
    ]  # fmt: skip
    if thumbnails is not None and thumbnails.images is not None:
        assets.write_sheet([t.image_id for page in pages for t in page.get("gallery", [])])
    template = environment().get_template("student.html.j2")
    written = []
    for result, context in zip(batch.results, pages, strict=True):
        for thumb in context.get("gallery", []):
            thumb.position = assets.position(thumb.image_id)
        path = batch.students_dir / result.page_name
        path.write_text(template.render(**context), encoding="utf-8")
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
    answers: AnswerView | None,
    thumbnails: Thumbnails | None,
    view: str,
    size: int,
    assets: PageAssets | None,
) -> dict[str, object]:
    empty = {"gallery": [], "wrong_total": 0, "wrong_with_images": 0}
    labels = result.grade.labels
    if answers is None or labels is None or len(labels) != len(answers.ids):
        return empty
    ids, truth = answers.ids, answers.truth
    labels = labels.astype(np.int64)
    in_view = {"public": answers.public, "private": ~answers.public}.get(view)
    wrong = labels != truth
    if in_view is not None:
        wrong &= in_view
    shown = wrong & answers.pictured
    rows = np.flatnonzero(shown)
    k = len(spec.class_names)
    # the most frequent (true, predicted) pairs first, then by id
    pair = truth[rows] * k + labels[rows]
    frequency = np.bincount(truth[wrong] * k + labels[wrong], minlength=k * k)
    chosen = rows[np.lexsort((ids[rows], -frequency[pair]))][:size]
    names = spec.class_names
    if not len(chosen):
        return {**empty, "wrong_total": int(wrong.sum())}
    gallery = [
        _Thumb(
            int(ids[i]),
            f"{names[truth[i]]} \u2192 {names[labels[i]]}",
            "" if assets is not None else thumbnails.data_uri(int(ids[i])),
        )
        for i in chosen
    ]
    return {
        "gallery": gallery,
        "wrong_total": int(wrong.sum()),
        "wrong_with_images": int(shown.sum()),
    }
