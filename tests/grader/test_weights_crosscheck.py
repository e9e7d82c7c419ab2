"""Numbers reported from inside the sandbox are checked against the weights file outside it."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from grader.assignment import load_assignment
from grader.modelgrade import grade_model_folder
from grader.weights import count_mismatch_flag, load_state_dict, parameter_count

HERE = Path(__file__).parent
ADA = HERE.parents[1] / "submissions" / "simplenn" / "ada"

# A SimpleNN whose parameters() hides fc1 (576 * 120 + 120 = 69,240 values): the in-box count
# reads 82,030 - 69,240 = 12,790.
SLY_MODEL = (
    (HERE / "attacks" / "simplenn.py").read_text()
    + """

    def parameters(self, recurse=True):
        return (p for name, p in self.named_parameters(recurse=recurse) if "fc1" not in name)
"""
)


def test_parameter_count_of_a_real_state_dict_skips_batchnorm_statistics():
    assert parameter_count(load_state_dict(ADA / "model.pt")) == 82_030
    bn = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8))
    # conv 8*3*3*3 + 8, BN weight + bias 8 + 8; running_mean/var and num_batches_tracked excluded
    assert parameter_count(bn.state_dict()) == 8 * 27 + 8 + 16


def test_matching_count_raises_no_flag_and_a_mismatch_names_both_numbers():
    weights = ADA / "model.pt"
    assert count_mismatch_flag(82_030, weights) is None
    flag = count_mismatch_flag(12_790, weights)
    assert flag is not None
    assert "12,790" in flag and "82,030" in flag and "model.pt" in flag


def test_a_model_hiding_parameters_passes_its_own_count_but_is_flagged(tmp_path, data_dir):
    folder = tmp_path / "sly"
    folder.mkdir()
    (folder / "model.py").write_text(SLY_MODEL)
    shutil.copy(ADA / "model.pt", folder / "model.pt")
    spec_file = tmp_path / "lab.toml"
    spec_file.write_text(
        'name = "lab"\ndataset = "cifar10"\nsolution = "dataset"\n'
        "[model]\nparams_max = 50000\ntime_limit_s = 120\n"
    )
    grade = grade_model_folder(folder, load_assignment(spec_file), data_dir=data_dir, slot=45)
    assert grade.total_params == 12_790  # what the model claims inside the box
    assert grade.status == "ok", grade.message
    assert any("parameter count mismatch" in f and "82,030" in f for f in grade.flags)
