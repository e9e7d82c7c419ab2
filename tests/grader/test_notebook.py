"""Notebooks as students hand them in: model.py is built from the cells that define the model
(never running any of them on the host), the student is told which cells were used, and the
pipeline's messages name the notebook's cells."""

from __future__ import annotations

import ast
import json

import pytest
from student_code import HOMEWORK_CELLS, NOTEBOOK_PARAMS, notebook, write_folder

from grader.assignment import load_assignment
from grader.models.notebook import NotebookError, notebook_module
from grader.models.pipeline import grade_model
from grader.models.result import GradeStatus


def test_the_defining_cells_make_the_module_and_the_rest_is_left_out(tmp_path):
    path = tmp_path / "HW1.ipynb"
    path.write_text(notebook(HOMEWORK_CELLS))
    module = notebook_module(path)
    assert module.used == [1, 2, 3]  # the data cell's transform is a constant
    assert module.left_out == {4: "trains", 5: "plots", 6: "runs code"}
    assert module.partly == {1: "imports google.colab, not installed for the grader",
                             2: "downloads data", 3: "creates objects"}  # fmt: skip
    tree = ast.parse(module.source)
    defined = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    assert defined == {"Net"} and "download=True" not in module.source
    assert "google" not in module.source and "net = Net()" not in module.source
    namespace: dict = {}
    exec(compile(module.source, "model.py", "exec"), namespace)  # noqa: S102 - our own test code
    net = namespace["Net"]()
    assert sum(p.numel() for p in net.parameters()) == NOTEBOOK_PARAMS
    note = module.note
    assert note.startswith("model.py was built from HW1.ipynb: code cells 1, 2, 3 (imports, ")
    assert "left out code cells 4 (trains), 5 (plots), 6 (runs code)" in note
    assert "left out parts of cells 1 (imports google.colab, not installed" in note
    assert "tag the cells that define the model 'grader'" in note


def test_lines_of_the_built_module_name_the_notebook_cell(tmp_path):
    path = tmp_path / "HW1.ipynb"
    path.write_text(notebook(HOMEWORK_CELLS))
    module = notebook_module(path)
    lines = module.source.splitlines()
    forward = next(i for i, line in enumerate(lines, 1) if "def forward" in line)
    assert module.where(forward) == "HW1.ipynb code cell 3 line 11"
    assert module.rewrite(f"failed (model.py line {forward})") == (
        "failed (HW1.ipynb code cell 3 line 11)"
    )


def test_cells_tagged_grader_are_used_exactly(tmp_path):
    path = tmp_path / "template.ipynb"
    path.write_text(notebook(HOMEWORK_CELLS, tags={1: ["grader"], 3: ["grader", "model"]}))
    module = notebook_module(path)
    assert module.tagged and module.used == [1, 3]
    assert "net = Net().to(device)" in module.source  # a tagged cell is taken whole
    assert "# %matplotlib inline" in module.source  # its magics as comments
    assert "the code cells tagged 'grader' (1, 3)" in module.note


def test_a_notebook_that_defines_nothing_or_is_not_a_notebook_is_explained(tmp_path):
    path = tmp_path / "HW1.ipynb"
    path.write_text(notebook([HOMEWORK_CELLS[4], HOMEWORK_CELLS[5]]))
    with pytest.raises(NotebookError, match="no code cell defines a model"):
        notebook_module(path)
    path.write_text("{not json")
    with pytest.raises(NotebookError, match="is not a readable Jupyter notebook"):
        notebook_module(path)


def test_a_notebooks_mistake_names_its_cell_and_the_note_says_how_it_was_built(tmp_path):
    """Through the pipeline, answered by the static look (test_student_submissions.py grades a
    notebook in a box)."""
    cells = [*HOMEWORK_CELLS]
    cells[3] = cells[3].replace("return self.fc3(x)", "return self.fc3(x.cuda())")
    folder = write_folder(tmp_path / "gpu", {"HW1.ipynb": notebook(cells)})
    spec = load_assignment("simplenn-dev")
    result = grade_model(folder, spec, require_weights=False, with_images=False)
    assert result.status is GradeStatus.INVALID
    assert result.message.startswith("HW1.ipynb code cell 3 line 17: .cuda() puts the model")
    assert result.notes and "code cells 1, 2, 3" in result.notes[0]
    assert json.dumps(result.to_json()["notes"]).count("HW1.ipynb") == 1
    assert not (folder / "model.py").exists()  # the submission folder is not written
