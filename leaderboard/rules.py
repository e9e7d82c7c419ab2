"""The course rules for one entrant: who submits (a student or their team), the deadline with a
student's extension, the daily limit with a student's override, and when the private board shows.

Every time here is a naive UTC datetime, like the columns.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from grader.assignment import Assignment
from leaderboard.db import read_setting
from leaderboard.models import Override, Student, Submission
from leaderboard.status import SubmissionStatus


@dataclass(frozen=True)
class Entrant:
    """Who holds a board row and a daily quota: a team, or a student on their own."""

    student_id: int | None = None
    team_id: int | None = None

    @property
    def key(self) -> str:
        """A stable key such as ``team:3`` or ``student:7``."""
        return f"team:{self.team_id}" if self.team_id is not None else f"student:{self.student_id}"

    def owns(self) -> ColumnElement[bool]:
        """The SQL condition selecting this entrant's submissions."""
        if self.team_id is not None:
            return Submission.team_id == self.team_id
        return Submission.student_id == self.student_id


def entrant_for(session: Session, spec: Assignment, student_id: int) -> Entrant:
    """The entrant a new submission by ``student_id`` belongs to."""
    if spec.teams:
        student = session.get(Student, student_id)
        if student is not None and student.team_id is not None:
            return Entrant(team_id=student.team_id)
    return Entrant(student_id=student_id)


def entrant_of(submission: Submission) -> Entrant:
    """The entrant a stored submission counts for."""
    if submission.team_id is not None:
        return Entrant(team_id=submission.team_id)
    return Entrant(student_id=submission.student_id)


def naive_utc(moment: dt.datetime | None) -> dt.datetime | None:
    """An aware datetime as naive UTC (naive ones are taken as UTC already)."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _override(session: Session, spec: Assignment, student_id: int) -> Override | None:
    return session.scalar(
        select(Override).where(Override.student_id == student_id, Override.assignment == spec.name)
    )


def deadline_for(session: Session, spec: Assignment, student_id: int) -> dt.datetime | None:
    """The student's deadline: their extension, else the spec's."""
    override = _override(session, spec, student_id)
    if override is not None and override.deadline is not None:
        return override.deadline
    return naive_utc(spec.deadline)


def daily_limit_for(session: Session, spec: Assignment, student_id: int) -> int:
    """The student's daily limit: their override, else the spec's."""
    override = _override(session, spec, student_id)
    if override is not None and override.daily_limit is not None:
        return override.daily_limit
    return spec.daily_limit


def next_reset(now: dt.datetime) -> dt.datetime:
    """When the daily limit resets: the next UTC midnight after ``now``."""
    return dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time())


def used_today(session: Session, spec: Assignment, entrant: Entrant, now: dt.datetime) -> int:
    """Submissions counted against today's limit (invalid ones cost nothing)."""
    start = dt.datetime.combine(now.date(), dt.time())
    return session.scalar(
        select(func.count(Submission.id)).where(
            Submission.assignment == spec.name,
            entrant.owns(),
            Submission.created_at >= start,
            Submission.status != SubmissionStatus.INVALID,
        )
    )


def reveal_at(session: Session, spec: Assignment) -> dt.datetime | None:
    """When the private board shows by itself: after the last deadline, extensions included."""
    deadline = naive_utc(spec.deadline)
    if deadline is None:
        return None
    latest = session.scalar(
        select(func.max(Override.deadline)).where(Override.assignment == spec.name)
    )
    return max(deadline, latest) if latest is not None else deadline


def manually_revealed(session: Session, spec: Assignment) -> bool:
    """Whether the instructor revealed the private board."""
    return read_setting(session, f"revealed:{spec.name}") == "1"


def is_revealed(session: Session, spec: Assignment, now: dt.datetime) -> bool:
    """Whether private scores are public: after the last deadline or an instructor's reveal."""
    if manually_revealed(session, spec):
        return True
    moment = reveal_at(session, spec)
    return moment is not None and now > moment


def set_override(
    session: Session,
    spec: Assignment,
    student_id: int,
    *,
    deadline: dt.datetime | None = None,
    daily_limit: int | None = None,
) -> Override:
    """Give a student an extension and/or another daily limit (inside the caller's transaction)."""
    override = _override(session, spec, student_id)
    if override is None:
        override = Override(student_id=student_id, assignment=spec.name)
        session.add(override)
    if deadline is not None:
        override.deadline = naive_utc(deadline)
    if daily_limit is not None:
        override.daily_limit = daily_limit
    return override
