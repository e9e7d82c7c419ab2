"""``grader sanity ops.py``: a student's check of hand-written operations before uploading them,
through the grading boundary (each op against torch's autograd, with its points)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from grader.assignment import Assignment
from grader.grading.status import GradeStatus
from grader.ops.inside import OPS_FILE


def sanity_check_ops(ops_path: Path, spec: Assignment, *, sandbox: bool | None = None):
    """The student's local check of ``ops_path`` (and its sibling .py files), as a
    :class:`grader.grading.grade.Grade` with each op's points.

    ``sandbox=None`` uses the sandbox when bubblewrap is present and runs in-process otherwise.
    """
    from grader.grading.submission import grade_submission
    from grader.sandbox.jail import bubblewrap_available

    ops_path = Path(ops_path)
    if not ops_path.is_file():
        raise FileNotFoundError(f"{ops_path}: no such file")
    use_box = bubblewrap_available() if sandbox is None else sandbox
    file_name = spec.ops.file if spec.ops is not None else OPS_FILE
    with tempfile.TemporaryDirectory(prefix="grader-ops-") as tmp:
        work = Path(tmp) / "submission"
        work.mkdir()
        for sibling in ops_path.parent.glob("*.py"):
            if sibling != ops_path and sibling.name != file_name:
                shutil.copy2(sibling, work / sibling.name)
        shutil.copy2(ops_path, work / file_name)
        return grade_submission(work, spec, sandbox=use_box)


def run_ops_sanity(*, ops_path: Path, assignment: str) -> tuple[dict[str, Any], bool]:
    """``grader sanity ops.py``: the JSON report (with a ``text`` rendering), all ops passed?"""
    from grader.assignment import SpecError, load_assignment
    from grader.grading.grade import not_graded
    from grader.grading.status import SubmissionKind
    from grader.models.sanity import sanity_report

    try:
        spec = load_assignment(assignment)
        grade = sanity_check_ops(ops_path, spec)
    except (SpecError, OSError, ValueError) as exc:
        grade = not_graded(SubmissionKind.OPS, str(exc), sandboxed=False)
    passed = grade.status is GradeStatus.OK and bool(grade.checks)
    passed = passed and all(c.passed for c in grade.checks)
    report = sanity_report(grade, ran=True, names=(Path(ops_path), None))
    return json.loads(json.dumps(report, allow_nan=False)), passed
