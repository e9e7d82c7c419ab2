"""Read and validate a student's ``predictions.csv``.

The reader is forgiving about form (header case and spaces, a UTF-8 BOM, CRLF line ends, rows in
any order, labels given as class indices, integral floats such as ``3.0`` or class names) and
strict about content: every problem in the file is collected into one :class:`SubmissionError`.
Messages name rows as a spreadsheet shows them (the header is row 1), quote the student's own
values, never a true label, and say what to do: a spreadsheet or a UTF-16 file is named as such,
a near-miss header is answered with the column to rename.

Optional class probabilities: one column per class, named by the class names (``Id,Category,
airplane,automobile,...,truck``), each a number in [0, 1], each row summing to 1. They feed the
calibration metrics; the graded label is still ``Category``.

:func:`validate_predictions` makes every check without the answer key (the spec knows the ids);
:func:`sample_submission` writes a file in the expected format.
"""

from __future__ import annotations

import csv
import difflib
import io
import os
import zipfile
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
PROBABILITY_SUM_TOLERANCE = 0.01
"""How far a row of class probabilities may sum from 1."""
INTEGER = r"[+]?\d{1,18}(?:\.0*)?"
SIGNED_INTEGER = r"[+-]?\d{1,18}(?:\.0*)?"
"""Whole numbers, also as integral floats (``3.0``: what pandas writes for a float column)."""
SAVE_AS_CSV = "in Excel: File > Save As > CSV UTF-8; in pandas: frame.to_csv(path, index=False)"


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
    """Parse and validate predictions; return columns ``id``, ``label`` (int64), sorted by id,
    and one float64 column per class (named by the class) when the file carries probabilities.

    ``expected_ids`` are the ids of the solution; without them, ids are checked for form and
    duplicates only. Raises :class:`SubmissionError` listing every problem.
    """
    raw = _read_bytes(source, name, spec)
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
    id_col, label_col, class_cols = _find_columns(frame, spec, name, errors)
    if id_col is None or label_col is None:
        raise SubmissionError(errors)
    if frame.empty:
        raise SubmissionError([*errors, f"{name}: has a header but no rows"])

    ids, id_ok = _parse_ids(frame[id_col], name, errors)
    labels = _parse_labels(frame[label_col], spec, name, errors)
    probs = _parse_probabilities(frame, class_cols, name, errors) if class_cols else None
    valid_ids = ids[id_ok]
    _check_duplicates(valid_ids, np.flatnonzero(id_ok), name, errors)
    if expected_ids is not None:
        _check_coverage(valid_ids, np.asarray(expected_ids, dtype=np.int64), name, errors)
    if errors:
        raise SubmissionError(errors)
    order = np.argsort(ids, kind="stable")
    out = pd.DataFrame({"id": ids[order], "label": labels[order]})
    if probs is not None:
        for k, class_name in enumerate(spec.class_names):
            out[class_name] = probs[order, k]
    return out


def validate_predictions(
    source: Path | bytes, spec: Assignment, *, name: str = "predictions.csv"
) -> pd.DataFrame:
    """Every check :func:`read_predictions` makes for scoring, without the answer key.

    The ids must be the spec's test ids (0..test_size-1), so a file that passes here passes
    ``grader score`` and the leaderboard, and fails with the same messages otherwise.
    """
    return read_predictions(source, spec, expected_ids=spec.test_ids(), name=name)


def sample_submission(spec: Assignment) -> str:
    """A predictions file in the expected format: every test id, each with class 0."""
    ids = spec.test_ids()
    body = "\n".join(f"{i},0" for i in ids.tolist())
    return f"{spec.id_column},{spec.label_column}\n{body}\n"


def probabilities(frame: pd.DataFrame, spec: Assignment) -> np.ndarray | None:
    """The (N, classes) class probabilities of a file read by :func:`read_predictions`, or None
    when the file has no probability columns."""
    if not all(c in frame.columns for c in spec.class_names):
        return None
    return frame[list(spec.class_names)].to_numpy(np.float64)


def _read_bytes(source: Path | bytes, name: str, spec: Assignment) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw = bytes(source)
    else:
        try:
            with open(source, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size > spec.max_file_bytes:
                    raise _too_large(size, name, spec, fh.read(4096))
                raw = fh.read(spec.max_file_bytes + 1)
        except FileNotFoundError:
            raise SubmissionError([f"{name}: no such file"]) from None
        except IsADirectoryError:
            raise SubmissionError([f"{name}: is a folder, not a CSV file"]) from None
        except OSError as exc:
            raise SubmissionError([f"{name}: cannot be read ({exc.strerror})"]) from None
    if len(raw) > spec.max_file_bytes:
        raise _too_large(len(raw), name, spec, raw[:4096])
    return raw


def _too_large(size: int, name: str, spec: Assignment, head: bytes) -> SubmissionError:
    hint = ""
    if head.split(b"\n", 1)[0].count(b",") > 1:  # probability columns: rounding shrinks them
        hint = "; round the probabilities to 4 decimals (to_csv(..., float_format='%.4f'))"
    return SubmissionError(
        [
            f"{name}: file is {size:,} bytes, over the limit of "
            f"{spec.max_file_bytes:,} bytes{hint}; {_expected_format(spec)}"
        ]
    )


def _expected_format(spec: Assignment) -> str:
    return (
        f"expected a header '{spec.id_column},{spec.label_column}' then one row per test image: "
        f"the image id and a class index 0-{len(spec.class_names) - 1} or a class name"
    )


def _decode(raw: bytes, name: str, spec: Assignment) -> str:
    if not raw.strip(b" \t\r\n\xef\xbb\xbf"):
        raise SubmissionError([f"{name}: the file is empty; {_expected_format(spec)}"])
    kind = _binary_kind(raw)
    if kind is not None:
        raise SubmissionError([f"{name}: {kind}; {_expected_format(spec)}"])
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        guess = _guess_encoding(raw)
        looks = f"; it looks like {guess} text" if guess else ""
        raise SubmissionError(
            [
                f"{name}: is not UTF-8 text (undecodable byte 0x{raw[exc.start]:02x} at offset "
                f"{exc.start}{looks}); save it as UTF-8 ({SAVE_AS_CSV}); "
                f"{_expected_format(spec)}"
            ]
        ) from None


SPREADSHEETS = {
    "xlsx": "an Excel workbook (.xlsx)",
    "xls": "an Excel 97-2003 workbook (.xls)",
    "numbers": "an Apple Numbers spreadsheet (.numbers)",
    "ods": "an OpenDocument spreadsheet (.ods)",
}
UNICODE_BOMS = (  # longest first: the UTF-32 LE mark begins with the UTF-16 LE one
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def _binary_kind(raw: bytes) -> str | None:
    """What a file that is not CSV text is, in words with what to do; None for text."""
    spreadsheet = _spreadsheet_kind(raw)
    if spreadsheet is not None:
        return (
            f"is {SPREADSHEETS[spreadsheet]}, not a CSV text file; export it as CSV "
            f"({_export_hint(spreadsheet)})"
        )
    if raw.startswith(b"PK\x03\x04"):
        return "is a zip archive, not a CSV text file; upload the predictions CSV itself"
    for bom, encoding in UNICODE_BOMS:
        if raw.startswith(bom):
            return f"is {encoding} text; save it as UTF-8 ({SAVE_AS_CSV})"
    head = raw[:4096]
    if b"\x00" in head:
        odd, even = head[1::2], head[0::2]
        # ASCII text in UTF-16 without a byte-order mark: every other byte is zero.
        if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
            return f"is UTF-16 (little-endian) text; save it as UTF-8 ({SAVE_AS_CSV})"
        if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
            return f"is UTF-16 (big-endian) text; save it as UTF-8 ({SAVE_AS_CSV})"
        return "is a binary file, not a CSV text file"
    return None


def _spreadsheet_kind(raw: bytes) -> str | None:
    if raw.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):  # OLE2 compound file: .xls
        return "xls"
    if not raw.startswith(b"PK\x03\x04"):
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            names = archive.namelist()
            if "mimetype" in names:
                mimetype = archive.read("mimetype")[:100]
                if b"opendocument.spreadsheet" in mimetype:
                    return "ods"
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError):
        return None
    if any(n.startswith("xl/") for n in names):
        return "xlsx"
    if any(n.startswith("Index/") or n.endswith(".iwa") for n in names):
        return "numbers"
    return None


def _export_hint(kind: str) -> str:
    if kind == "numbers":
        return "in Numbers: File > Export To > CSV, Text Encoding Unicode (UTF-8)"
    if kind == "ods":
        return "in LibreOffice: File > Save As, File type Text CSV, Character set UTF-8"
    return "in Excel: File > Save As, File Format CSV UTF-8 (Comma delimited)"


def _guess_encoding(raw: bytes) -> str | None:
    from charset_normalizer import from_bytes  # only for files that are not UTF-8

    best = from_bytes(raw[:65536]).best()
    if best is None or best.encoding in ("utf_8", "ascii"):
        return None
    return best.encoding.replace("_", "-")


def _read_well_formed(
    text: str, spec: Assignment, expected_ids: Iterable[int] | np.ndarray | None
) -> pd.DataFrame | None:
    """The common case at the speed of a plain ``read_csv``: integer columns, every id once.

    Returns None whenever anything is unusual; the careful path then finds every problem.
    """
    end = text.find("\n")
    header = [h.strip().strip('"').lower() for h in text[: end if end >= 0 else None].split(",")]
    classes = [c.lower() for c in spec.class_names]
    with_probabilities = header[2:] == classes
    if (
        len(header) not in (2, 2 + len(classes))
        or (len(header) > 2 and not with_probabilities)
        or header[0] not in (spec.id_column.lower(), *ID_ALIASES)
        or header[1] not in (spec.label_column.lower(), *LABEL_ALIASES)
    ):
        return None
    names = ["id", "label", *(spec.class_names if with_probabilities else ())]
    try:
        # Naming the columns while reading: renaming afterwards costs a tenth of the read.
        frame = pd.read_csv(io.StringIO(text), header=0, names=names)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError):
        return None
    if frame.shape[1] != len(names) or len(frame) == 0:
        return None
    if not isinstance(frame.index, pd.RangeIndex):
        return None
    ids = _whole_numbers(frame["id"].to_numpy())
    labels = _whole_numbers(frame["label"].to_numpy())
    if ids is None or labels is None:
        return None
    if labels.min() < 0 or labels.max() >= len(spec.class_names):
        return None
    if with_probabilities:
        probs = frame[list(spec.class_names)].to_numpy()
        if probs.dtype.kind not in "fi" or not _probabilities_ok(probs.astype(np.float64)).all():
            return None
        floats = {c: frame[c].astype(np.float64) for c in spec.class_names}
        frame = frame.assign(id=ids, label=labels, **floats)
    elif frame["id"].dtype.kind != "i" or frame["label"].dtype.kind != "i":
        frame = pd.DataFrame({"id": ids, "label": labels}, copy=False)
    in_order = _is_increasing(ids)
    order = None
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
    return frame.iloc[order].reset_index(drop=True)


def _whole_numbers(values: np.ndarray) -> np.ndarray | None:
    """``values`` as int64 when every one is a whole number (ints, or floats such as 3.0)."""
    if values.dtype.kind == "i":
        return values.astype(np.int64, copy=False)
    if values.dtype.kind != "f" or not np.isfinite(values).all():
        return None
    if not (values == np.round(values)).all() or np.abs(values).max() >= 2**53:
        return None
    return values.astype(np.int64)


def _probabilities_ok(probs: np.ndarray) -> np.ndarray:
    """Per row: every value in [0, 1] and the row sums to 1 within the tolerance."""
    in_range = ((probs >= 0) & (probs <= 1)).all(axis=1)
    return in_range & (np.abs(probs.sum(axis=1) - 1) <= PROBABILITY_SUM_TOLERANCE)


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
) -> tuple[str | None, str | None, list[str]]:
    """The id column, the label column and the class-probability columns (in class order)."""
    normalized = {str(col).strip().lower(): col for col in frame.columns}
    id_names = (spec.id_column.strip().lower(), *ID_ALIASES)
    label_names = (spec.label_column.strip().lower(), *LABEL_ALIASES)
    id_col = next((normalized[n] for n in id_names if n in normalized), None)
    label_col = next((normalized[n] for n in label_names if n in normalized), None)
    class_keys = [c.lower() for c in spec.class_names]
    class_cols = [normalized[c] for c in class_keys if c in normalized]
    found = ", ".join(repr(str(c)) for c in frame.columns)
    expected = f"'{spec.id_column}' and '{spec.label_column}'"
    if id_col is None or label_col is None:
        missing = [
            col
            for col, got in ((spec.id_column, id_col), (spec.label_column, label_col))
            if got is None
        ]
        message = (
            f"{name}: missing column(s) {', '.join(map(repr, missing))}; the header must name "
            f"the columns {expected}, found {found}"
        )
        if _looks_like_data(frame.columns, spec):
            message += (
                f"; the first line looks like data, not a header: add the line "
                f"'{spec.id_column},{spec.label_column}' at the top"
            )
        else:
            taken = {id_col, label_col, *class_cols}
            unmatched = [str(c) for c in frame.columns if c not in taken]
            renames = _renames(missing, unmatched, spec)
            if renames:
                message += "; rename " + " and ".join(f"{a!r} to {b!r}" for a, b in renames)
        errors.append(message)
        return None, None, []
    if class_cols and len(class_cols) < len(class_keys):
        absent = [c for c in spec.class_names if c.lower() not in normalized]
        errors.append(
            f"{name}: class probability columns must name every class; missing "
            f"{_values(absent)} (or drop the probability columns)"
        )
    extra = [str(c) for c in frame.columns if c not in (id_col, label_col, *class_cols)]
    if extra:
        errors.append(
            f"{name}: unexpected column(s) {', '.join(map(repr, extra))}; keep only the columns "
            f"{expected} (optionally followed by one probability column per class, named "
            f"{', '.join(spec.class_names[:3])}, ...)"
        )
    return id_col, label_col, (class_cols if len(class_cols) == len(class_keys) else [])


def _looks_like_data(columns: Iterable[object], spec: Assignment) -> bool:
    """A header whose fields are all numbers or class names: a file without a header line."""
    classes = {c.lower() for c in spec.class_names}
    fields = [str(c).strip().lower() for c in columns]
    numeric = pd.Series(fields).str.fullmatch(r"[+-]?\d+(?:\.\d*)?").tolist()
    return numeric[0] and all(n or f in classes for f, n in zip(fields, numeric, strict=True))


def _renames(missing: list[str], unmatched: list[str], spec: Assignment) -> list[tuple[str, str]]:
    """(found, expected) pairs for a near-miss header: ``image_id`` -> ``Id``."""
    hints = {
        spec.id_column: (spec.id_column.lower(), *ID_ALIASES, "image", "index", "idx", "name"),
        spec.label_column: (spec.label_column.lower(), *LABEL_ALIASES, "pred", "target", "y"),
    }
    pairs: list[tuple[str, str]] = []
    left = list(unmatched)
    for wanted in missing:
        keys = hints[wanted]
        lowered = {c.lower(): c for c in left}
        close = difflib.get_close_matches(wanted.lower(), list(lowered), n=1, cutoff=0.6)
        guess = next((c for c in left if any(k in c.lower() for k in keys)), None)
        guess = guess or (lowered[close[0]] if close else None)
        if guess is None and len(left) == 1 and len(missing) == 1:
            guess = left[0]  # the one column left over
        if guess is not None:
            pairs.append((guess, wanted))
            left.remove(guess)
    return pairs


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
    ok = text.str.fullmatch(INTEGER).to_numpy(dtype=bool, na_value=False)
    ids = np.full(len(text), -1, dtype=np.int64)
    ids[ok] = _integers(text[ok])
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
    is_int = text.str.fullmatch(SIGNED_INTEGER).to_numpy(dtype=bool, na_value=False)
    labels[is_int] = _integers(text[is_int])
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


def _integers(text: pd.Series) -> np.ndarray:
    """Whole numbers written as ``12`` or ``12.0`` -> int64."""
    return text.str.replace(r"\.0*$", "", regex=True).astype(np.int64).to_numpy()


def _parse_probabilities(
    frame: pd.DataFrame, columns: list[str], name: str, errors: list[str]
) -> np.ndarray:
    probs = np.column_stack(
        [pd.to_numeric(frame[c].str.strip(), errors="coerce").to_numpy(np.float64) for c in columns]
    )
    bad = np.flatnonzero(~_probabilities_ok(np.nan_to_num(probs, nan=-1.0)))
    if len(bad):
        errors.append(
            f"{name}: {len(bad)} row(s) of class probabilities are not numbers in [0, 1] that "
            f"sum to 1 (within {PROBABILITY_SUM_TOLERANCE}), in row(s) {_rows(bad)}"
        )
    return probs


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
