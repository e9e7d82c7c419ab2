"""Uploaded files: checked, unpacked, and stored in the database so that any worker can fetch them.

Uploaded names are only ever displayed (escaped) or checked against a strict pattern; the server
chooses every name it stores. Every malformed upload (a broken or truncated zip, a bad CRC, an
encrypted or unsupported member, a nested archive, a zip bomb) is an :class:`UploadError` whose
message says what to fix: the caller answers it with a 4xx, never a 500.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.grading.intake import (
    ARCHIVE_SUFFIXES,
    MODEL_FILE,
    NOTEBOOK_SUFFIX,
    OS_LEFTOVERS,
    SKIPPED_DIRS,
    WEIGHT_SUFFIXES,
    IntakeError,
    IntakeLimits,
    archive_members,
    is_weights_file,
    open_archive,
    read_member,
    stage_files,
)
from grader.models.files import model_root
from leaderboard.models import SubmissionFile

SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
MODEL_SUFFIXES = {".py", NOTEBOOK_SUFFIX, *WEIGHT_SUFFIXES, ".json", ".txt", ".md"}
MAX_MODEL_FILES = 20
MAX_NAME = 120
"""Longest stored file name (a relative path: ``utils/nn.py``)."""
UPLOAD_LIMITS = IntakeLimits(max_files=MAX_MODEL_FILES, max_archive_members=1_000)
"""What one upload may hold; the byte limits come from the assignment (see :func:`limits_for`)."""


class UploadError(ValueError):
    """An upload that cannot be accepted; the message names the file and what to do."""


@dataclass(frozen=True)
class Upload:
    """One uploaded file: the name the student gave (display only) and its bytes."""

    name: str
    content: bytes


def display_name(name: str) -> str:
    """The uploaded name trimmed for display (templates escape it)."""
    return (PurePosixPath(name.replace("\\", "/")).name or "upload")[:100]


def limits_for(limit: int) -> IntakeLimits:
    """:data:`UPLOAD_LIMITS` with every byte cap at ``limit``."""
    return dataclasses.replace(UPLOAD_LIMITS, max_file_bytes=limit, max_submission_bytes=limit,
                               max_archive_bytes=limit)  # fmt: skip


def gather_files(uploads: list[Upload], *, limit: int) -> dict[str, bytes]:
    """Every uploaded file (and every member of an uploaded .zip, with its folders: a helper
    package ``utils/nn.py`` stays where model.py imports it from) by checked relative name,
    within the count and size limits; :class:`UploadError` says why not.

    The names are rooted where the submission starts: the folder of its ``model.py`` (or
    notebook) when a zip holds one in a folder (files outside that folder are left out), else
    the one folder every file shares (``hw2/ops.py`` is ``ops.py``)."""
    files: dict[str, bytes] = {}
    for upload in uploads:
        if upload.name.lower().endswith(".zip"):
            for name, content in unzip(upload, limit=limit).items():
                if name in files:
                    raise UploadError(f"{name} was uploaded twice; keep one")
                files[name] = content
        else:
            name = checked_name(PurePosixPath(upload.name.replace("\\", "/")).name,
                                where="upload")  # fmt: skip
            if name in files:
                raise UploadError(f"{name} was uploaded twice; keep one")
            files[name] = upload.content
    files = rooted(files)
    if len(files) > MAX_MODEL_FILES:
        raise UploadError(f"{len(files)} files uploaded; at most {MAX_MODEL_FILES} are allowed")
    total = sum(len(c) for c in files.values())
    if total > limit:
        raise UploadError(f"the files hold {total:,} bytes, over the limit of {limit:,}")
    return files


def rooted(files: dict[str, bytes]) -> dict[str, bytes]:
    """``files`` renamed relative to where the submission starts (see :func:`gather_files`)."""
    root = model_root(files)
    if root is None:
        parents = {PurePosixPath(name).parent for name in files}
        root = parents.pop() if len(parents) == 1 else PurePosixPath(".")
    if root == PurePosixPath("."):
        return files
    return {
        PurePosixPath(name).relative_to(root).as_posix(): content
        for name, content in files.items()
        if root in PurePosixPath(name).parents
    }


def unzip(upload: Upload, *, limit: int) -> dict[str, bytes]:
    """The members of a .zip upload by base name, every one checked and size-capped under
    :mod:`grader.grading.intake`'s policy (the member count read before the directory)."""
    where = display_name(upload.name)
    limits = limits_for(limit)
    try:
        archive = open_archive(io.BytesIO(upload.content), limits)
    except IntakeError as exc:
        raise UploadError(f"{where}: {exc}; zip the files again") from None
    with archive:
        members = [m for m in archive_members(archive, limits)]
        problems = [m.problem for m in members if m.problem is not None]
        if problems:
            raise UploadError(f"{where}: {problems[0]}")
        members = [m for m in members if m.path is not None]
        if len(members) > MAX_MODEL_FILES:
            raise UploadError(f"{where}: holds {len(members)} files; at most {MAX_MODEL_FILES}")
        files: dict[str, bytes] = {}
        budget = limit
        for member in members:
            base = member.path.name
            if base.lower().endswith(ARCHIVE_SUFFIXES) and not is_weights_file(base):
                raise UploadError(
                    f"{where}: holds another archive ({display_name(base)}); nested archives "
                    f"are not accepted: put {MODEL_FILE} and the weights in one .zip"
                )
            if OS_LEFTOVERS & set(member.path.parts) or SKIPPED_DIRS & set(member.path.parts):
                continue
            name = checked_name(member.path.as_posix(), where=where)
            if name in files:
                raise UploadError(f"{where}: holds two files named {name}; keep one")
            try:
                content = read_member(archive, member.info, max_bytes=budget)
            except IntakeError as exc:
                raise UploadError(f"{where}: {exc}") from None
            budget -= len(content)
            files[name] = content
    return files


def checked_name(name: str, *, where: str) -> str:
    """``name`` (a relative path inside an upload) if every folder and the file name are safe
    and the file has an allowed suffix; else :class:`UploadError`."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or len(parts) - 1 > UPLOAD_LIMITS.max_depth or len(name) > MAX_NAME:
        raise UploadError(
            f"{where}: {display_name(name)!r} is nested too deeply or named too long; keep the "
            f"folders of the submission to {UPLOAD_LIMITS.max_depth} levels"
        )
    *folders, base = parts
    bad = [p for p in folders if not SAFE_NAME.fullmatch(p)]
    if bad or not SAFE_NAME.fullmatch(base) or Path(base).suffix.lower() not in MODEL_SUFFIXES:
        raise UploadError(
            f"{where}: file name {name[:100]!r} is not allowed; use letters, digits, '_', '-' "
            f"or '.' in file and folder names, and one of the suffixes "
            f"{', '.join(sorted(MODEL_SUFFIXES))}"
        )
    return "/".join(parts)


def stored_name_problem(name: str) -> str | None:
    """Why a stored or received file name is not one :func:`checked_name` gives, or None."""
    parts = name.split("/")
    if len(name) > MAX_NAME or not all(SAFE_NAME.fullmatch(p) for p in parts):
        return f"file name {name[:100]!r} is not a checked relative name"
    return None


def files_digest(files: dict[str, bytes]) -> str:
    """sha256 over the names and contents (the identity of a model submission)."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name])
    return digest.hexdigest()


def store_files(session: Session, submission_id: int, files: dict[str, bytes]) -> None:
    """Keep ``files`` of a submission (inside the caller's transaction)."""
    for name in sorted(files):
        session.add(
            SubmissionFile(
                submission_id=submission_id,
                name=name,
                content=files[name],
                size=len(files[name]),
            )
        )


def load_files(session: Session, submission_id: int) -> dict[str, bytes]:
    """The stored files of a submission by name."""
    rows = session.execute(
        select(SubmissionFile.name, SubmissionFile.content).where(
            SubmissionFile.submission_id == submission_id
        )
    ).all()
    return {name: bytes(content) for name, content in rows}


def write_files(files: dict[str, bytes], folder: Path) -> Path:
    """Stage ``files`` (checked relative names only) into the new folder ``folder``; return
    it."""
    for name in files:
        problem = stored_name_problem(name)
        if problem is not None:
            raise UploadError(f"stored {problem}")
    total = sum(len(content) for content in files.values())
    limits = limits_for(max(total, 1))
    try:
        stage_files(dict(files), folder, limits=limits)
    except IntakeError as exc:
        raise UploadError(str(exc)) from None
    return folder


def zip_files(files: dict[str, bytes]) -> bytes:
    """``files`` as one .zip (how a worker fetches a submission)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            archive.writestr(name, files[name])
    return buffer.getvalue()


def unzip_stored(content: bytes, *, limit: int) -> dict[str, bytes]:
    """The files of a submission as a worker received them (checked like an upload)."""
    limits = limits_for(limit)
    try:
        archive = open_archive(io.BytesIO(content), limits)
    except IntakeError as exc:
        raise UploadError(f"the server sent a broken archive: {exc}") from None
    files: dict[str, bytes] = {}
    with archive:
        budget = limit
        for info in archive.infolist():
            if stored_name_problem(info.filename) is not None:
                raise UploadError(f"the server sent a file named {info.filename[:100]!r}")
            try:
                data = read_member(archive, info, max_bytes=budget)
            except IntakeError as exc:
                raise UploadError(f"submission: {exc}") from None
            budget -= len(data)
            files[info.filename] = data
    return files
