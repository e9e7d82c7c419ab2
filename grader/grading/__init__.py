"""The grading boundary: one grade, whichever door a submission came through.

- :func:`grade_submission` (``files, spec -> Grade``): what ``grader sanity``, ``grader check``
  and the server's upload call; :func:`collect_evidence` is its label-free half (what a worker
  runs) and :func:`complete_grade` its other half (scores, metrics, flags, points);
- :class:`Grade`: the record every front-end stores, renders and exports (versioned);
- :class:`Evidence`: what a worker hands back (versioned, generic over the model result);
- :class:`GradeStatus` and :class:`SubmissionKind`: the code base's one status and kind
  vocabulary; :func:`spec_kind` / :func:`kind_problem`: the one dispatch on the kind;
- :mod:`grader.grading.intake`: the one policy for untrusted files (limits, suffixes, safe
  unzip, staging), shared by the CLI and the server.

Names are imported on first use, so ``import grader.grading.status`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "GradeStatus": "status",
    "SubmissionKind": "status",
    "Grade": "grade",
    "PointLine": "grade",
    "PointSource": "grade",
    "Provenance": "grade",
    "Review": "grade",
    "GradeRecordError": "grade",
    "Evidence": "evidence",
    "EvidenceError": "evidence",
    "PredictionsFile": "evidence",
    "AnswerKey": "answer_key",
    "complete_grade": "complete",
    "collect_evidence": "submission",
    "grade_submission": "submission",
    "spec_kind": "kinds",
    "kind_problem": "kinds",
    "expected_files": "kinds",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'grader.grading' has no attribute {name!r}")
    return getattr(importlib.import_module(f"grader.grading.{module}"), name)
