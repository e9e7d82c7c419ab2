"""The HTML side of the batch: one Jinja environment (templates in ``templates/``) with the
filters both the report and the student pages use. No web framework: the pages are files."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import jinja2
import numpy as np
from markupsafe import Markup, escape


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The templates of :mod:`grader.batch`, autoescaped, with the shared filters."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("grader.batch", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pct=pct, num=num, tidy=tidy_message)
    env.globals.update(heatmap_table=heatmap_table)
    return env


def pct(value: float | None, digits: int = 1) -> str:
    """``0.8123`` -> ``81.2%``; blank for None."""
    return "" if value is None else f"{100 * value:.{digits}f}%"


def num(value: float | None) -> str:
    """Thousands separators; blank for None."""
    if value is None:
        return ""
    return f"{value:,}" if isinstance(value, int) else f"{value:,.4g}"


def tidy_message(text: str | None) -> str:
    """A message with its repeats dropped: ``X; weights: X`` -> ``X``, ``A; A`` -> ``A``."""
    if not text:
        return ""
    kept: list[str] = []
    for part in (p.strip() for p in text.split("; ")):
        bare = re.sub(r"^[\w .-]{1,40}: ", "", part)
        if part and part not in kept and bare not in kept:
            kept.append(part)
    return "; ".join(kept)


def heat(share: float, diagonal: bool) -> str:
    """Background colour of a confusion-matrix cell: the share of its row (0..1); blue on the
    diagonal (right), red off it (wrong)."""
    share = max(0.0, min(1.0, share))
    alpha = 0.08 + 0.82 * share if share > 0 else 0.0
    rgb = "33, 102, 172" if diagonal else "202, 0, 32"
    return f"rgba({rgb}, {alpha:.2f})"


@functools.lru_cache(maxsize=8)
def _escaped_names(class_names: tuple[str, ...]) -> tuple[list[str], str]:
    names = [str(escape(n)) for n in class_names]
    return names, "".join(f'<th class="col">{n}</th>' for n in names)


def heatmap_table(
    matrix: Sequence[Sequence[int]], class_names: Sequence[str], caption: str
) -> Markup:
    """A confusion matrix as an HTML table heatmap: counts in the cells, the colour the share of
    the row, the class names on both axes, a tooltip per cell. Built in Python: a page has 100
    cells, and a batch has hundreds of pages."""
    m = np.asarray(matrix, dtype=np.int64)
    totals = m.sum(axis=1)
    names, head = _escaped_names(tuple(class_names))
    rows = []
    for i, row in enumerate(m):
        cells = []
        for j, count in enumerate(row):
            share = count / totals[i] if totals[i] else 0.0
            cells.append(
                f'<td style="background: {heat(share, i == j)}" title="true {names[i]}, '
                f'predicted {names[j]}: {count:,} ({100 * share:.1f}%)">{count:,}</td>'
            )
        rows.append(f"<tr><th>{names[i]}</th>{''.join(cells)}</tr>")
    label = escape(caption)
    return Markup(
        f'<div class="scroll"><table class="heat" aria-label="{label}">'
        f'<caption class="small muted">{label}</caption>'
        f"<tr><th>true \\ predicted</th>{head}</tr>{''.join(rows)}</table></div>"
    )
