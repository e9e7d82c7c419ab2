"""``grader check`` for ``ops.py`` assignments: every student's hand-written operations.

Each student's ``ops.py`` is found among their files (any layout the intake reads), copied with
the intake's checks, and graded by :func:`grader.ops.grade.grade_ops_folder` (the student's code
in the sandbox, every comparison outside it). Each op is a check worth its points; the row's
points are the ops that pass.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from grader.assignment import Assignment
from grader.batch.intake import StudentFiles
from grader.batch.results import CheckResult, StudentResult
from grader.grading.intake import IntakeError, IntakeLimits, copy_plain_file


def grade_ops_student(
    found: StudentFiles, spec: Assignment, staging: Path, limits: IntakeLimits
) -> StudentResult:
    """The row of one student of an ``[ops]`` assignment."""
    from grader.ops.grade import grade_ops_folder

    ops = spec.ops
    if ops is None:
        raise ValueError(f"assignment {spec.name!r} has no [ops] table")
    student = found.student
    if found.problems:
        return StudentResult(student, "invalid", "ops", message=" | ".join(found.problems))
    matches = [n for n in found.files if PurePosixPath(n).name == ops.file]
    ignored = sorted(n for n in found.files if n not in matches[:1])
    if len(matches) != 1:
        listed = ", ".join(sorted(found.files)) or "nothing"
        why = "more than one" if matches else "no"
        message = f"{why} {ops.file} in the submission; found {listed}"
        return StudentResult(student, "invalid", "ops", message=message, ignored=ignored)
    folder = staging / found.key
    try:
        copy_plain_file(found.files[matches[0]], folder / ops.file,
                        max_bytes=limits.max_file_bytes, shown=matches[0])  # fmt: skip
    except IntakeError as exc:
        return StudentResult(student, "invalid", "ops", message=str(exc), ignored=ignored)
    grade = grade_ops_folder(folder, spec)
    checks = [
        CheckResult(row.name, row.passed, row.message or _errors(row), row.earned)
        for row in grade.rows
    ]
    status = "ok" if grade.status == "ok" else grade.status
    return StudentResult(student, status, "ops", message=grade.message, checks=checks,
                         points=grade.points if status == "ok" else None, files=matches[:1],
                         ignored=ignored)  # fmt: skip


def write_ops_report(batch, spec: Assignment) -> Path:
    """``report.html`` of an ``[ops]`` batch: every student, every op, pass or fail."""
    from grader.batch.html import environment

    html = environment().get_template("ops_report.html.j2").render(
        batch=batch, spec=spec, ops=spec.ops.op if spec.ops else (),
        max_points=spec.ops.max_points if spec.ops else 0,
    )  # fmt: skip
    batch.report_html.write_text(html, encoding="utf-8")
    return batch.report_html


def _errors(row) -> str:
    parts = [
        f"{what} error {value:.1e}"
        for what, value in (("forward", row.forward_error), ("backward", row.backward_error),
                            ("gradient check", row.gradcheck_error))
        if value is not None
    ]  # fmt: skip
    return ", ".join(parts) or ("pass" if row.passed else "fail")
