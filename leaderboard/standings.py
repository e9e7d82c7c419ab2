"""The board's rows: one entry per entrant (a student, or a team) chosen by the spec's rule,
ranked with ties marked, plus the recorded baselines.

Entry rules: ``best`` (the best public score), ``last`` (the latest submission), ``chosen``
(Kaggle's final selection: on the public board the best public score; on the private board the
best private score among the submissions the entrant marked final, or among their
``final_submissions`` best public ones when they marked none).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from grader.assignment import Assignment
from leaderboard.db import read_setting
from leaderboard.models import Score, Student, Submission, Team
from leaderboard.rules import Entrant, entrant_of

BASELINE_DIR = Path(__file__).resolve().parent.parent / "reference" / "baselines"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"


@dataclass(frozen=True)
class Row:
    """One line of the board."""

    rank: int
    tie: bool
    """Whether another row has the same score (and so the same rank)."""
    name: str
    public_accuracy: float
    private_accuracy: float | None
    submissions: int
    last_submission: str
    late: bool
    assignment: str
    entrant: str
    """The entrant's key (``student:7`` or ``team:3``); not shown to the public."""
    verified: bool | None = None
    """For a model: whether its numbers come from the verified evaluation of its captured graph
    (False: graded unverified); None for a predictions file."""

    def to_json(self) -> dict:
        """The row as the public API shows it (without the internal entrant key)."""
        body = asdict(self)
        body.pop("entrant")
        return body


@dataclass(frozen=True)
class Entry:
    """The submission that stands for one entrant, with what the board needs about them."""

    entrant: Entrant
    submission: Submission
    score: Score
    student: Student
    team: Team | None
    count: int
    last: dt.datetime


@dataclass(frozen=True)
class Baseline:
    """A recorded reference result shown on the board for comparison."""

    model: str
    accuracy: float
    data: str
    parameters: int | None = None


def real_names_shown(session: Session, default_pseudonyms: bool = True) -> bool:
    """Whether the public board shows real names (the instructor's switch, else the default)."""
    value = read_setting(session, "real_names")
    return (value == "1") if value is not None else not default_pseudonyms


def display_name(student: Student, team: Team | None, real_names: bool) -> str:
    """The name the board shows for an entrant."""
    if team is not None:
        return team.name if real_names else team.display_name
    if real_names:
        return student.name or student.student
    return student.display_name


def graded_submissions(
    session: Session, spec: Assignment
) -> list[tuple[Submission, Score, Student, Team | None]]:
    """Every scored submission of ``spec`` with its student and team, oldest first."""
    records = session.execute(
        select(Submission, Score, Student, Team)
        .join(Score, Score.submission_id == Submission.id)
        .join(Student, Student.id == Submission.student_id)
        .outerjoin(Team, Team.id == Submission.team_id)
        .where(Submission.assignment == spec.name)
        .order_by(Submission.created_at, Submission.id)
    ).all()
    return [tuple(r) for r in records]


def entries(session: Session, spec: Assignment, *, revealed: bool) -> list[Entry]:
    """The standing submission of every entrant under the spec's entry rule."""
    groups: dict[str, list[tuple[Submission, Score, Student, Team | None]]] = {}
    for record in graded_submissions(session, spec):
        groups.setdefault(entrant_of(record[0]).key, []).append(record)
    chosen = []
    for records in groups.values():
        pick = _pick(records, spec, revealed)
        submission, score, student, team = pick
        chosen.append(
            Entry(
                entrant=entrant_of(submission),
                submission=submission,
                score=score,
                student=student,
                team=team,
                count=len(records),
                last=records[-1][0].created_at,
            )
        )
    return chosen


def _pick(records, spec: Assignment, revealed: bool):
    """The record that stands for one entrant (records are oldest first)."""
    if spec.entry_rule == "last":
        return records[-1]
    best_public = max(records, key=lambda r: (r[1].public_accuracy, -r[0].id))
    if spec.entry_rule == "best" or not revealed:
        return best_public
    finals = [r for r in records if r[0].final]
    if not finals:  # none marked: their best public ones stand in, as on Kaggle
        ranked = sorted(records, key=lambda r: (-r[1].public_accuracy, r[0].id))
        finals = ranked[: spec.final_submissions]
    return max(finals, key=lambda r: (r[1].private_accuracy, -r[0].id))


def standings(session: Session, spec: Assignment, *, revealed: bool, real_names: bool) -> list[Row]:
    """Board rows, best first; ranked by private accuracy once revealed, else public.

    Equal scores share a rank (1, 2, 2, 4) and are marked as ties; the earlier entry is listed
    first.
    """
    chosen = entries(session, spec, revealed=revealed)
    key = "private_accuracy" if revealed else "public_accuracy"
    chosen.sort(key=lambda e: (-getattr(e.score, key), e.submission.created_at))
    values = [getattr(e.score, key) for e in chosen]
    counts = Counter(values)
    rows: list[Row] = []
    rank = 0
    for index, entry in enumerate(chosen):
        value = values[index]
        if index == 0 or value != values[index - 1]:
            rank = index + 1
        rows.append(
            Row(
                rank=rank,
                tie=counts[value] > 1,
                name=display_name(entry.student, entry.team, real_names),
                public_accuracy=entry.score.public_accuracy,
                private_accuracy=entry.score.private_accuracy if revealed else None,
                submissions=entry.count,
                last_submission=entry.last.strftime(TIME_FORMAT),
                late=entry.submission.late,
                assignment=spec.name,
                entrant=entry.entrant.key,
                verified=entry.score.verified,
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


def own_submissions(session: Session, entrant: Entrant, spec: Assignment) -> list[Submission]:
    """The entrant's submissions to ``spec``, newest first (scores loaded)."""
    return list(
        session.scalars(
            select(Submission)
            .options(joinedload(Submission.score), joinedload(Submission.job))
            .where(Submission.assignment == spec.name, entrant.owns())
            .order_by(Submission.created_at.desc(), Submission.id.desc())
        ).unique()
    )
