"""The board's rows: one entry per student chosen by the spec's rule, ranked, plus baselines."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.assignment import Assignment
from leaderboard.db import read_setting
from leaderboard.models import Score, Student, Submission
from leaderboard.submitting import is_past_deadline

BASELINE_DIR = Path(__file__).resolve().parent.parent / "reference" / "baselines"


@dataclass(frozen=True)
class Row:
    """One line of the board."""

    rank: int
    student_id: int | None
    name: str
    public_accuracy: float
    private_accuracy: float | None
    submissions: int
    last_submission: str
    late: bool = False


@dataclass(frozen=True)
class Baseline:
    """A recorded reference result shown on the board for comparison."""

    model: str
    accuracy: float
    data: str


def is_revealed(session: Session, spec: Assignment, now: dt.datetime) -> bool:
    """Whether private scores are public: after the deadline or an instructor's reveal."""
    return is_past_deadline(spec, now) or read_setting(session, f"revealed:{spec.name}") == "1"


def display_name(student: Student, pseudonyms: bool) -> str:
    """The name the board shows for ``student``."""
    if pseudonyms:
        return student.display_name
    return student.name or student.student


def standings(session: Session, spec: Assignment, *, revealed: bool, pseudonyms: bool) -> list[Row]:
    """Board rows, best first; ranked by private accuracy once revealed, else public."""
    records = session.execute(
        select(Submission, Score, Student)
        .join(Score, Score.submission_id == Submission.id)
        .join(Student, Student.id == Submission.student_id)
        .where(Submission.assignment == spec.name)
        .order_by(Submission.created_at, Submission.id)
    ).all()
    entries: dict[int, tuple[Submission, Score, Student]] = {}
    counts: dict[int, int] = {}
    last: dict[int, dt.datetime] = {}
    for submission, score, student in records:
        counts[student.id] = counts.get(student.id, 0) + 1
        last[student.id] = submission.created_at
        current = entries.get(student.id)
        if (
            current is None
            or spec.entry_rule == "last"
            or score.public_accuracy > current[1].public_accuracy
        ):
            entries[student.id] = (submission, score, student)
    key = "private_accuracy" if revealed else "public_accuracy"
    ordered = sorted(entries.values(), key=lambda e: (-getattr(e[1], key), e[0].created_at))
    rows = []
    for rank, (submission, score, student) in enumerate(ordered, start=1):
        rows.append(
            Row(
                rank=rank,
                student_id=student.id,
                name=display_name(student, pseudonyms),
                public_accuracy=score.public_accuracy,
                private_accuracy=score.private_accuracy if revealed else None,
                submissions=counts[student.id],
                last_submission=last[student.id].strftime("%Y-%m-%d %H:%M UTC"),
                late=submission.late,
            )
        )
    return rows


def load_baselines(spec: Assignment, directory: Path | None = None) -> list[Baseline]:
    """Baseline records (``*.json`` with a model name and an accuracy) for the spec's dataset."""
    directory = directory or BASELINE_DIR
    baselines = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue  # a record being written or broken is not shown; the board still renders
        if not isinstance(record, dict):
            continue
        model = record.get("model") or record.get("name") or path.stem
        accuracy = record.get("accuracy", record.get("test_accuracy"))
        dataset = str(record.get("dataset", spec.dataset))
        if not isinstance(accuracy, (int, float)) or dataset.split("-")[0] != spec.dataset:
            continue
        baselines.append(Baseline(model=str(model), accuracy=float(accuracy), data=_data(record)))
    return baselines


def _data(record: dict) -> str:
    """A short statement of what data a baseline used."""
    parts = []
    for key in ("data", "dataset", "train_images", "test_images", "epochs", "device"):
        value = record.get(key)
        if value is not None and not isinstance(value, (dict, list)):
            parts.append(f"{key}={value}")
    return ", ".join(parts) or "data not recorded"


def as_json(rows: list[Row]) -> list[dict]:
    """Rows as JSON-ready dicts."""
    return [asdict(r) for r in rows]
