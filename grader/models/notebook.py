"""A model submitted as a Jupyter notebook: ``model.py`` built from the cells that define it.

The notebook is read with nbformat and its code cells are parsed, never run (on the host). When
an instructor's template tags cells ``grader`` (cell metadata ``tags``), exactly those cells make
the module. Otherwise every top-level statement that *defines* something is kept: imports,
functions, classes and constants (literals, tensors, devices, transforms); statements that
train, download, plot or otherwise run code are left out, as are IPython magics and imports of
packages the grader does not have (``google.colab``). The result says which cells were used and
why the others were left out, and maps the lines of the built ``model.py`` back to the cells.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from grader.models.precheck import last_name

NOTEBOOK_TAG = "grader"
CONSTANT_CALLS = frozenset({
    "tensor", "Tensor", "as_tensor", "device", "is_available", "tuple", "list", "dict", "set",
    "frozenset", "range", "float", "int", "str", "len", "array", "asarray", "Normalize",
    "Compose", "Resize", "CenterCrop", "ConvertImageDtype", "Grayscale", "Pad", "OrderedDict",
    "ToTensor", "RandomCrop", "RandomHorizontalFlip", "RandomResizedCrop", "RandomRotation",
})  # fmt: skip
"""Calls a constant may be made of (``mean = torch.tensor([...])``, ``device = ...``)."""
TRAINING_CALLS = frozenset({"backward", "zero_grad", "step", "fit", "train"})
DOWNLOAD_CALLS = frozenset({"urlretrieve", "urlopen", "load_state_dict_from_url", "download"})
PLOT_NAMES = frozenset({"plt", "pyplot", "sns", "seaborn", "imshow", "show", "savefig", "plot"})
TEXT_MAGICS = ("%%bash", "%%sh", "%%writefile", "%%html", "%%javascript", "%%latex",
               "%%markdown", "%%script", "%%capture")  # fmt: skip
MAX_LISTED = 8
MAX_NOTEBOOK_BYTES = 64 << 20
"""Notebooks larger than this (their outputs, mostly) are refused before they are read."""


class NotebookError(ValueError):
    """A notebook that cannot be read, or that defines nothing; the message says why."""


@dataclass(frozen=True)
class LineSpan:
    """Lines ``first``.. of the built module come from ``cell`` (code cell number), starting at
    that cell's line ``cell_line``."""

    first: int
    cell: int
    cell_line: int


@dataclass
class NotebookModule:
    """The module built from a notebook, and how it was built."""

    name: str
    source: str
    used: list[int] = field(default_factory=list)
    """Code cells (numbered from 1 among the code cells) the module has code of."""
    left_out: dict[int, str] = field(default_factory=dict)
    """Code cell -> why it was left out (whole cells only)."""
    partly: dict[int, str] = field(default_factory=dict)
    """Code cell -> what was left out of a cell that was used."""
    tagged: bool = False
    spans: list[LineSpan] = field(default_factory=list)

    def where(self, line: int) -> str:
        """``HW1.ipynb code cell 3 line 5`` for line ``line`` of the built module."""
        span = next((s for s in reversed(self.spans) if s.first <= line), None)
        if span is None:
            return f"{self.name} (built model.py line {line})"
        return f"{self.name} code cell {span.cell} line {span.cell_line + line - span.first}"

    def rewrite(self, text: str) -> str:
        """``text`` with each ``model.py line N`` / ``model.py:N`` naming the notebook's cell."""
        text = re.sub(r"model\.py line (\d+)", lambda m: self.where(int(m[1])), text)
        return re.sub(r"model\.py:(\d+)", lambda m: self.where(int(m[1])), text)

    @property
    def note(self) -> str:
        """What the student reads: which cells made the model and which were left out."""
        if self.tagged:
            return (f"model.py was built from {self.name}: the code cells tagged "
                    f"{NOTEBOOK_TAG!r} ({_cells(self.used)})")  # fmt: skip
        parts = [f"model.py was built from {self.name}: code cells {_cells(self.used)} (imports, "
                 "functions, classes and constants)"]  # fmt: skip
        if self.left_out:
            listed = [f"{c} ({why})" for c, why in sorted(self.left_out.items())]
            parts.append(f"left out code cells {_listing(listed)}")
        if self.partly:
            listed = [f"{c} ({why})" for c, why in sorted(self.partly.items())]
            parts.append(f"left out parts of cells {_listing(listed)}")
        parts.append(f"tag the cells that define the model {NOTEBOOK_TAG!r} to choose them exactly")
        return "; ".join(parts)


def notebook_module(path: Path, *, folder: Path | None = None) -> NotebookModule:
    """Build the module of the notebook at ``path``; ``folder`` holds the submission's own
    modules (imports of those are kept). Raise :class:`NotebookError`."""
    import nbformat

    path = Path(path)
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        raise NotebookError(
            f"{path.name} is {size:,} bytes, over the {MAX_NOTEBOOK_BYTES:,} a notebook may have "
            "here: clear its outputs (Kernel > Restart & Clear Output) and save it again"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # missing cell ids and other format warnings
            notebook = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, AttributeError, TypeError,
            RecursionError) as exc:  # fmt: skip
        raise NotebookError(
            f"{path.name} is not a readable Jupyter notebook ({str(exc).splitlines()[0][:200]}); "
            "save it again from Jupyter, or submit the model's code as model.py"
        ) from None
    cells = [c for c in notebook.cells if c.get("cell_type") == "code"]
    tagged = any(NOTEBOOK_TAG in (c.get("metadata", {}).get("tags") or []) for c in cells)
    builder = _Builder(path.name, folder or path.parent, tagged)
    try:
        for number, cell in enumerate(cells, start=1):
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else str(source)
            if tagged and NOTEBOOK_TAG not in (cell.get("metadata", {}).get("tags") or []):
                continue
            builder.add_cell(number, source)
    except RecursionError:
        raise NotebookError(
            f"{path.name}: its code nests too deeply to be read; submit the model as model.py"
        ) from None
    module = builder.module()
    if not module.used:
        why = "" if not module.left_out else (
            f" (left out: {_listing([f'{c} ({w})' for c, w in sorted(module.left_out.items())])})"
        )  # fmt: skip
        raise NotebookError(
            f"{path.name}: no code cell defines a model{why}; put the model's class in a cell "
            f"of its own, or tag the cells that define it {NOTEBOOK_TAG!r}"
        )
    return module


class _Builder:
    def __init__(self, name: str, folder: Path, tagged: bool) -> None:
        self.name = name
        self.folder = folder
        self.tagged = tagged
        self.lines: list[str] = [f'"""The model of {name}, built from its code cells."""']
        self.result = NotebookModule(name=name, source="", tagged=tagged)
        self.functions: dict[str, ast.AST] = {}

    def module(self) -> NotebookModule:
        self.result.source = "\n".join(self.lines) + "\n"
        return self.result

    def add_cell(self, number: int, source: str) -> None:
        text = source.splitlines()
        first = text[0].strip() if text else ""
        if first.startswith(TEXT_MAGICS):
            self.result.left_out[number] = f"a {first.split()[0]} cell"
            return
        if first.startswith("%%"):
            text = ["", *text[1:]]  # %%time and the like: the rest is Python
        lines = [_without_magic(line) for line in text]
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError as exc:
            self.result.left_out[number] = f"does not parse: {exc.msg}, line {exc.lineno}"
            return
        except (ValueError, RecursionError, MemoryError):
            self.result.left_out[number] = "does not parse"
            return
        if not tree.body:
            return
        if self.tagged:
            self._emit(number, lines, 1, len(lines))
            self.result.used.append(number)
            return
        for stmt in tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.functions[stmt.name] = stmt
        kept, reasons = [], []
        for stmt in tree.body:
            reason = self._reason_to_leave_out(stmt)
            if reason is None:
                kept.append(stmt)
            elif reason:
                reasons.append(reason)
        if not kept:
            self.result.left_out[number] = _main_reason(reasons) or "no code"
            return
        for stmt in kept:
            start = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", []))])
            self._emit(number, lines, start, stmt.end_lineno or stmt.lineno)
        self.result.used.append(number)
        if reasons:
            self.result.partly[number] = _main_reason(reasons)

    def _emit(self, number: int, lines: list[str], start: int, end: int) -> None:
        if not self.result.spans or self.result.spans[-1].cell != number:
            self.lines.append(f"# {self.name}, code cell {number}")
        self.result.spans.append(LineSpan(len(self.lines) + 1, number, start))
        self.lines.extend(lines[start - 1 : end])

    def _reason_to_leave_out(self, stmt: ast.stmt) -> str | None:
        """None to keep ``stmt``; otherwise why it is left out ('' for a bare docstring)."""
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return None
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            missing = [n for n in _imported(stmt) if not self._importable(n)]
            return (
                f"imports {', '.join(missing)}, not installed for the grader" if missing else None
            )
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            return ""
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
            reason = self._activity(stmt)
            if reason is None and _is_constant(stmt.value):
                return None
            return reason or "creates objects"
        return self._activity(stmt) or "runs code"

    def _activity(self, stmt: ast.stmt) -> str | None:
        """What ``stmt`` does that a model file must not: train, download or plot."""
        calls = [n for n in ast.walk(stmt) if isinstance(n, ast.Call)]
        names = {last_name(c.func) for c in calls}
        if any(k.arg == "download" for c in calls for k in c.keywords) or names & DOWNLOAD_CALLS:
            return "downloads data"
        trains = names & TRAINING_CALLS or any(
            _trains(self.functions[n], self.functions) for n in names if n in self.functions
        )
        if trains or isinstance(stmt, (ast.For, ast.While)):
            return "trains" if trains else "runs a loop"
        used = {last_name(n) for n in ast.walk(stmt) if isinstance(n, (ast.Name, ast.Attribute))}
        if used & PLOT_NAMES:
            return "plots"
        return None

    def _importable(self, module: str) -> bool:
        """Whether ``module`` is the submission's own or installed for the grader, found
        without importing anything (a namespace package such as ``google`` is looked into)."""
        top, *rest = module.split(".")
        if (self.folder / f"{top}.py").is_file() or (self.folder / top).is_dir():
            return True
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            return False
        if spec is None:
            return False
        if rest and spec.origin in (None, "namespace"):  # a namespace: is the next level there?
            return any(
                (Path(location) / rest[0]).is_dir() or (Path(location) / f"{rest[0]}.py").is_file()
                for location in spec.submodule_search_locations or ()
            )
        return True


def _main_reason(reasons: list[str]) -> str:
    """The reason that says most of what a left-out cell did."""
    order = ["downloads data", "trains", "plots", "runs a loop", "creates objects", "runs code"]
    known = [r for r in reasons if r in order]
    if known:
        return min(known, key=order.index)
    return next((r for r in reasons if r), "")


def _without_magic(line: str) -> str:
    """IPython's ``%magic``, ``!shell`` and ``name?`` lines as comments (line numbers kept)."""
    stripped = line.lstrip()
    if stripped.startswith(("%", "!")) or (stripped.endswith("?") and "#" not in stripped):
        return line[: len(line) - len(stripped)] + "# " + stripped
    return line


def _imported(stmt: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(stmt, ast.ImportFrom):
        return [stmt.module] if stmt.module and not stmt.level else []
    return [alias.name for alias in stmt.names]


def _is_constant(node: ast.AST) -> bool:
    """Literals, names, arithmetic and the calls of :data:`CONSTANT_CALLS`."""
    return all(
        last_name(n.func) in CONSTANT_CALLS for n in ast.walk(node) if isinstance(n, ast.Call)
    ) and not any(isinstance(n, (ast.Lambda, ast.Await, ast.Yield)) for n in ast.walk(node))


def _trains(fn: ast.AST, functions: dict[str, ast.AST], seen: frozenset[str] = frozenset()) -> bool:
    names = {last_name(c.func) for c in ast.walk(fn) if isinstance(c, ast.Call)}
    if names & (TRAINING_CALLS - {"train", "step"}):
        return True
    return any(
        _trains(functions[n], functions, seen | {n})
        for n in names
        if n in functions and n not in seen
    )


def _cells(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers)) or "none"


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")
