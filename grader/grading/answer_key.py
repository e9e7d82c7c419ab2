"""The labels a grade is scored against: held where grades are completed, never in a box or on a
worker. Loaded once per process and kept (a changed labels file is read again)."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from grader.assignment import Assignment
from grader.predictions.solution import answer_key_digest, load_solution

_CACHE: dict[tuple, pd.DataFrame] = {}
_LOCK = threading.Lock()


@dataclass
class AnswerKey:
    """The answer key of one assignment: a predictions file's labels (the spec's labels CSV, or
    ``path``) and the labels of the test images a model is evaluated on (the dataset's, in image
    order). Each is loaded on first use; :class:`grader.predictions.solution.SolutionError` says
    what is missing."""

    spec: Assignment
    data_dir: Path | None = None
    path: Path | None = None
    """A labels CSV given for this run (``grader check --solution``), over the spec's."""

    def solution(self) -> pd.DataFrame:
        """Columns ``id``, ``label`` sorted by id: what a predictions file is scored against."""
        if self.path is not None:
            key = ("path", str(self.path), _stamp(self.path), self.spec.id_column,
                   self.spec.label_column)  # fmt: skip
            return _cached(key, self.spec, self.path, None)
        return _cached(_key(self.spec, self.data_dir), self.spec, None, self.data_dir)

    def image_labels(self) -> pd.DataFrame:
        """Columns ``id``, ``label``: the labels of the dataset's test images in image order
        (what a model's logits are scored against)."""
        as_dataset = dataclasses.replace(self.spec, solution="dataset")
        return _cached(_key(as_dataset, self.data_dir), as_dataset, None, self.data_dir)

    def digest(self) -> str:
        """sha256 of the predictions answer key (:func:`answer_key_digest`)."""
        return answer_key_digest(self.solution())


def _stamp(path: Path | None) -> int | None:
    return path.stat().st_mtime_ns if path is not None and path.is_file() else None


def _key(spec: Assignment, data_dir: Path | None) -> tuple:
    from grader.data import data_dir as resolve_data_dir

    path = spec.solution_path(resolve_data_dir(data_dir))
    return (spec.dataset, str(path), _stamp(path), spec.id_column, spec.label_column,
            spec.test_size, str(data_dir))  # fmt: skip


def _cached(key: tuple, spec: Assignment, path: Path | None, data_dir: Path | None) -> pd.DataFrame:
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = load_solution(spec, data_dir, path=path)
        return _CACHE[key]
