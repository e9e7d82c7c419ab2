"""The words of a grade: how grading one submission ended, and what kind of submission it was.

These are the only status and kind vocabularies of the code base: the model pipeline, the ops
checker, the batch, the exports and the course server all use them (the server adds its own
words for where a submission or a job *stands*: queued, running, graded).
"""

from __future__ import annotations

import enum


class GradeStatus(str, enum.Enum):
    """How grading one submission ended."""

    OK = "ok"
    """Graded: the submission ran (or was read) and its numbers were scored."""
    INVALID = "invalid"
    """The submission is at fault; the message says what to change. Costs no daily quota."""
    ERROR = "error"
    """The grader itself failed (a box that would not start); worth trying again."""

    def __str__(self) -> str:
        return self.value


class SubmissionKind(str, enum.Enum):
    """What a submission is; an assignment takes exactly one kind (:func:`spec_kind`)."""

    PREDICTIONS = "predictions"
    """A ``predictions.csv``: one predicted class per test image."""
    MODEL = "model"
    """A ``model.py`` and its weights, run in the sandbox on the test images."""
    OPS = "ops"
    """An ``ops.py`` of hand-written operations, checked against torch's autograd."""
    NONE = "none"
    """Nothing gradable was found (the grade says what was expected)."""

    def __str__(self) -> str:
        return self.value

    @property
    def needs_box(self) -> bool:
        """Whether grading runs the student's code (in a sandbox, on a worker)."""
        return self in (SubmissionKind.MODEL, SubmissionKind.OPS)
