"""Arrows that stay one way: leaderboard -> grader <- reference, and no import cycles.

Read from the source with :mod:`ast` (nothing is imported). Every import counts, the ones inside
functions too: a cycle hidden behind a lazy import is still two modules that cannot be understood
apart. ``if TYPE_CHECKING:`` blocks are left out (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("grader", "reference", "leaderboard")
CLI_WIRING = "grader.commands"
"""The click commands: each is loaded only when it runs, and may wire in the other packages."""


def module_paths(root: Path = REPO) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of our packages."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(path: Path, module: str) -> set[str]:
    """Every dotted name ``path`` imports (relative imports resolved), TYPE_CHECKING excluded."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    pending: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"))]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        pending.extend(ast.iter_child_nodes(node))
    return names


def import_graph(root: Path = REPO) -> dict[str, set[str]]:
    """Module -> the modules of our packages it imports."""
    paths = module_paths(root)

    def ours(name: str) -> str | None:
        while name and name not in paths:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        targets = {ours(name) for name in imported_names(path, module)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def wrong_way(graph: dict[str, set[str]]) -> list[str]:
    """Imports of reference or leaderboard by a grader module outside the CLI wiring."""
    return sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if module.split(".")[0] == "grader"
        and not (module == CLI_WIRING or module.startswith(CLI_WIRING + "."))
        for target in targets
        if target.split(".")[0] in ("reference", "leaderboard")
    )


def test_no_grader_library_module_imports_reference_or_leaderboard():
    assert wrong_way(import_graph()) == []


def test_no_import_cycle_among_our_modules():
    assert cycles(import_graph()) == []


def test_the_checks_catch_a_cycle_and_a_wrong_way_arrow(tmp_path):
    for package, files in {
        "grader": {
            "__init__.py": "",
            "a.py": "def f():\n    from grader import b\n",
            "b.py": "from .a import f\nfrom typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from grader import c\n",
            "c.py": "from grader.b import f\n",
            "lib.py": "def g():\n    import leaderboard.web\n",
            "commands/__init__.py": "",
            "commands/serve.py": "from leaderboard import web\n",
        },
        "reference": {"__init__.py": "from grader import lib\n"},
        "leaderboard": {"__init__.py": "", "web.py": "import grader.a\n"},
    }.items():
        for name, text in files.items():
            path = tmp_path / package / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    graph = import_graph(tmp_path)
    assert graph["grader.c"] == {"grader.b"} and "grader.c" not in graph["grader.b"]
    assert cycles(graph) == [["grader.a", "grader.b"]]
    assert wrong_way(graph) == ["grader.lib imports leaderboard.web"]


def test_the_graph_sees_the_real_layout():
    graph = import_graph()
    assert "grader.assignment" in graph["grader.batch.run"]
    assert "grader.grading.intake" in graph["leaderboard.uploads"]


def test_options_that_do_nothing_say_so_and_are_hidden(tmp_path):
    from click.testing import CliRunner

    from grader.cli import main

    check = CliRunner().invoke(main, ["check", str(tmp_path / "none"), "--pre-fork"])
    assert "warning: --pre-fork does nothing and will be removed" in check.output
    assert check.exit_code == 2 and "no such folder" in check.output
    worker = CliRunner().invoke(main, ["worker", "--slot", "3", "--server", "http://x"])
    assert "warning: --slot does nothing and will be removed" in worker.output
    assert "needs --server, --token" in worker.output
    assert "--pre-fork" not in CliRunner().invoke(main, ["check", "--help"]).output
    assert "--slot" not in CliRunner().invoke(main, ["worker", "--help"]).output
