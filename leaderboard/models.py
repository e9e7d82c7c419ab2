"""SQLAlchemy models: students and teams, tokens, submissions and their files, grades and the
scores the boards rank, jobs, per-student overrides, rate-limit counters, events and settings.

Timestamps are naive UTC datetimes (SQLite has no time zones; PostgreSQL columns are plain
``timestamp``), always written through :func:`utcnow`. Status columns hold the Enums of
:mod:`leaderboard.status` (stored as their lowercase words).
"""

from __future__ import annotations

import datetime as dt
from enum import Enum as PyEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from grader.grading.status import GradeStatus, SubmissionKind
from leaderboard.status import JobQueue, JobStatus, Role, SubmissionStatus

SCHEMA_VERSION = "3"
"""Bumped whenever a table changes; a database made by another version is refused clearly."""


def utcnow() -> dt.datetime:
    """The current time as a naive UTC datetime (the form every column stores)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _enum(cls: type[PyEnum]) -> Enum:
    return Enum(
        cls,
        native_enum=False,
        length=20,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    """Declarative base of every leaderboard table."""


class Team(Base):
    """A team of students sharing one daily limit and one board row (when the spec has teams)."""

    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    display_name: Mapped[str] = mapped_column(String(120), unique=True)

    members: Mapped[list[Student]] = relationship(back_populates="team")


class Student(Base):
    """A person on the roster; ``display_name`` is the pseudonym the public board shows."""

    __tablename__ = "students"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    student: Mapped[str] = mapped_column(String(120), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    sis_id: Mapped[str] = mapped_column(String(120), default="")
    login_id: Mapped[str] = mapped_column(String(120), default="")
    section: Mapped[str] = mapped_column(String(120), default="")
    canvas_id: Mapped[str] = mapped_column(String(40), default="")
    display_name: Mapped[str] = mapped_column(String(120), unique=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    team: Mapped[Team | None] = relationship(back_populates="members")
    submissions: Mapped[list[Submission]] = relationship(back_populates="student")


class Token(Base):
    """An API/upload token; only its sha256 is stored."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[Role] = mapped_column(_enum(Role))
    student_id: Mapped[int | None] = mapped_column(ForeignKey("students.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)

    student: Mapped[Student | None] = relationship()


class Submission(Base):
    """One upload to one assignment, by a student (and their team, on a team assignment)."""

    __tablename__ = "submissions"
    __table_args__ = (
        Index("ix_submissions_assignment_student", "assignment", "student_id"),
        Index("ix_submissions_assignment_team", "assignment", "team_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"), index=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), nullable=True)
    assignment: Mapped[str] = mapped_column(String(120))
    kind: Mapped[SubmissionKind] = mapped_column(_enum(SubmissionKind))
    status: Mapped[SubmissionStatus] = mapped_column(_enum(SubmissionStatus))
    message: Mapped[str] = mapped_column(Text, default="")
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    final: Mapped[bool] = mapped_column(Boolean, default=False)
    """Marked final by the student (entry rule ``chosen``)."""
    original_name: Mapped[str] = mapped_column(String(255), default="")
    sha256: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)

    student: Mapped[Student] = relationship(back_populates="submissions")
    team: Mapped[Team | None] = relationship()
    score: Mapped[Score | None] = relationship(back_populates="submission", uselist=False)
    grade: Mapped[GradeRecord | None] = relationship(back_populates="submission", uselist=False)
    job: Mapped[Job | None] = relationship(back_populates="submission", uselist=False)
    files: Mapped[list[SubmissionFile]] = relationship(
        back_populates="submission", order_by="SubmissionFile.name"
    )


class SubmissionFile(Base):
    """One stored file of a submission, kept in the database so that any worker can fetch it."""

    __tablename__ = "submission_files"
    __table_args__ = (UniqueConstraint("submission_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    """A server-checked relative name (``model.py``, ``utils/nn.py``): no ``..``, no absolute
    path, safe characters in every part."""
    content: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)

    submission: Mapped[Submission] = relationship(back_populates="files")


class GradeRecord(Base):
    """The :class:`grader.grading.grade.Grade` of one submission, as the grader made it: every
    page, the API and the exports render this record; nothing recomputes its points or flags.
    At most one row per submission (a rescore replaces it)."""

    __tablename__ = "grades"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), unique=True)
    status: Mapped[GradeStatus] = mapped_column(_enum(GradeStatus))
    points: Mapped[float | None] = mapped_column(Float, nullable=True)
    """The grade's points (0 while held for review; None when not graded)."""
    held: Mapped[bool] = mapped_column(Boolean, default=False)
    """Held for an instructor's review: no points until accepted."""
    version: Mapped[int] = mapped_column(Integer)
    """:data:`grader.grading.grade.GRADE_VERSION` of ``record``."""
    record: Mapped[dict] = mapped_column(JSON, deferred=True)
    """``Grade.to_record(labels=False)``: the predicted labels are in the score's row."""
    evidence: Mapped[dict | None] = mapped_column(JSON, nullable=True, deferred=True)
    """What the worker posted (:class:`grader.grading.evidence.Evidence`, versioned): an
    instructor's rescore completes it again against the current spec and answer key."""
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    submission: Mapped[Submission] = relationship(back_populates="grade")


class Score(Base):
    """The numbers the boards rank one graded submission by, copied from its grade (which is
    the record of truth); at most one row per submission. An ``ops.py`` has no score row."""

    __tablename__ = "scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), unique=True)
    public_accuracy: Mapped[float] = mapped_column(Float)
    public_macro_f1: Mapped[float | None] = mapped_column(Float, nullable=True)
    private_accuracy: Mapped[float] = mapped_column(Float)
    private_macro_f1: Mapped[float | None] = mapped_column(Float, nullable=True)
    all_accuracy: Mapped[float] = mapped_column(Float)
    points: Mapped[float] = mapped_column(Float, default=0.0)
    labels: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    """The predicted class of every test image in id order (uint8): rescoring, copy flags."""
    total_params: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    flops: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    weights_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    verified: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    """Whether a model's numbers come from the grader's verified evaluation (None: not known)."""
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    submission: Mapped[Submission] = relationship(back_populates="score")


class Job(Base):
    """Work for a grading worker.

    Each claim is a new attempt with its own secret key (only its hash is stored); a result is
    stored only for the current attempt with that key, once. ``lease_until`` lets the embedded
    worker queue take over a job whose worker stopped heartbeating.
    """

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), unique=True)
    kind: Mapped[SubmissionKind] = mapped_column(_enum(SubmissionKind))
    queue: Mapped[JobQueue] = mapped_column(_enum(JobQueue), default=JobQueue.CPU)
    status: Mapped[JobStatus] = mapped_column(
        _enum(JobStatus), default=JobStatus.QUEUED, index=True
    )
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    lease_owner: Mapped[str | None] = mapped_column(String(120), nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    attempt_key_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)

    submission: Mapped[Submission] = relationship(back_populates="job")


class Override(Base):
    """A per-student exception for one assignment: a later deadline, another daily limit."""

    __tablename__ = "overrides"
    __table_args__ = (UniqueConstraint("student_id", "assignment"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"))
    assignment: Mapped[str] = mapped_column(String(120))
    deadline: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    daily_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)

    student: Mapped[Student] = relationship()


class RateHit(Base):
    """Requests of one client key in one fixed window, shared by every server process."""

    __tablename__ = "rate_hits"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    window: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class Event(Base):
    """An audit record: roster imports, reveals, rescoring, imported flags, token resets."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    student_id: Mapped[int | None] = mapped_column(ForeignKey("students.id"), nullable=True)
    assignment: Mapped[str | None] = mapped_column(String(120), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Setting(Base):
    """A key/value setting shared by every server process (secret key, reveal, board version)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
