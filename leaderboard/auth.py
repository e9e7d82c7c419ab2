"""Tokens and people: tokens are created with ``secrets``, stored as sha256 and compared in
constant time; the roster becomes students (and teams) with pseudonyms."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from grader.roster import RosterError, read_roster
from leaderboard.models import Event, Student, Team, Token
from leaderboard.status import Role

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


@dataclass(frozen=True)
class Identity:
    """Who a token belongs to."""

    role: Role
    student_id: int | None
    token_id: int


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
    return Identity(role=row.role, student_id=row.student_id, token_id=row.id)


def identity_of_token_id(session: Session, token_id: int | None) -> Identity | None:
    """The identity of a stored token (a signed-in session), or None once it is revoked."""
    row = session.get(Token, token_id) if token_id is not None else None
    if row is None or row.revoked:
        return None
    return Identity(role=row.role, student_id=row.student_id, token_id=row.id)


def pseudonym(taken: set[str]) -> str:
    """A display name like ``brisk-otter-42`` not in ``taken`` (which it joins)."""
    while True:
        candidate = (
            f"{secrets.choice(ADJECTIVES)}-{secrets.choice(ANIMALS)}-{secrets.randbelow(100):02d}"
        )
        if candidate not in taken:
            taken.add(candidate)
            return candidate


def import_roster(session: Session, roster: Path | bytes, *, name: str | None = None):
    """Create the students of a roster CSV not yet known; return ``(student, token)`` pairs.

    The roster columns are those of :mod:`grader.roster` (student, name, email, SIS id, login
    id, section, team). Known students get their LMS fields and team updated; each new token is
    returned once and stored only as its hash.
    """
    people = read_roster(roster, name=name)
    known = {s.student: s for s in session.scalars(select(Student))}
    teams = {t.name: t for t in session.scalars(select(Team))}
    taken = set(session.scalars(select(Student.display_name))) | {
        t.display_name for t in teams.values()
    }
    created: list[tuple[str, str]] = []
    for person in people:
        team = None
        if person.team:
            team = teams.get(person.team)
            if team is None:
                team = Team(name=person.team, display_name=pseudonym(taken))
                session.add(team)
                teams[person.team] = team
        fields = {
            "name": person.name,
            "email": person.email,
            "sis_id": person.sis_id,
            "login_id": person.login_id,
            "section": person.section,
            "canvas_id": person.canvas_id,
        }
        student = known.get(person.student)
        if student is not None:
            for key, value in fields.items():
                if value:
                    setattr(student, key, value)
            if team is not None:
                student.team = team
            continue
        student = Student(student=person.student, display_name=pseudonym(taken), **fields)
        student.team = team
        session.add(student)
        session.flush()
        known[person.student] = student
        token = new_token()
        session.add(Token(token_hash=hash_token(token), role=Role.STUDENT, student_id=student.id))
        created.append((person.student, token))
    where = name or (str(roster) if isinstance(roster, Path) else "upload")
    session.add(Event(kind="roster", message=f"imported {len(created)} student(s) from {where}"))
    return created


def reset_student_token(session: Session, student: str) -> str:
    """Revoke every token of ``student`` and return a new one; RosterError when unknown."""
    row = session.scalar(select(Student).where(Student.student == student))
    if row is None:
        raise RosterError(f"no student {student!r} on the roster")
    session.execute(
        update(Token)
        .where(Token.student_id == row.id, Token.revoked.is_(False))
        .values(revoked=True)
    )
    token = new_token()
    session.add(Token(token_hash=hash_token(token), role=Role.STUDENT, student_id=row.id))
    session.add(Event(kind="token-reset", student_id=row.id, message="token reset"))
    return token


def create_token(session: Session, role: Role) -> str:
    """Store and return a new instructor or worker token."""
    if role is Role.STUDENT:
        raise ValueError("student tokens come from the roster")
    token = new_token()
    session.add(Token(token_hash=hash_token(token), role=role))
    session.add(Event(kind=f"{role.value}-token", message=f"created a {role.value} token"))
    return token


def create_instructor_token(session: Session) -> str:
    """Store and return a new instructor token."""
    return create_token(session, Role.INSTRUCTOR)


__all__ = [
    "Identity",
    "RosterError",
    "create_instructor_token",
    "create_token",
    "hash_token",
    "identify",
    "import_roster",
    "reset_student_token",
]
