"""Importing and building a student's code (INSIDE a box, in the job's confined child).

Everything here runs next to the student's code, in the same process: it shapes error messages
for the student and nothing more. No number computed in this process is trusted by the grader.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
import types
from pathlib import Path

MAX_LISTED = 12
CUDA_MARKERS = ("CUDA", "cuda", "NVIDIA driver")
"""Words of PyTorch's errors when code asks for a GPU that the box does not have (Cannot
re-initialize CUDA in forked subprocess, Torch not compiled with CUDA enabled, Found no NVIDIA
driver on your system, ...)."""


class StudentError(Exception):
    """A problem with the submission itself; the message is for the student."""


def import_student_module(work_dir: Path, filename: str = "model.py") -> types.ModuleType:
    """Import ``filename`` from ``work_dir``; the submission's own modules and packages
    (``helpers.py``, ``utils/nn.py``, with or without ``__init__.py``) import after ours."""
    path = Path(work_dir) / filename
    if not path.is_file():
        raise StudentError(f"no {filename} in the submission")
    sys.path.append(str(work_dir))  # after the trusted paths: a student torch.py cannot shadow
    module_name = Path(filename).stem
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise StudentError(f"{filename} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise StudentError(
            f"{filename} line {exc.lineno}: syntax error: {exc.msg}; run python {filename} locally"
        ) from exc
    except ModuleNotFoundError as exc:
        raise StudentError(missing_module_message(filename, exc.name or "?", work_dir)) from exc
    except MemoryError:
        raise
    except RecursionError as exc:
        raise StudentError(f"importing {filename} recursed too deeply ({exc})") from exc
    except BaseException as exc:  # SystemExit too: importing must not end the check
        raise StudentError(f"importing {filename} failed: {describe_error(exc, filename)}") from exc
    return module


def missing_module_message(filename: str, name: str, work_dir: Path) -> str:
    """Why ``import name`` failed: the files the submission holds, and where the module goes."""
    found = sorted(
        str(p.relative_to(work_dir))
        for p in Path(work_dir).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    shown = ", ".join(found[:MAX_LISTED]) + (
        f" and {len(found) - MAX_LISTED} more" if len(found) > MAX_LISTED else ""
    )
    path = name.replace(".", "/")
    return (
        f"{filename} imports {name!r}, which is neither in the submission nor installed for the "
        f"grader (torch, torchvision, numpy and Python's standard library are); the submission "
        f"holds {shown or 'no files'}. If it is your own module, submit {path}.py (or the folder "
        f"{path.split('/')[0]}/) next to {filename}; otherwise use only the libraries the "
        "grader provides"
    )


def describe_error(exc: BaseException, filename: str = "model.py") -> str:
    """``Type: message (model.py line N)`` for an exception raised in the student's code, with
    the fix for the errors whose cause is known (a model moved to a GPU)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(filename)]
    where = f" ({filename} line {frames[-1].lineno})" if frames else ""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if any(marker in str(exc) for marker in CUDA_MARKERS):
        return (
            f"the model moves tensors to a GPU{where} (.cuda(), .to('cuda') or "
            "device='cuda'), but the grader runs it on the CPU: remove .cuda() from the model "
            "and create new tensors on the input's device (torch.zeros(..., device=x.device)); "
            f"PyTorch said {type(exc).__name__}: {first[:200]}"
        )
    return f"{type(exc).__name__}: {first[:500]}{where}"
