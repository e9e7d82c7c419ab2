"""The grading boundary takes a submission as a folder or as its files' bytes, alike."""

from __future__ import annotations

from model_helpers import SUBMISSIONS

from grader.assignment import load_assignment
from grader.grading.status import GradeStatus
from grader.grading.submission import grade_submission


def test_a_predictions_folder_and_its_bytes_get_the_same_grade(data_dir):
    spec = load_assignment("cifar10")
    folder = SUBMISSIONS / "cifar10" / "alice"
    from_folder = grade_submission(folder, spec, data_dir=data_dir)
    content = (folder / "predictions.csv").read_bytes()
    from_bytes = grade_submission({"predictions.csv": content}, spec, data_dir=data_dir)
    assert from_folder.status is GradeStatus.OK, from_folder.message
    assert from_folder.points == from_bytes.points is not None
    assert from_folder.scores == from_bytes.scores
