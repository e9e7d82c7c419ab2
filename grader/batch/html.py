"""The HTML side of the batch: one Jinja environment (templates in ``templates/``) with the
filters both the report and the student pages use. No web framework: the pages are files."""

from __future__ import annotations

import functools
import re

import jinja2


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The templates of :mod:`grader.batch`, autoescaped, with the shared filters."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("grader.batch", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pct=pct, num=num, tidy=tidy_message, ratio=ratio)
    env.globals.update(heat=heat)
    return env


def pct(value: float | None, digits: int = 1) -> str:
    """``0.8123`` -> ``81.2%``; blank for None."""
    return "" if value is None else f"{100 * value:.{digits}f}%"


def num(value: float | None) -> str:
    """Thousands separators; blank for None."""
    if value is None:
        return ""
    return f"{value:,}" if isinstance(value, int) else f"{value:,.4g}"


def ratio(part: float, whole: float) -> float:
    """``part / whole``, 0 when ``whole`` is 0."""
    return part / whole if whole else 0.0


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
