"""Files laid out exactly as Canvas, Moodle and Gradescope write them, for round-trip tests.

Layouts (checked against the LMS sources and docs):

- Canvas "Download Submissions" (``lib/content_zipper.rb``): ``<sortable name, lower case, only
  word characters>[_LATE]_<user id>_<attachment id>_<file name>``; a file uploaded again is named
  ``<stem>-1<suffix>`` by Canvas. The gradebook export: UTF-8 with a byte-order mark, header
  ``Student,ID,SIS User ID,SIS Login ID,Section,<Title> (<id>)...,Current Points,...``, a
  ``Points Possible`` row, a ``Manual Posting`` row, "Last, First" names quoted, the test student.
- Moodle "Download all submissions" (``mod/assign/locallib.php``): one folder per student and
  plugin, ``<Full Name>_<participant id>_assignsubmission_file_``; the grading worksheet:
  ``Identifier`` = ``Participant <id>``, every field quoted; the gradebook export: ``First name,
  Last name,ID number,Institution,Department,Email address,<Type>: <Item> (Real),...``.
- Gradescope "Export Submissions": ``assignment_<id>_export/submission_<id>/`` and
  ``submission_metadata.yml`` (Ruby symbol keys); the grades export: ``First Name,Last Name,SID,
  Email,Sections,<A>,<A> - Max Points,<A> - Submission Time,<A> - Lateness (H:M:S)``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd


def predictions(truth: pd.DataFrame, accuracy: float, seed: int) -> bytes:
    """A predictions.csv right on about ``accuracy`` of the test images."""
    rng = np.random.default_rng(seed)
    labels = truth["Category"].to_numpy().copy()
    wrong = rng.random(len(labels)) > accuracy
    labels[wrong] = (labels[wrong] + rng.integers(1, 10, wrong.sum())) % 10
    return truth.assign(Category=labels).to_csv(index=False).encode()


def zip_folder(folder: Path, archive: Path) -> Path:
    """``folder``'s files in a zip, paths relative to ``folder`` (an LMS's "download all")."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                out.write(path, path.relative_to(folder).as_posix())
    return archive


CANVAS_GRADEBOOK = (
    "\ufeffStudent,ID,SIS User ID,SIS Login ID,Section,Lab 1 (4411),Homework 2 (4412),"
    "Current Points,Final Points,Current Score,Unposted Current Score,Final Score,"
    "Unposted Final Score\n"
    "    Points Possible,,,,,10.00,5.00,(read only),(read only),(read only),(read only),"
    "(read only),(read only)\n"
    ",,,,,Manual Posting,,,,,,,\n"
    '"Smith, Alice",12345,S001,asmith,ECE661-001,,4.00,4.00,4.00,26.67,26.67,26.67,26.67\n'
    '"Doe, John",12346,S002,jdoe,ECE661-001,,,0.00,0.00,,,0.00,0.00\n'
    '"Lee, Ann",12347,S003,alee,ECE661-002,,,0.00,0.00,,,0.00,0.00\n'
    '"Park, Min",12348,S004,mpark,ECE661-002,,,0.00,0.00,,,0.00,0.00\n'
    '"Student, Test",12399,,,ECE661-001,,,0.00,0.00,,,0.00,0.00\n'
)
CANVAS_POINTS = {"12345": 10, "12346": 9, "12347": 7}
"""Points each Canvas submitter earns (``doejohn``'s latest upload; his first would earn 4)."""


def canvas_download(folder: Path, truth: pd.DataFrame) -> Path:
    """A Canvas bulk download of the gradebook's students, a resubmission and a stranger."""
    folder.mkdir(parents=True)
    (folder / "smithalice_12345_880001_predictions.csv").write_bytes(predictions(truth, 0.95, 1))
    (folder / "smithalice_12345_880002_notes.txt").write_text("ResNet, 30 epochs\n")
    (folder / "doejohn_LATE_12346_880003_predictions.csv").write_bytes(predictions(truth, 0.6, 2))
    (folder / "doejohn_LATE_12346_880009_predictions-1.csv").write_bytes(
        predictions(truth, 0.85, 3)
    )
    with zipfile.ZipFile(folder / "leeann_12347_880004_lab1.zip", "w") as archive:
        archive.writestr("lab1/predictions.csv", predictions(truth, 0.75, 4))
        archive.writestr("__MACOSX/lab1/._predictions.csv", b"junk")
    (folder / "nobodyhere_55555_880005_predictions.csv").write_bytes(predictions(truth, 0.9, 5))
    return folder


MOODLE_WORKSHEET = (
    '"Identifier","Full name","Email address","Status","Grade","Maximum Grade",'
    '"Grade can be changed","Last modified (submission)","Last modified (grade)",'
    '"Feedback comments"\n'
    '"Participant 1938475","Ada Lovelace","ada@uni.edu","Submitted for grading","","10.00","Yes",'
    '"Tuesday, 3 March 2026, 10:12 AM","-",""\n'
    '"Participant 1938476","Alan Turing","alan@uni.edu","Submitted for grading","","10.00","Yes",'
    '"Tuesday, 3 March 2026, 11:40 AM","-",""\n'
    '"Participant 1938477","Grace Hopper","grace@uni.edu","No submission","","10.00","Yes","-",'
    '"-",""\n'
)
MOODLE_GRADEBOOK = (
    '"First name","Last name","ID number","Institution","Department","Email address",'
    '"Assignment: Lab 1 (Real)","Last downloaded from this course"\n'
    '"Ada","Lovelace","U1001","","CS","ada@uni.edu","-","1772000000"\n'
    '"Alan","Turing","U1002","","CS","alan@uni.edu","-","1772000000"\n'
    '"Grace","Hopper","U1003","","CS","grace@uni.edu","-","1772000000"\n'
)
MOODLE_POINTS = {"Ada Lovelace": 10, "Alan Turing": 7}


def moodle_download(folder: Path, truth: pd.DataFrame) -> Path:
    """A Moodle "download all submissions" folder, as Moodle 3.1+ writes it (in folders)."""
    for name, pid, accuracy in (("Ada Lovelace", 1938475, 0.95), ("Alan Turing", 1938476, 0.75)):
        files = folder / f"{name}_{pid}_assignsubmission_file_"
        files.mkdir(parents=True)
        (files / "predictions.csv").write_bytes(predictions(truth, accuracy, pid % 97))
        text = folder / f"{name}_{pid}_assignsubmission_onlinetext_"
        text.mkdir()
        (text / "onlinetext.html").write_text("<p>my notes</p>")
    stranger = folder / "Charles Babbage_1938499_assignsubmission_file_"
    stranger.mkdir()
    (stranger / "predictions.csv").write_bytes(predictions(truth, 0.9, 99))
    return folder


GRADESCOPE_ROSTER = (
    "First Name,Last Name,SID,Email,Sections,Lab 1,Lab 1 - Max Points,Lab 1 - Submission Time,"
    "Lab 1 - Lateness (H:M:S)\n"
    "Marie,Curie,2001,marie@uni.edu,A,,10.0,,\n"
    "Pierre,Curie,2002,pierre@uni.edu,A,,10.0,,\n"
    "Lise,Meitner,2003,lise@uni.edu,B,,10.0,,\n"
    "Emmy,Noether,2004,emmy@uni.edu,B,,10.0,,\n"
)
GRADESCOPE_METADATA = """\
submission_7001:
  :submitters:
  - :name: Marie Curie
    :sid: '2001'
    :email: marie@uni.edu
  - :name: Pierre Curie
    :sid: '2002'
    :email: pierre@uni.edu
  :created_at: 2026-03-03 10:12:00.000000000 -08:00
  :score: 0.0
  :status: unsubmitted
submission_7002:
  :submitters:
  - :name: Lise Meitner
    :sid: '2003'
    :email: lise@uni.edu
  :created_at: 2026-03-03 11:40:00.000000000 -08:00
  :score: 0.0
submission_7003:
  :submitters:
  - :name: Otto Hahn
    :sid: '2999'
    :email: otto@elsewhere.edu
  :created_at: 2026-03-03 12:00:00.000000000 -08:00
"""
GRADESCOPE_POINTS = {"2001": 9, "2002": 9, "2003": 4}


def gradescope_export(folder: Path, truth: pd.DataFrame) -> Path:
    """Gradescope's "Export Submissions" zip (a pair's submission, a single one, a stranger)."""
    root = folder / "assignment_991_export"
    for submission, accuracy in (("7001", 0.85), ("7002", 0.6), ("7003", 0.95)):
        files = root / f"submission_{submission}"
        files.mkdir(parents=True)
        (files / "predictions.csv").write_bytes(predictions(truth, accuracy, int(submission)))
    (root / "submission_metadata.yml").write_text(GRADESCOPE_METADATA)
    return zip_folder(folder, folder.parent / "submissions.zip")
