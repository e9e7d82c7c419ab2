"""The report of ``grader check`` on an ``ops.py`` assignment: every student, every op.

Each student's ``ops.py`` is graded by :func:`grader.grading.grade_submission` like any other
submission (the student's code in the sandbox, every comparison outside it); each op is a check
worth its points.
"""

from __future__ import annotations

from pathlib import Path

from grader.assignment import Assignment
from grader.batch.results import BatchResult


def write_ops_report(batch: BatchResult, spec: Assignment) -> Path:
    """``report.html`` of an ``[ops]`` batch: every student, every op, pass or fail."""
    from grader.batch.html import environment

    html = environment().get_template("ops_report.html.j2").render(
        batch=batch, spec=spec, ops=spec.ops.op if spec.ops else (), max_points=spec.max_points,
    )  # fmt: skip
    batch.report_html.write_text(html, encoding="utf-8")
    return batch.report_html
