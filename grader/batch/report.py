"""The instructor's ``report.html`` for a batch: summary, plots (matplotlib Agg), flags, rows."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from grader.assignment import Assignment

if TYPE_CHECKING:
    from grader.batch.results import BatchResult

TEMPLATE = "report.html.j2"


def write_report(batch: BatchResult, *, spec: Assignment, out_dir: Path) -> Path:
    """Write the plots as PNG files and ``report.html`` into ``out_dir``; return the HTML path."""
    import jinja2

    out_dir.mkdir(parents=True, exist_ok=True)
    plots = _plots(batch, spec, out_dir)
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("grader.batch", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
    )
    html = env.get_template(TEMPLATE).render(batch=batch, spec=spec, plots=plots)
    batch.report_html.write_text(html, encoding="utf-8")
    return batch.report_html


def _plots(batch: BatchResult, spec: Assignment, out_dir: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Rows with an accuracy (a model graded only by an experiment has none).
    ok = [r for r in batch.results if r.status == "ok" and r.all_accuracy is not None]
    plots: dict[str, str] = {}
    if not ok:
        return plots
    graded = [
        r.private_accuracy if spec.grade_split == "private" else r.public_accuracy for r in ok
    ]
    if spec.grade_split == "all":
        graded = [r.all_accuracy for r in ok]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(graded, bins=np.linspace(0, 1, 21), color="#4c72b0", edgecolor="white")
    for level in spec.rubric:
        ax.axvline(level.min_accuracy, color="#c44e52", linestyle="--", linewidth=1)
    ax.set_xlabel(f"{spec.grade_split} accuracy")
    ax.set_ylabel("students")
    ax.set_title("Score distribution (dashed: rubric thresholds)")
    plots["histogram"] = _save(fig, out_dir / "score_histogram.png")

    per_class = np.array([[r.per_class[c] for c in spec.class_names] for r in ok if r.per_class])
    if len(per_class):
        fig, ax = plt.subplots(figsize=(7, 3.2))
        ax.boxplot(per_class)
        ax.set_xticks(range(1, len(spec.class_names) + 1), list(spec.class_names))
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.02)
        ax.set_title("Per-class accuracy across students")
        ax.tick_params(axis="x", rotation=45)
        plots["per_class"] = _save(fig, out_dir / "per_class_accuracy.png")

    models = [r for r in ok if r.kind == "model" and r.total_params]
    if models:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        ax.scatter([r.total_params for r in models], [r.all_accuracy for r in models])
        for r in models:
            ax.annotate(r.student, (r.total_params, r.all_accuracy), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("trainable parameters")
        ax.set_ylabel("test accuracy")
        ax.set_title("Parameters vs accuracy")
        plots["params"] = _save(fig, out_dir / "params_vs_accuracy.png")
    return plots


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.subplots_adjust(left=0.12, right=0.97, top=0.9, bottom=0.25)  # tight_layout: +0.5 s
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name
