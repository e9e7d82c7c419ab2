"""``grader validate`` and ``grader sample-submission``: every check of ``grader score`` without
the answer key or a data folder, with the same messages; format hints for files people make."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from grader.assignment import load_assignment
from grader.cli import main
from grader.predictions.read import (
    SubmissionError,
    probabilities,
    read_predictions,
    validate_predictions,
)

CLASSES = load_assignment("cifar10").class_names


@pytest.fixture(scope="module")
def truth(labels_csv) -> pd.DataFrame:
    return pd.read_csv(labels_csv)


@pytest.fixture(scope="module")
def spec():
    return load_assignment("cifar10")


def noisy(truth: pd.DataFrame, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = truth["Category"].to_numpy().copy()
    wrong = rng.random(len(labels)) < 0.25
    labels[wrong] = rng.integers(0, 10, wrong.sum())
    return truth.assign(Category=labels)


def with_probabilities(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(10, 0.3), len(frame))
    # put the most mass on the predicted class, as a real classifier's softmax would
    top = probs.max(axis=1)
    probs[np.arange(len(frame)), frame["Category"]] += top
    probs /= probs.sum(axis=1, keepdims=True)
    return frame.assign(**{c: probs[:, k] for k, c in enumerate(CLASSES)})


def xlsx_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_excel(buffer, index=False)  # a real workbook, written by openpyxl
    return buffer.getvalue()


def numbers_bytes() -> bytes:
    """The container of an Apple Numbers document: a zip with Index/*.iwa parts."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Index/Document.iwa", b"\x00\x01iwa")
        archive.writestr("Metadata/Properties.plist", b"<plist/>")
        archive.writestr("preview.jpg", b"\xff\xd8\xff")
    return buffer.getvalue()


def cases(truth: pd.DataFrame) -> dict[str, bytes]:
    """Files a class hands in, valid and not; all built from the real test labels."""
    base = noisy(truth)
    csv = base.to_csv(index=False)
    names = base.assign(Category=np.array(CLASSES)[base["Category"]])
    ragged = "Id,Category\n0,3\n1,8,extra,fields\n"
    unknown = base.copy()
    unknown.loc[0, "Id"] = 12345
    bad_probs = with_probabilities(base)
    bad_probs.loc[[4, 9], "cat"] = 0.9
    return {
        "valid plain": csv.encode(),
        "valid shuffled": base.sample(frac=1, random_state=1).to_csv(index=False).encode(),
        "valid class names": names.to_csv(index=False).encode(),
        "valid bom crlf": ("\ufeff" + csv.replace("\n", "\r\n")).encode(),
        "valid integral floats": base.astype(float).to_csv(index=False).encode(),
        "valid probabilities": with_probabilities(base)
        .to_csv(index=False, float_format="%.4f")
        .encode(),
        "semicolons": base.to_csv(index=False, sep=";").encode(),
        "missing rows": base.drop(index=[3, 7, 9000]).to_csv(index=False).encode(),
        "unknown and duplicate ids": pd.concat([unknown, unknown.iloc[[5]]])
        .to_csv(index=False)
        .encode(),
        "fractional labels": base.assign(Category=base["Category"] + 0.5)
        .to_csv(index=False)
        .encode(),
        "near-miss header": base.rename(columns={"Id": "image_id", "Category": "label"})
        .to_csv(index=False)
        .encode(),
        "no header": base.to_csv(index=False, header=False).encode(),
        "utf-16": csv.encode("utf-16"),
        "utf-16 without bom": csv.encode("utf-16-le"),
        "cp1252": names.to_csv(index=False).replace("deer", "d\u00e9er").encode("cp1252"),
        "xlsx": xlsx_bytes(base),
        "xls": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(2048),
        "numbers": numbers_bytes(),
        "empty": b"",
        "header only": b"Id,Category\n",
        "binary": b"\x89PNG\r\n\x1a\n\x00" + bytes(range(256)) * 8,
        "ragged": ragged.encode(),
        "probabilities not summing to 1": bad_probs.to_csv(
            index=False, float_format="%.4f"
        ).encode(),
    }


def run_json(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False, env=env)
    return result.exit_code, json.loads(result.stdout.splitlines()[0])


def test_validate_agrees_with_score_on_every_case_without_a_data_folder(tmp_path, truth, data_dir):
    nowhere = {"GRADER_DATA_DIR": str(tmp_path / "no-data-here")}
    for name, raw in cases(truth).items():
        path = tmp_path / "predictions.csv"
        path.write_bytes(raw)
        code, validated = run_json("validate", str(path), "--json", env=nowhere)
        score_code, scored = run_json("score", str(path), "--json", "--data-dir", str(data_dir))
        valid = name.startswith("valid")
        assert code == (0 if valid else 1), (name, validated)
        assert score_code == code, (name, scored)
        assert validated["status"] == scored["status"] == ("ok" if valid else "invalid"), name
        if not valid:
            assert validated["errors"] == scored["errors"], name
    assert not (tmp_path / "no-data-here").exists()  # nothing was downloaded or created


def hints(raw: bytes, spec) -> str:
    with pytest.raises(SubmissionError) as info:
        validate_predictions(raw, spec)
    return "\n".join(info.value.errors)


def test_spreadsheets_and_encodings_are_named_with_what_to_do(truth, spec):
    all_cases = cases(truth)
    assert "an Excel workbook (.xlsx)" in hints(all_cases["xlsx"], spec)
    assert "export it as CSV" in hints(all_cases["xlsx"], spec)
    assert "Excel 97-2003 workbook (.xls)" in hints(all_cases["xls"], spec)
    numbers = hints(all_cases["numbers"], spec)
    assert "Apple Numbers spreadsheet" in numbers and "Export To > CSV" in numbers
    for key in ("utf-16", "utf-16 without bom"):
        text = hints(all_cases[key], spec)
        assert "UTF-16" in text and "save it as UTF-8" in text, key
    legacy = hints(all_cases["cp1252"], spec)
    assert "not UTF-8" in legacy and "byte 0xe9" in legacy and "save it as UTF-8" in legacy


def test_integral_floats_read_as_the_same_labels(truth, spec):
    floats = truth.astype(float).to_csv(index=False).encode()
    got = validate_predictions(floats, spec)
    assert got["label"].dtype == np.int64
    np.testing.assert_array_equal(got["label"], truth["Category"])
    # one float among strings goes through the careful path and is still accepted
    mixed = truth.astype(str)
    mixed.loc[5, "Category"] = "3.0"
    got = validate_predictions(mixed.to_csv(index=False).encode(), spec)
    assert got["label"][5] == 3


def test_near_miss_headers_say_what_to_rename(truth, spec):
    text = hints(cases(truth)["near-miss header"], spec)
    assert "found 'image_id', 'label'" in text and "rename 'image_id' to 'Id'" in text
    guess = truth.rename(columns={"Category": "pred"}).to_csv(index=False).encode()
    assert "rename 'pred' to 'Category'" in hints(guess, spec)
    headless = hints(cases(truth)["no header"], spec)
    assert "looks like data, not a header" in headless and "'Id,Category' at the top" in headless


def test_probability_columns_are_read_and_checked(truth, spec):
    frame = with_probabilities(noisy(truth))
    raw = frame.sample(frac=1, random_state=2).to_csv(index=False, float_format="%.4f").encode()
    got = validate_predictions(raw, spec)
    probs = probabilities(got, spec)
    assert probs.shape == (10_000, 10)
    np.testing.assert_allclose(probs, frame[list(CLASSES)].to_numpy(), atol=5e-5)
    np.testing.assert_array_equal(got["label"], frame["Category"])
    bad = hints(cases(truth)["probabilities not summing to 1"], spec)
    assert "2 row(s) of class probabilities" in bad and "row(s) 6, 11" in bad
    partial = frame.drop(columns=["truck"]).to_csv(index=False, float_format="%.4f").encode()
    assert "must name every class; missing 'truck'" in hints(partial, spec)
    plain = validate_predictions(truth.to_csv(index=False).encode(), spec)
    assert probabilities(plain, spec) is None
    unrounded = frame.to_csv(index=False).encode()  # 17 digits per value: over 2 MB
    assert "round the probabilities to 4 decimals" in hints(unrounded, spec)


def test_a_large_file_is_refused_before_it_is_read(tmp_path, spec):
    path = tmp_path / "huge.csv"
    with open(path, "wb") as fh:
        fh.truncate(spec.max_file_bytes * 50)  # sparse: the size is known without reading
    text = hints(path, spec)
    assert f"{spec.max_file_bytes * 50:,} bytes, over the limit" in text


def test_sample_submission_is_valid_and_covers_every_test_id(tmp_path):
    result = CliRunner().invoke(main, ["sample-submission"], catch_exceptions=False)
    assert result.exit_code == 0
    frame = pd.read_csv(io.StringIO(result.output))
    assert list(frame.columns) == ["Id", "Category"]
    assert frame["Id"].tolist() == list(range(10_000))
    path = tmp_path / "sample.csv"
    path.write_text(result.output)
    ok = CliRunner().invoke(main, ["validate", str(path)], catch_exceptions=False)
    assert ok.exit_code == 0 and "valid for cifar10 (10,000 predictions)" in ok.output
    mnist = CliRunner().invoke(main, ["sample-submission", "--assignment", "mnist"])
    assert mnist.output.count("\n") == 10_001


def test_mnist_ids_come_from_the_spec_and_match_the_dataset(data_dir):
    """For a spec whose answer key is the dataset, ``test_size`` is the dataset's test set."""
    mnist = load_assignment("mnist")
    assert mnist.test_size == 10_000
    from grader.predictions.solution import load_solution

    key = load_solution(mnist, data_dir)
    np.testing.assert_array_equal(key["id"], mnist.test_ids())
    cifar = load_assignment("cifar10")
    np.testing.assert_array_equal(load_solution(cifar, data_dir)["id"], cifar.test_ids())


def test_validate_text_output_and_exit_codes(tmp_path, truth):
    path = tmp_path / "p.csv"
    truth.rename(columns={"Id": "image_id"}).to_csv(path, index=False)
    bad = CliRunner().invoke(main, ["validate", str(path)])
    assert bad.exit_code == 1 and "not gradable" in bad.output and "rename 'image_id'" in bad.output
    assert "Traceback" not in bad.output
    unknown = CliRunner().invoke(main, ["validate", str(path), "--assignment", "nope"])
    assert unknown.exit_code == 2 and "unknown assignment 'nope'" in unknown.output


def test_missing_data_is_an_immediate_error_without_network_or_heavy_imports(tmp_path, truth):
    """`grader score` with no data folder says what to set, at once, importing no torchvision."""
    path = tmp_path / "p.csv"
    truth.to_csv(path, index=False)
    probe = (
        "import sys, time\nfrom grader.cli import main\nstart = time.perf_counter()\n"
        "try:\n    main()\nexcept SystemExit:\n"
        "    heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'torchvision'})\n"
        "    print('HEAVY', heavy, round(time.perf_counter() - start, 2), file=sys.stderr)\n"
        "    raise\n"
    )
    env = {"GRADER_DATA_DIR": str(tmp_path / "missing"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", probe, "score", str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 2, done.stderr
    message = json.loads(done.stdout.splitlines()[0])["message"]
    assert "CIFAR-10 not found under" in message and "$GRADER_DATA_DIR" in message
    assert "grader fetch-data cifar10" in message and "needs the answer key" in message
    assert "HEAVY []" in done.stderr
    assert not (tmp_path / "missing").exists()


def test_read_predictions_against_the_answer_key_ids_matches_validate(truth, spec):
    raw = noisy(truth).to_csv(index=False).encode()
    a = read_predictions(raw, spec, expected_ids=truth["Id"].to_numpy())
    b = validate_predictions(raw, spec)
    pd.testing.assert_frame_equal(a, b)


def test_sample_submission_header_follows_the_spec(tmp_path):
    spec_file = tmp_path / "lab.toml"
    spec_file.write_text(
        'name = "lab"\ndataset = "mnist"\nid_column = "image"\nlabel_column = "digit"\n'
        "test_size = 5\n"
    )
    out = CliRunner().invoke(main, ["sample-submission", "--assignment", str(spec_file)]).output
    assert out == "image,digit\n0,0\n1,0\n2,0\n3,0\n4,0\n"
    path = tmp_path / "five.csv"
    path.write_text(out.replace("4,0\n", ""))
    code, report = run_json("validate", str(path), "--assignment", str(spec_file), "--json")
    assert code == 1 and "1 of the 5 test ids are missing (4)" in report["errors"][0]


def test_test_size_defaults_to_the_dataset_and_must_be_positive():
    from grader.assignment import SpecError, parse_assignment

    assert parse_assignment({"name": "x", "dataset": "cifar10"}).test_size == 10_000
    with pytest.raises(SpecError, match="test_size must be positive"):
        parse_assignment({"name": "x", "dataset": "cifar10", "test_size": -1})


def test_fetch_data_names_the_choices():
    result = CliRunner().invoke(main, ["fetch-data", "svhn"])
    assert result.exit_code == 2 and "'cifar10'" in result.output
