"""Every experiment run once at the tiny scale through ``grader reproduce``, shared by the tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from grader.cli import main
from reference.experiments.common import results_name


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One thread: on a shared 2-core machine it runs these small convolutions fastest."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_run(
    data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], tuple[dict, Path, str]]:
    """``tiny_run(name)`` -> (the JSON document, its folder, the command's output), run once."""
    done: dict[str, tuple[dict, Path, str]] = {}

    def run(name: str) -> tuple[dict, Path, str]:
        if name not in done:
            out = tmp_path_factory.mktemp(name)
            args = ["reproduce", name, "--scale", "tiny", "--device", "cpu"]
            args += ["--data-dir", str(data_dir), "--out", str(out)]
            result = CliRunner().invoke(main, args)
            assert result.exit_code == 0, result.output
            document = json.loads((out / results_name(name)).read_text())
            done[name] = (document, out, result.output)
        return done[name]

    return run
