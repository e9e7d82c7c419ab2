"""Read and validate a student's ``predictions.csv``.

The reader is forgiving about form (header case and spaces, a UTF-8 BOM, CRLF line ends, rows in
any order, labels given as class indices or class names) and strict about content: every problem
in the file is collected into one :class:`SubmissionError`. Messages name rows as a spreadsheet
shows them (the header is row 1) and quote the student's own values, never a true label.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from grader.assignment import Assignment

SHOW_FIRST = 5
"""How many offending rows, ids or values a message quotes."""
OTHER_DELIMITERS = {";": "semicolon ';'", "\t": "tab", "|": "pipe '|'"}
ID_ALIASES = ("id",)
LABEL_ALIASES = ("label", "category", "prediction", "class")


class SubmissionError(ValueError):
    """A predictions file that cannot be graded; ``errors`` lists every problem found."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = list(errors)


def read_predictions(
    source: Path | bytes,
    spec: Assignment,
    *,
    expected_ids: Iterable[int] | np.ndarray | None = None,
    name: str = "predictions.csv",
) -> pd.DataFrame:
    """Parse and validate predictions; return columns ``id``, ``label`` (int64), sorted by id.

    ``expected_ids`` are the ids of the solution; without them, ids are checked for form and
    duplicates only. Raises :class:`SubmissionError` listing every problem.
    """
    raw = _read_bytes(source, name)
    if len(raw) > spec.max_file_bytes:
        raise SubmissionError(
            [
                f"{name}: file is {len(raw):,} bytes, over the limit of "
                f"{spec.max_file_bytes:,} bytes; {_expected_format(spec)}"
            ]
        )
    text = _decode(raw, name, spec)
    fast = _read_well_formed(text, spec, expected_ids)
    if fast is not None:
        return fast
    errors: list[str] = []
    delimiter = _delimiter(text)
    if delimiter != ",":
        errors.append(
            f"{name}: columns are separated by {OTHER_DELIMITERS[delimiter]}, not by commas; "
            f"save the file as comma-separated values ({_expected_format(spec)})"
        )
    frame = _parse(text, delimiter, name, spec)
    id_col, label_col = _find_columns(frame, spec, name, errors)
    if id_col is None or label_col is None:
        raise SubmissionError(errors)
    if frame.empty:
        raise SubmissionError([*errors, f"{name}: has a header but no rows"])

    ids, id_ok = _parse_ids(frame[id_col], name, errors)
    labels = _parse_labels(frame[label_col], spec, name, errors)
    valid_ids = ids[id_ok]
    _check_duplicates(valid_ids, np.flatnonzero(id_ok), name, errors)
    if expected_ids is not None:
        _check_coverage(valid_ids, np.asarray(expected_ids, dtype=np.int64), name, errors)
    if errors:
        raise SubmissionError(errors)
    order = np.argsort(ids, kind="stable")
    return pd.DataFrame({"id": ids[order], "label": labels[order]})


def _read_bytes(source: Path | bytes, name: str) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    try:
        return Path(source).read_bytes()
    except FileNotFoundError:
        raise SubmissionError([f"{name}: no such file"]) from None
    except IsADirectoryError:
        raise SubmissionError([f"{name}: is a folder, not a CSV file"]) from None
    except OSError as exc:
        raise SubmissionError([f"{name}: cannot be read ({exc.strerror})"]) from None


def _expected_format(spec: Assignment) -> str:
    return (
        f"expected a header '{spec.id_column},{spec.label_column}' then one row per test image: "
        f"the image id and a class index 0-{len(spec.class_names) - 1} or a class name"
    )


def _decode(raw: bytes, name: str, spec: Assignment) -> str:
    if not raw.strip(b" \t\r\n\xef\xbb\xbf"):
        raise SubmissionError([f"{name}: the file is empty; {_expected_format(spec)}"])
    if b"\x00" in raw[:4096]:
        raise SubmissionError(
            [f"{name}: is a binary file, not a CSV text file; {_expected_format(spec)}"]
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SubmissionError(
            [
                f"{name}: is not UTF-8 text (undecodable byte at offset {exc.start}); "
                f"export it as CSV UTF-8; {_expected_format(spec)}"
            ]
        ) from None


def _read_well_formed(
    text: str, spec: Assignment, expected_ids: Iterable[int] | np.ndarray | None
) -> pd.DataFrame | None:
    """The common case at the speed of a plain ``read_csv``: integer columns, every id once.

    Returns None whenever anything is unusual; the careful path then finds every problem.
    """
    end = text.find("\n")
    header = [h.strip().strip('"').lower() for h in text[: end if end >= 0 else None].split(",")]
    if (
        len(header) != 2
        or header[0] not in (spec.id_column.lower(), *ID_ALIASES)
        or header[1] not in (spec.label_column.lower(), *LABEL_ALIASES)
    ):
        return None
    try:
        # Naming the columns while reading: renaming afterwards costs a tenth of the read.
        frame = pd.read_csv(io.StringIO(text), header=0, names=["id", "label"])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError):
        return None
    if frame.shape[1] != 2 or len(frame) == 0 or not isinstance(frame.index, pd.RangeIndex):
        return None
    id_col, label_col = frame["id"], frame["label"]
    if id_col.dtype.kind != "i" or label_col.dtype.kind != "i":
        return None
    ids = id_col.to_numpy()
    labels = label_col.to_numpy()
    if labels.min() < 0 or labels.max() >= len(spec.class_names):
        return None
    in_order = _is_increasing(ids)
    if not in_order:
        order = np.argsort(ids, kind="stable")
        ids, labels = ids[order], labels[order]
        if not _is_increasing(ids):
            return None  # duplicates
    if expected_ids is not None:
        expected = np.asarray(expected_ids, dtype=np.int64)
        if not _is_increasing(expected):
            expected = np.sort(expected)
        if not np.array_equal(ids, expected):
            return None
    elif ids[0] < 0:
        return None
    if in_order:
        return frame
    return pd.DataFrame({"id": ids, "label": labels}, copy=False)


def _is_increasing(values: np.ndarray) -> bool:
    return bool((values[1:] > values[:-1]).all())


def _delimiter(text: str) -> str:
    header = text.lstrip().split("\n", 1)[0]
    if "," in header:
        return ","
    found = [d for d in OTHER_DELIMITERS if d in header]
    return found[0] if found else ","


def _parse(text: str, delimiter: str, name: str, spec: Assignment) -> pd.DataFrame:
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=delimiter,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=True,
            quoting=csv.QUOTE_MINIMAL,
        )
    except pd.errors.ParserError as exc:
        # pandas counts lines from 1 including the header, as a spreadsheet does.
        detail = str(exc).strip().replace("Error tokenizing data. C error: ", "")
        raise SubmissionError(
            [f"{name}: not a well-formed CSV ({detail}); {_expected_format(spec)}"]
        ) from None
    except pd.errors.EmptyDataError:
        raise SubmissionError([f"{name}: the file is empty; {_expected_format(spec)}"]) from None
    if not isinstance(frame.index, pd.RangeIndex):
        # pandas turns the leading fields into an index when rows are longer than the header.
        raise SubmissionError(
            [
                f"{name}: the rows have more fields than the header's {frame.shape[1]} "
                f"column(s) (a trailing delimiter at the end of each row?); "
                f"{_expected_format(spec)}"
            ]
        )
    return frame


def _find_columns(
    frame: pd.DataFrame, spec: Assignment, name: str, errors: list[str]
) -> tuple[str | None, str | None]:
    normalized = {str(col).strip().lower(): col for col in frame.columns}
    id_names = (spec.id_column.strip().lower(), *ID_ALIASES)
    label_names = (spec.label_column.strip().lower(), *LABEL_ALIASES)
    id_col = next((normalized[n] for n in id_names if n in normalized), None)
    label_col = next((normalized[n] for n in label_names if n in normalized), None)
    found = ", ".join(repr(str(c)) for c in frame.columns)
    expected = f"'{spec.id_column}' and '{spec.label_column}'"
    if id_col is None or label_col is None:
        missing = [
            col
            for col, got in ((spec.id_column, id_col), (spec.label_column, label_col))
            if got is None
        ]
        errors.append(
            f"{name}: missing column(s) {', '.join(map(repr, missing))}; the header must name "
            f"the columns {expected}, found {found}"
        )
        return None, None
    extra = [str(c) for c in frame.columns if c not in (id_col, label_col)]
    if extra:
        errors.append(
            f"{name}: unexpected column(s) {', '.join(map(repr, extra))}; "
            f"keep only the columns {expected}"
        )
    return id_col, label_col


def _rows(positions: np.ndarray) -> str:
    """Spreadsheet row numbers (the header is row 1) of the first few positions."""
    shown = ", ".join(str(int(p) + 2) for p in positions[:SHOW_FIRST])
    more = f" and {len(positions) - SHOW_FIRST} more" if len(positions) > SHOW_FIRST else ""
    return f"{shown}{more}"


def _values(values: Iterable[object]) -> str:
    items = list(values)
    shown = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in items[:SHOW_FIRST])
    return shown + (f", ... ({len(items)} in all)" if len(items) > SHOW_FIRST else "")


def _parse_ids(column: pd.Series, name: str, errors: list[str]) -> tuple[np.ndarray, np.ndarray]:
    text = column.str.strip()
    ok = text.str.fullmatch(r"[+]?\d{1,18}").to_numpy(dtype=bool, na_value=False)
    ids = np.full(len(text), -1, dtype=np.int64)
    ids[ok] = text[ok].astype(np.int64).to_numpy()
    bad = np.flatnonzero(~ok)
    if len(bad):
        errors.append(
            f"{name}: {len(bad)} id(s) are not non-negative integers, in row(s) {_rows(bad)}: "
            f"{_values(text.iloc[bad[:SHOW_FIRST]].tolist())}"
        )
    return ids, ok


def _parse_labels(column: pd.Series, spec: Assignment, name: str, errors: list[str]) -> np.ndarray:
    text = column.str.strip()
    num_classes = len(spec.class_names)
    labels = np.full(len(text), -1, dtype=np.int64)
    is_int = text.str.fullmatch(r"[+-]?\d{1,18}").to_numpy(dtype=bool, na_value=False)
    labels[is_int] = text[is_int].astype(np.int64).to_numpy()
    if not is_int.all():
        lookup = {c.lower(): i for i, c in enumerate(spec.class_names)}
        named = text[~is_int].str.lower().map(lookup)
        labels[~is_int] = named.fillna(-1).astype(np.int64).to_numpy()
    ok = (labels >= 0) & (labels < num_classes)
    bad = np.flatnonzero(~ok)
    if len(bad):
        errors.append(
            f"{name}: {len(bad)} label(s) are not a class index 0-{num_classes - 1} or a class "
            f"name ({', '.join(spec.class_names)}), in row(s) {_rows(bad)}: "
            f"{_values(text.iloc[bad[:SHOW_FIRST]].tolist())}"
        )
    return labels


def _check_duplicates(ids: np.ndarray, positions: np.ndarray, name: str, errors: list[str]) -> None:
    duplicated = pd.Series(ids).duplicated(keep="first").to_numpy()
    if duplicated.any():
        dup_ids = np.unique(ids[duplicated])
        errors.append(
            f"{name}: {len(dup_ids)} id(s) appear more than once ({_values(dup_ids.tolist())}), "
            f"repeated in row(s) {_rows(positions[duplicated])}; give each id exactly one row"
        )


def _check_coverage(ids: np.ndarray, expected: np.ndarray, name: str, errors: list[str]) -> None:
    present = np.isin(expected, ids, assume_unique=False)
    missing = np.sort(expected[~present])
    if len(missing):
        errors.append(
            f"{name}: {len(missing)} of the {len(expected):,} test ids are missing "
            f"({_values(missing.tolist())}); predict every test image"
        )
    known = np.isin(ids, expected)
    unknown = np.unique(ids[~known])
    if len(unknown):
        errors.append(
            f"{name}: {len(unknown)} id(s) are not test ids ({_values(unknown.tolist())}); "
            f"ids run from {int(expected.min())} to {int(expected.max())}"
        )
