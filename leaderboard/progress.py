"""Score over time: the best public accuracy an entrant had reached at each moment, as a PNG.

The public chart follows the current leader (the first row of the board); a signed-in student's
chart adds their own submissions (one dot each) and their best so far. The listed baselines are
horizontal lines. Matplotlib's Agg backend draws it.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

from sqlalchemy.orm import Session

from grader.assignment import Assignment
from leaderboard.baselines import Baseline
from leaderboard.models import utcnow
from leaderboard.rules import entrant_of
from leaderboard.standings import graded_submissions


@dataclass(frozen=True)
class Series:
    """One entrant's graded submissions, oldest first: when, and the public accuracy."""

    label: str
    times: list[dt.datetime]
    scores: list[float]

    @property
    def best_so_far(self) -> list[float]:
        """The running maximum of ``scores``."""
        best, out = float("-inf"), []
        for score in self.scores:
            best = max(best, score)
            out.append(best)
        return out


def series_of(session: Session, spec: Assignment, entrant_key: str, label: str) -> Series:
    """The graded submissions of the entrant ``entrant_key`` (``student:7``, ``team:3``)."""
    times, scores = [], []
    for submission, score, _student, _team in graded_submissions(session, spec):
        if entrant_of(submission).key == entrant_key:
            times.append(submission.created_at)
            scores.append(score.public_accuracy)
    return Series(label, times, scores)


def progress_png(
    spec: Assignment,
    leader: Series | None,
    you: Series | None,
    baselines: list[Baseline],
) -> bytes:
    """The chart: the leader's best so far, yours (dots: each submission), baseline lines."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    figure = Figure(figsize=(6.4, 3.2), dpi=100)
    axes = figure.subplots()
    now = utcnow()
    drawn = [s for s in (leader, you) if s is not None and s.times]
    for series, colour in ((leader, "tab:blue"), (you, "tab:orange")):
        if series is None or not series.times:
            continue
        # the best so far holds until now: extend the step line to the right edge
        axes.step([*series.times, now], [*series.best_so_far, series.best_so_far[-1]],
                  where="post", color=colour, label=series.label)  # fmt: skip
        if series is you:
            axes.scatter(series.times, series.scores, color=colour, s=14, alpha=0.7, zorder=3,
                         label="your submissions")  # fmt: skip
    for baseline in baselines:
        axes.axhline(baseline.public_accuracy, color="tab:red", linestyle="--", linewidth=0.8)
        axes.annotate(f"baseline {baseline.model}", (1.0, baseline.public_accuracy),
                      xycoords=("axes fraction", "data"), xytext=(-2, 2),
                      textcoords="offset points", ha="right", va="bottom", fontsize=7,
                      color="tab:red")  # fmt: skip
    if not drawn:
        axes.text(0.5, 0.5, "no graded submissions yet", ha="center", va="center",
                  transform=axes.transAxes)  # fmt: skip
    else:
        locator = AutoDateLocator()
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        axes.legend(loc="upper left", bbox_to_anchor=(0, -0.15), ncol=3, fontsize=8,
                    frameon=False)  # fmt: skip
    axes.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    axes.set_ylabel("public accuracy (best so far)")
    axes.set_title(f"{spec.title or spec.name}: score over time (UTC)", fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()
