"""The graph artifact's reader and interpreter refuse what a hand-made artifact could smuggle in.

A student controls the capture stage, so the artifact may be written by hand. Each case here
doctors a real artifact the way an attacker would and checks the verified evaluation refuses it
before (or while) anything runs, with a message -- never by running it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from grader.models.inside.artifact import GRAPH_FILE, ArtifactError, load_program
from grader.models.inside.export import export_model, write_artifact, write_tensors
from grader.sandbox.jail import hidden_package_dirs


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    """A real artifact of a small conv net, to be doctored."""
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(10)
    )
    model(torch.zeros(1, 3, 32, 32))
    tensors = write_artifact(
        export_model(model.eval(), (3, 32, 32)), tmp_path, graph_file=GRAPH_FILE
    )
    write_tensors(tensors, tmp_path)
    return tmp_path


def doctor(folder: Path, change) -> Path:
    graph = json.loads((folder / GRAPH_FILE).read_text())
    change(graph)
    (folder / GRAPH_FILE).write_text(json.dumps(graph))
    return folder


def run(folder: Path) -> torch.Tensor:
    program = load_program(folder, device=torch.device("cpu"))
    return program.logits(torch.rand(2, 3, 32, 32))


def test_the_untouched_artifact_runs(artifact):
    assert run(artifact).shape == (2, 10)


def test_a_reference_to_a_later_value_is_refused(artifact):
    def forward_ref(graph):
        graph["nodes"][0]["args"][0] = {"ref": len(graph["inputs"]) + len(graph["nodes"]) - 1}

    with pytest.raises(ArtifactError, match="refers to a later or missing value"):
        run(doctor(artifact, forward_ref))


def test_python_operators_may_only_compute_sizes(artifact):
    def add_tensors(graph):
        graph["nodes"].append({"op": "operator.add", "args": [{"ref": 0}, {"ref": 0}]})
        graph["outputs"] = [{"ref": len(graph["inputs"]) + len(graph["nodes"]) - 1}]

    with pytest.raises(ArtifactError, match="may only compute with integer sizes"):
        load_program(doctor(artifact, add_tensors), device=torch.device("cpu")).values(
            torch.rand(2, 3, 32, 32)
        )


def test_getitem_only_takes_an_item_of_a_result(artifact):
    def index_a_tensor(graph):
        graph["nodes"].append({"op": "operator.getitem", "args": [{"ref": 0}, 0]})
        graph["outputs"] = [{"ref": len(graph["inputs"]) + len(graph["nodes"]) - 1}]

    with pytest.raises(ArtifactError, match="may only take an item of an operation's result"):
        load_program(doctor(artifact, index_a_tensor), device=torch.device("cpu")).values(
            torch.rand(2, 3, 32, 32)
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda g: g["nodes"][0]["args"].append({"code": "__import__('os')"}), "unknown tag"),
        (lambda g: g["nodes"][0]["args"].append({"dtype": "object"}), "is not allowed"),
        (lambda g: g["nodes"][0]["args"].append({"str": "x" * 500}), "too long"),
        (lambda g: g["inputs"][1].update(shape=[99, 99]), "the graph says"),
        (lambda g: g["inputs"][1].update(name="../../etc/passwd"), "is not allowed"),
        (lambda g: g.update(outputs=[]), "no logits output"),
        (lambda g: g["inputs"].insert(0, g["inputs"].pop()), "image batch as its first input"),
    ],
)
def test_malformed_arguments_inputs_and_outputs_are_refused(artifact, change, message):
    with pytest.raises(ArtifactError, match=message):
        run(doctor(artifact, change))


def test_packages_of_the_project_are_hidden_wherever_they_are_installed(tmp_path, monkeypatch):
    """A wheel install puts reference/ (with the baselines' recorded predictions) into the venv
    the box mounts: the jail lays an empty tmpfs over it."""
    import importlib.util

    installed = tmp_path / "venv" / "site-packages" / "reference"
    installed.mkdir(parents=True)

    class Spec:
        submodule_search_locations = [str(installed)]

    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name: Spec() if name == "reference" else None)  # fmt: skip
    mounts = [(str(tmp_path / "venv"), str(tmp_path / "venv"))]
    assert hidden_package_dirs(mounts) == [str(installed.resolve())]
    assert hidden_package_dirs([("/elsewhere", "/elsewhere")]) == []
