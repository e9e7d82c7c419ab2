"""Declared dependencies: everything the packages import is declared, nothing unused is."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("grader", "reference", "leaderboard")
# import name -> distribution name, where they differ
DISTRIBUTIONS = {"sklearn": "scikit-learn", "yaml": "pyyaml", "PIL": "pillow"}


def declared() -> dict[str, set[str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    groups = {"core": project["dependencies"], **project["optional-dependencies"]}

    def name(requirement: str) -> str:
        for stop in "<>=;[ ":
            requirement = requirement.split(stop)[0]
        return requirement.strip().lower()

    return {group: {name(r) for r in reqs} for group, reqs in groups.items()}


def imported() -> dict[str, set[str]]:
    """Third-party top-level modules imported by each of our packages."""
    ours = set(PACKAGES)
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in ours and top not in sys.stdlib_module_names:
                        dist = DISTRIBUTIONS.get(top, top).lower().replace("_", "-")
                        found.setdefault(dist, set()).add(str(path))
    return found


def test_every_import_is_declared_and_heavy_parts_are_extras():
    groups = declared()
    runtime = groups["core"] | groups["models"] | groups["server"]
    missing = set(imported()) - runtime - {"tomli"}
    assert not missing, f"imported but not declared: {missing}"
    assert "scipy" in groups["core"]  # grader.flags uses it for the copied-predictions test
    assert {"torch", "torchvision", "safetensors", "pyseccomp"} <= groups["models"]
    assert {"flask", "gunicorn", "sqlalchemy"} <= groups["server"]
    assert not groups["core"] & (groups["models"] | groups["server"])


def test_nothing_unused_is_declared():
    runtime = declared()["core"] | declared()["models"] | declared()["server"]
    unused = runtime - set(imported()) - {"tomli", "psycopg", "gunicorn"}  # drivers, servers
    assert not unused, f"declared but never imported: {unused}"
    assert "rich" not in runtime


def test_a_command_whose_extra_is_missing_says_what_to_install(monkeypatch):
    from grader import cli

    def no_flask(name: str):
        raise ModuleNotFoundError("No module named 'flask'", name="flask")

    monkeypatch.setattr(cli.importlib, "import_module", no_flask)
    result = CliRunner().invoke(cli.main, ["serve", "--port", "8000"])
    assert result.exit_code == 1
    assert "grader serve needs the [server] extra (flask is not installed)" in result.output
    assert "pip install 'grader[server]'" in result.output and "Traceback" not in result.output
    assert isinstance(cli.missing_extra_command("x", "torch", "models"), click.Command)


@pytest.mark.parametrize("command", ["train", "reproduce"])
def test_training_commands_build_their_options_without_torch(command):
    import subprocess

    code = (
        "import sys; from grader.cli import main; "
        f"main.get_command(None, {command!r}); print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
