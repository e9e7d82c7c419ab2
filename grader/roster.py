"""Course rosters: who the students are and how a learning-management system names them.

A roster is a CSV with one row per student. Column names are matched without regard to case,
spaces or underscores, and the common LMS spellings are accepted:

- ``student``: the id a student is known by here (a folder name in ``grader check``, the roster
  key of the leaderboard); when absent, ``login_id`` or ``sis_id`` stands in for it;
- ``name`` (or ``first name`` + ``last name``), ``email``;
- ``sis_id`` (``SIS User ID``, ``idnumber``, ``SID``), ``login_id`` (``SIS Login ID``,
  ``username``, ``login``), ``section`` (``sections``), ``canvas_id`` (Canvas's ``ID``) and
  ``team`` (``group``).

A Canvas gradebook export works as it is: when it has ``SIS User ID`` or ``SIS Login ID``
columns, its ``Student`` column is the student's name, and its ``Points Possible`` row is skipped.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ALIASES: dict[str, tuple[str, ...]] = {
    "student": ("student",),
    "name": ("name", "fullname", "studentname"),
    "first_name": ("firstname", "givenname"),
    "last_name": ("lastname", "surname", "familyname"),
    "email": ("email", "emailaddress", "mail"),
    "sis_id": ("sisid", "sisuserid", "idnumber", "sid", "studentnumber"),
    "login_id": ("loginid", "sisloginid", "username", "login"),
    "section": ("section", "sections"),
    "canvas_id": ("canvasid", "id"),
    "team": ("team", "group", "teamname"),
}


class RosterError(ValueError):
    """A roster file that cannot be used; the message names the file and the row."""


@dataclass(frozen=True)
class Person:
    """One student of the roster and the ids an LMS matches them by."""

    student: str
    name: str = ""
    email: str = ""
    sis_id: str = ""
    login_id: str = ""
    section: str = ""
    canvas_id: str = ""
    team: str = ""

    @property
    def keys(self) -> tuple[str, ...]:
        """Every non-empty id this person may be looked up by."""
        return tuple(k for k in (self.student, self.login_id, self.sis_id, self.email) if k)


def _normalised(column: object) -> str:
    return re.sub(r"[\s_\-.]+", "", str(column).strip().lower())


def read_roster(source: Path | bytes, *, name: str | None = None) -> list[Person]:
    """The people of a roster CSV (a path, or the bytes of an upload named ``name``)."""
    where = name or str(source if isinstance(source, Path) else "roster")
    try:
        data = source.read_bytes() if isinstance(source, Path) else source
        frame = pd.read_csv(
            io.BytesIO(data), dtype=str, keep_default_na=False, skipinitialspace=True
        )
    except OSError as exc:
        raise RosterError(f"{where}: cannot read: {exc.strerror or exc}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise RosterError(f"{where}: cannot read as CSV: {exc}") from None
    found = {_normalised(c): c for c in frame.columns}
    columns: dict[str, str] = {}
    for field_name, spellings in ALIASES.items():
        for spelling in spellings:
            if spelling in found:
                columns[field_name] = found[spelling]
                break
    # Canvas's own headers: there "Student" is the name and the SIS columns are the ids.
    canvas = (
        "student" in columns
        and "name" not in columns
        and bool({"sisuserid", "sisloginid"} & set(found))
    )
    if canvas:
        columns["name"] = columns.pop("student")
    if not {"student", "login_id", "sis_id"} & set(columns):
        raise RosterError(
            f"{where}: no 'student' column (found: {', '.join(map(str, frame.columns)) or 'none'})"
            "; the first line must be a header such as: student,name,email,sis_id,section"
        )
    people: list[Person] = []
    seen: dict[str, int] = {}
    for row_number, record in enumerate(frame.to_dict("records"), start=2):
        values = {k: str(record[c]).strip() for k, c in columns.items()}
        if canvas and values.get("name", "").lower().startswith("points possible"):
            continue
        student = values.get("student") or values.get("login_id") or values.get("sis_id") or ""
        if not student:
            raise RosterError(f"{where}: row {row_number} has no student id")
        if student in seen:
            raise RosterError(
                f"{where}: row {row_number}: student {student!r} already on row {seen[student]}"
            )
        seen[student] = row_number
        name = values.get("name") or " ".join(
            v for v in (values.get("first_name"), values.get("last_name")) if v
        )
        people.append(
            Person(
                student=student,
                name=name,
                email=values.get("email", ""),
                sis_id=values.get("sis_id", ""),
                login_id=values.get("login_id", ""),
                section=values.get("section", ""),
                canvas_id=values.get("canvas_id", ""),
                team=values.get("team", ""),
            )
        )
    return people


def lookup(people: list[Person]) -> dict[str, Person]:
    """Person by each of their ids (student, login id, SIS id, email); first one wins."""
    table: dict[str, Person] = {}
    for person in people:
        for key in person.keys:
            table.setdefault(key, person)
    return table
