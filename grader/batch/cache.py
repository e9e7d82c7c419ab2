"""The batch's content-addressed cache: one grade record per (assignment identity, files) key.

Records are written in batches, not one file each: :class:`ResultCache` keeps new records in
memory and appends them to the cache folder as one "pack" (JSON Lines, ``key<TAB>record``) when
:meth:`ResultCache.flush` runs (at the end of a batch, and at most every ``flush_every_s`` while a
slow batch of models runs, so a crash loses little). Packs are written to a temporary name and
renamed, so a reader never sees half of one; :meth:`ResultCache.close` merges them into one when
they pile up. Single ``<key>.json`` files are still read.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from grader.grading.grade import Grade, GradeRecordError
from grader.grading.status import GradeStatus

PACK_GLOB = "pack-*.jsonl"
MAX_PACKS = 8
"""More packs than this are merged into one when a batch ends."""


@dataclass
class Cached:
    """A grade as the cache keeps it, with the plots its grading wrote."""

    grade: Grade
    experiment_plots: list[str] = field(default_factory=list)

    def to_record(self) -> dict:
        """The JSON record the cache stores."""
        return {"grade": self.grade.to_record(), "experiment_plots": self.experiment_plots}

    @classmethod
    def from_record(cls, record: dict) -> Cached:
        """Read back :meth:`to_record`'s output."""
        return cls(Grade.from_record(record["grade"]), list(record["experiment_plots"]))


class ResultCache:
    """The cached grades under ``cache_dir`` (created if missing), read once when opened."""

    def __init__(self, cache_dir: Path, *, flush_every_s: float = 10.0) -> None:
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.flush_every_s = flush_every_s
        self._raw: dict[str, str] = {}
        self._files: list[Path] = []
        for path in sorted(self.cache_dir.glob("*.json")):  # one file per record
            try:
                self._raw[path.stem] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            self._files.append(path)
        for path in sorted(
            self.cache_dir.glob(PACK_GLOB)
        ):  # oldest first: names start with the time
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError):
                continue
            self._files.append(path)
            for line in lines:
                key, tab, record = line.partition("\t")
                if tab:
                    self._raw[key] = record
        self.preexisting = frozenset(self._raw)
        """Keys stored before this run: only these count as "taken from the cache"."""
        self._pending: dict[str, str] = {}
        self._lock = threading.Lock()
        self._flushed = time.monotonic()

    def get(self, key: str) -> Cached | None:
        """The cached grade of ``key``, or None (absent, unreadable, or written by another
        version of the grader)."""
        with self._lock:
            raw = self._pending.get(key) or self._raw.get(key)
        if raw is None:
            return None
        try:
            return Cached.from_record(json.loads(raw))
        except (ValueError, KeyError, TypeError, AttributeError, GradeRecordError):
            return None

    def put(self, key: str, cached: Cached) -> None:
        """Store ``cached`` under ``key`` (errors are not stored: they may be transient)."""
        if cached.grade.status is GradeStatus.ERROR:
            return  # a timeout or a missing grader: try again next run
        encoded = json.dumps(cached.to_record(), separators=(",", ":"), allow_nan=False)
        with self._lock:
            self._pending[key] = encoded
            due = time.monotonic() - self._flushed >= self.flush_every_s
        if due:
            self.flush()

    def flush(self) -> None:
        """Write the records stored since the last flush as one pack."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._flushed = time.monotonic()
            if not pending:
                return
            self._files.append(self._write_pack(pending))
            self._raw.update(pending)

    def close(self) -> None:
        """Flush, and merge the packs into one when there are more than :data:`MAX_PACKS`."""
        self.flush()
        with self._lock:
            if len(self._files) <= MAX_PACKS:
                return
            merged = self._write_pack(self._raw)
            for path in self._files:
                path.unlink(missing_ok=True)
            self._files = [merged]

    def _write_pack(self, records: dict[str, str]) -> Path:
        name = f"pack-{time.time_ns()}-{uuid.uuid4().hex[:8]}.jsonl"
        path = self.cache_dir / name
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as out:
            out.writelines(f"{key}\t{record}\n" for key, record in records.items())
        os.replace(tmp, path)
        return path
