"""Accepting a submission: the deadline and the daily limit of its entrant, then score a
predictions file at once or store a model's files and queue a grading job."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from grader.assignment import assignment_table
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
from leaderboard.scoring import Scored, SubmissionError, score_predictions, score_row
from leaderboard.status import JobKind, JobStatus, SubmissionKind, SubmissionStatus
from leaderboard.uploads import (
    Upload,
    UploadError,
    display_name,
    files_digest,
    model_files,
    store_files,
)


@dataclass
class Outcome:
    """What happened to an upload, in the shape the API answers."""

    status: str
    """graded, queued, invalid, refused or limited."""
    http_status: int
    assignment: str
    submission_id: int | None = None
    scores: dict[str, dict[str, float | None]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    late: bool = False
    reset_at: str | None = None
    remaining_today: int | None = None
    job_id: int | None = None
    """The grading job of a queued model (for the broker, after the commit)."""

    def to_json(self) -> dict:
        """The API's JSON body."""
        body: dict = {"status": self.status, "assignment": self.assignment}
        if self.submission_id is not None:
            body["submission_id"] = self.submission_id
        if self.scores:
            body["scores"] = self.scores
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
) -> Outcome:
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
        return Outcome(
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
    is_predictions = len(uploads) == 1 and uploads[0].name.lower().endswith(".csv")
    if spec.model is None and not is_predictions:
        return _invalid(
            spec.name,
            [f"this assignment takes one predictions .csv file (columns "
             f"{spec.id_column},{spec.label_column})"],
        )  # fmt: skip
    if spec.model is not None and is_predictions:
        return _invalid(
            spec.name,
            ["this assignment takes a model: a .zip holding model.py and a weights file "
             "(.pt or .safetensors), or those files uploaded together"],
        )  # fmt: skip
    scored: Scored | None = None
    files: dict[str, bytes] = {}
    errors: list[str] = []
    try:
        if is_predictions:
            name = display_name(uploads[0].name)
            scored = score_predictions(uploads[0].content, spec, name=name, data_dir=data_dir)
            files = {"predictions.csv": uploads[0].content}
        else:
            files = model_files(uploads, limit=spec.max_file_bytes * 4)
    except SubmissionError as exc:
        errors = exc.errors
    except UploadError as exc:
        errors = [str(exc)]
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
    submission = Submission(
        student_id=student_id,
        team_id=entrant.team_id,
        assignment=spec.name,
        kind=SubmissionKind.PREDICTIONS if scored is not None else SubmissionKind.MODEL,
        status=SubmissionStatus.GRADED if scored is not None else SubmissionStatus.QUEUED,
        original_name=", ".join(display_name(u.name) for u in uploads)[:255],
        sha256=(
            hashlib.sha256(uploads[0].content).hexdigest()
            if scored is not None
            else files_digest(files)
        ),
        created_at=now,
        late=late,
    )
    session.add(submission)
    session.flush()
    store_files(session, submission.id, files)
    outcome = Outcome(
        "graded" if scored is not None else "queued",
        200 if scored is not None else 202,
        spec.name,
        submission_id=submission.id,
        late=late,
        remaining_today=limit - used - 1,
    )
    if scored is not None:
        session.add(score_row(submission.id, scored))
        bump_board_version(session)
        outcome.scores = {
            "public": {"accuracy": scored.public_accuracy, "macro_f1": scored.public_macro_f1}
        }
    else:
        job = Job(
            submission_id=submission.id,
            kind=JobKind.MODEL,
            queue=assignment.queue,
            status=JobStatus.QUEUED,
            payload={"assignment": spec.name, "spec": assignment_table(spec)},
        )
        session.add(job)
        session.flush()
        outcome.job_id = job.id
    return outcome


def _invalid(assignment: str, errors: list[str]) -> Outcome:
    return Outcome("invalid", 422, assignment, errors=errors)


def _limited(assignment: str, limit: int, now: dt.datetime) -> Outcome:
    reset = next_reset(now).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Outcome(
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
