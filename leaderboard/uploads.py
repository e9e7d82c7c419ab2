"""Uploaded files: checked, unpacked, and stored in the database so that any worker can fetch them.

Uploaded names are only ever displayed (escaped) or checked against a strict pattern; the server
chooses every name it stores. Every malformed upload (a broken or truncated zip, a bad CRC, an
encrypted or unsupported member, a nested archive, a zip bomb) is an :class:`UploadError` whose
message says what to fix: the caller answers it with a 4xx, never a 500.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sqlalchemy import select
from sqlalchemy.orm import Session

from leaderboard.models import SubmissionFile

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
MODEL_SUFFIXES = {".py", ".pt", ".pth", ".safetensors", ".json", ".txt", ".md"}
ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")
MAX_MODEL_FILES = 20


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


def gather_files(uploads: list[Upload], *, limit: int) -> dict[str, bytes]:
    """Every uploaded file (and every member of an uploaded .zip) by safe base name, within
    the count and size limits; :class:`UploadError` says why not."""
    files: dict[str, bytes] = {}
    for upload in uploads:
        if upload.name.lower().endswith(".zip"):
            for name, content in unzip(upload, limit=limit).items():
                if name in files:
                    raise UploadError(f"{name} was uploaded twice; keep one")
                files[name] = content
        else:
            name = checked_name(upload.name, where="upload")
            if name in files:
                raise UploadError(f"{name} was uploaded twice; keep one")
            files[name] = upload.content
    if len(files) > MAX_MODEL_FILES:
        raise UploadError(f"{len(files)} files uploaded; at most {MAX_MODEL_FILES} are allowed")
    total = sum(len(c) for c in files.values())
    if total > limit:
        raise UploadError(f"the files hold {total:,} bytes, over the limit of {limit:,}")
    return files


def unzip(upload: Upload, *, limit: int) -> dict[str, bytes]:
    """The members of a .zip upload by base name, every one checked and size-capped."""
    where = display_name(upload.name)
    try:
        archive = zipfile.ZipFile(io.BytesIO(upload.content))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
        raise UploadError(
            f"{where}: not a valid .zip archive ({exc}); zip the files again"
        ) from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        members = [m for m in members if not m.filename.startswith("__MACOSX/")]
        if len(members) > MAX_MODEL_FILES:
            raise UploadError(f"{where}: holds {len(members)} files; at most {MAX_MODEL_FILES}")
        declared = sum(m.file_size for m in members)
        if declared > limit:
            raise UploadError(
                f"{where}: unpacks to {declared:,} bytes, over the limit of {limit:,}"
            )
        files: dict[str, bytes] = {}
        budget = limit
        for member in members:
            base = PurePosixPath(member.filename.replace("\\", "/")).name
            if base.lower().endswith(ARCHIVE_SUFFIXES):
                raise UploadError(
                    f"{where}: holds another archive ({display_name(base)}); nested archives "
                    "are not accepted: put model.py and the weights in one .zip"
                )
            name = checked_name(base, where=where)
            if name in files:
                raise UploadError(f"{where}: holds two files named {name}; keep one")
            if member.flag_bits & 0x1:
                raise UploadError(f"{where}: {name} is encrypted; zip it without a password")
            content = _read_member(archive, member, where=where, name=name, budget=budget)
            budget -= len(content)
            files[name] = content
    return files


def _read_member(
    archive: zipfile.ZipFile, member: zipfile.ZipInfo, *, where: str, name: str, budget: int
) -> bytes:
    """A member's bytes, reading at most ``budget + 1`` (a zip may lie about its sizes)."""
    try:
        with archive.open(member) as stream:
            content = stream.read(budget + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise UploadError(
            f"{where}: {name} is damaged ({exc}); the archive did not upload whole, zip it again"
        ) from None
    except NotImplementedError as exc:
        raise UploadError(
            f"{where}: {name} uses a compression this server cannot read ({exc}); "
            "use plain deflate (the default of every zip tool)"
        ) from None
    if len(content) > budget:
        raise UploadError(f"{where}: unpacks to more bytes than the limit; upload smaller files")
    return content


def checked_name(name: str, *, where: str) -> str:
    """``name``'s base name if it is safe and has an allowed suffix; else :class:`UploadError`."""
    base = PurePosixPath(name.replace("\\", "/")).name
    if not SAFE_NAME.fullmatch(base) or Path(base).suffix.lower() not in MODEL_SUFFIXES:
        raise UploadError(
            f"{where}: file name {display_name(name)!r} is not allowed; use letters, digits, "
            f"'_', '-' or '.' and one of the suffixes {', '.join(sorted(MODEL_SUFFIXES))}"
        )
    return base


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
    """Write ``files`` (checked names only) into ``folder``; return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if not SAFE_NAME.fullmatch(name):
            raise UploadError(f"stored file name {name!r} is not a plain base name")
        (folder / name).write_bytes(content)
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
    files: dict[str, bytes] = {}
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except zipfile.BadZipFile as exc:
        raise UploadError(f"the server sent a broken archive: {exc}") from None
    with archive:
        budget = limit
        for member in archive.infolist():
            if not SAFE_NAME.fullmatch(member.filename):
                raise UploadError(f"the server sent a file named {member.filename!r}")
            data = _read_member(archive, member, where="submission", name=member.filename,
                                budget=budget)  # fmt: skip
            budget -= len(data)
            files[member.filename] = data
    return files
