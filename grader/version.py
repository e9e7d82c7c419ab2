"""The grader's version, as recorded in the provenance of every grading run."""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path


@functools.lru_cache(maxsize=1)
def grader_version() -> str:
    """The package version, plus the git commit when running from a checkout (``0.1.0+g1a2b3c4``,
    ``-dirty`` when it has uncommitted changes)."""
    try:
        version = metadata.version("grader")
    except metadata.PackageNotFoundError:
        version = "unknown"
    checkout = Path(__file__).resolve().parents[1]
    if not (checkout / ".git").exists():
        return version
    try:
        commit = subprocess.run(
            ["git", "-C", str(checkout), "describe", "--always", "--dirty", "--abbrev=10"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+g{commit}" if commit else version
