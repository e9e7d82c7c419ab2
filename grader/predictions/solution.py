"""The answer key: test labels from the spec's labels CSV or the data set, and the public split."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from grader.assignment import Assignment


class SolutionError(RuntimeError):
    """The answer key cannot be loaded; the message names the file and what to do."""


def load_solution(
    spec: Assignment, data_dir: Path | None = None, *, path: Path | None = None
) -> pd.DataFrame:
    """Test labels as columns ``id``, ``label`` (int64), sorted by id.

    Read from ``path`` when given, else the spec's labels CSV; when the spec says ``dataset`` or
    its CSV is absent, the dataset's test labels (ids 0..N-1 in image order).
    """
    if path is not None:
        if not Path(path).is_file():
            raise SolutionError(f"{path}: solution file not found; pass an existing labels CSV")
        return _read_labels_csv(Path(path), spec)
    csv_path = spec.solution_path(_data_dir(data_dir))
    if csv_path is not None and csv_path.is_file():
        return _read_labels_csv(csv_path, spec)
    return _dataset_labels(spec, data_dir)


def answer_key_digest(solution: pd.DataFrame) -> str:
    """sha256 of an answer key: its ids then its labels, as little-endian int64."""
    digest = hashlib.sha256(solution["id"].to_numpy().astype("<i8").tobytes())
    digest.update(solution["label"].to_numpy().astype("<i8").tobytes())
    return digest.hexdigest()


def _data_dir(data_dir: Path | None) -> Path:
    from grader.data import data_dir as default_data_dir

    return default_data_dir(data_dir)


def _dataset_labels(spec: Assignment, data_dir: Path | None) -> pd.DataFrame:
    from grader.data import DataError, load_dataset

    try:
        labels = load_dataset(spec.dataset, "test", data_dir).labels
    except DataError as exc:
        raise SolutionError(f"no labels for assignment {spec.name!r}: {exc}") from None
    return pd.DataFrame({"id": np.arange(len(labels), dtype=np.int64), "label": labels})


def _read_labels_csv(path: Path, spec: Assignment) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, skipinitialspace=True)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise SolutionError(f"{path}: cannot read the solution labels ({exc})") from None
    columns = {str(c).strip().lower(): c for c in frame.columns}
    id_col = columns.get(spec.id_column.lower())
    label_col = columns.get(spec.label_column.lower())
    if id_col is None or label_col is None:
        raise SolutionError(
            f"{path}: the solution needs columns {spec.id_column!r} and {spec.label_column!r}, "
            f"found {', '.join(map(repr, map(str, frame.columns)))}; fix the file or the spec"
        )
    labels = frame[label_col]
    if labels.dtype.kind not in "iu":
        lookup = {c.lower(): i for i, c in enumerate(spec.class_names)}
        labels = labels.astype(str).str.strip().str.lower().map(lookup)
    if frame[id_col].dtype.kind not in "iu" or labels.isna().any():
        raise SolutionError(
            f"{path}: ids must be integers and labels class indices or names of "
            f"{spec.name!r}; fix the solution file"
        )
    out = pd.DataFrame({"id": frame[id_col].to_numpy(np.int64), "label": labels.to_numpy(np.int64)})
    if out["id"].duplicated().any():
        raise SolutionError(f"{path}: the solution repeats ids; each id must appear once")
    if ((out["label"] < 0) | (out["label"] >= len(spec.class_names))).any():
        raise SolutionError(
            f"{path}: labels outside 0-{len(spec.class_names) - 1} for {spec.name!r}"
        )
    return out.sort_values("id", kind="stable", ignore_index=True)


_SPLIT_CACHE: dict[tuple[bytes, float, int], np.ndarray] = {}
_SPLIT_CACHE_SIZE = 8
_SPLIT_LOCK = threading.Lock()


def split_ids(ids: np.ndarray, public_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask, aligned with ``ids``: True where the id is in the public split.

    A seeded permutation of the sorted unique ids picks ``round(n * public_fraction)`` public
    ids, so the split depends only on the set of ids and the seed, never on row order.
    """
    ids = np.asarray(ids, dtype=np.int64)
    n = len(ids)
    if n and ids[0] == 0 and ids[-1] == n - 1 and (ids[1:] > ids[:-1]).all():
        identity = f"range:{n}".encode()  # the usual 0..N-1: no need to hash the ids
    else:
        identity = hashlib.blake2b(ids.tobytes(), digest_size=16).digest()
    key = (identity, public_fraction, seed)
    with _SPLIT_LOCK:  # batches score from several threads
        if key not in _SPLIT_CACHE:
            if len(_SPLIT_CACHE) >= _SPLIT_CACHE_SIZE:
                _SPLIT_CACHE.pop(next(iter(_SPLIT_CACHE)))
            _SPLIT_CACHE[key] = _public_mask(ids, public_fraction, seed)
        return _SPLIT_CACHE[key].copy()


def _public_mask(ids: np.ndarray, public_fraction: float, seed: int) -> np.ndarray:
    ordered = np.sort(ids)  # np.unique hashes on numpy >= 2.3: 20x slower on sorted input
    unique = ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]
    n_public = int(round(len(unique) * public_fraction))
    order = np.random.default_rng(seed).permutation(len(unique))
    is_public = np.zeros(len(unique), dtype=bool)
    is_public[order[:n_public]] = True
    return is_public[np.searchsorted(unique, ids)]
