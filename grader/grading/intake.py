"""Untrusted files in: the one policy for ``grader check``, the server's uploads and the boxes.

Whatever a student hands in is untrusted: a root ``tar`` extraction can leave hard links to any
file of the machine, device nodes, FIFOs, sockets, symbolic links and deep trees in a class
folder, and a zip can lie about its sizes, list a million entries, or name paths outside itself.
This module is the only place that decides what may be read:

- :class:`IntakeLimits`: what one file, one submission and one archive may hold;
- plain files: only regular files with a single link are read, each opened without following
  links and checked again on the open descriptor (a file swapped for a link in between is still
  refused), read up to a cap and hashed in chunks;
- zips: the member count and the size of the central directory are read from the
  end-of-central-directory record (and its ZIP64 twin) *before* the directory itself, and the
  directory is walked header by header up to the limit before :mod:`zipfile` parses it, so a zip
  listing a million entries is refused in milliseconds with a few kilobytes read. Members are
  unpacked one by one: no absolute paths or ``..``, no links or special files, no encryption,
  byte counts enforced while unpacking whatever the headers say;
- staging: the files a submission uses are copied (or written) into a folder the grader made
  itself, under checked relative names; boxes and scorers only ever see that copy.

Every refusal is an :class:`IntakeError` (or a problem string) that names the file and says what
to do.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

MODEL_FILE = "model.py"
NOTEBOOK_SUFFIX = ".ipynb"
PREDICTIONS_FILE = "predictions.csv"
WEIGHT_SUFFIXES = (".pt", ".pth", ".safetensors", ".th", ".tar", ".ckpt")
"""Weights files by suffix (any case): ``torch.save`` files under the names the course and public
repositories give them (``.th``: pytorch_resnet_cifar10, ``.pth.tar``: the ImageNet example,
``.ckpt``: Lightning), and safetensors."""
ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")
OS_LEFTOVERS = frozenset({"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"})
"""Names operating systems add to folders and archives; never a student's work."""
SKIPPED_DIRS = frozenset({"__pycache__", ".ipynb_checkpoints", ".git"})
"""Folders of a submission that are never staged: caches and version control."""
CHUNK = 1 << 20


class IntakeError(ValueError):
    """A file or archive that will not be read; the message names it and says what to do."""


class _BrokenArchive(IntakeError):
    """A zip whose end records do not hold together."""


@dataclass(frozen=True)
class IntakeLimits:
    """Caps on what a submission may make the grader read, unpack or copy."""

    max_file_bytes: int = 512 << 20
    """Any one file (weights included)."""
    max_submission_bytes: int = 1 << 30
    """Every file of one submission together."""
    max_files: int = 200
    """Files in one submission."""
    max_depth: int = 8
    """Folders nested inside one submission (``a/b/c.py`` is at depth 2)."""
    max_archive_members: int = 20_000
    """Entries one zip's central directory may list (a class download included)."""
    max_archive_bytes: int = 4 << 30
    """Everything one zip may unpack to (a class download included)."""

    @property
    def max_directory_bytes(self) -> int:
        """The largest central directory read: room for every member with a long name."""
        return 64 * 1024 + self.max_archive_members * 1024


def is_weights_file(name: str | os.PathLike[str]) -> bool:
    """Whether ``name`` is a weights file by its suffix (any case: ``model.PT`` too)."""
    return Path(name).suffix.lower() in WEIGHT_SUFFIXES


def is_notebook(name: str | os.PathLike[str]) -> bool:
    """Whether ``name`` is a Jupyter notebook by its suffix."""
    return Path(name).suffix.lower() == NOTEBOOK_SUFFIX


def safe_name(name: str) -> str:
    """``name`` as one path component: no separators, no leading dot, printable."""
    cleaned = re.sub(r"[^\w.@+-]+", "_", name, flags=re.UNICODE).strip("._") or "student"
    return cleaned[:120]


# --- plain files ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StagedFile:
    """One copied file: its path inside the submission, size and SHA-256."""

    name: str
    size: int
    sha256: str


def describe_type(mode: int) -> str:
    """What an entry of this ``st_mode`` is, as the end of a sentence naming it."""
    if stat.S_ISREG(mode):
        return "is a file"
    if stat.S_ISDIR(mode):
        return "is a folder"
    if stat.S_ISLNK(mode):
        return "is a symbolic link (links are never followed)"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device node, not a file"
    return "is not a regular file"


def plain_file_problem(info: os.stat_result, max_bytes: int) -> str | None:
    """Why a file (its ``lstat`` or ``fstat``) must not be read, or None for a regular, singly
    linked file of at most ``max_bytes``."""
    if not stat.S_ISREG(info.st_mode):
        return describe_type(info.st_mode) + "; submit the file itself"
    if info.st_nlink > 1:
        return (
            f"is a hard link ({info.st_nlink} names for one file); submit a copy of the file, "
            "not a link to it"
        )
    if info.st_size > max_bytes:
        return f"is {info.st_size:,} bytes, over the limit of {max_bytes:,} bytes"
    return None


def open_plain_file(path: Path, *, max_bytes: int, shown: str | None = None) -> tuple[int, int]:
    """Open ``path`` for reading if it is a regular, singly linked file of at most ``max_bytes``;
    returns (fd, size). :class:`IntakeError` names the file otherwise."""
    shown = shown or Path(path).name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:  # ELOOP: a link, perhaps put there after the listing
        try:
            problem = plain_file_problem(os.lstat(path), max_bytes)
        except OSError:
            problem = None
        raise IntakeError(f"{shown} {problem or f'cannot be opened ({exc.strerror})'}") from None
    problem = plain_file_problem(os.fstat(fd), max_bytes)
    if problem is not None:
        os.close(fd)
        raise IntakeError(f"{shown} {problem}")
    return fd, os.fstat(fd).st_size


def read_plain_file(path: Path, *, max_bytes: int, shown: str | None = None) -> bytes:
    """The bytes of a plain file, after :func:`open_plain_file`'s checks."""
    fd, _size = open_plain_file(path, max_bytes=max_bytes, shown=shown)
    with os.fdopen(fd, "rb") as stream:
        data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise IntakeError(f"{shown or Path(path).name} grew over the limit of {max_bytes:,} bytes "
                          "while being read")  # fmt: skip
    return data


def copy_plain_file(source: Path, target: Path, *, max_bytes: int, shown: str) -> StagedFile:
    """Copy one file after :func:`open_plain_file`'s checks, hashing it on the way."""
    fd, _size = open_plain_file(source, max_bytes=max_bytes, shown=shown)
    digest = hashlib.sha256()
    copied = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(target, "xb") as out:
            while chunk := os.read(fd, CHUNK):
                copied += len(chunk)
                if copied > max_bytes:
                    raise IntakeError(
                        f"{shown} grew over the limit of {max_bytes:,} bytes while being read"
                    )
                digest.update(chunk)
                out.write(chunk)
    finally:
        os.close(fd)
    return StagedFile(shown, copied, digest.hexdigest())


# --- staging --------------------------------------------------------------------------------------


def checked_relative(name: str) -> PurePosixPath:
    """``name`` as a relative path that stays inside its folder; :class:`IntakeError` if not."""
    path = PurePosixPath(name.replace("\\", "/"))
    if (
        not path.parts
        or name.startswith(("/", "\\"))
        or re.match(r"^[A-Za-z]:", name)
        or any(part in ("", ".", "..") for part in path.parts)
        or any(ord(ch) < 32 for ch in name)
    ):
        raise IntakeError(f"{name!r}: not a plain relative file name; refused")
    return path


def stage_files(
    files: Mapping[str, Path | bytes], target: Path, *, limits: IntakeLimits
) -> list[StagedFile]:
    """Copy (a :class:`Path`) or write (``bytes``) each file under its checked relative name into
    the new folder ``target``: every size capped, the total too, each file hashed.

    :class:`IntakeError` names the first file that cannot be staged.
    """
    target.mkdir(parents=True, exist_ok=False)
    if len(files) > limits.max_files:
        raise IntakeError(f"{len(files)} files, over the limit of {limits.max_files}; submit only "
                          "the files the assignment asks for")  # fmt: skip
    staged: list[StagedFile] = []
    total = 0
    for name in sorted(files):
        relative = checked_relative(name)
        if len(relative.parts) - 1 > limits.max_depth:
            raise IntakeError(f"{name}: folders nest deeper than {limits.max_depth} levels")
        room = min(limits.max_file_bytes, limits.max_submission_bytes - total)
        source = files[name]
        if isinstance(source, bytes):
            if len(source) > room:
                raise IntakeError(f"{name} is {len(source):,} bytes, over the limit of "
                                  f"{room:,} bytes")  # fmt: skip
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "xb") as out:
                out.write(source)
            file = StagedFile(name, len(source), hashlib.sha256(source).hexdigest())
        else:
            file = copy_plain_file(source, target / relative, max_bytes=room, shown=name)
        total += file.size
        staged.append(file)
    return staged


# --- zips -----------------------------------------------------------------------------------------

_EOCD = struct.Struct("<4s4H2LH")
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_CENTRAL_HEADER = struct.Struct("<4s4B4HL2L5H2L")
_MAX_COMMENT = 0xFFFF


def check_directory(stream: BinaryIO, limits: IntakeLimits) -> int:
    """Check a zip's listing before anything parses it; return its member count.

    Reads the end-of-central-directory record (and the ZIP64 record it points to), refuses an
    archive that lists more than ``max_archive_members`` entries or a directory larger than
    ``max_directory_bytes``, then walks the directory's fixed-size headers and stops at the first
    entry over the limit (a directory may hold more entries than its record says).
    """
    size = stream.seek(0, os.SEEK_END)
    tail_start = max(0, size - _EOCD.size - _MAX_COMMENT)
    stream.seek(tail_start)
    tail = stream.read(size - tail_start)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + _EOCD.size > len(tail):
        raise _BrokenArchive("no end-of-central-directory record")
    eocd_at = tail_start + at
    _sig, _disk, _cd_disk, _on_disk, entries, directory_size, directory_at, _comment = (
        _EOCD.unpack_from(tail, at)
    )
    record_bytes = 0
    if 0xFFFF in (entries, _on_disk) or 0xFFFFFFFF in (directory_size, directory_at):
        locator_at = eocd_at - _EOCD64_LOCATOR.size
        if locator_at < 0:
            raise _BrokenArchive("a ZIP64 archive without its ZIP64 locator")
        stream.seek(locator_at)
        signature, _disk64, record_at, _disks = _EOCD64_LOCATOR.unpack(
            stream.read(_EOCD64_LOCATOR.size)
        )
        if signature != b"PK\x06\x07":
            raise _BrokenArchive("a ZIP64 archive without its ZIP64 locator")
        record_at = locator_at - _EOCD64.size
        stream.seek(record_at)
        record = stream.read(_EOCD64.size)
        if len(record) < _EOCD64.size or record[:4] != b"PK\x06\x06":
            raise _BrokenArchive("a broken ZIP64 end-of-central-directory record")
        fields = _EOCD64.unpack(record)
        entries, directory_size, directory_at = fields[7], fields[8], fields[9]
        record_bytes = _EOCD64.size + _EOCD64_LOCATOR.size
    if entries > limits.max_archive_members:
        raise IntakeError(
            f"the archive lists {entries:,} entries, over the limit of "
            f"{limits.max_archive_members:,}; zip only the files the assignment asks for"
        )
    if directory_size > limits.max_directory_bytes:
        raise IntakeError(
            f"the archive's directory is {directory_size:,} bytes, over the limit of "
            f"{limits.max_directory_bytes:,}"
        )
    # data prepended to the archive (a self-extractor) shifts every offset; zipfile allows it
    start = eocd_at - record_bytes - directory_size
    if start < 0 or directory_at > start:
        raise _BrokenArchive("the end-of-central-directory record points outside the file")
    stream.seek(start)
    directory = stream.read(directory_size)
    count, offset = 0, 0
    while offset + _CENTRAL_HEADER.size <= len(directory):
        header = _CENTRAL_HEADER.unpack_from(directory, offset)
        if header[0] != b"PK\x01\x02":
            break
        count += 1
        if count > limits.max_archive_members:
            raise IntakeError(
                f"the archive holds more than {limits.max_archive_members:,} entries; zip only "
                "the files the assignment asks for"
            )
        offset += _CENTRAL_HEADER.size + header[12] + header[13] + header[14]
    return count


def open_archive(stream: BinaryIO, limits: IntakeLimits) -> zipfile.ZipFile:
    """A :class:`zipfile.ZipFile` of ``stream`` once :func:`check_directory` and the declared
    total size pass; :class:`IntakeError` says why not."""
    try:
        check_directory(stream, limits)
        stream.seek(0)
        archive = zipfile.ZipFile(stream)
    except IntakeError as exc:
        if not isinstance(exc, _BrokenArchive):
            raise  # over a limit: the message says which
        raise IntakeError(f"not a valid .zip archive ({exc}); make the archive again") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError) as exc:
        raise IntakeError(f"not a valid .zip archive ({exc}); make the archive again") from None
    declared = sum(m.file_size for m in archive.infolist())
    if declared > limits.max_archive_bytes:
        archive.close()
        raise IntakeError(
            f"unpacks to {declared:,} bytes, over the limit of {limits.max_archive_bytes:,}"
        )
    return archive


@dataclass(frozen=True)
class ArchiveMember:
    """One entry of a zip and the verdict on it."""

    info: zipfile.ZipInfo
    path: PurePosixPath | None
    """Where it unpacks, relative to the target; None: nothing to unpack (a folder entry,
    an operating system's leftovers, or a refused member)."""
    problem: str | None = None
    """Why the member is refused (its name first), or None."""


def archive_members(archive: zipfile.ZipFile, limits: IntakeLimits) -> list[ArchiveMember]:
    """Every entry of ``archive`` with its verdict, in the archive's order."""
    return [_member(info, limits) for info in archive.infolist()]


def _member(info: zipfile.ZipInfo, limits: IntakeLimits) -> ArchiveMember:
    name = info.filename

    def refused(why: str) -> ArchiveMember:
        return ArchiveMember(info, None, why)

    posix = PurePosixPath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in posix.parts:
        return refused(f"{name}: a path outside the archive (absolute or with '..'); refused")
    if any(ord(ch) < 32 for ch in name):
        return refused(f"{name!r}: control characters in the name; refused")
    if any(part in OS_LEFTOVERS for part in posix.parts):
        return ArchiveMember(info, None)
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return refused(f"{name}: a symbolic link inside the zip; refused (links are never "
                       "followed)")  # fmt: skip
    if info.is_dir():
        return ArchiveMember(info, None)
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        return refused(f"{name}: not a regular file inside the zip; refused")
    if info.flag_bits & 0x1:
        return refused(f"{name} is encrypted; zip it without a password")
    if len(posix.parts) > limits.max_depth:
        return refused(f"{name}: nested deeper than {limits.max_depth} folders")
    if info.file_size > limits.max_file_bytes:
        return refused(
            f"{name}: {info.file_size:,} bytes unpacked, over the limit of "
            f"{limits.max_file_bytes:,} bytes"
        )
    return ArchiveMember(info, posix)


def copy_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, out: BinaryIO, *, max_bytes: int
) -> int:
    """Stream one member into ``out``; the byte count is enforced while reading, not taken from
    the headers. :class:`IntakeError` names the member and what went wrong."""
    name = info.filename
    written = 0
    try:
        with archive.open(info) as source:
            while chunk := source.read(min(CHUNK, max_bytes - written + 1)):
                written += len(chunk)
                if written > max_bytes:
                    raise IntakeError(f"{name} unpacks to more bytes than the limit of "
                                      f"{max_bytes:,}; refused")  # fmt: skip
                out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise IntakeError(f"{name} is damaged ({exc}); the archive did not arrive whole, "
                          "make it again") from None  # fmt: skip
    except NotImplementedError as exc:
        raise IntakeError(f"{name} uses a compression the grader cannot read ({exc}); use plain "
                          "deflate (the default of every zip tool)") from None  # fmt: skip
    except (RuntimeError, OSError) as exc:
        raise IntakeError(f"{name} cannot be unpacked ({exc})") from None
    if written > info.file_size:
        raise IntakeError(f"{name} unpacks to more bytes than its header says; refused")
    return written


def unpack_archive(path: Path, target: Path, limits: IntakeLimits) -> list[str]:
    """Unpack the zip at ``path`` member by member into ``target``; return the problems (empty
    when clean). Refused members are listed and skipped; a refused archive is one problem."""
    try:
        fd, _size = open_plain_file(path, max_bytes=limits.max_archive_bytes, shown=path.name)
    except IntakeError as exc:
        return [str(exc)]
    problems: list[str] = []
    with os.fdopen(fd, "rb") as raw:
        try:
            archive = open_archive(raw, limits)
        except IntakeError as exc:
            return [str(exc)]
        with archive:
            total = 0
            for member in archive_members(archive, limits):
                if member.problem is not None:
                    problems.append(member.problem)
                if member.path is None:
                    continue
                destination = target / member.path
                destination.parent.mkdir(parents=True, exist_ok=True)
                room = min(limits.max_file_bytes, limits.max_archive_bytes - total)
                try:
                    with open(destination, "xb") as out:
                        total += copy_member(archive, member.info, out, max_bytes=room)
                except FileExistsError:
                    problems.append(f"{member.info.filename} appears twice in the archive")
                except IntakeError as exc:
                    destination.unlink(missing_ok=True)
                    problems.append(str(exc))
    return problems


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, *, max_bytes: int) -> bytes:
    """A member's bytes, at most ``max_bytes`` read (a zip may lie about its sizes)."""
    buffer = io.BytesIO()
    copy_member(archive, info, buffer, max_bytes=max_bytes)
    return buffer.getvalue()
