"""Reading and validating predictions.csv files written to disk, against the real test ids.

That no message reveals a label is checked end to end in test_cli_score.py (messages are
identical under a permuted answer key)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from grader.assignment import load_assignment
from grader.predictions.read import SubmissionError, read_predictions


@pytest.fixture(scope="module")
def spec():
    return load_assignment("cifar10")


@pytest.fixture(scope="module")
def truth(labels_csv: Path) -> pd.DataFrame:
    return pd.read_csv(labels_csv)


@pytest.fixture(scope="module")
def ids(truth: pd.DataFrame) -> np.ndarray:
    return truth["Id"].to_numpy()


def write(tmp_path: Path, frame: pd.DataFrame, **kwargs) -> Path:
    path = tmp_path / "predictions.csv"
    frame.to_csv(path, index=False, **kwargs)
    return path


def rejected(path_or_bytes, spec, ids, truth) -> list[str]:
    with pytest.raises(SubmissionError) as info:
        read_predictions(path_or_bytes, spec, expected_ids=ids)
    errors = info.value.errors
    assert errors and str(info.value) == "\n".join(errors)
    return errors


def test_valid_file_is_read_sorted(tmp_path, spec, ids, truth):
    shuffled = truth.sample(frac=1.0, random_state=0)
    got = read_predictions(write(tmp_path, shuffled), spec, expected_ids=ids)
    assert list(got.columns) == ["id", "label"]
    assert got["id"].tolist() == sorted(truth["Id"])
    assert (got["label"].to_numpy() == truth.sort_values("Id")["Category"].to_numpy()).all()


def test_header_variants_bom_crlf_and_class_names_are_accepted(spec, ids, truth):
    names = np.array(spec.class_names)[truth["Category"].to_numpy()]
    mixed_case = [n.upper() if i % 3 == 0 else n for i, n in enumerate(names)]
    body = "\r\n".join(f"{i}, {n}" for i, n in zip(truth["Id"], mixed_case, strict=True))
    raw = ("\ufeff ID , category \r\n" + body + "\r\n").encode("utf-8")
    got = read_predictions(raw, spec, expected_ids=ids)
    assert (got["label"].to_numpy() == truth["Category"].to_numpy()).all()


def test_empty_file(tmp_path, spec, ids, truth):
    path = tmp_path / "predictions.csv"
    path.write_bytes(b"")
    assert "empty" in rejected(path, spec, ids, truth)[0]
    path.write_bytes(b"\xef\xbb\xbf\r\n  \n")
    assert "empty" in rejected(path, spec, ids, truth)[0]


def test_header_only(spec, ids, truth):
    assert "no rows" in rejected(b"Id,Category\n", spec, ids, truth)[0]


def test_binary_garbage(spec, ids, truth):
    garbage = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    errors = rejected(b"\x89PNG\r\n\x1a\n\x00" + garbage, spec, ids, truth)
    assert "binary" in errors[0] and "Id,Category" in errors[0]


def test_not_utf8(spec, ids, truth):
    errors = rejected("Id,Category\n0,caf\u00e9\n".encode("latin-1"), spec, ids, truth)
    assert "UTF-8" in errors[0]


@pytest.mark.parametrize(("sep", "word"), [(";", "semicolon"), ("\t", "tab"), ("|", "pipe")])
def test_wrong_delimiter_is_named(tmp_path, spec, ids, truth, sep, word):
    errors = rejected(write(tmp_path, truth, sep=sep), spec, ids, truth)
    assert len(errors) == 1
    assert word in errors[0] and "comma" in errors[0]


def test_missing_and_wrong_columns(tmp_path, spec, ids, truth):
    errors = rejected(
        write(tmp_path, truth.rename(columns={"Category": "guess"})), spec, ids, truth
    )
    assert "missing column(s) 'Category'" in errors[0] and "'guess'" in errors[0]
    extra = truth.assign(confidence=0.5)
    errors = rejected(write(tmp_path, extra), spec, ids, truth)
    assert "unexpected column(s) 'confidence'" in errors[0]


def test_missing_rows_counted_with_first_ids(tmp_path, spec, ids, truth):
    errors = rejected(write(tmp_path, truth.drop(index=[3, 7, 9000])), spec, ids, truth)
    assert errors == [
        "predictions.csv: 3 of the 10,000 test ids are missing (3, 7, 9000); "
        "predict every test image"
    ]


def test_duplicate_and_unknown_ids(tmp_path, spec, ids, truth):
    frame = pd.concat([truth, truth.iloc[[5, 6]]], ignore_index=True)
    frame.loc[0, "Id"] = 12345
    errors = rejected(write(tmp_path, frame), spec, ids, truth)
    text = "\n".join(errors)
    assert "2 id(s) appear more than once (5, 6)" in text
    assert "row(s) 10002, 10003" in text
    assert "1 id(s) are not test ids (12345)" in text
    assert "1 of the 10,000 test ids are missing (0)" in text


def test_labels_out_of_range_or_unparseable_name_row_and_value(tmp_path, spec, ids, truth):
    frame = truth.astype({"Category": str})
    frame.loc[4, "Category"] = "10"
    frame.loc[8, "Category"] = "kitten"
    frame.loc[9, "Category"] = ""
    frame.loc[10, "Category"] = "-1"
    errors = rejected(write(tmp_path, frame), spec, ids, truth)
    assert len(errors) == 1
    assert "4 label(s)" in errors[0]
    assert "row(s) 6, 10, 11, 12" in errors[0]
    assert "'10', 'kitten', '', '-1'" in errors[0]


def test_non_integer_ids(tmp_path, spec, ids, truth):
    frame = truth.astype({"Id": str})
    frame.loc[0, "Id"] = "img_0"
    frame.loc[1, "Id"] = "1.5"
    errors = rejected(write(tmp_path, frame), spec, ids, truth)
    text = "\n".join(errors)
    assert "2 id(s) are not non-negative integers, in row(s) 2, 3: 'img_0', '1.5'" in text
    assert "missing (0, 1)" in text


def test_every_problem_is_listed_at_once(tmp_path, spec, ids, truth):
    frame = truth.iloc[:9000].astype(str)
    frame.loc[2, "Category"] = "99"
    frame.loc[3, "Id"] = "x"
    errors = rejected(write(tmp_path, frame, sep=";"), spec, ids, truth)
    assert len(errors) == 4
    assert [k for k in ("semicolon", "not non-negative", "label(s)", "missing") if k in str(errors)]


def test_file_over_size_limit(tmp_path, spec, ids, truth):
    small = dataclasses.replace(spec, max_file_bytes=1000)
    errors = rejected(write(tmp_path, truth), small, ids, truth)
    assert "over the limit of 1,000 bytes" in errors[0]


def test_ragged_rows_are_a_clear_error(spec, ids, truth):
    errors = rejected(b"Id,Category\n0,3\n1,8,extra,fields\n", spec, ids, truth)
    assert "not a well-formed CSV" in errors[0] and "line 3" in errors[0]


def test_trailing_delimiters_are_named(spec, ids):
    body = "".join(f"{i},3,\n" for i in range(10_000))
    errors = rejected(("Id,Category\n" + body).encode(), spec, ids, None)
    assert errors[0].startswith("predictions.csv: the rows have more fields than the header's 2")


def test_missing_file(tmp_path, spec, ids, truth):
    assert "no such file" in rejected(tmp_path / "nope.csv", spec, ids, truth)[0]
