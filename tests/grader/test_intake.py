"""Intake of LMS bulk downloads by ``grader check``: Canvas flat files, Moodle folders, zips of
either, grouped by student, and every unsafe entry a clear invalid row that is never read."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from lms_files import predictions

from grader.assignment import load_assignment
from grader.batch.intake import collect, select_submission
from grader.batch.run import grade_folder
from grader.grading.intake import IntakeLimits, unpack_archive


@pytest.fixture(scope="module")
def truth(labels_csv) -> pd.DataFrame:
    return pd.read_csv(labels_csv)


@pytest.fixture(scope="module")
def spec():
    return load_assignment("cifar10")


def grade(root: Path, spec, data_dir, out: Path, **kwargs):
    batch = grade_folder(root, spec=spec, data_dir=data_dir, out_dir=out, progress=False,
                         **kwargs)  # fmt: skip
    return batch, {r.student: r for r in batch.results}


def write_canvas(folder: Path, truth: pd.DataFrame) -> dict[str, float]:
    """A Canvas "download all submissions" folder; returns each student's true accuracy."""
    folder.mkdir(parents=True)
    accuracies = {"smithjane": 0.81, "doejohn": 0.64, "leeann": 0.72}
    (folder / "smithjane_1201_88101_predictions.csv").write_bytes(
        predictions(truth, accuracies["smithjane"], 1)
    )
    (folder / "smithjane_1201_88102_notes.txt").write_text("I used a ResNet\n")
    (folder / "doejohn_LATE_1202_88103_predictions-1.csv").write_bytes(
        predictions(truth, accuracies["doejohn"], 2)
    )
    with zipfile.ZipFile(folder / "leeann_1203_88104_hw1.zip", "w") as archive:
        archive.writestr("hw1/predictions.csv", predictions(truth, accuracies["leeann"], 3))
        archive.writestr("hw1/report.pdf", b"%PDF-1.4")
        archive.writestr("__MACOSX/hw1/._predictions.csv", b"junk")
        archive.writestr("hw1/old.zip", b"PK\x05\x06" + bytes(18))
    (folder / "index.html").write_text("<html></html>")
    return accuracies


def test_canvas_flat_files_are_grouped_by_student(tmp_path, truth, spec, data_dir):
    expected = write_canvas(tmp_path / "canvas", truth)
    batch, rows = grade(tmp_path / "canvas", spec, data_dir, tmp_path / "out")
    assert set(rows) == set(expected)
    for student, accuracy in expected.items():
        assert rows[student].status == "ok", rows[student].message
        assert abs(rows[student].grade.all_accuracy - accuracy) < 0.02
    assert rows["smithjane"].lms_id == "1201" and rows["smithjane"].ignored == ["notes.txt"]
    assert rows["doejohn"].late and "submitted late" in rows["doejohn"].flags[-1]
    assert rows["doejohn"].files == ["predictions.csv"]  # Canvas's "-1" dropped
    assert rows["leeann"].files == ["hw1.zip/hw1/predictions.csv"]
    assert rows["leeann"].ignored == [
        "hw1.zip/hw1/old.zip (an archive inside an archive, not unpacked)",
        "hw1.zip/hw1/report.pdf",
    ]
    assert batch.top_level_ignored == ["index.html"]
    report = batch.report_html.read_text()
    assert "notes.txt" in report and "index.html" in report and "report.pdf" in report
    grades = pd.read_csv(batch.grades_csv, keep_default_na=False)
    assert dict(zip(grades["student"], grades["lms_id"].astype(str), strict=True))["leeann"] == (
        "1203"
    )


def test_moodle_folders_and_a_zip_of_them(tmp_path, truth, spec, data_dir):
    moodle = tmp_path / "moodle"
    for i, name in enumerate(("Ada Lovelace", "Alan Turing")):
        folder = moodle / f"{name}_{40 + i}_assignsubmission_file_"
        folder.mkdir(parents=True)
        (folder / "predictions.csv").write_bytes(predictions(truth, 0.6 + 0.1 * i, 10 + i))
    (moodle / "Ada Lovelace_40_assignsubmission_onlinetext_").mkdir()
    (moodle / "Ada Lovelace_40_assignsubmission_onlinetext_" / "onlinetext.html").write_text("hi")
    bulk = tmp_path / "zipped"
    bulk.mkdir()
    with zipfile.ZipFile(bulk / "course-HW1-12345.zip", "w") as archive:
        for path in sorted(moodle.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(moodle).as_posix())
    for root in (moodle, bulk):
        _, rows = grade(root, spec, data_dir, tmp_path / f"out-{root.name}")
        assert set(rows) == {"Ada Lovelace", "Alan Turing"}, root
        assert rows["Ada Lovelace"].lms_id == "40" and rows["Ada Lovelace"].status == "ok"
        assert rows["Ada Lovelace"].ignored == ["onlinetext.html"]
        assert abs(rows["Alan Turing"].grade.all_accuracy - 0.7) < 0.02


def test_results_json_holds_one_object_per_student(tmp_path, truth, spec, data_dir):
    write_canvas(tmp_path / "canvas", truth)
    batch, rows = grade(tmp_path / "canvas", spec, data_dir, tmp_path / "out")
    data = json.loads(batch.results_json.read_text())
    assert [r["student"] for r in data["results"]] == sorted(rows)
    one = next(r for r in data["results"] if r["student"] == "smithjane")
    assert one["status"] == "ok" and set(one["scores"]) == {"public", "private", "all"}
    assert one["scores"]["private"]["accuracy"] == pytest.approx(rows["smithjane"].private_accuracy)
    assert one["flags"] == [] and one["ignored"] == ["notes.txt"]
    assert data["provenance"]["answer_key_sha256"] == batch.provenance.answer_key_sha256
    assert data["images"] == {"public": 5000, "private": 5000, "all": 10000}


def test_links_devices_fifos_and_hard_links_are_invalid_rows_never_read(
    tmp_path, truth, spec, data_dir
):
    root = tmp_path / "subs"
    secret = tmp_path / "secret.csv"
    secret.write_bytes(predictions(truth, 0.99, 0))  # gradable, so reading it would show
    for student in ("linker", "dirlinker", "fifo", "device", "hardlink", "huge", "honest"):
        (root / student).mkdir(parents=True)
    (root / "linker" / "predictions.csv").symlink_to(secret)
    (root / "dirlinker" / "hw").symlink_to(tmp_path)
    (root / "dirlinker" / "predictions.csv").write_bytes(predictions(truth, 0.5, 4))
    os.mkfifo(root / "fifo" / "predictions.csv")
    os.mknod(root / "device" / "predictions.csv", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    os.link(secret, root / "hardlink" / "predictions.csv")
    with open(root / "huge" / "predictions.csv", "wb") as fh:
        fh.truncate(3_000_000)  # sparse: nothing to read, and nothing is
    (root / "honest" / "predictions.csv").write_bytes(predictions(truth, 0.7, 5))
    (root / "toplink").symlink_to(root / "honest")
    batch, rows = grade(root, spec, data_dir, tmp_path / "out")
    expected = {
        "linker": "predictions.csv is a symbolic link",
        "dirlinker": "hw is a symbolic link",
        "fifo": "predictions.csv is a named pipe (FIFO)",
        "device": "predictions.csv is a device node",
        "hardlink": "predictions.csv is a hard link (2 names for one file)",
        "toplink": "toplink is a symbolic link",
        "huge": "predictions.csv is 3,000,000 bytes, over the limit of 2,000,000 bytes",
    }
    for student, text in expected.items():
        row = rows[student]
        assert row.status == "invalid" and text in row.message, (student, row.message)
        assert row.grade.all_accuracy is None and row.grade.predictions_sha256 is None
    assert rows["honest"].status == "ok"
    grades = pd.read_csv(batch.grades_csv)
    assert (grades.set_index("student").loc[list(expected), "status"] == "invalid").all()


def zip_with(path: Path, members: list[tuple[str, bytes]], *, link: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members:
            archive.writestr(name, data)
        if link is not None:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return path


def test_unsafe_zips_are_refused_member_by_member(tmp_path, truth):
    good = predictions(truth, 0.7, 6)
    traversal = zip_with(tmp_path / "t.zip", [("../../evil.csv", good), ("/abs.csv", good),
                                               ("ok/predictions.csv", good)])  # fmt: skip
    problems = unpack_archive(traversal, tmp_path / "t", IntakeLimits())
    assert len(problems) == 2 and all("outside the archive" in p for p in problems)
    assert (tmp_path / "t" / "ok" / "predictions.csv").read_bytes() == good
    assert not (tmp_path / "evil.csv").exists() and not list(tmp_path.glob("t/**/abs.csv"))
    linked = zip_with(tmp_path / "l.zip", [], link="predictions.csv")
    problems = unpack_archive(linked, tmp_path / "l", IntakeLimits())
    assert "symbolic link inside the zip" in problems[0]
    assert not (tmp_path / "l" / "predictions.csv").exists()
    many = zip_with(tmp_path / "m.zip", [(f"f{i}.txt", b"x") for i in range(30)])
    assert (
        "lists 30 entries, over the limit of 20"
        in unpack_archive(many, tmp_path / "m", IntakeLimits(max_archive_members=20))[0]
    )
    big = zip_with(tmp_path / "b.zip", [("predictions.csv", good)])
    small = IntakeLimits(max_file_bytes=1000, max_archive_bytes=10**9)
    assert "over the limit of 1,000 bytes" in unpack_archive(big, tmp_path / "b", small)[0]
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.bin", bytes(50_000_000))  # 50 MB of zeros: ~50 kB zipped
    assert bomb.stat().st_size < 100_000
    tight = IntakeLimits(max_archive_bytes=10_000_000)
    assert "over the limit of 10,000,000" in unpack_archive(bomb, tmp_path / "z", tight)[0]
    assert not (tmp_path / "z").exists()


def test_a_corrupt_zip_and_a_bad_crc_are_the_students_problem(tmp_path, truth, spec, data_dir):
    root = tmp_path / "canvas"
    root.mkdir()
    archive = zip_with(
        root / "kimlee_77_900_sub.zip", [("predictions.csv", predictions(truth, 0.7, 7))]
    )
    raw = bytearray(archive.read_bytes())
    start = raw.index(b"Id,Category")
    raw[start + 40] ^= 0xFF  # stored, so one flipped byte breaks the CRC only
    archive.write_bytes(bytes(raw))
    (root / "parkmin_78_901_sub.zip").write_bytes(b"PK\x03\x04 not really a zip")
    _, rows = grade(root, spec, data_dir, tmp_path / "out")
    assert rows["kimlee"].status == "invalid" and "Bad CRC-32" in rows["kimlee"].message
    assert rows["parkmin"].status == "invalid"
    assert "not a valid .zip archive" in rows["parkmin"].message


def test_what_is_graded_and_what_is_ignored():
    files = {n: Path(n) for n in ("model.py", "layers.py", "model.pt", "notes.md", "plot.png")}
    chosen = select_submission(files, models=True)
    assert chosen.kind == "model" and chosen.ignored == ()  # everything under model.py's folder
    assert chosen.used == ("layers.py", "model.pt", "model.py", "notes.md", "plot.png")
    lone = select_submission({"my_preds.csv": Path("x"), "a.txt": Path("y")}, models=False)
    assert (lone.kind, lone.used, lone.ignored) == ("predictions", ("my_preds.csv",), ("a.txt",))
    two = select_submission({"a.csv": Path("x"), "b.csv": Path("y")}, models=False)
    assert two.kind == "none"
    apart = {"model.py": Path("m"), "checkpoint/ckpt.pth": Path("w")}  # where kuangliu saves
    assert select_submission(apart, models=True).used == ("checkpoint/ckpt.pth", "model.py")
    zipped = {
        "hw.zip/model.py": Path("m"),
        "hw.zip/model.pt": Path("w"),
        "hw.zip/utils/nn.py": Path("n"),
        "hw.zip/old/model.py": Path("o"),
        "x.md": Path("x"),
    }
    chosen = select_submission(zipped, models=True)  # the shallowest model.py's folder
    assert chosen.used == tuple(sorted(set(zipped) - {"x.md"})) and chosen.ignored == ("x.md",)
    twins = {"a/model.py": Path("m"), "b/model.py": Path("n"), "a/model.pt": Path("w")}
    assert select_submission(twins, models=True).kind == "none"
    assert select_submission({"model.py": Path("m")}, models=True).kind == "none"
    both = {"predictions.csv": Path("p"), "model.py": Path("m"), "w.safetensors": Path("w")}
    assert select_submission(both, models=False).kind == "predictions"
    assert select_submission(both, models=True).kind == "model"


def test_two_students_with_one_name_are_told_apart_by_their_lms_id(tmp_path, truth):
    root = tmp_path / "canvas"
    root.mkdir()
    for uid in ("501", "502"):
        (root / f"smithjohn_{uid}_1_predictions.csv").write_bytes(b"Id,Category\n")
    intake = collect(root, work_dir=tmp_path / "work")
    assert [s.student for s in intake.students] == ["smithjohn_501", "smithjohn_502"]


def test_folders_nested_too_deep_and_too_many_files(tmp_path):
    root = tmp_path / "subs"
    deep = root / "ann" / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (deep / "predictions.csv").write_text("Id,Category\n")
    for i in range(5):
        (root / "ben").mkdir(parents=True, exist_ok=True)
        (root / "ben" / f"f{i}.txt").write_text("x")
    limits = IntakeLimits(max_depth=2, max_files=3)
    found = {s.student: s for s in collect(root, work_dir=tmp_path / "w", limits=limits).students}
    assert "nested deeper than 2" in found["ann"].problems[0]
    assert "5 files, over the limit of 3" in found["ben"].problems[0]


def test_lms_layouts_keep_who_submitted(tmp_path):
    root = tmp_path / "mixed"
    root.mkdir()
    (root / "anon_x7Kq2_990001_predictions.csv").write_text("Id,Category\n")  # anonymous grading
    (root / "LATE_anon_p0Lz9_990002_predictions.csv").write_text("Id,Category\n")
    (root / "Ada Lovelace_1938475_assignsubmission_file_predictions.csv").write_text("x\n")
    export = root / "assignment_991_export"
    (export / "submission_7001").mkdir(parents=True)
    (export / "submission_7001" / "predictions.csv").write_text("Id,Category\n")
    (export / "submission_7002").mkdir()
    (export / "submission_metadata.yml").write_text(
        "submission_7001:\n  :submitters:\n  - :name: Marie Curie\n    :sid: '2001'\n"
        "    :email: marie@uni.edu\n"
    )
    found = {s.student: s for s in collect(root, work_dir=tmp_path / "work").students}
    anonymous = found["anon_x7Kq2"]
    assert anonymous.layout == "canvas" and anonymous.submitters[0].lms_id == ""  # no user id
    assert found["anon_p0Lz9"].late
    ada = found["Ada Lovelace"]
    assert (ada.layout, ada.lms_id, list(ada.files)) == ("moodle", "1938475", ["predictions.csv"])
    marie = found["Marie Curie"]
    assert marie.layout == "gradescope" and marie.lms_id == "7001"
    assert (marie.submitters[0].sis_id, marie.submitters[0].email) == ("2001", "marie@uni.edu")
    assert "not in submission_metadata.yml" in found["submission_7002"].problems[0]
