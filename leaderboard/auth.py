"""Tokens: created with ``secrets``, stored as sha256, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from leaderboard.models import Event, Student, Token

ADJECTIVES = (
    "amber",
    "brisk",
    "calm",
    "daring",
    "eager",
    "fuzzy",
    "gentle",
    "hazy",
    "icy",
    "jolly",
    "keen",
    "lucky",
    "mellow",
    "nimble",
    "odd",
    "proud",
    "quiet",
    "rapid",
    "sunny",
    "tidy",
)
ANIMALS = (
    "otter",
    "falcon",
    "lynx",
    "heron",
    "badger",
    "koala",
    "marten",
    "newt",
    "orca",
    "panda",
    "quokka",
    "raven",
    "seal",
    "tapir",
    "urchin",
    "viper",
    "walrus",
    "yak",
    "zebra",
    "ibis",
)


class RosterError(ValueError):
    """A roster file that cannot be imported; the message names the file and row."""


@dataclass(frozen=True)
class Identity:
    """Who a token belongs to."""

    role: str
    student_id: int | None


def hash_token(token: str) -> str:
    """The stored form of a token (hex sha256)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random token."""
    return secrets.token_urlsafe(32)


def identify(session: Session, token: str | None) -> Identity | None:
    """The identity behind ``token``, or None for a missing, unknown or revoked token."""
    if not token:
        return None
    digest = hash_token(token.strip())
    row = session.scalar(select(Token).where(Token.token_hash == digest))
    # The lookup is by hash; the constant-time comparison guards against a timing side channel
    # in whatever index or collation found the row.
    if row is None or row.revoked or not hmac.compare_digest(row.token_hash, digest):
        return None
    return Identity(role=row.role, student_id=row.student_id)


def pseudonym(session: Session) -> str:
    """A display name like ``brisk-otter-42`` not used by any student yet."""
    taken = set(session.scalars(select(Student.display_name)))
    while True:
        candidate = (
            f"{secrets.choice(ADJECTIVES)}-{secrets.choice(ANIMALS)}-{secrets.randbelow(100):02d}"
        )
        if candidate not in taken:
            return candidate


def import_roster(session: Session, roster: Path) -> list[tuple[str, str]]:
    """Create the students of a roster CSV not yet known; return ``(student, token)`` pairs.

    The CSV needs a ``student`` column and may have ``name`` and ``email``. Each token is
    returned once and stored only as its hash.
    """
    try:
        frame = pd.read_csv(roster, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise RosterError(f"{roster}: cannot read as CSV: {exc}") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    if "student" not in frame.columns:
        raise RosterError(
            f"{roster}: no 'student' column (found: {', '.join(frame.columns) or 'none'}); "
            "the first line must be a header such as: student,name,email"
        )
    known = set(session.scalars(select(Student.student)))
    created: list[tuple[str, str]] = []
    for row_number, record in enumerate(frame.to_dict("records"), start=2):
        student_id = record["student"].strip()
        if not student_id:
            raise RosterError(f"{roster}: row {row_number} has an empty 'student' value")
        if student_id in known:
            continue
        known.add(student_id)
        student = Student(
            student=student_id,
            name=record.get("name", "").strip(),
            email=record.get("email", "").strip(),
            display_name=pseudonym(session),
        )
        session.add(student)
        session.flush()
        token = new_token()
        session.add(Token(token_hash=hash_token(token), role="student", student_id=student.id))
        created.append((student_id, token))
    session.add(Event(kind="roster", message=f"imported {len(created)} student(s) from {roster}"))
    return created


def create_instructor_token(session: Session) -> str:
    """Store and return a new instructor token."""
    token = new_token()
    session.add(Token(token_hash=hash_token(token), role="instructor"))
    session.add(Event(kind="instructor-token", message="created an instructor token"))
    return token
