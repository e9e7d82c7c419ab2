"""The batch's content-addressed cache: one grade record per (assignment identity, files) key."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

from grader.grading.grade import Grade, GradeRecordError
from grader.grading.status import GradeStatus


@dataclass
class Cached:
    """A grade as the cache keeps it, with the plots its grading wrote."""

    grade: Grade
    experiment_plots: list[str] = field(default_factory=list)


def existing_keys(cache_dir: Path) -> frozenset[str]:
    """Keys already in the cache before a run starts (what "taken from the cache" means)."""
    if not cache_dir.is_dir():
        return frozenset()
    return frozenset(p.stem for p in cache_dir.glob("*.json"))


def read_cache(cache_dir: Path, key: str) -> Cached | None:
    """The cached grade of ``key``, or None (absent, unreadable, or written by another version
    of the grader)."""
    path = cache_dir / f"{key}.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return Cached(Grade.from_record(record["grade"]), list(record["experiment_plots"]))
    except (OSError, ValueError, KeyError, TypeError, GradeRecordError):
        return None


def write_cache(cache_dir: Path, key: str, cached: Cached) -> None:
    """Store ``cached`` under ``key`` (errors are not stored: they may be transient)."""
    if cached.grade.status is GradeStatus.ERROR:
        return  # a timeout or a missing grader: try again next run
    record = {"grade": cached.grade.to_record(), "experiment_plots": cached.experiment_plots}
    path = cache_dir / f"{key}.json"
    tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(record, allow_nan=False), encoding="utf-8")
    tmp.replace(path)
