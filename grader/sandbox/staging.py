"""Copying a submission toward a box: plain files only, every size capped before it is read.

A submission folder is untrusted: a root ``tar`` extraction can leave hard links to any file of
the machine, device nodes, FIFOs, sockets, symbolic links and deep folder trees in it. Only
regular files with a single link are copied, each opened without following links and checked
again on the open descriptor (so a file swapped for a link in between is still refused); anything
else stops the copy with a message naming the file. Content is streamed and hashed in chunks.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

SKIPPED_DIRS = frozenset({"__pycache__", ".ipynb_checkpoints", ".git"})
CHUNK = 1 << 20


class IntakeError(ValueError):
    """A submission that cannot be copied into a box; the message names the file and the fix."""


@dataclass(frozen=True)
class IntakeLimits:
    """What one submission may hold."""

    max_file_bytes: int = 1024 * 1024 * 1024
    max_total_bytes: int = 2 * 1024 * 1024 * 1024
    max_files: int = 200
    max_depth: int = 4


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


def sha256_file(path: Path, *, max_bytes: int = IntakeLimits.max_file_bytes) -> str:
    """Hex SHA-256 of a plain file, read in chunks (the same checks as a copy)."""
    fd, _size = open_plain_file(path, max_bytes=max_bytes)
    digest = hashlib.sha256()
    try:
        while chunk := os.read(fd, CHUNK):
            digest.update(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()


def stage_submission(
    folder: Path, target: Path, limits: IntakeLimits = IntakeLimits()
) -> list[StagedFile]:
    """Copy the submission in ``folder`` into the new folder ``target``; every file checked."""
    folder, target = Path(folder), Path(target)
    target.mkdir(parents=True, exist_ok=False)
    staged: list[StagedFile] = []
    total = 0
    pending: list[tuple[Path, Path, str, int]] = [(folder, target, "", 0)]
    while pending:
        source_dir, target_dir, prefix, depth = pending.pop()
        try:
            entries = sorted(os.scandir(source_dir), key=lambda e: e.name)
        except OSError as exc:
            raise IntakeError(
                f"{prefix or folder.name}: cannot be listed ({exc.strerror})"
            ) from None
        for entry in entries:
            shown = f"{prefix}{entry.name}"
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISDIR(mode):
                if entry.name in SKIPPED_DIRS:
                    continue
                if depth + 1 >= limits.max_depth:
                    raise IntakeError(
                        f"{shown}/: folders nest deeper than {limits.max_depth} levels; "
                        "keep the submission flat"
                    )
                (target_dir / entry.name).mkdir()
                pending.append((Path(entry.path), target_dir / entry.name, f"{shown}/", depth + 1))
                continue
            if len(staged) >= limits.max_files:
                raise IntakeError(
                    f"the submission holds more than {limits.max_files} files; "
                    "upload only model.py, its own modules and the weights"
                )
            room = min(limits.max_file_bytes, limits.max_total_bytes - total)
            file = copy_plain_file(
                Path(entry.path), target_dir / entry.name, max_bytes=room, shown=shown
            )
            total += file.size
            staged.append(file)
    return staged
