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
from typing import Any


class StudentError(Exception):
    """A problem with the submission itself; the message is for the student."""


def import_student_module(work_dir: Path, filename: str = "model.py") -> types.ModuleType:
    """Import ``filename`` from ``work_dir`` (its sibling modules importable after ours)."""
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
        raise StudentError(
            f"{filename} imports {exc.name!r}, which the grader does not provide; "
            "use only torch, torchvision and numpy"
        ) from exc
    except MemoryError:
        raise
    except RecursionError as exc:
        raise StudentError(f"importing {filename} recursed too deeply ({exc})") from exc
    except BaseException as exc:  # SystemExit too: importing must not end the check
        raise StudentError(f"importing {filename} failed: {describe_error(exc, filename)}") from exc
    return module


def build_student_model(module: types.ModuleType, entry: str = "Net") -> Any:
    """Call the class or factory ``entry`` of ``module`` with no arguments, as the spec says."""
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
    except RecursionError as exc:
        raise StudentError(
            f"building the model recursed too deeply: modules nested thousands of levels deep "
            f"cannot be graded ({exc})"
        ) from exc
    except BaseException as exc:  # student code: report its failure, never crash the check
        raise StudentError(f"building the model failed: {describe_error(exc)}") from exc


def describe_error(exc: BaseException, filename: str = "model.py") -> str:
    """``Type: message (model.py line N)`` for an exception raised in the student's code."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(filename)]
    where = f" ({filename} line {frames[-1].lineno})" if frames else ""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first[:500]}{where}"
