"""SQLAlchemy models: students, tokens, submissions, scores, jobs, events, settings.

Timestamps are naive UTC datetimes (SQLite has no time zones; PostgreSQL columns are plain
``timestamp``), always written through :func:`utcnow`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    """The current time as a naive UTC datetime (the form every column stores)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    """Declarative base of every leaderboard table."""


class Student(Base):
    """A person on the roster; ``display_name`` is the pseudonym shown when names are hidden."""

    __tablename__ = "students"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    student: Mapped[str] = mapped_column(String(120), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    display_name: Mapped[str] = mapped_column(String(120), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    submissions: Mapped[list[Submission]] = relationship(back_populates="student")


class Token(Base):
    """An API/upload token; only its sha256 is stored. ``role`` is student or instructor."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    student_id: Mapped[int | None] = mapped_column(ForeignKey("students.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)

    student: Mapped[Student | None] = relationship()


class Submission(Base):
    """One upload. ``status``: scored, queued, running, done, failed, invalid."""

    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"), index=True)
    assignment: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(20))  # predictions | model
    status: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text, default="")
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    original_name: Mapped[str] = mapped_column(String(255), default="")
    stored_path: Mapped[str] = mapped_column(String(500), default="")
    """Server-generated path of the stored upload (never derived from the uploaded name)."""
    sha256: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)

    student: Mapped[Student] = relationship(back_populates="submissions")
    score: Mapped[Score | None] = relationship(back_populates="submission", uselist=False)
    job: Mapped[Job | None] = relationship(back_populates="submission", uselist=False)


class Score(Base):
    """The scores of one submission; at most one row per submission."""

    __tablename__ = "scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), unique=True)
    public_accuracy: Mapped[float] = mapped_column(Float)
    public_macro_f1: Mapped[float | None] = mapped_column(Float, nullable=True)
    private_accuracy: Mapped[float] = mapped_column(Float)
    private_macro_f1: Mapped[float | None] = mapped_column(Float, nullable=True)
    all_accuracy: Mapped[float] = mapped_column(Float)
    points: Mapped[float] = mapped_column(Float, default=0.0)
    total_params: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    flops: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    submission: Mapped[Submission] = relationship(back_populates="score")


class Job(Base):
    """Work for ``grader worker``. ``status``: queued, running, done, failed.

    A running job belongs to ``lease_owner`` until ``lease_until``; a worker that stops
    heartbeating loses the job to the next claimer.
    """

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # model | selftest
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    lease_owner: Mapped[str | None] = mapped_column(String(120), nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)

    submission: Mapped[Submission] = relationship(back_populates="job")


class Event(Base):
    """An audit record: roster imports, reveals, rescoring, imported flags."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    student_id: Mapped[int | None] = mapped_column(ForeignKey("students.id"), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Setting(Base):
    """A key/value setting shared by every server process (secret key, reveal, board version)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
