"""Helpers every blueprint shares: the course, who is asking, JSON errors, sending queued jobs."""

from __future__ import annotations

import logging

from flask import Response, abort, current_app, jsonify, request, session

from leaderboard.auth import Identity, identify, identity_of_token_id
from leaderboard.course import Course, CourseAssignment
from leaderboard.db import get_session
from leaderboard.models import Student, Submission
from leaderboard.status import JobQueue, Role

log = logging.getLogger(__name__)


def course() -> Course:
    """The course this server hosts."""
    return current_app.config["COURSE"]


def assignment_or_404(name: str) -> CourseAssignment:
    """The course's assignment ``name``; 404 when there is none."""
    found = course().get(name)
    if found is None:
        abort(404)
    return found


def bearer() -> str | None:
    """The bearer token of the request, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def bearer_identity() -> Identity | None:
    """The identity of the request's bearer token."""
    return identify(get_session(), bearer())


def signed_in() -> Identity | None:
    """The identity of the signed-in session (a student or instructor), if still valid."""
    identity = identity_of_token_id(get_session(), session.get("token_id"))
    if identity is None and session.get("token_id") is not None:
        session.clear()  # the token was reset or revoked: the session ends with it
    return identity


def viewer() -> Identity | None:
    """Who is looking: a bearer token first, else the signed-in session."""
    return bearer_identity() or signed_in()


def is_instructor(identity: Identity | None) -> bool:
    """Whether ``identity`` is an instructor."""
    return identity is not None and identity.role is Role.INSTRUCTOR


def json_error(status: int, *errors: str, **extra) -> Response:
    """A JSON error body ``{"status": "error", "errors": [...]}`` with ``status``."""
    response = jsonify({"status": "error", "errors": list(errors), **extra})
    response.status_code = status
    return response


def send_job(job_id: int | None, queue: JobQueue) -> None:
    """Send a committed job to the broker, when there is one (else it waits for the embedded
    worker). A broker that cannot be reached leaves the job queued in the database, to be sent
    again from the instructor page; the upload still succeeds."""
    publisher = current_app.extensions.get("job_publisher")
    if publisher is None or job_id is None:
        return
    try:
        publisher.send(job_id, queue)
    except Exception as exc:  # noqa: BLE001 - kombu raises many kinds; the job stays queued
        log.error("job %s could not be sent to the broker: %s", job_id, exc)


def may_see(identity: Identity | None, submission: Submission) -> bool:
    """Whether ``identity`` may see ``submission``: its student, their team, or an instructor."""
    if identity is None:
        return False
    if identity.role is Role.INSTRUCTOR:
        return True
    if identity.role is not Role.STUDENT or identity.student_id is None:
        return False
    if submission.student_id == identity.student_id:
        return True
    if submission.team_id is None:
        return False
    student = get_session().get(Student, identity.student_id)
    return student is not None and student.team_id == submission.team_id
