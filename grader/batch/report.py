"""The instructor's ``report.html`` for a batch: summary, rubric, plots (matplotlib Agg), what the
class got wrong, metrics, copy clusters and flags, experiments, ignored files, every row, and the
provenance of the run."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from grader.assignment import Assignment
from grader.batch.cohort import summarize_cohort
from grader.batch.html import environment
from grader.batch.results import BatchResult, StudentResult
from grader.batch.thumbnails import Thumbnails
from grader.grading.grade import PointSource
from grader.grading.status import GradeStatus, SubmissionKind
from grader.metrics.robustness import MEMORISER_RULE
from grader.predictions.flags import COPY_FLAG_PREFIXES

TEMPLATE = "report.html.j2"
MAX_LABELLED_POINTS = 40
"""Above this many models the parameters plot names no points (labels would only overlap)."""


@dataclass(frozen=True)
class _Level:
    min_accuracy: float
    points: float
    students: int


@dataclass(frozen=True)
class _Thumb:
    image_id: int
    caption: str
    uri: str


def write_report(
    batch: BatchResult,
    *,
    spec: Assignment,
    out_dir: Path,
    answer_key: pd.DataFrame | None = None,
    thumbnails: Thumbnails | None = None,
) -> Path:
    """Write the plots as PNG files and ``report.html`` into ``out_dir``; return the HTML path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = _plots(batch, spec, out_dir)
    html = (
        environment()
        .get_template(TEMPLATE)
        .render(
            batch=batch, spec=spec, plots=plots, **_context(batch, spec, answer_key, thumbnails)
        )
    )
    batch.report_html.write_text(html, encoding="utf-8")
    return batch.report_html


def _context(
    batch: BatchResult,
    spec: Assignment,
    answer_key: pd.DataFrame | None,
    thumbnails: Thumbnails | None,
) -> dict[str, object]:
    results = batch.results
    graded = [_rubric_points(r) for r in results if r.grade.graded]
    graded = [points for points in graded if points is not None]
    levels = sorted(spec.rubric, key=lambda level: level.min_accuracy)
    rubric = [
        _Level(level.min_accuracy, level.points, sum(p == level.points for p in graded))
        for level in levels
    ]
    cohort = None
    hardest: list[_Thumb] = []
    if answer_key is not None:
        ids = answer_key["id"].to_numpy(np.int64)
        has_images = thumbnails is not None and len(thumbnails) > 0
        candidates = thumbnails.available(ids) if has_images else None
        cohort = summarize_cohort(results, answer_key, spec.class_names, candidates=candidates)
        if candidates is not None:
            hardest = [
                _Thumb(
                    h.image_id,
                    f"{h.true}: {h.wrong} of {h.graded} wrong, often {h.common_wrong}",
                    thumbnails.data_uri(h.image_id),
                )
                for h in cohort.hardest
            ]
    pages = {}
    if batch.students_dir is not None:
        folder = Path(os.path.relpath(batch.students_dir, batch.report_html.parent)).as_posix()
        pages = {r.student: f"{folder}/{r.page_name}" for r in results}
    other_flags = [
        (r.student, [f for f in r.flags if not f.startswith(COPY_FLAG_PREFIXES)]) for r in results
    ]
    return {
        "rubric": rubric,
        "below_rubric": sum(p == 0 for p in graded),
        "images_line": _images_line(batch),
        "flagged": [r for r in results if r.flags],
        "cohort": cohort or summarize_cohort([], pd.DataFrame({"id": [], "label": []}), ()),
        "hardest": hardest,
        "thumbnail_scope": _thumbnail_scope(thumbnails, batch),
        "thumbnails_note": thumbnails.note if thumbnails is not None else "",
        "with_metrics": [r for r in results if r.grade.metrics is not None],
        "memoriser_rule": MEMORISER_RULE,
        "other_flags": [(s, f) for s, f in other_flags if f],
        "experiments": [r for r in results if r.experiment_plots],
        "ignored": [r for r in results if r.ignored],
        "models": any(r.kind is SubmissionKind.MODEL for r in results),
        "pages": pages,
    }


def _rubric_points(r: StudentResult) -> float | None:
    """The points the accuracy rubric gave (the other lines are checklist, sparsity, ops)."""
    lines = [line for line in r.grade.point_lines if line.source is PointSource.RUBRIC]
    return lines[0].earned if lines else None


def _images_line(batch: BatchResult) -> str:
    images = batch.images
    line = (
        f"The answer key has {images.get('all', 0):,} test images "
        f"({images.get('public', 0):,} public, {images.get('private', 0):,} private)."
    )
    evaluated = {
        r.grade.counts.get("all")
        for r in batch.results
        if r.kind is SubmissionKind.MODEL and r.grade.counts
    }
    evaluated.discard(None)
    if evaluated:
        sizes = " / ".join(f"{n:,}" for n in sorted(evaluated))
        line += f" Models were evaluated on {sizes} test images."
    return line


def _thumbnail_scope(thumbnails: Thumbnails | None, batch: BatchResult) -> str:
    if thumbnails is None or not len(thumbnails):
        return ""
    total = batch.images.get("all", 0)
    if len(thumbnails) >= total:
        return ""
    return f"among the {len(thumbnails):,} of {total:,} test images the data folder has"


# --- plots -------------------------------------------------------------------------------------


def score_histogram(graded: list[float], spec: Assignment):
    """The distribution of graded accuracies: whole students on the y axis, and each rubric
    threshold a dashed line labelled with its points. Returns the matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.hist(graded, bins=np.linspace(0, 1, 21), color="#4c72b0", edgecolor="white")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # students come in whole numbers
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    top = ax.get_ylim()[1]
    for level in spec.rubric:
        ax.axvline(level.min_accuracy, color="#c44e52", linestyle="--", linewidth=1)
        ax.text(
            level.min_accuracy,
            top * 0.97,
            f" {level.min_accuracy:.0%}: {level.points:g} pts",
            color="#c44e52",
            fontsize=7,
            rotation=90,
            va="top",
            ha="right",
        )
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"{spec.grade_split} accuracy")
    ax.set_ylabel("students")
    ax.set_title(f"Score distribution of {len(graded)} graded students (dashed: rubric thresholds)")
    return fig


def _plots(batch: BatchResult, spec: Assignment, out_dir: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    # Rows with an accuracy (a model graded only by an experiment has none).
    ok = [
        r for r in batch.results if r.status is GradeStatus.OK and r.grade.all_accuracy is not None
    ]
    plots: dict[str, str] = {}
    if not ok:
        return plots
    graded = [r.grade.accuracy(spec.grade_split) for r in ok]
    plots["histogram"] = _save(score_histogram(graded, spec), out_dir / "score_histogram.png")

    per_class = np.array(
        [[r.grade.per_class[c] for c in spec.class_names] for r in ok if r.grade.per_class]
    )
    if len(per_class):
        fig, ax = plt.subplots(figsize=(7, 3.4))
        ax.boxplot(per_class)
        ax.set_xticks(range(1, len(spec.class_names) + 1), list(spec.class_names))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"Per-class accuracy across {len(per_class)} students")
        ax.tick_params(axis="x", rotation=45)
        plots["per_class"] = _save(fig, out_dir / "per_class_accuracy.png")

    models = [r for r in ok if r.kind is SubmissionKind.MODEL and r.grade.total_params]
    if len({r.grade.total_params for r in models}) > 1:  # one stack of dots says nothing
        plots["params"] = _params_plot(models, out_dir / "params_vs_accuracy.png")
    return plots


def _params_plot(models: list[StudentResult], path: Path) -> str:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    fig, ax = plt.subplots(figsize=(6.4, 4))
    x = [r.grade.total_params for r in models]
    y = [r.grade.all_accuracy for r in models]
    ax.scatter(x, y, color="#4c72b0", zorder=3)
    ax.set_xscale("log")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_xlabel("trainable parameters")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"Parameters vs accuracy ({len(models)} models)")
    if len(models) <= MAX_LABELLED_POINTS:
        from adjustText import adjust_text

        texts = [
            ax.text(px, py, r.student, fontsize=7) for px, py, r in zip(x, y, models, strict=True)
        ]
        adjust_text(
            texts, x=x, y=y, ax=ax, arrowprops={"arrowstyle": "-", "color": "#999", "lw": 0.5}
        )
    return _save(fig, path)


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.subplots_adjust(left=0.12, right=0.97, top=0.9, bottom=0.25)  # tight_layout: +0.5 s
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name
