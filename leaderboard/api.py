"""The REST API (bearer tokens): submit, read one's own submissions, mark finals, read a board.

Per assignment under ``/api/v1/assignments/<name>/``; ``/api/v1/submissions`` and
``/api/v1/leaderboard`` serve the course's first assignment as they did before the course had
several. Every object names its assignment.
"""

from __future__ import annotations

import dataclasses
import json

from flask import Blueprint, Response, current_app, jsonify, request

from grader.grading.points import shown_points
from grader.records import to_data
from leaderboard.auth import Identity
from leaderboard.baselines import load_baselines
from leaderboard.cache import board_state, cached_response
from leaderboard.course import CourseAssignment
from leaderboard.db import begin_write, get_session
from leaderboard.finals import FinalError, mark_final
from leaderboard.models import Submission, utcnow
from leaderboard.rules import entrant_for, is_revealed, naive_utc, next_reset, reveal_at
from leaderboard.scoring import stored_grade
from leaderboard.standings import own_submissions, real_names_shown, standings
from leaderboard.status import Role
from leaderboard.submitting import submit
from leaderboard.uploads import Upload
from leaderboard.web import (
    assignment_or_404,
    bearer_identity,
    course,
    json_error,
    may_see,
    send_job,
)

bp = Blueprint("api", __name__, url_prefix="/api/v1")
ISO = "%Y-%m-%dT%H:%M:%SZ"


def _unauthorized(message: str = "missing or unknown token") -> Response:
    response = json_error(401, f"{message}; send the header Authorization: Bearer TOKEN")
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _student() -> Identity | None:
    identity = bearer_identity()
    return identity if identity is not None and identity.role is Role.STUDENT else None


@bp.get("/assignments")
def assignments() -> Response:
    """Every assignment of the course with its rules."""
    return jsonify(
        {
            "course": course().title,
            "assignments": [assignment_json(a) for a in course().assignments],
        }
    )


@bp.post("/submissions")
def create_first() -> Response:
    """Submit to the course's first assignment."""
    return _create(course().first)


@bp.post("/assignments/<name>/submissions")
def create(name: str) -> Response:
    """Submit a file (multipart field ``file``, repeatable for a model's files)."""
    return _create(assignment_or_404(name))


def _create(assignment: CourseAssignment) -> Response:
    identity = _student()
    if identity is None:
        return _unauthorized()
    session = get_session()
    uploads = [Upload(f.filename or "", f.read()) for f in request.files.getlist("file")]
    outcome = submit(
        session,
        assignment,
        student_id=identity.student_id,
        uploads=uploads,
        data_dir=current_app.config["DATA_DIR"],
    )
    session.commit()
    send_job(outcome.job_id, assignment.queue)
    response = jsonify(outcome.to_json())
    response.status_code = outcome.http_status
    if outcome.status == "limited":
        seconds = (next_reset(utcnow()) - utcnow()).total_seconds()
        response.headers["Retry-After"] = str(max(1, int(seconds)))
    return response


@bp.get("/submissions")
def list_mine() -> Response:
    """The caller's own submissions to every assignment (or ``?assignment=NAME``), newest first."""
    identity = _student()
    if identity is None:
        return _unauthorized()
    wanted = request.args.get("assignment")
    chosen = [assignment_or_404(wanted)] if wanted else list(course().assignments)
    return jsonify({"submissions": _mine(identity, chosen)})


@bp.get("/assignments/<name>/submissions")
def list_mine_of(name: str) -> Response:
    """The caller's own submissions to one assignment, newest first."""
    identity = _student()
    if identity is None:
        return _unauthorized()
    return jsonify({"assignment": name, "submissions": _mine(identity, [assignment_or_404(name)])})


def _mine(identity: Identity, chosen: list[CourseAssignment]) -> list[dict]:
    session = get_session()
    now = utcnow()
    found = []
    for assignment in chosen:
        revealed = is_revealed(session, assignment.spec, now)
        entrant = entrant_for(session, assignment.spec, identity.student_id)
        for submission in own_submissions(session, entrant, assignment.spec):
            found.append(submission_json(submission, revealed=revealed))
    return sorted(found, key=lambda s: (s["created_at"], s["submission_id"]), reverse=True)


@bp.get("/submissions/<int:submission_id>")
def get_submission(submission_id: int) -> Response:
    """A submission's status and scores, for its owner (or their team) or an instructor."""
    identity = bearer_identity()
    if identity is None:
        return _unauthorized()
    session = get_session()
    submission = session.get(Submission, submission_id)
    if submission is None or not may_see(identity, submission):
        return json_error(404, "no such submission of yours")
    spec = course().spec(submission.assignment)
    revealed = identity.role is Role.INSTRUCTOR or (
        spec is not None and is_revealed(session, spec, utcnow())
    )
    instructor = identity.role is Role.INSTRUCTOR
    return jsonify(submission_json(submission, revealed=revealed, instructor=instructor))


@bp.route("/submissions/<int:submission_id>/final", methods=["POST", "DELETE"])
def final(submission_id: int) -> Response:
    """Mark a submission final for the private board (POST), or unmark it (DELETE)."""
    identity = _student()
    if identity is None:
        return _unauthorized()
    session = get_session()
    submission = session.get(Submission, submission_id)
    if submission is None or not may_see(identity, submission):
        return json_error(404, "no such submission of yours")
    begin_write(session)
    try:
        mark_final(
            session,
            course().spec(submission.assignment),
            submission,
            identity.student_id,
            final=request.method == "POST",
        )
    except FinalError as exc:
        session.rollback()
        return json_error(409, str(exc))
    session.commit()
    return jsonify(submission_json(submission, revealed=False))


@bp.get("/leaderboard")
def first_leaderboard() -> Response:
    """The board of the course's first assignment."""
    return _leaderboard(course().first)


@bp.get("/assignments/<name>/leaderboard")
def leaderboard(name: str) -> Response:
    """One assignment's public board as JSON (cached like the page)."""
    return _leaderboard(assignment_or_404(name))


def _leaderboard(assignment: CourseAssignment) -> Response:
    spec = assignment.spec

    def state() -> tuple:
        session = get_session()
        return board_state(is_revealed(session, spec, utcnow()), reveal_at(session, spec))

    def render() -> str:
        session = get_session()
        revealed = is_revealed(session, spec, utcnow())
        real_names = real_names_shown(session, current_app.config["PSEUDONYMS"])
        rows = standings(session, spec, revealed=revealed, real_names=real_names)
        baselines = load_baselines(
            spec, current_app.config.get("BASELINE_DIR"),
            data_dir=current_app.config.get("DATA_DIR"), revealed=revealed,
        )  # fmt: skip
        body = {
            "assignment": spec.name,
            "revealed": revealed,
            "rows": [row.to_json() for row in rows],
            "baselines": [
                {"assignment": spec.name, **dataclasses.asdict(b), "accuracy": b.accuracy}
                for b in baselines.shown
            ],
            "baselines_not_shown": baselines.hidden,
        }
        return json.dumps(body)

    return cached_response(f"leaderboard:{spec.name}", state, render, "application/json")


def assignment_json(assignment: CourseAssignment) -> dict:
    """An assignment and its rules as JSON."""
    spec = assignment.spec
    deadline = naive_utc(spec.deadline)
    return {
        "assignment": spec.name,
        "title": spec.title,
        "kind": assignment.kind.value,
        "dataset": spec.dataset,
        "queue": assignment.queue.value,
        "deadline": deadline.strftime(ISO) if deadline else None,
        "late_policy": spec.late_policy,
        "daily_limit": spec.daily_limit,
        "entry_rule": spec.entry_rule,
        "final_submissions": spec.final_submissions,
        "teams": spec.teams,
        "max_points": spec.max_points,
        "time_limit_s": (
            spec.model.time_limit_s
            if spec.model is not None
            else spec.ops.time_limit_s
            if spec.ops is not None
            else None
        ),
    }


def submission_json(submission: Submission, *, revealed: bool, instructor: bool = False) -> dict:
    """A submission as JSON, from its stored grade: the private score and the points that hang
    on the private split only when ``revealed``; the grade's flags for an instructor."""
    body: dict = {
        "submission_id": submission.id,
        "assignment": submission.assignment,
        "kind": submission.kind.value,
        "status": submission.status.value,
        "created_at": submission.created_at.strftime(ISO),
        "late": submission.late,
        "final": submission.final,
        "message": submission.message,
    }
    score = submission.score
    if score is not None:
        scores: dict = {
            "public": {"accuracy": score.public_accuracy, "macro_f1": score.public_macro_f1}
        }
        if revealed:
            scores["private"] = {
                "accuracy": score.private_accuracy,
                "macro_f1": score.private_macro_f1,
            }
        body["scores"] = scores
    grade = stored_grade(submission)
    spec = course().spec(submission.assignment)
    if grade is None or spec is None:
        return body
    splits = ("public", "private", "all") if revealed else spec.student_splits
    body["points"] = shown_points(grade, spec, splits).to_json()
    if grade.total_params is not None:
        body["total_params"] = grade.total_params
        body["flops"] = grade.flops
        body["verified"] = grade.verified
    if grade.checks:
        body["checks"] = [to_data(check) for check in grade.checks]
    if instructor:
        body["flags"] = list(grade.flags)
    return body
