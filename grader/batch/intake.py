"""Intake of a class folder: per-student folders, Canvas and Moodle bulk downloads, and zips.

``grader check DIR`` accepts, mixed in one folder:

- ``DIR/<student>/`` holding the student's files (the plain layout);
- Canvas's flat files ``<lastfirst>_<userid>_<fileid>_<name>`` (late ones
  ``<lastfirst>_LATE_<userid>_<fileid>_<name>``; a resubmitted file gets ``-1``, ``-2`` before
  its extension, which is dropped);
- Moodle's per-student folders ``<Full Name>_<id>_assignsubmission_<plugin>_``;
- zips of any of these (the LMS's "download all"), and a student's own zip among their files.

Every file is looked at with ``lstat`` and never followed: a symbolic link, a device, a FIFO, a
socket or a hard-linked file (``st_nlink > 1``) makes that student's row invalid with the reason.
Files are opened with ``O_NOFOLLOW``, checked again on the open descriptor, read up to a size cap
and hashed in chunks. Zips are unpacked member by member: no absolute paths or ``..``, no links,
limits on members, sizes and nesting, a bad CRC is the student's problem. What a submission uses
is copied into a staging folder the grader made itself; the sandbox and the scorer only ever see
that copy.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from grader.grading.status import SubmissionKind as Kind
from grader.sandbox.staging import (
    IntakeError,
    copy_plain_file,
    describe_type,
    open_plain_file,
    plain_file_problem,
)

Layout = Literal["folder", "canvas", "moodle"]
PREDICTIONS_FILE = "predictions.csv"
MODEL_FILE = "model.py"
WEIGHT_SUFFIXES = (".pt", ".pth", ".safetensors")
CHUNK = 1 << 20
CANVAS_FILE = re.compile(
    r"^(?P<name>[^_/]+)_(?:(?P<late>LATE)_)?(?P<uid>\d+)_(?P<fid>\d+)_(?P<file>.+)$"
)
CANVAS_RESUBMISSION = re.compile(r"^(?P<stem>.+)-\d+(?P<suffix>\.[^.]+)$")
MOODLE_FOLDER = re.compile(r"^(?P<name>.+)_(?P<uid>\d+)_assign(?:submission|feedback)_\w+?_$")
SKIPPED = ("__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini")
"""Names operating systems add to archives; never a student's work and never listed."""


@dataclass(frozen=True)
class IntakeLimits:
    """Caps on what one class folder may make the grader read or unpack."""

    max_file_bytes: int = 256 << 20
    """Any one file of a submission (weights included)."""
    max_files_per_student: int = 200
    max_zip_members: int = 20_000
    max_unpacked_bytes: int = 4 << 30
    """Everything one zip may unpack to."""
    max_depth: int = 8
    """Folder depth inside a student's folder or zip."""


@dataclass
class StudentFiles:
    """One student's files as found, before the grader picks what it uses."""

    student: str
    """The name on the grades (the folder name, Canvas's ``lastfirst``, Moodle's full name)."""
    layout: Layout
    files: dict[str, Path] = field(default_factory=dict)
    """Submission name (LMS prefix removed, path inside the student's folder) -> file on disk."""
    problems: list[str] = field(default_factory=list)
    """Links, devices, hard links, oversized files, unsafe zip members: the row is invalid."""
    skipped: list[str] = field(default_factory=list)
    """Entries that are not files (empty folders) or nested archives, listed as ignored."""
    lms_id: str | None = None
    late: bool = False

    @property
    def key(self) -> str:
        """A file-system-safe name for this student's pages and staging folder."""
        return safe_name(self.student)


@dataclass
class Intake:
    """Every student found under the class folder, and what at its top level was not anyone's."""

    students: list[StudentFiles]
    top_level_ignored: list[str]


@dataclass(frozen=True)
class Selection:
    """What the grader uses of a student's files."""

    kind: Kind
    used: tuple[str, ...]
    """Submission names that are graded (and staged), in a stable order."""
    ignored: tuple[str, ...]


def safe_name(name: str) -> str:
    """``name`` as one path component: no separators, no leading dot, printable."""
    cleaned = re.sub(r"[^\w.@+-]+", "_", name, flags=re.UNICODE).strip("._") or "student"
    return cleaned[:120]


# --- finding the students --------------------------------------------------------------------


def collect(root: Path, *, work_dir: Path, limits: IntakeLimits = IntakeLimits()) -> Intake:
    """Find every student's files under ``root`` (zips unpacked under ``work_dir``)."""
    students: dict[tuple[Layout, str], StudentFiles] = {}
    ignored: list[str] = []
    _collect_level(Path(root), "", students, ignored, work_dir / "unpacked", limits, depth=0)
    merged = _unique_names(list(students.values()))
    for student in merged:
        if len(student.files) > limits.max_files_per_student:
            student.problems.append(
                f"{len(student.files)} files, over the limit of {limits.max_files_per_student}; "
                f"submit only the files the assignment asks for"
            )
    return Intake(sorted(merged, key=lambda s: s.student), sorted(ignored))


def _collect_level(
    folder: Path,
    shown: str,
    students: dict[tuple[Layout, str], StudentFiles],
    ignored: list[str],
    unpack_dir: Path,
    limits: IntakeLimits,
    depth: int,
) -> None:
    """One level of the class folder (the folder itself, or an unpacked bulk zip)."""
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        name = entry.name
        where = f"{shown}{name}"
        if name in SKIPPED or name.startswith((".", "_")):
            continue
        info = entry.stat(follow_symlinks=False)
        canvas = CANVAS_FILE.match(name)
        if stat.S_ISDIR(info.st_mode):
            moodle = MOODLE_FOLDER.match(name)
            if moodle:
                student = _student(students, moodle["name"], "moodle", moodle["uid"])
            else:
                student = _student(students, name, "folder", None)
            _walk_student(Path(entry.path), "", student, unpack_dir, limits, depth=1)
        elif canvas:
            student = _student(students, canvas["name"], "canvas", canvas["uid"])
            student.late = student.late or bool(canvas["late"])
            file_name = _canvas_name(canvas["file"])
            _add_file(student, Path(entry.path), file_name, info, unpack_dir, limits, depth=1)
        elif stat.S_ISREG(info.st_mode) and name.lower().endswith(".zip") and depth == 0:
            target = unpack_dir / safe_name(name)
            problems = unpack_zip(Path(entry.path), target, limits)
            if problems:
                ignored.extend(f"{where}: {p}" for p in problems)
            if target.is_dir():
                _collect_level(
                    target, f"{where}/", students, ignored, unpack_dir, limits, depth + 1
                )
        elif stat.S_ISLNK(info.st_mode):
            # A link at the top is a student entry that cannot be read: say so on their row.
            student = _student(students, name, "folder", None)
            what = describe_type(info.st_mode)
            student.problems.append(f"{name} {what}; submit the files themselves")
        else:
            what = describe_type(info.st_mode)
            ignored.append(where if stat.S_ISREG(info.st_mode) else f"{where} ({what})")


def _student(
    students: dict[tuple[Layout, str], StudentFiles], name: str, layout: Layout, lms_id: str | None
) -> StudentFiles:
    key = (layout, f"{name}\0{lms_id}")
    if key not in students:
        students[key] = StudentFiles(student=name, layout=layout, lms_id=lms_id)
    return students[key]


def _unique_names(students: list[StudentFiles]) -> list[StudentFiles]:
    """Two students may share a name (two Smiths): the LMS id tells them apart."""
    seen: dict[str, int] = {}
    for s in students:
        seen[s.student] = seen.get(s.student, 0) + 1
    for s in students:
        if seen[s.student] > 1 and s.lms_id:
            s.student = f"{s.student}_{s.lms_id}"
    return students


def _canvas_name(name: str) -> str:
    """Canvas adds ``-1``, ``-2`` to a resubmitted file's name: ``predictions-1.csv``."""
    resubmitted = CANVAS_RESUBMISSION.match(name)
    if resubmitted and f"{resubmitted['stem']}{resubmitted['suffix']}".lower() in _KNOWN_NAMES:
        return f"{resubmitted['stem']}{resubmitted['suffix']}"
    return name


_KNOWN_NAMES = {PREDICTIONS_FILE, MODEL_FILE, *(f"model{s}" for s in WEIGHT_SUFFIXES)}


def _walk_student(
    folder: Path,
    prefix: str,
    student: StudentFiles,
    unpack_dir: Path,
    limits: IntakeLimits,
    depth: int,
    archived: bool = False,
) -> None:
    """Every file under a student's folder; ``archived``: the folder is an unpacked zip."""
    if depth > limits.max_depth:
        student.problems.append(f"{prefix or '.'}: folders nested deeper than {limits.max_depth}")
        return
    entries = sorted(os.scandir(folder), key=lambda e: e.name)
    if not entries and prefix:
        student.skipped.append(f"{prefix.rstrip('/')}/ (empty folder)")
    for entry in entries:
        if entry.name in SKIPPED:
            continue
        info = entry.stat(follow_symlinks=False)
        name = f"{prefix}{entry.name}"
        if stat.S_ISDIR(info.st_mode):
            _walk_student(
                Path(entry.path), f"{name}/", student, unpack_dir, limits, depth + 1, archived
            )
        else:
            _add_file(student, Path(entry.path), name, info, unpack_dir, limits, depth, archived)


def _add_file(
    student: StudentFiles,
    path: Path,
    name: str,
    info: os.stat_result,
    unpack_dir: Path,
    limits: IntakeLimits,
    depth: int,
    archived: bool = False,
) -> None:
    reason = plain_file_problem(info, limits.max_file_bytes)
    if reason is not None:
        student.problems.append(f"{name} {reason}")
        return
    if name.lower().endswith(".zip"):
        if archived:
            student.skipped.append(f"{name} (an archive inside an archive, not unpacked)")
            return
        target = (
            unpack_dir
            / "students"
            / safe_name(f"{student.student}_{student.lms_id}")
            / (safe_name(name))
        )
        problems = unpack_zip(path, target, limits)
        student.problems.extend(f"{name}: {p}" for p in problems)
        if not problems and target.is_dir():
            # members keep the zip's name as a prefix: hw1.zip/predictions.csv
            _walk_student(target, f"{name}/", student, unpack_dir, limits, depth + 1, True)
        return
    if name in student.files:
        student.problems.append(f"{name} was submitted twice; keep one")
        return
    student.files[name] = path


# --- choosing what is graded -----------------------------------------------------------------


def select_submission(
    files: dict[str, Path], *, models: bool, model_without_weights: bool = False
) -> Selection:
    """Which of a student's files are graded: a predictions CSV, or model.py with one weights
    file and its helper modules. ``models``: the assignment grades models; with
    ``model_without_weights`` a model.py alone counts (the batch-norm experiment trains it)."""
    by_base: dict[str, list[str]] = {}
    for name in files:
        by_base.setdefault(PurePosixPath(name).name.lower(), []).append(name)
    csvs = [n for n in files if n.lower().endswith(".csv")]
    model = by_base.get(MODEL_FILE, [])
    predictions = by_base.get(PREDICTIONS_FILE) or (csvs if len(csvs) == 1 else [])
    folder = PurePosixPath(model[0]).parent if len(model) == 1 else None
    # model.py's siblings come along: the weights and the helper modules it imports
    siblings = [n for n in files if folder is not None and PurePosixPath(n).parent == folder]
    weights = [n for n in siblings if PurePosixPath(n).suffix.lower() in WEIGHT_SUFFIXES]
    has_model = folder is not None and (bool(weights) or model_without_weights)
    if has_model and (models or not predictions):
        used = [n for n in siblings if n.lower().endswith(".py") or n in weights]
        return _selection("model", used, files)
    if len(predictions) == 1:
        return _selection("predictions", predictions, files)
    return _selection("none", [], files)


def _selection(kind: Kind, used: list[str], files: dict[str, Path]) -> Selection:
    ordered = tuple(sorted(used))
    return Selection(kind, ordered, tuple(sorted(set(files) - set(used))))


# --- reading, hashing and staging files safely -----------------------------------------------


@dataclass(frozen=True)
class Staged:
    """A submission's used files, copied into a folder of the grader's own."""

    folder: Path
    digests: dict[str, str]
    """Staged file name -> sha256."""


def stage(
    student: StudentFiles, selection: Selection, target: Path, *, limits: IntakeLimits
) -> Staged:
    """Copy the selected files into ``target`` under their own names (model.py's folder becomes
    the staging folder). Raises :class:`IntakeError` naming the file."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    base = PurePosixPath(selection.used[0]).parent if selection.kind == "model" else None
    digests: dict[str, str] = {}
    for name in selection.used:
        relative = (
            PurePosixPath(name).relative_to(base)
            if base is not None
            else PurePosixPath(PurePosixPath(name).name)
        )
        staged_name = relative.as_posix()
        copied = copy_plain_file(student.files[name], target / staged_name,
                                 max_bytes=limits.max_file_bytes, shown=name)  # fmt: skip
        digests[staged_name] = copied.sha256
    return Staged(target, digests)


# --- zips --------------------------------------------------------------------------------------


def unpack_zip(path: Path, target: Path, limits: IntakeLimits) -> list[str]:
    """Unpack a zip member by member into ``target``; return the problems (empty when clean).

    Refused: members with absolute paths or ``..``, links and other special members, encrypted
    members, more than ``max_zip_members`` members, more than ``max_unpacked_bytes`` in all, any
    member over ``max_file_bytes`` (counted while unpacking, whatever the header says), bad CRCs.
    """
    problems: list[str] = []
    try:
        fd, _size = open_plain_file(path, max_bytes=limits.max_unpacked_bytes, shown="")
    except IntakeError as exc:
        return [str(exc).strip()]
    with os.fdopen(fd, "rb") as raw:
        try:
            archive = zipfile.ZipFile(raw)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            return [f"not a readable zip archive ({exc}); download it again"]
        with archive:
            members = archive.infolist()
            if len(members) > limits.max_zip_members:
                return [f"{len(members):,} members, over the limit of {limits.max_zip_members:,}"]
            declared = sum(m.file_size for m in members)
            if declared > limits.max_unpacked_bytes:
                return [
                    f"unpacks to {declared:,} bytes, over the limit of "
                    f"{limits.max_unpacked_bytes:,}"
                ]
            total = 0
            for member in members:
                problem, relative = _member_problem(member, limits)
                if problem:
                    problems.append(problem)
                    continue
                if relative is None:
                    continue  # a folder entry, or an operating system's leftovers
                try:
                    total += _extract(archive, member, target / relative, limits, total)
                except _MemberError as exc:
                    problems.append(f"{member.filename}: {exc}")
    return problems


class _MemberError(Exception):
    pass


def _member_problem(
    member: zipfile.ZipInfo, limits: IntakeLimits
) -> tuple[str | None, PurePosixPath | None]:
    name = member.filename
    posix = PurePosixPath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in posix.parts:
        return f"{name}: a path outside the archive (absolute or with '..'); refused", None
    if any(ord(ch) < 32 for ch in name):
        return f"{name!r}: control characters in the name; refused", None
    if any(part in SKIPPED for part in posix.parts):
        return None, None
    mode = member.external_attr >> 16
    if stat.S_ISLNK(mode):
        return f"{name}: a symbolic link inside the zip; refused (links are never followed)", None
    if member.is_dir():
        return None, None
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        return f"{name}: not a regular file inside the zip; refused", None
    if member.flag_bits & 0x1:
        return f"{name}: encrypted; submit it without a password", None
    if len(posix.parts) > limits.max_depth:
        return f"{name}: nested deeper than {limits.max_depth} folders", None
    if member.file_size > limits.max_file_bytes:
        return (
            f"{name}: {member.file_size:,} bytes unpacked, over the limit of "
            f"{limits.max_file_bytes:,} bytes"
        ), None
    return None, posix


def _extract(
    archive: zipfile.ZipFile,
    member: zipfile.ZipInfo,
    target: Path,
    limits: IntakeLimits,
    total: int,
) -> int:
    """Stream one member to ``target``; the byte counts are enforced, not taken from headers."""
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        with archive.open(member) as src, open(target, "xb") as dst:
            while chunk := src.read(CHUNK):
                written += len(chunk)
                if written > min(limits.max_file_bytes, member.file_size):
                    raise _MemberError("unpacks to more bytes than its header says; refused")
                if total + written > limits.max_unpacked_bytes:
                    raise _MemberError(
                        f"the archive unpacks to over {limits.max_unpacked_bytes:,} bytes; refused"
                    )
                dst.write(chunk)
    except FileExistsError:
        raise _MemberError("appears twice in the archive") from None
    except zipfile.BadZipFile as exc:
        target.unlink(missing_ok=True)
        raise _MemberError(f"corrupt ({exc}); download the archive again") from None
    except (NotImplementedError, RuntimeError, EOFError, OSError) as exc:
        target.unlink(missing_ok=True)
        raise _MemberError(f"cannot be unpacked ({exc})") from None
    except _MemberError:
        target.unlink(missing_ok=True)
        raise
    return written
