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
    parameters: int | None = None


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
    """Baseline records for the spec's dataset: ``<dir>/<model>/record.json`` or ``<dir>/*.json``.

    A record needs a model name and an accuracy; ``data`` (a dict or a string) says what it was
    trained and evaluated on, and is shown with it.
    """
    directory = directory or BASELINE_DIR
    if not directory.is_dir():
        return []
    baselines = []
    for path in sorted([*directory.glob("*.json"), *directory.glob("*/record.json")]):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # a record being written or broken is not shown; the board still renders
        if not isinstance(record, dict):
            continue
        model = record.get("model") or record.get("name") or path.parent.name
        accuracy = record.get("accuracy", record.get("test_accuracy"))
        data = record.get("data")
        dataset = data.get("dataset") if isinstance(data, dict) else record.get("dataset")
        if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)):
            continue
        if str(dataset or spec.dataset).split("-")[0] != spec.dataset:
            continue
        parameters = record.get("parameters")
        baselines.append(
            Baseline(
                model=str(model),
                accuracy=float(accuracy),
                data=_data(record),
                parameters=parameters if isinstance(parameters, int) else None,
            )
        )
    return baselines


def _data(record: dict) -> str:
    """A short statement of what data a baseline used."""
    data = record.get("data")
    parts = []
    if isinstance(data, dict):
        if data.get("train_images") is not None:
            parts.append(f"trained on {data['train_images']:,} images")
        if data.get("test_images") is not None:
            whole = "" if data.get("full_test_set") else " (not the full test set)"
            parts.append(f"accuracy on {data['test_images']:,} test images{whole}")
    elif data is not None:
        parts.append(str(data))
    for key in ("epochs", "device"):
        if record.get(key) is not None and not isinstance(record[key], (dict, list)):
            parts.append(f"{key} {record[key]}")
    return ", ".join(parts) or "data not recorded"


def as_json(rows: list[Row]) -> list[dict]:
    """Rows as JSON-ready dicts."""
    return [asdict(r) for r in rows]
