"""Intake of a class folder: per-student folders, Canvas, Moodle and Gradescope downloads, zips.

``grader check DIR`` accepts, mixed in one folder:

- ``DIR/<student>/`` holding the student's files (the plain layout);
- Canvas's "Download Submissions": flat files ``<lastfirst>_<user id>_<file id>_<name>`` (late
  ones ``<lastfirst>_LATE_<user id>_...``; anonymous grading ``anon_<id>_<file id>_<name>``).
  A file uploaded again is renamed by Canvas with ``-1``, ``-2`` before its extension: the
  latest upload of each name (highest file id) is graded under the name without the number, the
  others are listed as superseded;
- Moodle's "Download all submissions": a folder per student and plugin
  ``<Full Name>_<participant id>_assignsubmission_<plugin>_``, or flat files with that prefix;
- Gradescope's "Export Submissions": ``submission_<id>/`` folders beside a
  ``submission_metadata.yml`` that names each submission's submitters (name, SID, email);
- zips of any of these (the LMS's "download all"), and a student's own zip among their files.

Each student keeps who the download says they are (:class:`grader.roster.Submitter`), so that
:func:`grader.roster.match_submissions` can find them on the roster by their LMS ids.

Every file is looked at with ``lstat`` and never followed, and every zip is unpacked, under the
one policy of :mod:`grader.grading.intake`: a link, a device, a FIFO, a socket, a hard-linked or
oversized file or an unsafe zip member makes that student's row invalid with the reason. What a
submission uses is copied into a staging folder the grader made itself; the sandbox and the
scorer only ever see that copy.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from grader.grading.intake import (
    OS_LEFTOVERS,
    PREDICTIONS_FILE,
    SKIPPED_DIRS,
    IntakeError,
    IntakeLimits,
    describe_type,
    is_weights_file,
    plain_file_problem,
    read_plain_file,
    safe_name,
    stage_files,
    unpack_archive,
)
from grader.grading.status import SubmissionKind as Kind
from grader.models.files import model_root
from grader.roster import Submitter

Layout = Literal["folder", "canvas", "moodle", "gradescope"]
CANVAS_FILE = re.compile(
    r"^(?P<name>[^_/]+)_(?:(?P<late>LATE)_)?(?P<uid>\d+)_(?P<fid>\d+)_(?P<file>.+)$"
)
CANVAS_ANONYMOUS = re.compile(
    r"^(?:(?P<late>LATE)_)?(?P<name>anon_[A-Za-z0-9]+)_(?P<fid>\d+)_(?P<file>.+)$"
)
CANVAS_RESUBMISSION = re.compile(r"^(?P<stem>.+)-(?P<n>\d+)(?P<suffix>\.[^.]+)$")
MOODLE_FOLDER = re.compile(r"^(?P<name>.+)_(?P<uid>\d+)_assign(?:submission|feedback)_\w+?_$")
MOODLE_FILE = re.compile(
    r"^(?P<name>.+?)_(?P<uid>\d+)_assign(?:submission|feedback)_(?P<plugin>[a-z]+)_(?P<file>.+)$"
)
GRADESCOPE_METADATA = "submission_metadata.yml"
GRADESCOPE_FOLDER = re.compile(r"^submission_(?P<id>\d+)$")
MAX_METADATA_BYTES = 64 << 20
SKIPPED = tuple(OS_LEFTOVERS)
"""Names operating systems add to archives; never a student's work and never listed."""


@dataclass
class StudentFiles:
    """One student's files as found, before the grader picks what it uses."""

    student: str
    """The name on the grades (the folder name, Canvas's ``lastfirst``, Moodle's full name,
    Gradescope's submitters)."""
    layout: Layout
    files: dict[str, Path] = field(default_factory=dict)
    """Submission name (LMS prefix removed, path inside the student's folder) -> file on disk."""
    problems: list[str] = field(default_factory=list)
    """Links, devices, hard links, oversized files, unsafe zip members: the row is invalid."""
    skipped: list[str] = field(default_factory=list)
    """Entries that are not files (empty folders), nested archives and superseded uploads,
    listed as ignored."""
    lms_id: str | None = None
    """Canvas user id, Moodle participant id, Gradescope submission id."""
    late: bool = False
    submitters: list[Submitter] = field(default_factory=list)
    """Who the download says submitted this (several for a Gradescope group)."""
    superseded: list[str] = field(default_factory=list)
    """Earlier uploads of a file, replaced by a later one (Canvas's ``-1``, ``-2``)."""

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


# --- finding the students --------------------------------------------------------------------


@dataclass(frozen=True)
class _CanvasUpload:
    student: StudentFiles
    path: Path
    name: str
    """The name graded: Canvas's ``-N`` removed."""
    shown: str
    """The name as downloaded (after the LMS prefix)."""
    order: tuple[int, int]
    """(file id, resubmission number): the later upload is the larger."""
    info: os.stat_result


class _Walk:
    """State of one walk over a class folder."""

    def __init__(self, unpack_dir: Path, limits: IntakeLimits) -> None:
        self.students: dict[tuple[Layout, str], StudentFiles] = {}
        self.ignored: list[str] = []
        self.unpack_dir = unpack_dir
        self.limits = limits
        self.canvas: list[_CanvasUpload] = []

    def student(self, name: str, layout: Layout, lms_id: str | None) -> StudentFiles:
        key = (layout, f"{name}\0{lms_id}")
        if key not in self.students:
            found = StudentFiles(student=name, layout=layout, lms_id=lms_id)
            if layout == "canvas":
                canvas_id = "" if name.startswith("anon_") else lms_id or ""
                found.submitters.append(Submitter(name=name, lms="canvas", lms_id=canvas_id))
            elif layout == "moodle":
                found.submitters.append(Submitter(name=name, lms="moodle", lms_id=lms_id or ""))
            elif layout == "folder":
                found.submitters.append(Submitter(folder=name))
            self.students[key] = found
        return self.students[key]


def collect(root: Path, *, work_dir: Path, limits: IntakeLimits | None = None) -> Intake:
    """Find every student's files under ``root`` (zips unpacked under ``work_dir``)."""
    limits = limits or IntakeLimits()
    walk = _Walk(work_dir / "unpacked", limits)
    _collect_level(Path(root), "", walk, depth=0)
    _keep_latest_canvas_uploads(walk)
    merged = _unique_names(list(walk.students.values()))
    for student in merged:
        if len(student.files) > limits.max_files:
            student.problems.append(
                f"{len(student.files)} files, over the limit of {limits.max_files}; "
                f"submit only the files the assignment asks for"
            )
    return Intake(sorted(merged, key=lambda s: s.student), sorted(walk.ignored))


def _collect_level(folder: Path, shown: str, walk: _Walk, depth: int) -> None:
    """One level of the class folder (the folder itself, or an unpacked bulk zip)."""
    if (folder / GRADESCOPE_METADATA).is_file():
        _collect_gradescope(folder, shown, walk)
        return
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        name = entry.name
        where = f"{shown}{name}"
        if name in SKIPPED or name.startswith((".", "_")):
            continue
        info = entry.stat(follow_symlinks=False)
        canvas = CANVAS_FILE.match(name) or CANVAS_ANONYMOUS.match(name)
        moodle_file = MOODLE_FILE.match(name)
        if stat.S_ISDIR(info.st_mode):
            moodle = MOODLE_FOLDER.match(name)
            if (Path(entry.path) / GRADESCOPE_METADATA).is_file():
                _collect_gradescope(Path(entry.path), f"{where}/", walk)
                continue
            if moodle:
                student = walk.student(moodle["name"], "moodle", moodle["uid"])
            else:
                student = walk.student(name, "folder", None)
            _walk_student(Path(entry.path), "", student, walk, depth=1)
        elif canvas:
            groups = canvas.groupdict()
            student = walk.student(canvas["name"], "canvas", groups.get("uid") or canvas["name"])
            student.late = student.late or bool(canvas["late"])
            resubmitted = CANVAS_RESUBMISSION.match(canvas["file"])
            graded = canvas["file"]
            number = 0
            if resubmitted:
                graded = f"{resubmitted['stem']}{resubmitted['suffix']}"
                number = int(resubmitted["n"])
            walk.canvas.append(_CanvasUpload(student, Path(entry.path), graded, canvas["file"],
                                             (int(canvas["fid"]), number), info))  # fmt: skip
        elif moodle_file and not stat.S_ISLNK(info.st_mode):
            student = walk.student(moodle_file["name"], "moodle", moodle_file["uid"])
            _add_file(student, Path(entry.path), moodle_file["file"], info, walk, depth=1)
        elif stat.S_ISREG(info.st_mode) and name.lower().endswith(".zip") and depth == 0:
            target = walk.unpack_dir / safe_name(name)
            problems = unpack_archive(Path(entry.path), target, walk.limits)
            walk.ignored.extend(f"{where}: {p}" for p in problems)
            if target.is_dir():
                _collect_level(target, f"{where}/", walk, depth + 1)
        elif stat.S_ISLNK(info.st_mode):
            # A link at the top is a student entry that cannot be read: say so on their row.
            student = walk.student(name, "folder", None)
            what = describe_type(info.st_mode)
            student.problems.append(f"{name} {what}; submit the files themselves")
        else:
            what = describe_type(info.st_mode)
            walk.ignored.append(where if stat.S_ISREG(info.st_mode) else f"{where} ({what})")


def _keep_latest_canvas_uploads(walk: _Walk) -> None:
    """Grade the latest of a student's uploads of one name; list the others as superseded."""
    versions: dict[tuple[int, str], list[_CanvasUpload]] = {}
    for upload in walk.canvas:
        versions.setdefault((id(upload.student), upload.name.lower()), []).append(upload)
    for uploads in versions.values():
        uploads.sort(key=lambda u: u.order)
        latest = uploads[-1]
        for earlier in uploads[:-1]:
            note = (
                f"{earlier.shown} (superseded by {latest.shown}, uploaded later; "
                f"{latest.shown} is graded as {latest.name})"
            )
            latest.student.superseded.append(note)
            latest.student.skipped.append(note)
        _add_file(latest.student, latest.path, latest.name, latest.info, walk, depth=1)


def _collect_gradescope(folder: Path, shown: str, walk: _Walk) -> None:
    """A Gradescope export: one student per ``submission_<id>`` folder, named by the metadata."""
    try:
        metadata = _gradescope_metadata(folder / GRADESCOPE_METADATA)
    except (IntakeError, ValueError) as exc:
        walk.ignored.append(f"{shown}{GRADESCOPE_METADATA}: {exc}")
        metadata = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        found = GRADESCOPE_FOLDER.match(entry.name)
        where = f"{shown}{entry.name}"
        if entry.name in SKIPPED or entry.name == GRADESCOPE_METADATA:
            continue
        if not found or not entry.is_dir(follow_symlinks=False):
            walk.ignored.append(where)
            continue
        submitters = metadata.get(entry.name, [])
        names = " & ".join(s.name for s in submitters if s.name) or entry.name
        student = walk.student(names, "gradescope", found["id"])
        student.submitters.extend(submitters)
        if not submitters:
            student.problems.append(
                f"{entry.name} is not in {GRADESCOPE_METADATA}: the export is incomplete; "
                "export the submissions again"
            )
        _walk_student(Path(entry.path), "", student, walk, depth=1)


def _gradescope_metadata(path: Path) -> dict[str, list[Submitter]]:
    """Submission folder -> its submitters, from Gradescope's ``submission_metadata.yml``."""
    import yaml

    raw = read_plain_file(path, max_bytes=MAX_METADATA_BYTES, shown=GRADESCOPE_METADATA)
    try:
        document = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ValueError(f"not readable YAML ({exc})") from None
    if not isinstance(document, dict):
        raise ValueError("not a mapping of submissions")

    def get(record: Any, key: str) -> Any:
        # Gradescope writes Ruby symbols: ":submitters", ":name", ":sid", ":email"
        if not isinstance(record, dict):
            return None
        return record.get(f":{key}", record.get(key))

    found: dict[str, list[Submitter]] = {}
    for folder, record in document.items():
        people = get(record, "submitters") or []
        found[str(folder)] = [
            Submitter(
                name=str(get(p, "name") or ""),
                lms="gradescope",
                sis_id=str(get(p, "sid") or ""),
                email=str(get(p, "email") or ""),
            )
            for p in people
            if isinstance(p, dict)
        ]
    return found


def _unique_names(students: list[StudentFiles]) -> list[StudentFiles]:
    """Two students may share a name (two Smiths): the LMS id tells them apart."""
    seen: dict[str, int] = {}
    for s in students:
        seen[s.student] = seen.get(s.student, 0) + 1
    for s in students:
        if seen[s.student] > 1 and s.lms_id:
            s.student = f"{s.student}_{s.lms_id}"
    return students


def _walk_student(
    folder: Path,
    prefix: str,
    student: StudentFiles,
    walk: _Walk,
    depth: int,
    archived: bool = False,
) -> None:
    """Every file under a student's folder; ``archived``: the folder is an unpacked zip."""
    limits = walk.limits
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
            _walk_student(Path(entry.path), f"{name}/", student, walk, depth + 1, archived)
        else:
            _add_file(student, Path(entry.path), name, info, walk, depth, archived)


def _add_file(
    student: StudentFiles,
    path: Path,
    name: str,
    info: os.stat_result,
    walk: _Walk,
    depth: int,
    archived: bool = False,
) -> None:
    reason = plain_file_problem(info, walk.limits.max_file_bytes)
    if reason is not None:
        student.problems.append(f"{name} {reason}")
        return
    if name.lower().endswith(".zip"):
        if archived:
            student.skipped.append(f"{name} (an archive inside an archive, not unpacked)")
            return
        target = (
            walk.unpack_dir
            / "students"
            / safe_name(f"{student.student}_{student.lms_id}")
            / (safe_name(name))
        )
        problems = unpack_archive(path, target, walk.limits)
        student.problems.extend(f"{name}: {p}" for p in problems)
        if not problems and target.is_dir():
            # members keep the zip's name as a prefix: hw1.zip/predictions.csv
            _walk_student(target, f"{name}/", student, walk, depth + 1, True)
        return
    if name in student.files:
        student.problems.append(f"{name} was submitted twice; keep one")
        return
    student.files[name] = path


# --- choosing what is graded -----------------------------------------------------------------


def select_submission(
    files: dict[str, Path], *, models: bool, model_without_weights: bool = False
) -> Selection:
    """Which of a student's files are graded: a predictions CSV, or ``model.py`` (else one
    notebook) with the weights and every other file under its folder (helper modules and
    packages such as ``utils/nn.py``; the weights beside it, or in a sub-folder). ``models``:
    the assignment grades models; with ``model_without_weights`` a model alone counts (the
    batch-norm experiment trains it)."""
    by_base: dict[str, list[str]] = {}
    for name in files:
        by_base.setdefault(PurePosixPath(name).name.lower(), []).append(name)
    csvs = [n for n in files if n.lower().endswith(".csv")]
    predictions = by_base.get(PREDICTIONS_FILE) or (csvs if len(csvs) == 1 else [])
    folder = model_root(list(files))
    under = [
        n for n in files
        if folder is not None and _is_under(PurePosixPath(n), folder)
        and not SKIPPED_DIRS & set(PurePosixPath(n).parts)
    ]  # fmt: skip
    weights = [n for n in under if is_weights_file(n)]  # beside model.py, else in a sub-folder
    has_model = folder is not None and (bool(weights) or model_without_weights)
    if has_model and (models or not predictions):
        return _selection("model", under, files)
    if len(predictions) == 1:
        return _selection("predictions", predictions, files)
    return _selection("none", [], files)


def _is_under(path: PurePosixPath, folder: PurePosixPath) -> bool:
    return folder == PurePosixPath(".") or folder in path.parents


def _selection(kind: Kind, used: list[str], files: dict[str, Path]) -> Selection:
    ordered = tuple(sorted(used))
    return Selection(kind, ordered, tuple(sorted(set(files) - set(used))))


# --- staging ----------------------------------------------------------------------------------


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
    the staging folder, its sub-folders kept). Raises :class:`IntakeError` naming the file."""
    if target.exists():
        shutil.rmtree(target)
    base = model_root(list(selection.used)) if selection.kind == "model" else None
    sources: dict[str, Path] = {}
    for name in selection.used:
        relative = (
            PurePosixPath(name).relative_to(base)
            if base is not None
            else PurePosixPath(PurePosixPath(name).name)
        )
        sources[relative.as_posix()] = student.files[name]
    staged = stage_files(sources, target, limits=limits)
    return Staged(target, {file.name: file.sha256 for file in staged})
