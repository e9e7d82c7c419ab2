"""The board's rows: one entry per entrant (a student, or a team) chosen by the spec's rule,
ranked with ties marked; after the private reveal each row also carries its public rank, so the
board shows how far it moved (the shake-up).

Entry rules: ``best`` (the best public score), ``last`` (the latest submission), ``chosen``
(Kaggle's final selection: on the public board the best public score; on the private board the
best private score among the submissions the entrant marked final, or among their
``final_submissions`` best public ones when they marked none).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import asdict, dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from grader.assignment import Assignment
from leaderboard.db import read_setting
from leaderboard.models import Score, Student, Submission, Team
from leaderboard.rules import Entrant, entrant_of

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
    public_rank: int | None = None
    """Once revealed: the rank the entrant had on the public board (None before the reveal)."""

    @property
    def rank_change(self) -> int | None:
        """Places gained at the reveal (negative: lost); None before it."""
        return None if self.public_rank is None else self.public_rank - self.rank

    def to_json(self) -> dict:
        """The row as the public API shows it (without the internal entrant key)."""
        body = asdict(self)
        body.pop("entrant")
        body["rank_change"] = self.rank_change
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
    first. Once revealed each row carries its ``public_rank`` on the board before the reveal.
    """
    chosen = entries(session, spec, revealed=revealed)
    key = "private_accuracy" if revealed else "public_accuracy"
    ranks, ties = _ranked(chosen, key)
    public_ranks: dict[str, int] = {}
    if revealed:
        before = entries(session, spec, revealed=False)
        public_ranks = dict(zip((e.entrant.key for e in before),
                                _ranked(before, "public_accuracy")[0], strict=True))  # fmt: skip
    return [
        Row(
            rank=rank,
            tie=tie,
            name=display_name(entry.student, entry.team, real_names),
            public_accuracy=entry.score.public_accuracy,
            private_accuracy=entry.score.private_accuracy if revealed else None,
            submissions=entry.count,
            last_submission=entry.last.strftime(TIME_FORMAT),
            late=entry.submission.late,
            assignment=spec.name,
            entrant=entry.entrant.key,
            verified=entry.score.verified,
            public_rank=public_ranks.get(entry.entrant.key),
        )
        for entry, rank, tie in zip(chosen, ranks, ties, strict=True)
    ]


def _ranked(chosen: list[Entry], key: str) -> tuple[list[int], list[bool]]:
    """Sort ``chosen`` in place by ``key`` (best first, earlier first on ties); the ranks (equal
    scores share one: 1, 2, 2, 4) and whether each is tied."""
    chosen.sort(key=lambda e: (-getattr(e.score, key), e.submission.created_at))
    values = [getattr(e.score, key) for e in chosen]
    counts = Counter(values)
    ranks: list[int] = []
    for index, value in enumerate(values):
        ranks.append(index + 1 if index == 0 or value != values[index - 1] else ranks[-1])
    return ranks, [counts[v] > 1 for v in values]


def shake_up(rows: list[Row]) -> float | None:
    """The mean number of places the entrants moved at the reveal; None before it."""
    moves = [abs(r.rank_change) for r in rows if r.rank_change is not None]
    return sum(moves) / len(moves) if moves else None


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
