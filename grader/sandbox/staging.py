"""Copying a submission folder toward a box, under :mod:`grader.grading.intake`'s policy.

Only regular files with a single link are copied (links, hard links, devices, FIFOs, sockets and
deep trees stop the copy with a message naming the entry); content is streamed and hashed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from grader.grading.intake import (
    SKIPPED_DIRS,
    IntakeError,
    IntakeLimits,
    StagedFile,
    copy_plain_file,
)


def stage_submission(
    folder: Path, target: Path, limits: IntakeLimits | None = None
) -> list[StagedFile]:
    """Copy the submission in ``folder`` into the new folder ``target``; every file checked."""
    limits = limits or IntakeLimits()
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
                if depth + 1 > limits.max_depth:
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
            room = min(limits.max_file_bytes, limits.max_submission_bytes - total)
            file = copy_plain_file(
                Path(entry.path), target_dir / entry.name, max_bytes=room, shown=shown
            )
            total += file.size
            staged.append(file)
    return staged
