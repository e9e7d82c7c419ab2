"""The trusted program that runs INSIDE the sandbox (started by :mod:`grader.sandbox`).

Order matters: it imports what it needs, pins threads and loads a seccomp filter BEFORE the
student's code is imported; then it imports the trusted task function and the student's
``model.py`` and calls ``task(ctx)``. The task's dict and saved arrays go to the output directory
with a ``status.json`` written last. Student mistakes become status ``invalid`` with a message.
"""

from __future__ import annotations

import errno
import importlib
import importlib.util
import json
import os
import sys
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BOX_WORK = Path("/box/work")
BOX_INPUT = Path("/box/in")
BOX_OUTPUT = Path("/box/out")
WEIGHT_SUFFIXES = (".pt", ".pth", ".safetensors")

DENIED_SOCKET_FAMILIES = {"AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16, "AF_PACKET": 17}
DENIED_SYSCALLS = (
    "ptrace", "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "bpf",
    "perf_event_open", "kexec_load", "init_module", "finit_module", "delete_module", "keyctl",
    "add_key", "request_key", "userfaultfd", "process_vm_readv", "process_vm_writev",
    "open_by_handle_at", "name_to_handle_at", "swapon", "swapoff", "reboot", "acct",
)  # fmt: skip


class StudentError(Exception):
    """A problem with the submission itself (status ``invalid``); the message is for the student."""


@dataclass
class TaskContext:
    """What a task function gets inside the box."""

    work_dir: Path
    """The private copy of the submission (read-only)."""
    output_dir: Path
    args: dict[str, Any]
    inputs: dict[str, np.ndarray]
    module: types.ModuleType | None
    """The student's imported ``model.py``."""
    weights_path: Path | None
    """The submission's one weights file, if any."""
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def build_model(self, entry: str | None = None) -> Any:
        """Instantiate the student's model: class ``entry`` (default ``Net``) or build_model()."""
        return build_student_model(self.module, entry or self.args.get("entry", "Net"))

    def save_array(self, name: str, array: np.ndarray) -> None:
        """Hand ``array`` back to the grader as ``TaskResult.arrays[name]``."""
        if not name.isidentifier():
            raise ValueError(f"array name {name!r} must be a Python identifier")
        self.arrays[name] = np.asarray(array)


def build_student_model(module: types.ModuleType | None, entry: str) -> Any:
    """Call the class or factory ``entry`` of ``module`` with no arguments, as the spec says."""
    if module is None:
        raise StudentError("no model.py in the submission")
    names = [entry] if entry != "Net" else ["Net", "build_model"]
    factory = next((getattr(module, n) for n in names if callable(getattr(module, n, None))), None)
    if factory is None:
        raise StudentError(
            f"model.py defines no {' or '.join(names)}: define class {entry}(nn.Module) "
            "or a function build_model() that returns the model"
        )
    try:
        return factory()
    except MemoryError:
        raise
    except Exception as exc:  # student code: report its failure, never crash the harness
        raise StudentError(f"building the model failed: {describe_error(exc)}") from exc


def find_weights(work_dir: Path) -> Path | None:
    """The one weights file of a submission; more than one is a student error."""
    found = sorted(p for p in work_dir.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
    if len(found) > 1:
        raise StudentError(
            f"more than one weights file ({', '.join(p.name for p in found)}): keep exactly one"
        )
    return found[0] if found else None


def apply_seccomp() -> None:
    """Deny new IPv4/IPv6/netlink/packet sockets and escape-prone syscalls (EPERM/EACCES)."""
    import pyseccomp as seccomp

    filt = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for family in DENIED_SOCKET_FAMILIES.values():
        filt.add_rule(seccomp.ERRNO(errno.EACCES), "socket", seccomp.Arg(0, seccomp.EQ, family))
    for name in DENIED_SYSCALLS:
        try:
            filt.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except (RuntimeError, ValueError, OSError):
            continue  # a syscall this architecture does not have
    filt.load()


def pin_threads() -> None:
    """One intra-op thread (the sandbox's env sets the count) so boxes do not fight for cores."""
    import torch

    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set by an earlier parallel call


def import_student_module(work_dir: Path) -> types.ModuleType | None:
    """Import ``model.py`` from the work dir (its siblings importable), or None when absent."""
    path = work_dir / "model.py"
    if not path.is_file():
        return None
    sys.path.append(str(work_dir))  # after the trusted paths: a student torch.py cannot shadow
    spec = importlib.util.spec_from_file_location("model", path)
    if spec is None or spec.loader is None:
        raise StudentError("model.py cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules["model"] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise StudentError(
            f"model.py line {exc.lineno}: syntax error: {exc.msg}; run python model.py locally"
        ) from exc
    except ModuleNotFoundError as exc:
        raise StudentError(
            f"model.py imports {exc.name!r}, which the grader does not provide; "
            "use only torch, torchvision and numpy"
        ) from exc
    except MemoryError:
        raise
    except BaseException as exc:  # SystemExit too: importing must not end the check
        raise StudentError(f"importing model.py failed: {describe_error(exc)}") from exc
    return module


def describe_error(exc: BaseException) -> str:
    """``Type: message (model.py line N)`` for an exception raised in the student's code."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith("model.py")]
    where = f" (model.py line {frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def import_task(ctx: TaskContext) -> dict[str, Any]:
    """The lightest task: import the student's ``model.py`` (done by the harness) and report it."""
    return {"imported": ctx.module is not None, "weights": ctx.weights_path is not None}


def load_task(name: str) -> Callable[[TaskContext], dict[str, Any]]:
    """Import the trusted task ``module:function`` (grader or reference code only)."""
    module_name, _, attr = name.partition(":")
    if not module_name.startswith(("grader.", "reference.")):
        raise ValueError(f"task {name!r} is not trusted grader code")
    return getattr(importlib.import_module(module_name), attr)


def write_status(
    out: Path, status: str, message: str, result: dict[str, Any], arrays: list[str]
) -> None:
    """Write ``status.json`` into ``out`` atomically: what the grader reads back from the box."""
    payload = {"status": status, "message": message, "result": result, "arrays": arrays}
    tmp = out / "status.json.part"
    tmp.write_text(json.dumps(payload, default=_json_default), encoding="utf-8")
    tmp.replace(out / "status.json")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def run_student_task(
    task: Any, *, work: Path, out: Path, args: dict[str, Any], inputs: dict[str, np.ndarray]
) -> None:
    """Import the student's code from ``work``, run ``task`` and write its outputs to ``out``.

    Every outcome ends as a ``status.json``: the student's faults are ``invalid``, a task's own
    failure ``error``.
    """
    ctx = TaskContext(work, out, args, inputs, None, None)
    try:
        ctx.weights_path = find_weights(work)
        ctx.module = import_student_module(work)
        result = task(ctx)
    except StudentError as exc:
        write_status(out, "invalid", str(exc), getattr(exc, "result", {}) or {}, [])
        return
    except MemoryError:
        write_status(out, "invalid", "the model ran out of memory inside the sandbox", {}, [])
        return
    except SystemExit as exc:
        message = f"the model code called exit() ({describe_error(exc)})"
        write_status(out, "invalid", message, {}, [])
        return
    except BaseException as exc:  # a task's unexpected failure becomes a result, never a crash
        write_status(out, "error", f"the check failed: {describe_error(exc)}", {}, [])
        return
    for name, array in ctx.arrays.items():
        np.save(out / f"{name}.npy", array, allow_pickle=False)
    write_status(out, "ok", "", result, sorted(ctx.arrays))


def main() -> int:
    """Run the task described in ``/box/in/task.json``; exit code 0 once a status is written."""
    spec = json.loads((BOX_INPUT / "task.json").read_text(encoding="utf-8"))
    try:
        task = load_task(spec["task"])
        if "torch" in sys.modules:
            pin_threads()
        inputs = {name: np.load(BOX_INPUT / f"{name}.npy") for name in spec["inputs"]}
        apply_seccomp()
    except Exception as exc:  # the grader's own set-up failed: not the student's fault
        write_status(BOX_OUTPUT, "error", f"sandbox set-up failed: {describe_error(exc)}", {}, [])
        return 0
    run_student_task(task, work=BOX_WORK, out=BOX_OUTPUT, args=spec["args"], inputs=inputs)
    return 0
