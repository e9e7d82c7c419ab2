"""The one submission-kind dispatch: what an assignment takes, and whether the files are that.

An assignment with an ``[ops]`` table takes an ``ops.py``, one with a ``[model]`` table a model
(``model.py`` or a notebook, and its weights), any other a predictions CSV. ``grader check``, the
server's upload and every worker ask :func:`spec_kind` and :func:`kind_problem`, so a file is
refused with the same words wherever it arrives.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath

from grader.assignment import Assignment
from grader.grading.intake import (
    MODEL_FILE,
    NOTEBOOK_SUFFIX,
    WEIGHT_SUFFIXES,
    is_notebook,
    is_weights_file,
)
from grader.grading.status import SubmissionKind


def spec_kind(spec: Assignment) -> SubmissionKind:
    """The kind of submission ``spec`` grades."""
    if spec.ops is not None:
        return SubmissionKind.OPS
    if spec.model is not None:
        return SubmissionKind.MODEL
    return SubmissionKind.PREDICTIONS


def expected_files(spec: Assignment) -> str:
    """What ``spec`` takes, in words (for every message that refuses a file)."""
    kind = spec_kind(spec)
    if kind is SubmissionKind.OPS:
        return f"{spec.ops.file}, your hand-written operations"
    if kind is SubmissionKind.MODEL:
        suffixes = ", ".join(WEIGHT_SUFFIXES)
        weights = "" if _weights_optional(spec) else f" and a weights file ({suffixes})"
        return (
            f"a model: {MODEL_FILE} (or a notebook, {NOTEBOOK_SUFFIX}) defining the model "
            f"class{weights}"
        )
    return f"one predictions .csv file (columns {spec.id_column},{spec.label_column})"


def kind_problem(
    spec: Assignment, names: Iterable[str], *, weights_required: bool = True
) -> str | None:
    """Why the files ``names`` are not a submission ``spec`` takes, or None when they are.
    ``weights_required=False``: a model may come without weights (a check on a probe batch)."""
    names = list(names)
    bases = [PurePosixPath(n).name.lower() for n in names]
    csvs = [b for b in bases if b.endswith(".csv")]
    kind = spec_kind(spec)
    takes = f"this assignment takes {expected_files(spec)}"
    listed = ", ".join(sorted(PurePosixPath(n).name for n in names)) or "nothing"
    if kind is SubmissionKind.PREDICTIONS:
        if len(names) == 1 and len(csvs) == 1:
            return None
        if MODEL_FILE in bases:
            return f"{takes}, not a model; found {listed}"
        return f"{takes}; found {listed}"
    if kind is SubmissionKind.OPS:
        if spec.ops.file.lower() in bases:
            return None
        what = "a predictions file" if csvs else listed
        return f"{takes}; found {what}"
    if MODEL_FILE not in bases and not any(is_notebook(b) for b in bases):
        what = "a predictions file" if csvs and len(names) == 1 else listed
        return f"{takes}; found {what}"
    optional = _weights_optional(spec) or not weights_required
    if not optional and not any(is_weights_file(b) for b in bases):
        return (
            f"no weights file ({', '.join(WEIGHT_SUFFIXES)}) among the files ({listed}); save "
            "the trained weights with torch.save(model.state_dict(), 'model.pt') and submit "
            f"them with {MODEL_FILE}"
        )
    return None


def _weights_optional(spec: Assignment) -> bool:
    """A model an experiment trains may come without weights."""
    return spec.model is not None and spec.model.experiment is not None
