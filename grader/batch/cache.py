"""The batch's content-addressed cache: one JSON record per (assignment identity, files) key."""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
from pathlib import Path

import numpy as np

from grader.batch.results import StudentResult


def read_cache(cache_dir: Path, key: str, student: str) -> StudentResult | None:
    path = cache_dir / f"{key}.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # absent or unreadable: grade again
    labels = record.pop("labels", None)
    record.update(student=student, cached=True)
    try:
        result = StudentResult(**record)
    except TypeError:
        return None  # written by another version of this module
    if labels is not None:
        result.labels = np.frombuffer(base64.b64decode(labels), dtype=np.uint8).astype(np.int64)
    return result


def write_cache(cache_dir: Path, key: str, result: StudentResult) -> None:
    if result.status == "error":
        return  # errors may be transient (a timeout, a missing grader): try again next run
    record = dataclasses.asdict(dataclasses.replace(result, labels=None))
    del record["cached"]
    if result.labels is not None:
        record["labels"] = base64.b64encode(result.labels.astype(np.uint8).tobytes()).decode()
    path = cache_dir / f"{key}.json"
    tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    tmp.replace(path)
