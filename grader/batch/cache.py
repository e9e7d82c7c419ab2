"""The batch's content-addressed cache: one JSON record per (assignment identity, files) key."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from grader.batch.results import StudentResult


def existing_keys(cache_dir: Path) -> frozenset[str]:
    """Keys already in the cache before a run starts (what "taken from the cache" means)."""
    if not cache_dir.is_dir():
        return frozenset()
    return frozenset(p.stem for p in cache_dir.glob("*.json"))


def read_cache(cache_dir: Path, key: str, student: str) -> StudentResult | None:
    """The cached result of ``key`` renamed to ``student``, or None (absent, unreadable, or
    written by another version of the grader)."""
    path = cache_dir / f"{key}.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    record["student"] = student
    try:
        return StudentResult.from_record(record)
    except (TypeError, KeyError, ValueError):
        return None


def write_cache(cache_dir: Path, key: str, result: StudentResult) -> None:
    """Store ``result`` under ``key`` (errors are not stored: they may be transient)."""
    if result.status == "error":
        return  # a timeout or a missing grader: try again next run
    record = result.to_record()
    del record["cached"]
    path = cache_dir / f"{key}.json"
    tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    tmp.replace(path)
