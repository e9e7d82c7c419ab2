"""A class folder handed in the way students ship their work, graded by ``grader check`` in real
boxes (Fudan PJ2: "your own network, by no means a publicly available model").

Helper packages, a checkpoint dict in a sub-folder, a notebook and a softmax model are graded
the first time, each verified with its exact parameter count; a copied public model is refused
by its fingerprint; a pickled whole model and training code at import are refused by the static
look before any box runs them. ``grader sanity`` prints its phases as it goes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from student_code import (
    HOMEWORK_CELLS,
    KUANGLIU_LENET,
    LENET_PARAMS,
    NOTEBOOK_PARAMS,
    PJ2_FILES,
    PJ2_MODEL,
    PJ2_PARAMS,
    SOFTMAX_NET,
    SOFTMAX_PARAMS,
    build,
    notebook,
    save_kuangliu_checkpoint,
    save_whole_model,
    write_folder,
)

from grader.assignment import load_assignment
from grader.data import load_dataset
from grader.sandbox.jail import bubblewrap_available

TRAINING_AT_IMPORT = (
    SOFTMAX_NET
    + """
net = Net()
optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
for step in range(100000):
    loss = net(torch.rand(8, 3, 32, 32)).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
"""
)


@pytest.fixture(scope="module")
def graded(tmp_path_factory, data_dir):
    """Grade one class folder once; rows by student."""
    if not bubblewrap_available():
        pytest.fail("bubblewrap is missing: apt-get install bubblewrap (scripts/setup.sh)")
    from grader.batch.run import grade_folder

    root = tmp_path_factory.mktemp("class")
    amy = write_folder(root / "amy", {"model.py": PJ2_MODEL, **PJ2_FILES})
    torch.save(build(PJ2_MODEL.replace("from models.blocks", "#").replace("from utils.nn", "#")
                     .replace("import torch\n", "import torch\n" + PJ2_FILES["utils/nn.py"]
                              + PJ2_FILES["models/blocks.py"])).state_dict(),
               amy / "model.pt")  # fmt: skip
    ben = write_folder(root / "ben", {"model.py": KUANGLIU_LENET})
    save_kuangliu_checkpoint(build(KUANGLIU_LENET), ben / "checkpoint" / "ckpt.pth")
    cai = write_folder(root / "cai", {"HW1.ipynb": notebook(HOMEWORK_CELLS)})
    imports = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
    cell = textwrap.dedent(HOMEWORK_CELLS[3]).replace("net = Net().to(device)", "")
    torch.save(build(imports + cell).state_dict(), cai / "cifar_net.pth")
    dan = write_folder(root / "dan", {"model.py": SOFTMAX_NET})
    torch.save(build(SOFTMAX_NET).state_dict(), dan / "model.pt")
    eve = write_folder(root / "eve", {"model.py": SOFTMAX_NET})
    save_whole_model(SOFTMAX_NET, eve / "model.pt")
    fay = write_folder(root / "fay", {"model.py": TRAINING_AT_IMPORT})
    torch.save(build(SOFTMAX_NET).state_dict(), fay / "model.pt")
    batch = grade_folder(root, spec=load_assignment("pj2-cifar10"), data_dir=data_dir,
                         out_dir=root.parent / "out", progress=False, jobs=1,
                         student_pages=False)  # fmt: skip
    return {row.student: row for row in batch.results}


def test_a_course_skeleton_with_helper_packages_is_verified(graded):
    amy = graded["amy"]
    assert amy.status == "ok" and amy.grade.verified, amy.message
    assert amy.grade.total_params == PJ2_PARAMS
    assert {"model.py", "utils/nn.py", "models/blocks.py", "model.pt"} <= set(amy.files)


def test_a_copied_public_model_is_refused_by_its_fingerprint(graded):
    ben = graded["ben"]
    assert ben.status == "invalid" and ben.grade.verified
    assert ben.grade.total_params == LENET_PARAMS
    assert "the architecture is exactly pytorch-cifar LeNet" in ben.message
    weights = next(c for c in ben.grade.checks if c.name == "weights")
    assert weights.passed and "its 'net' entry" in weights.message
    assert "removed the prefix 'module.'" in weights.message


def test_a_notebook_is_graded(graded):
    cai = graded["cai"]
    assert cai.status == "ok" and cai.grade.verified, cai.message
    assert cai.grade.total_params == NOTEBOOK_PARAMS
    assert "HW1.ipynb" in cai.files


def test_probabilities_are_flagged_and_calibrated_as_probabilities(graded, data_dir):
    dan = graded["dan"]
    assert dan.status == "ok" and dan.grade.verified and dan.grade.total_params == SOFTMAX_PARAMS
    assert any("the model's outputs are probabilities" in flag for flag in dan.flags)
    images = load_dataset("cifar10", "test", data_dir).images
    with torch.inference_mode():
        x = torch.from_numpy(np.array(images)).float() / 255
        outputs = build(SOFTMAX_NET).eval()(x).numpy()
    # the mean top probability of the outputs themselves, not of a softmax over them
    calibration = dan.grade.metrics.calibration
    assert calibration.mean_confidence == pytest.approx(outputs.max(1).mean(), 1e-4)


def test_mistakes_a_static_look_sees_are_refused_before_any_box(graded):
    assert graded["eve"].status == "invalid"
    assert "model.pt holds a whole pickled model" in graded["eve"].message
    assert graded["fay"].status == "invalid"
    line = TRAINING_AT_IMPORT.splitlines().index("for step in range(100000):") + 1
    assert f"model.py line {line} trains a model when model.py is imported" in graded["fay"].message
    assert not graded["fay"].grade.verified and graded["eve"].grade.total_params is None


def test_sanity_prints_its_phases_and_answers_a_mistake_at_once(tmp_path):
    folder = write_folder(tmp_path / "fay", {"model.py": TRAINING_AT_IMPORT})
    run = subprocess.run(
        [sys.executable, "-m", "grader.cli", "sanity", str(folder / "model.py")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 1
    assert "s] reading the files and looking at the code (nothing runs yet)..." in run.stderr
    assert 'under if __name__ == "__main__":' in run.stdout
