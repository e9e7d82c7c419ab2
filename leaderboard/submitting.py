"""Accepting a submission: the deadline and the daily limit of its entrant, then grade a
predictions file at once, or store a model's or an ``ops.py``'s files and queue a grading job.

Both go through the grading boundary: a predictions file is graded here by
:func:`grader.grading.grade_submission`, a queued job by a worker and the server
(:func:`leaderboard.jobs.store_result`); the kind of file an assignment takes is the boundary's
one dispatch (:func:`grader.grading.kind_problem`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from grader.assignment import assignment_table
from grader.grading.complete import PROBLEM_SEPARATOR
from grader.grading.grade import Grade
from grader.grading.kinds import kind_problem, spec_kind
from grader.grading.points import ShownPoints, shown_points
from grader.grading.status import GradeStatus, SubmissionKind
from grader.grading.submission import grade_submission
from grader.predictions.solution import SolutionError
from leaderboard.course import CourseAssignment
from leaderboard.db import begin_write, bump_board_version
from leaderboard.models import Event, Job, Submission, utcnow
from leaderboard.rules import (
    daily_limit_for,
    deadline_for,
    entrant_for,
    next_reset,
    used_today,
)
from leaderboard.scoring import answer_key, store_grade
from leaderboard.status import JobStatus, SubmissionStatus
from leaderboard.uploads import (
    Upload,
    UploadError,
    display_name,
    files_digest,
    gather_files,
    store_files,
)


@dataclass
class UploadOutcome:
    """What happened to an upload, in the shape the API answers."""

    status: str
    """graded, queued, invalid, refused or limited."""
    http_status: int
    assignment: str
    submission_id: int | None = None
    scores: dict[str, dict[str, float | None]] = field(default_factory=dict)
    points: ShownPoints | None = None
    """A graded upload's points as the student may see them."""
    errors: list[str] = field(default_factory=list)
    late: bool = False
    reset_at: str | None = None
    remaining_today: int | None = None
    job_id: int | None = None
    """The grading job of a queued submission (for the broker, after the commit)."""

    def to_json(self) -> dict:
        """The API's JSON body."""
        body: dict = {"status": self.status, "assignment": self.assignment}
        if self.submission_id is not None:
            body["submission_id"] = self.submission_id
        if self.scores:
            body["scores"] = self.scores
        if self.points is not None:
            body["points"] = self.points.to_json()
        if self.errors:
            body["errors"] = self.errors
        if self.late:
            body["late"] = True
        if self.reset_at is not None:
            body["reset_at"] = self.reset_at
        if self.remaining_today is not None:
            body["remaining_today"] = self.remaining_today
        return body


def submit(
    session: Session,
    assignment: CourseAssignment,
    *,
    student_id: int,
    uploads: list[Upload],
    data_dir=None,
    now: dt.datetime | None = None,
) -> UploadOutcome:
    """Apply the rules to an upload and score or queue it; the caller commits.

    Validation and scoring run before the write transaction starts, so the database's write
    lock is held only for the inserts; the daily limit is checked again under that lock.
    """
    spec = assignment.spec
    now = now or utcnow()
    uploads = [u for u in uploads if u.name or u.content]
    if not uploads:
        return _invalid(spec.name, ["no file was uploaded; choose a file to submit"])
    deadline = deadline_for(session, spec, student_id)
    late = deadline is not None and now > deadline
    if late and spec.late_policy == "refuse":
        return UploadOutcome(
            "refused",
            403,
            spec.name,
            errors=[f"the deadline ({deadline:%Y-%m-%d %H:%M:%S} UTC) has passed; "
                    "no more submissions to this assignment"],
        )  # fmt: skip
    entrant = entrant_for(session, spec, student_id)
    limit = daily_limit_for(session, spec, student_id)
    if used_today(session, spec, entrant, now) >= limit:
        return _limited(spec.name, limit, now)
    kind = spec_kind(spec)
    files: dict[str, bytes] = {}
    errors: list[str] = []
    grade: Grade | None = None
    names = [display_name(u.name) for u in uploads]
    zipped = any(n.lower().endswith(".zip") for n in names)
    problem = None if zipped and kind.needs_box else kind_problem(spec, names)
    if problem is None and kind.needs_box:  # the files of a model or an ops.py, checked
        try:
            files = gather_files(uploads, limit=spec.max_file_bytes * 4)
            problem = kind_problem(spec, files)
        except UploadError as exc:
            problem = str(exc)
    if problem is not None:
        errors = [problem]
    elif kind is SubmissionKind.PREDICTIONS:
        (name,), content = names, uploads[0].content
        files = {"predictions.csv": content}
        try:
            grade = grade_submission({name: content}, spec, answer_key=answer_key(spec, data_dir))
        except SolutionError as exc:  # the server's set-up, not the student's file
            return UploadOutcome("error", 500, spec.name, errors=[
                f"the server cannot grade this assignment yet ({exc}); tell the instructor"
            ])  # fmt: skip
        if grade.status is not GradeStatus.OK:
            errors = [p for p in grade.message.split(PROBLEM_SEPARATOR) if p]
    begin_write(session)
    if errors:
        session.add(
            Event(
                kind="invalid",
                student_id=student_id,
                assignment=spec.name,
                message="; ".join(errors),
            )
        )
        return _invalid(spec.name, errors)
    used = used_today(session, spec, entrant, now)
    if used >= limit:  # a parallel upload took the last slot
        return _limited(spec.name, limit, now)
    graded = grade is not None
    submission = Submission(
        student_id=student_id,
        team_id=entrant.team_id,
        assignment=spec.name,
        kind=kind,
        status=SubmissionStatus.GRADED if graded else SubmissionStatus.QUEUED,
        message=grade.message if graded else "",
        original_name=", ".join(display_name(u.name) for u in uploads)[:255],
        sha256=grade.predictions_sha256 if graded else files_digest(files),
        created_at=now,
        late=late,
    )
    session.add(submission)
    session.flush()
    store_files(session, submission.id, files)
    outcome = UploadOutcome(
        "graded" if graded else "queued",
        200 if graded else 202,
        spec.name,
        submission_id=submission.id,
        late=late,
        remaining_today=limit - used - 1,
    )
    if graded:
        store_grade(session, submission, grade)
        bump_board_version(session)
        outcome.scores = {
            "public": {
                "accuracy": grade.public_accuracy,
                "macro_f1": grade.scores["public"].get("macro_f1"),
            }
        }
        outcome.points = shown_points(grade, spec, spec.student_splits)
    else:
        job = Job(
            submission_id=submission.id,
            kind=kind,
            queue=assignment.queue,
            status=JobStatus.QUEUED,
            payload={"assignment": spec.name, "spec": assignment_table(spec)},
        )
        session.add(job)
        session.flush()
        outcome.job_id = job.id
    return outcome


def _invalid(assignment: str, errors: list[str]) -> UploadOutcome:
    return UploadOutcome("invalid", 422, assignment, errors=errors)


def _limited(assignment: str, limit: int, now: dt.datetime) -> UploadOutcome:
    reset = next_reset(now).strftime("%Y-%m-%dT%H:%M:%SZ")
    return UploadOutcome(
        "limited",
        429,
        assignment,
        errors=[
            f"daily limit of {limit} submission(s) to {assignment} reached; "
            f"it resets at {reset} (UTC midnight)"
        ],
        reset_at=reset,
        remaining_today=0,
    )
