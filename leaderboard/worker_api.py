"""The API of grading workers (a worker token): claim an attempt, fetch its files, heartbeat,
post the result. A worker holds no database credentials; the server stores each result once."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from leaderboard.api import assignment_json
from leaderboard.db import get_engine, get_session
from leaderboard.jobs import (
    LEASE_S,
    Refusal,
    Stored,
    attempt_holds,
    claim_job,
    heartbeat,
    store_result,
)
from leaderboard.models import Job
from leaderboard.protocol import Claim, WorkerMessageError, attempt_fields, result_fields
from leaderboard.status import Role
from leaderboard.uploads import load_files, zip_files
from leaderboard.web import bearer_identity, course, json_error

bp = Blueprint("worker_api", __name__, url_prefix="/api/v1/worker")
STORED_STATUS = {
    Stored.STORED: 200,
    Stored.DUPLICATE: 200,
    Stored.STALE: 409,
    Stored.FORGED: 403,
    Stored.NOT_FOUND: 404,
}


@bp.before_request
def _worker_only() -> Response | None:
    identity = bearer_identity()
    if identity is None or identity.role is not Role.WORKER:
        response = json_error(
            401, "this API needs a worker token (grader roster worker) as Authorization: Bearer"
        )
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    return None


@bp.get("/hello")
def hello() -> Response:
    """The course's assignments and their queues (a worker prints what it serves)."""
    return jsonify(
        {
            "course": course().title,
            "assignments": [assignment_json(a) for a in course().assignments],
        }
    )


@bp.post("/jobs/<int:job_id>/claim")
def claim(job_id: int) -> Response:
    """Start a new attempt of the job; 409 when it is finished or given up."""
    body = request.get_json(silent=True) or {}
    owner = str(body.get("owner") or "worker")[:120]
    result = claim_job(get_engine(), job_id, owner, LEASE_S)
    if isinstance(result, Claim):
        return jsonify(result.to_json())
    status = 404 if result is Refusal.NOT_FOUND else 409
    return json_error(status, f"job {job_id}: {result.value}", outcome=result.value)


def _attempt() -> tuple[int, str] | Response:
    try:
        return attempt_fields(request.get_json(silent=True))
    except WorkerMessageError as exc:
        return json_error(422, str(exc))


@bp.post("/jobs/<int:job_id>/files")
def files(job_id: int) -> Response:
    """The submission's files as one .zip, for the job's running attempt only."""
    fields = _attempt()
    if isinstance(fields, Response):
        return fields
    refusal = attempt_holds(get_engine(), job_id, *fields)
    if refusal is not None:
        return json_error(STORED_STATUS[refusal] if refusal is not Stored.DUPLICATE else 409,
                          f"job {job_id}: {refusal.value}", outcome=refusal.value)  # fmt: skip
    job = get_session().get(Job, job_id)
    content = zip_files(load_files(get_session(), job.submission_id))
    return Response(content, mimetype="application/zip")


@bp.post("/jobs/<int:job_id>/heartbeat")
def beat(job_id: int) -> Response:
    """Extend the attempt's lease; 409 once another attempt holds the job."""
    fields = _attempt()
    if isinstance(fields, Response):
        return fields
    if heartbeat(get_engine(), job_id, *fields, LEASE_S):
        return jsonify({"outcome": "alive"})
    return json_error(409, f"job {job_id}: not this attempt's any more", outcome="stale")


@bp.post("/jobs/<int:job_id>/result")
def result(job_id: int) -> Response:
    """Complete and store the attempt's grade once from the worker's evidence: 200 stored or
    duplicate, 409 stale, 403 forged, 422 for a body off the protocol."""
    try:
        attempt, key, evidence = result_fields(request.get_data(cache=False))
    except WorkerMessageError as exc:
        return json_error(422, str(exc))
    outcome = store_result(
        get_engine(),
        job_id,
        attempt,
        key,
        evidence,
        spec_of=course().spec,
        data_dir=current_app.config["DATA_DIR"],
    )
    response = jsonify({"outcome": outcome.value, "job_id": job_id})
    response.status_code = STORED_STATUS[outcome]
    return response
