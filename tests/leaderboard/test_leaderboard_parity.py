"""One grade, whichever door: the same submissions graded by ``grader check`` and by the server
with its embedded worker get the same status, points, point lines, flags and message.

The submissions: a predictions file, an honest model (the bundled SimpleNN ``ada``), a model that
memorised the test images (a lookup table: exact test image -> its label, anything else class
0), and an ``ops.py`` with two wrong backward passes (the bundled ``blake``). Both doors share one
warm box, so the comparison costs one box start.
"""

from __future__ import annotations

import io
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from lb_support import REPO, enrol
from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.assignment import load_assignment, parse_assignment
from grader.batch.run import grade_folder
from grader.data import cached_dataset
from grader.grading import GradeStatus
from grader.models.pipeline import model_pool
from leaderboard.course import Course, CourseAssignment
from leaderboard.db import make_engine, session_scope
from leaderboard.flags import live_flags
from leaderboard.grading import GradingConfig, SubmissionGrader
from leaderboard.models import Student, Submission
from leaderboard.rules import entrant_of
from leaderboard.scoring import stored_grade
from leaderboard.submitting import submit
from leaderboard.uploads import Upload
from leaderboard.worker import WorkerConfig, process_one

HONEST = REPO / "submissions" / "simplenn" / "ada"
OPS = REPO / "submissions" / "vu-autograd" / "blake" / "ops.py"
MODELS = {
    "name": "parity-models",
    "dataset": "cifar10",
    "max_file_bytes": 5_000_000,
    "rubric": [{"min_accuracy": 0.3, "points": 4}, {"min_accuracy": 0.6, "points": 8}],
    "model": {
        "robustness": True,
        "checklist": [{"rule": "has_conv", "points": 2, "label": "a convolution"}],
    },
}

MEMORISER = """
import torch
import torch.nn as nn


class Net(nn.Module):
    \"\"\"A lookup table of the test images: an exact test image gets its label, anything else
    (a flipped or shifted copy) class 0.\"\"\"

    def __init__(self):
        super().__init__()
        self.register_buffer("images", torch.zeros({d}, {n}))  # one test image per column
        self.register_buffer("norms", torch.zeros({n}))
        self.register_buffer("table", torch.zeros({n}, 10))
        self.register_buffer("default", torch.zeros(10))  # class 0 when nothing matches

    def forward(self, x):
        flat = x.flatten(1)
        distance = (flat * flat).sum(1, keepdim=True) - 2 * flat @ self.images + self.norms
        match = torch.relu(1 - distance / 0.5)  # 1 on the exact image, 0 anywhere else
        return 10 * (match @ self.table) + self.default
"""


@pytest.fixture(scope="module")
def memoriser(tmp_path_factory, data_dir) -> Path:
    test = cached_dataset("cifar10", "test", data_dir)
    images = torch.from_numpy(test.images.reshape(len(test.images), -1).astype(np.float32) / 255)
    folder = tmp_path_factory.mktemp("memo") / "memo"
    folder.mkdir()
    n, d = images.shape
    (folder / "model.py").write_text(textwrap.dedent(MEMORISER.format(n=n, d=d)))
    state = {
        "images": images.T.contiguous(),
        "norms": (images * images).sum(1),
        "table": torch.eye(10)[torch.from_numpy(test.labels.astype(np.int64))],
        "default": torch.eye(10)[0],
    }
    torch.save(state, folder / "model.pt")
    return folder


@pytest.fixture(scope="module")
def boxes(data_dir):
    spec = parse_assignment(MODELS)
    with model_pool(spec, data_dir=data_dir, size=1) as pool:
        yield pool


@pytest.fixture(scope="module")
def both_doors(tmp_path_factory, data_dir, labels, memoriser, boxes):
    """(grades through ``grader check``, grades the server stored) by (assignment, student)."""
    specs = {
        "cifar10": load_assignment("cifar10"),
        "parity-models": parse_assignment(MODELS),
        "vu-autograd": load_assignment("vu-autograd"),
    }
    root = tmp_path_factory.mktemp("parity")
    frame = labels.copy()
    frame.loc[:2499, "Category"] = (frame.loc[:2499, "Category"] + 1) % 10
    submissions = {
        ("cifar10", "alice"): {"predictions.csv": frame.to_csv(index=False).encode()},
        ("parity-models", "alice"): {p.name: p.read_bytes() for p in HONEST.iterdir()},
        ("parity-models", "bob"): {p.name: p.read_bytes() for p in memoriser.iterdir()},
        ("vu-autograd", "carol"): {"ops.py": OPS.read_bytes()},
    }
    checked = {}
    for name, spec in specs.items():
        for (assignment, student), files in submissions.items():
            if assignment == name:
                (root / name / student).mkdir(parents=True)
                for file, content in files.items():
                    (root / name / student / file).write_bytes(content)
        out = root / f"out-{name}"
        batch = grade_folder(root / name, spec=spec, data_dir=data_dir, out_dir=out,
                             progress=False, boxes=boxes)  # fmt: skip
        checked |= {(name, r.student): r for r in batch.results}

    from leaderboard import create_app
    from leaderboard.server import init_database

    url = f"sqlite:///{root / 'server.db'}"
    init_database(database=url)
    course = Course(tuple(CourseAssignment(spec=spec) for spec in specs.values()))
    app = create_app({"TESTING": True, "DATABASE_URL": url, "COURSE": course,
                      "DATA_DIR": str(data_dir), "WTF_CSRF_ENABLED": False,
                      "RATE_WINDOW_S": 3600})  # fmt: skip
    people = enrol(app)
    client = app.test_client()
    engine = make_engine(url)
    ids = {}
    for (assignment, student), files in submissions.items():
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for file, content in files.items():
                archive.writestr(file, content)
        name, content = (f"{student}.zip", buffer.getvalue()) if len(files) > 1 else (
            next(iter(files)), next(iter(files.values())))  # fmt: skip
        if len(content) < 400_000:  # through the API
            response = client.post(
                f"/api/v1/assignments/{assignment}/submissions",
                headers={"Authorization": f"Bearer {people.students[student]}"},
                data={"file": (io.BytesIO(content), name)},
            )
            assert response.status_code in (200, 202), response.get_json()
            ids[(assignment, student)] = response.get_json()["submission_id"]
            continue
        # the function behind the API (the test client spools a big body to a temporary file
        # that it never closes)
        with Session(engine, expire_on_commit=False) as session:
            owner = session.scalar(select(Student.id).where(Student.student == student))
            outcome = submit(session, course.get(assignment), student_id=owner,
                             uploads=[Upload(name, content)], data_dir=data_dir)  # fmt: skip
            session.commit()
        assert outcome.status == "queued", outcome.errors
        ids[(assignment, student)] = outcome.submission_id
    worker = SubmissionGrader(GradingConfig(data_dir=data_dir))
    worker._boxes = {"cifar10": boxes, "ops": boxes}  # the warm box the check used
    config = WorkerConfig(database_url=url, grading=worker.config)
    while process_one(engine, config, worker):
        pass
    served, live = {}, {}
    with session_scope(engine) as session:
        for key, submission_id in ids.items():
            submission = session.get(Submission, submission_id)
            served[key] = stored_grade(submission)
            flags = live_flags(session, specs[key[0]], data_dir=data_dir)
            live[key] = flags.get(entrant_of(submission).key, [])
    engine.dispose()
    app.extensions["leaderboard_engine"].dispose()
    return checked, served, client, people, ids, live


def _flag_kinds(flags: list[str]) -> list[str]:
    return [flag.split(":")[0] for flag in flags]


CASES = [
    ("cifar10", "alice"),
    ("parity-models", "alice"),
    ("parity-models", "bob"),
    ("vu-autograd", "carol"),
]


@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_check_and_the_server_give_the_same_grade(both_doors, case):
    checked, served, *_, live = both_doors
    mine, theirs = checked[case].grade, served[case]
    assert theirs is not None, f"{case}: the server stored no grade"
    assert (mine.status, mine.kind) == (theirs.status, theirs.kind)
    assert mine.points == theirs.points and mine.max_points == theirs.max_points
    assert mine.point_lines == theirs.point_lines
    # each grading draws its own secret variants: the memoriser flag's figures differ, not the flag
    assert _flag_kinds(mine.flags) == _flag_kinds(theirs.flags)
    assert mine.message == theirs.message
    assert mine.checks == theirs.checks and mine.verified == theirs.verified
    assert mine.scores == theirs.scores
    assert _flag_kinds(checked[case].flags) == _flag_kinds(live[case])  # and the class's flags


def test_the_grades_are_the_ones_each_submission_earned(both_doors):
    checked, served, *_ = both_doors
    predictions, honest, memo, ops = (served[c] for c in CASES)
    assert predictions.points == 7 and 0.7 < predictions.public_accuracy < 0.8
    assert honest.status is GradeStatus.OK and honest.verified
    assert [line.earned for line in honest.point_lines][1] == 2  # the convolution
    assert not any("memoriser" in f for f in honest.flags)
    assert memo.status is GradeStatus.OK and memo.all_accuracy == 1.0
    assert memo.metrics.likely_memoriser and memo.metrics.memoriser_reason in memo.flags
    assert "points missed: checklist: a convolution" in memo.message  # not "all checks passed"
    assert ops.status is GradeStatus.OK and ops.points == 1 and ops.max_points == 20


def test_the_server_shows_the_memoriser_and_the_points_everywhere(both_doors):
    _checked, served, client, people, ids, _live = both_doors
    client.post("/instructor/login", data={"token": people.instructor})
    page = client.get("/instructor/?assignment=parity-models").get_data(as_text=True)
    assert "likely memoriser" in page
    export = client.get("/instructor/grades.csv?assignment=parity-models").text
    rows = pd.read_csv(io.StringIO(export)).set_index("student")
    assert rows.loc["bob", "points"] == served[CASES[2]].points
    assert rows.loc["alice", "points"] == served[CASES[1]].points
    ops = client.get("/instructor/grades.csv?assignment=vu-autograd").text
    assert pd.read_csv(io.StringIO(ops)).set_index("student").loc["carol", "points"] == 1
    client.post("/logout")
    client.post("/login", data={"token": people.students["carol"]})
    page = client.get(f"/submissions/{ids[CASES[3]]}").get_data(as_text=True)
    assert "1 / 20" in page and "Sigmoid" in page  # an ops.py's page: each op with its points
