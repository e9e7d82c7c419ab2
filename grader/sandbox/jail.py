"""The bubblewrap command line of a box: namespaces, mounts, environment, GPU devices.

A box is started by root and holds one trusted supervisor process (root inside the box with a
few capabilities, see :data:`SUPERVISOR_CAPABILITIES`) that forks one confined child per job.
What the box sees: a read-only root made of the system's ``/usr``, the Python installation, the
virtual environment and the ``grader`` package alone (the project's other packages, which hold
recorded predictions and baselines, are hidden even where they are installed in the venv); the
test images at ``/box/in``; a root-only staging folder at ``/box/jobs``; a size-capped tmpfs at
``/box/children`` where every child works and writes. No network, no labels, no other student.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from grader.sandbox.gpu import GpuDevice

BOX_LIB = "/box/lib"
BOX_IN = "/box/in"
BOX_JOBS = "/box/jobs"
BOX_CHILDREN = "/box/children"
SUPERVISOR_CAPABILITIES = (
    "CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL",
)  # fmt: skip
"""What the supervisor keeps: to hand each child a uid and a folder, and to clean up after it."""
HIDDEN_PACKAGES = ("reference", "leaderboard")
"""Packages of this project that never enter a box, wherever they are installed."""


class SandboxUnavailable(RuntimeError):
    """Model grading was asked for on a machine without bubblewrap."""

    def __init__(self) -> None:
        super().__init__(
            "model submissions run only inside the sandbox: install bubblewrap "
            "(apt-get install bubblewrap) and run the grader as root"
        )


@dataclass(frozen=True)
class BoxLayout:
    """Host folders behind the box's fixed paths."""

    inputs: Path
    """Read-only at ``/box/in``: the supervisor's configuration and the test images."""
    jobs: Path
    """Read-write at ``/box/jobs`` (root only): each job's staged input and output files."""
    children_mb: int
    """Size of the tmpfs at ``/box/children`` that every child works and writes in."""


def bubblewrap_path() -> str | None:
    """Path of the ``bwrap`` executable, or None."""
    return shutil.which("bwrap")


def bubblewrap_available() -> bool:
    """Whether boxes can be started here: ``bwrap`` exists and this process is root."""
    return bubblewrap_path() is not None and os.geteuid() == 0


def python_mounts() -> list[tuple[str, str]]:
    """(host, box) pairs bound read-only: the Python installation, the venv, ``grader``."""
    pairs: set[tuple[str, str]] = set()
    for prefix in {sys.base_prefix, sys.prefix, str(Path(sys.executable).resolve().parents[1])}:
        if prefix and not prefix.startswith("/usr") and Path(prefix).is_dir():
            pairs.add((prefix, prefix))
    package = Path(__file__).resolve().parents[1]  # grader/
    pairs.add((str(package), f"{BOX_LIB}/grader"))
    return sorted(pairs)


def hidden_package_dirs(mounts: Iterable[tuple[str, str]]) -> list[str]:
    """Folders of :data:`HIDDEN_PACKAGES` that lie inside a mounted tree (e.g. a wheel install
    of the project in the venv): each gets an empty tmpfs over it."""
    hidden = []
    roots = [host for host, box in mounts if host == box]
    for name in HIDDEN_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        for location in (spec.submodule_search_locations or []) if spec else []:
            path = str(Path(location).resolve())
            if any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots):
                hidden.append(path)
    return sorted(set(hidden))


def _parents(path: str) -> list[str]:
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _system_binds() -> list[str]:
    cmd = ["--ro-bind", "/usr", "/usr"]
    for link in ("/bin", "/lib", "/lib64", "/sbin", "/lib32", "/libx32"):
        if os.path.islink(link):
            cmd += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            cmd += ["--ro-bind", link, link]
    cmd += ["--perms", "0755", "--dir", "/etc"]
    if os.path.exists("/etc/ld.so.cache"):
        cmd += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    return cmd


def _read_only_binds(mounts: Sequence[tuple[str, str]], other_targets: Sequence[str]) -> list[str]:
    cmd: list[str] = []
    made = {"/etc"}
    for target in [t for _h, t in mounts] + list(other_targets):
        # bwrap creates missing parents as 0700, which the children's uids could not traverse.
        for parent in _parents(target):
            if parent not in made:
                made.add(parent)
                cmd += ["--perms", "0755", "--dir", parent]
    for host, target in mounts:
        cmd += ["--ro-bind", host, target]
    return cmd


def box_environment(threads: int = 1, *, gpu: bool = False) -> dict[str, str]:
    """The whole environment of a box (bwrap clears the host's)."""
    env = {
        "HOME": BOX_CHILDREN,
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TMPDIR": BOX_CHILDREN,
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "CUDA_VISIBLE_DEVICES": "0" if gpu else "",
    }
    if gpu and os.environ.get("LD_LIBRARY_PATH"):
        env["LD_LIBRARY_PATH"] = os.environ["LD_LIBRARY_PATH"]  # where the driver's libcuda is
    return env


def box_command(
    layout: BoxLayout, *, entry: str, threads: int = 1, gpu: GpuDevice | None = None
) -> list[str]:
    """The full command that starts a box running ``python -c entry`` as its supervisor."""
    bwrap = bubblewrap_path() or "bwrap"
    cmd = [
        bwrap,
        "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup",
        "--die-with-parent", "--new-session", "--clearenv", "--hostname", "box",
    ]  # fmt: skip
    for cap in SUPERVISOR_CAPABILITIES:
        cmd += ["--cap-add", cap]
    cmd += _system_binds()
    mounts = [*python_mounts(), (str(layout.inputs), BOX_IN)]
    # A bytecode cache outside the venv (PYTHONPYCACHEPREFIX) spares the box compiling torch.
    pycache = sys.pycache_prefix
    if pycache and Path(pycache).is_dir():
        mounts.append((pycache, pycache))
    cmd += _read_only_binds(mounts, [BOX_JOBS, BOX_CHILDREN])
    for path in hidden_package_dirs(mounts):
        cmd += ["--perms", "0000", "--tmpfs", path]
    cmd += ["--bind", str(layout.jobs), BOX_JOBS]
    cmd += ["--perms", "0711", "--size", str(layout.children_mb * 1024 * 1024)]
    cmd += ["--tmpfs", BOX_CHILDREN]
    cmd += ["--perms", "0755", "--dir", "/tmp"]
    cmd += ["--proc", "/proc", "--dev", "/dev"]
    if gpu is not None:
        cmd += gpu.bwrap_args()
    cmd += ["--remount-ro", "/", "--chdir", BOX_CHILDREN]
    for key, value in box_environment(threads, gpu=gpu is not None).items():
        cmd += ["--setenv", key, value]
    python = [sys.executable, "-I"]
    if pycache and Path(pycache).is_dir():
        python += ["-X", f"pycache_prefix={pycache}"]
    cmd += ["--", *python, "-c", f"import sys; sys.path.insert(0, {BOX_LIB!r}); {entry}"]
    return cmd
