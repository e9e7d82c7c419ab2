"""Model uploads as students ship them: a notebook in place of model.py, checkpoints under the
names their training scripts give them, helper packages in a zipped folder."""

from __future__ import annotations

import pytest
from lb_support import zip_of

from grader.assignment import load_assignment
from grader.grading.kinds import kind_problem
from leaderboard.uploads import Upload, UploadError, gather_files, write_files


def test_a_notebook_and_checkpoint_names_are_accepted():
    files = gather_files([Upload("HW1.ipynb", b"{}"), Upload("resnet20-12fca82f.th", b"w")],
                         limit=1 << 20)  # fmt: skip
    assert sorted(files) == ["HW1.ipynb", "resnet20-12fca82f.th"]
    spec = load_assignment("resnet20")
    assert kind_problem(spec, files) is None
    zipped = zip_of({"hw/model.py": b"x = 1\n", "hw/checkpoint.pth.tar": b"w"})
    assert sorted(gather_files([Upload("hw.zip", zipped)], limit=1 << 20)) == [
        "checkpoint.pth.tar",
        "model.py",
    ]
    alone = gather_files([Upload("model.pt", b"w")], limit=1 << 20)
    assert "model.py (or a notebook, .ipynb)" in kind_problem(spec, alone)


def test_a_zipped_folder_keeps_its_helper_package_where_model_py_imports_it(tmp_path):
    zipped = zip_of({
        "pj2/model.py": b"from utils.nn import Block\n",
        "pj2/utils/__init__.py": b"",
        "pj2/utils/nn.py": b"class Block: pass\n",
        "pj2/checkpoint/best.pth": b"w",
        "pj2/__pycache__/model.cpython-311.pyc": b"\0",
        "__MACOSX/pj2/._model.py": b"\0",
        "notes.txt": b"outside the model's folder",
    })  # fmt: skip
    files = gather_files([Upload("pj2.zip", zipped)], limit=1 << 20)
    assert sorted(files) == ["checkpoint/best.pth", "model.py", "utils/__init__.py", "utils/nn.py"]
    folder = write_files(files, tmp_path / "submission")
    assert (folder / "utils" / "nn.py").read_bytes() == b"class Block: pass\n"
    with pytest.raises(UploadError, match="not allowed"):
        gather_files([Upload("bad.zip", zip_of({"hw/we ird/model.py": b""}))], limit=1 << 20)
    with pytest.raises(UploadError, match="not a checked relative name"):
        write_files({"../model.py": b""}, tmp_path / "escape")
