"""Course rosters, and which roster student a submission belongs to.

A roster is a CSV with one row per student, read as an LMS writes it (UTF-8 with or without a
byte-order mark). Column names are matched without regard to case, spaces or underscores:

- ``student``: the id a student is known by here (a folder name in ``grader check``, the roster
  key of the leaderboard); when absent, ``login_id``, ``sis_id`` or ``email`` stands in for it;
- ``name`` (or ``first name`` + ``last name``), ``email``;
- ``sis_id`` (``SIS User ID``, ``ID number``, ``SID``), ``login_id`` (``SIS Login ID``,
  ``username``, ``login``), ``section`` (``sections``), ``team`` (``group``);
- the LMS's own user id: Canvas's ``ID``, Moodle's ``Identifier`` (``Participant 1234567`` in an
  assignment's grading worksheet).

Exports read as they are: a Canvas gradebook export (``Student`` is the name, its
``Points Possible`` and ``Manual Posting`` rows are skipped, its ``<Title> (<column id>)``
columns are kept as :attr:`Roster.columns`), a Moodle grading worksheet or gradebook export (a
``Username`` column that holds names, not user names, is read as the name), and a Gradescope
roster or grades export (``First Name``, ``Last Name``, ``SID``, ``Email``, ``Sections``).

:func:`match_submissions` finds each submission's roster student by, in order, the LMS user id
the bulk download gave (Canvas user id, Moodle participant id), SIS id, login id, email, then
name, and says what did not match.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

Lms = Literal["canvas", "moodle", "gradescope", ""]

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
    "moodle_id": ("identifier", "participant", "participantid"),
    "team": ("team", "group", "teamname"),
}
CANVAS_COLUMN = re.compile(r"^(?P<title>.+?)\s*\((?P<id>\d+)\)$")
"""A Canvas gradebook column: ``Lab 1 (4411)``."""
MOODLE_USERNAME = re.compile(r"^[a-z0-9_.@-]+$")
"""What Moodle allows in a user name (lower case, no spaces)."""
NOT_STUDENTS = ("points possible", "manual posting", "muted")
"""Canvas export rows that are not students (the maxima, the posting policy)."""


class RosterError(ValueError):
    """A roster file that cannot be used; the message names the file and the row."""


@dataclass(frozen=True)
class Person:
    """One student of the roster and the ids an LMS knows them by."""

    student: str
    name: str = ""
    email: str = ""
    sis_id: str = ""
    login_id: str = ""
    section: str = ""
    canvas_id: str = ""
    """Canvas's user id (the gradebook's ``ID``; the number in a bulk download's file names)."""
    team: str = ""
    moodle_id: str = ""
    """The participant id of a Moodle assignment (its grading worksheet's ``Identifier``; the
    number in its bulk download's folder names)."""
    first_name: str = ""
    last_name: str = ""

    @property
    def given_and_family(self) -> tuple[str, str]:
        """(first name, last name): the roster's own, else split from ``Last, First`` or at the
        last space of ``First Last``."""
        if self.first_name or self.last_name:
            return self.first_name, self.last_name
        name = (self.name or self.student).strip()
        if "," in name:
            last, _, first = name.partition(",")
            return first.strip(), last.strip()
        first, _, last = name.rpartition(" ")
        return (first, last) if first else (name, "")


@dataclass(frozen=True)
class Roster:
    """The people of a roster file and what else the LMS export told."""

    people: list[Person]
    lms: Lms = ""
    """The LMS the file came from, when its columns say so."""
    columns: dict[str, str] = field(default_factory=dict)
    """Canvas gradebook columns of the file: title -> column id."""
    source: str = ""


def _normalised(column: object) -> str:
    return re.sub(r"[\s_\-.:]+", "", str(column).strip().lower())


def read_roster(source: Path | bytes, *, name: str | None = None) -> list[Person]:
    """The people of a roster CSV (a path, or the bytes of an upload named ``name``)."""
    return read_roster_file(source, name=name).people


def read_roster_file(source: Path | bytes, *, name: str | None = None) -> Roster:
    """A roster CSV (a path, or the bytes of an upload named ``name``) with what its LMS said."""
    where = name or str(source if isinstance(source, Path) else "roster")
    try:
        data = source.read_bytes() if isinstance(source, Path) else source
        frame = pd.read_csv(
            io.BytesIO(data),
            dtype=str,
            keep_default_na=False,
            skipinitialspace=True,
            encoding="utf-8-sig",
        )
    except OSError as exc:
        raise RosterError(f"{where}: cannot read: {exc.strerror or exc}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise RosterError(f"{where}: cannot read as CSV (save it as CSV UTF-8): {exc}") from None
    found = {_normalised(c): c for c in frame.columns}
    columns: dict[str, str] = {}
    for field_name, spellings in ALIASES.items():
        for spelling in spellings:
            if spelling in found:
                columns[field_name] = found[spelling]
                break
    lms: Lms = ""
    # Canvas's own headers ("Student", "ID", the SIS columns, "Section"; a TA's export has no SIS
    # columns): there "Student" is the name and "ID" the Canvas user id.
    canvas_ids = {"sisuserid", "sisloginid"} & set(found) or {"id", "section"} <= set(found)
    if "student" in columns and "name" not in columns and canvas_ids:
        columns["name"] = columns.pop("student")
        lms = "canvas"
    elif "moodle_id" in columns or {"emailaddress", "idnumber"} <= set(found):
        lms = "moodle"
    elif {"sid", "email"} <= set(found):
        lms = "gradescope"
    if lms != "canvas" and "canvasid" not in found:
        columns.pop("canvas_id", None)  # a bare "ID" column is Canvas's only in Canvas's export
    if not {"student", "login_id", "sis_id", "email", "canvas_id", "moodle_id"} & set(columns):
        raise RosterError(
            f"{where}: no 'student' column (found: {', '.join(map(str, frame.columns)) or 'none'})"
            "; the first line must be a header such as: student,name,email,sis_id,section"
        )
    if "username" in found and columns.get("login_id") == found["username"]:
        usernames = [str(v).strip() for v in frame[found["username"]]]
        if any(v and not MOODLE_USERNAME.fullmatch(v.lower()) for v in usernames):
            # a "Username" that holds "Alice Smith" is the name, not a login Moodle would know
            if "name" not in columns and "first_name" not in columns:
                columns["name"] = columns["login_id"]
            del columns["login_id"]
    people: list[Person] = []
    seen: dict[str, int] = {}
    for row_number, record in enumerate(frame.to_dict("records"), start=2):
        values = {k: str(record[c]).strip() for k, c in columns.items()}
        if lms == "canvas" and _not_a_student(values):
            continue
        if "moodle_id" in values:
            values["moodle_id"] = re.sub(r"^\D+", "", values["moodle_id"])
        student = next(
            (values.get(k, "") for k in ("student", "login_id", "sis_id", "email", "canvas_id",
                                         "moodle_id") if values.get(k)),
            "",
        )  # fmt: skip
        if not student:
            if not any(values.values()):
                continue  # an empty line
            raise RosterError(f"{where}: row {row_number} has no student id")
        if student in seen:
            raise RosterError(
                f"{where}: row {row_number}: student {student!r} already on row {seen[student]}"
            )
        seen[student] = row_number
        first, last = values.get("first_name", ""), values.get("last_name", "")
        name = values.get("name") or " ".join(v for v in (first, last) if v)
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
                moodle_id=values.get("moodle_id", ""),
                first_name=first,
                last_name=last,
            )
        )
    gradebook = {}
    if lms == "canvas":
        for column in frame.columns:
            match = CANVAS_COLUMN.match(str(column).strip())
            if match:
                gradebook[match["title"]] = match["id"]
    return Roster(people, lms, gradebook, where)


def _not_a_student(values: dict[str, str]) -> bool:
    """A Canvas export row that holds the maxima or the posting policy, not a student."""
    name = values.get("name", "").lower()
    return name.startswith(NOT_STUDENTS) or not (values.get("name") or values.get("canvas_id"))


# --- matching submissions to the roster ----------------------------------------------------------


@dataclass(frozen=True)
class Submitter:
    """Who a submission says it comes from: what the LMS download tells about one submitter."""

    name: str = ""
    lms: Lms = ""
    lms_id: str = ""
    """Canvas user id, Moodle participant id."""
    sis_id: str = ""
    login_id: str = ""
    email: str = ""
    folder: str = ""
    """A plain folder's name: any of the roster's ids, or the student's name."""

    def describe(self) -> str:
        """How the submission names this submitter, for messages."""
        parts = [self.name or self.folder]
        if self.lms_id:
            label = {"canvas": "Canvas user id", "moodle": "Moodle participant"}.get(self.lms, "id")
            parts.append(f"{label} {self.lms_id}")
        parts += [f"SID {self.sis_id}" if self.sis_id else "", self.email]
        return ", ".join(p for p in parts if p)


MATCH_ORDER = ("LMS user id", "SIS id", "login id", "email", "student id", "name")


def name_keys(name: str) -> set[str]:
    """Comparable forms of a name: ``Smith, Alice``, ``Alice Smith`` and Canvas's ``smithalice``
    share one; every rotation at a space is kept (``van Dyke, Mary Ann`` is
    ``Mary Ann van Dyke``)."""
    name = name.strip()
    if not name:
        return set()
    forms = {name}
    if "," in name:
        last, _, first = name.partition(",")
        forms.add(f"{first} {last}")
    words = name.replace(",", " ").split()
    forms.update(" ".join(words[i:] + words[:i]) for i in range(len(words)))
    return {k for k in (re.sub(r"\W", "", f.casefold()) for f in forms) if k}


class RosterIndex:
    """The roster's people by every id they may be matched by."""

    def __init__(self, people: Sequence[Person]) -> None:
        self.people = list(people)
        self._by: dict[str, dict[str, list[Person]]] = {key: {} for key in MATCH_ORDER}
        for person in self.people:
            for how, keys in (
                ("LMS user id", [f"canvas:{person.canvas_id}" if person.canvas_id else "",
                                 f"moodle:{person.moodle_id}" if person.moodle_id else ""]),
                ("SIS id", [person.sis_id]),
                ("login id", [person.login_id.casefold()]),
                ("email", [person.email.casefold()]),
                ("student id", [k.casefold() for k in (person.student, person.login_id,
                                                       person.sis_id, person.email)]),
                ("name", sorted(name_keys(person.name) | name_keys(
                    f"{person.first_name} {person.last_name}"))),
            ):  # fmt: skip
                for key in dict.fromkeys(k for k in keys if k):
                    self._by[how].setdefault(key, []).append(person)

    def find(self, submitter: Submitter) -> tuple[Person | None, str]:
        """The one person ``submitter`` is, and how they were matched; or (None, why not)."""
        folder = submitter.folder
        wanted = {
            "LMS user id": [f"{submitter.lms}:{submitter.lms_id}"] if submitter.lms_id else [],
            "SIS id": [submitter.sis_id],
            "login id": [submitter.login_id.casefold()],
            "email": [submitter.email.casefold()],
            "student id": [folder.casefold()],
            "name": sorted(name_keys(submitter.name or folder)),
        }
        ambiguous = ""
        for how in MATCH_ORDER:
            found = {id(p): p for key in wanted[how] if key for p in self._by[how].get(key, [])}
            if len(found) == 1:
                return next(iter(found.values())), how
            if len(found) > 1 and not ambiguous:
                names = ", ".join(sorted(p.student for p in found.values()))
                ambiguous = f"its {how} fits {len(found)} roster students ({names})"
        return None, ambiguous or "nobody on the roster has its ids or its name"


@dataclass(frozen=True)
class Unmatched:
    """A submission no roster student could be found for, and why."""

    submission: str
    submitters: tuple[Submitter, ...]
    reason: str

    def describe(self) -> str:
        """One line for the report and the terminal."""
        who = "; ".join(s.describe() for s in self.submitters) or "no submitter information"
        return f"{self.submission} ({who}): {self.reason}"


@dataclass
class RosterMatch:
    """Which roster students the submissions of a batch belong to."""

    submitters: dict[str, tuple[Submitter, ...]]
    """Submission -> who the download says submitted it."""
    people: list[Person] | None = None
    """The roster (None: no roster was given)."""
    matched: dict[str, list[tuple[Person, str]]] = field(default_factory=dict)
    """Submission -> its roster students (several for a group) and how each was matched."""
    unmatched: list[Unmatched] = field(default_factory=list)
    missing: list[Person] = field(default_factory=list)
    """Roster students without a submission."""
    strays: list[str] = field(default_factory=list)
    """Submitters of a matched group submission who are not on the roster, with the reason."""

    def summary(self) -> str:
        """One line: how many submissions matched, by which ids, and who has none."""
        ways: dict[str, int] = {}
        for found in self.matched.values():
            for _person, how in found:
                ways[how] = ways.get(how, 0) + 1
        by = ", ".join(f"{n} by {how}" for how, n in ways.items()) or "none"
        return (
            f"{len(self.matched)} of {len(self.submitters)} submissions matched ({by}); "
            f"{len(self.unmatched)} unmatched; {len(self.missing)} roster students without a "
            "submission"
        )

    def messages(self) -> list[str]:
        """What did not match, one line each (empty when everything did)."""
        lines = [f"no roster student for submission {u.describe()}" for u in self.unmatched]
        lines += [f"no roster student for {stray}" for stray in self.strays]
        lines += [
            f"no submission from roster student {p.student}"
            + (f" ({p.name})" if p.name and p.name != p.student else "")
            for p in self.missing
        ]
        return lines

    def to_json(self) -> dict:
        """The matching as results.json records it."""
        return {
            "roster": self.people is not None,
            "matched": {
                key: [{"student": p.student, "by": how} for p, how in found]
                for key, found in self.matched.items()
            },
            "unmatched": [
                {
                    "submission": u.submission,
                    "reason": u.reason,
                    "submitters": [s.describe() for s in u.submitters],
                }
                for u in self.unmatched
            ],  # fmt: skip
            "missing": [p.student for p in self.missing],
            "strays": list(self.strays),
        }


def match_submissions(
    submissions: Iterable[tuple[str, Sequence[Submitter]]], people: Sequence[Person] | None
) -> RosterMatch:
    """Match each submission (its key and its submitters) to the roster ``people``.

    A roster student claimed by two submissions keeps the one matched by the stronger id (the
    earlier of :data:`MATCH_ORDER`); the other is listed as unmatched with the reason.
    """
    submissions = [(key, tuple(submitters)) for key, submitters in submissions]
    result = RosterMatch({key: subs for key, subs in submissions})
    if people is None:
        return result
    result.people = list(people)
    index = RosterIndex(people)
    claims: dict[int, tuple[str, str]] = {}  # person -> (submission, how)
    found: dict[str, list[tuple[Person, str]]] = {}
    reasons: dict[str, str] = {}
    strays: dict[str, list[str]] = {}
    for key, submitters in submissions:
        for submitter in submitters or (Submitter(folder=key),):
            person, how = index.find(submitter)
            if person is None:
                reasons.setdefault(key, how)
                strays.setdefault(key, []).append(f"{submitter.describe()} of {key}: {how}")
                continue
            earlier = claims.get(id(person))
            if earlier is not None:
                other, other_how = earlier
                if MATCH_ORDER.index(how) >= MATCH_ORDER.index(other_how):
                    reasons.setdefault(key, f"roster student {person.student} is already "
                                            f"matched to {other} (by {other_how})")  # fmt: skip
                    continue
                found[other] = [(p, h) for p, h in found[other] if p is not person]
                reasons.setdefault(other, f"roster student {person.student} is matched to "
                                          f"{key} by a stronger id ({how})")  # fmt: skip
            claims[id(person)] = (key, how)
            found.setdefault(key, []).append((person, how))
    for key, submitters in submissions:
        if found.get(key):
            result.matched[key] = found[key]
            result.strays.extend(strays.get(key, []))
        else:
            result.unmatched.append(Unmatched(key, submitters, reasons.get(key, "no submitter")))
    claimed = {id(p) for pairs in result.matched.values() for p, _ in pairs}
    result.missing = [p for p in people if id(p) not in claimed]
    return result
