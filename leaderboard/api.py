"""The REST API: submit with a bearer token, read a submission's status, read the board."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import select

from leaderboard.auth import Identity, identify
from leaderboard.cache import cached_response
from leaderboard.db import get_session
from leaderboard.models import Submission, utcnow
from leaderboard.standings import as_json, is_revealed, load_baselines, standings
from leaderboard.submitting import Upload, next_reset, submit

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _client_key() -> str:
    token = _bearer()
    return f"token:{token[:16]}" if token else f"ip:{request.remote_addr}"


@bp.before_request
def _rate_limit() -> Response | None:
    allowed, retry_after = current_app.extensions["rate_limiter"].allow(_client_key())
    if allowed:
        return None
    response = jsonify(
        {"status": "error", "errors": [f"too many requests; retry in {retry_after:.0f} s"]}
    )
    response.status_code = 429
    response.headers["Retry-After"] = str(max(1, round(retry_after)))
    return response


def _unauthorized(message: str = "missing or unknown token") -> Response:
    response = jsonify(
        {"status": "error", "errors": [f"{message}; send the header Authorization: Bearer TOKEN"]}
    )
    response.status_code = 401
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _identity() -> Identity | None:
    return identify(get_session(), _bearer())


@bp.post("/submissions")
def create_submission() -> Response:
    """Submit a file (multipart field ``file``, repeatable for a model's files)."""
    identity = _identity()
    if identity is None or identity.student_id is None:
        return _unauthorized()
    session = get_session()
    uploads = [Upload(f.filename or "", f.read()) for f in request.files.getlist("file")]
    outcome = submit(
        session,
        current_app.config["SPEC"],
        student_id=identity.student_id,
        uploads=uploads,
        upload_dir=Path(current_app.config["UPLOAD_DIR"]),
        data_dir=current_app.config["DATA_DIR"],
    )
    session.commit()
    response = jsonify(outcome.to_json())
    response.status_code = outcome.http_status
    if outcome.status == "limited":
        seconds = (next_reset(utcnow()) - utcnow()).total_seconds()
        response.headers["Retry-After"] = str(max(1, int(seconds)))
    return response


@bp.get("/submissions/<int:submission_id>")
def get_submission(submission_id: int) -> Response:
    """A submission's status and public score, for its owner or an instructor."""
    identity = _identity()
    if identity is None:
        return _unauthorized()
    session = get_session()
    submission = session.get(Submission, submission_id)
    if submission is None or (
        identity.role != "instructor" and submission.student_id != identity.student_id
    ):
        response = jsonify({"status": "error", "errors": ["no such submission of yours"]})
        response.status_code = 404
        return response
    spec = current_app.config["SPEC"]
    revealed = identity.role == "instructor" or is_revealed(session, spec, utcnow())
    return jsonify(submission_json(submission, revealed=revealed))


@bp.get("/submissions")
def list_submissions() -> Response:
    """The caller's own submissions, newest first."""
    identity = _identity()
    if identity is None or identity.student_id is None:
        return _unauthorized()
    session = get_session()
    spec = current_app.config["SPEC"]
    revealed = is_revealed(session, spec, utcnow())
    rows = session.scalars(
        select(Submission)
        .where(Submission.student_id == identity.student_id)
        .order_by(Submission.id.desc())
    ).all()
    return jsonify({"submissions": [submission_json(s, revealed=revealed) for s in rows]})


@bp.get("/leaderboard")
def leaderboard() -> Response:
    """The public board as JSON (cached like the page)."""
    spec = current_app.config["SPEC"]

    def render(revealed: bool) -> str:
        rows = standings(
            get_session(), spec, revealed=revealed, pseudonyms=current_app.config["PSEUDONYMS"]
        )
        baselines = load_baselines(spec, current_app.config.get("BASELINE_DIR"))
        body = {
            "assignment": spec.name,
            "revealed": revealed,
            "rows": as_json(rows),
            "baselines": [dataclasses.asdict(b) for b in baselines],
        }
        return json.dumps(body)

    return cached_response("leaderboard.json", render, "application/json")


def submission_json(submission: Submission, *, revealed: bool) -> dict:
    """A submission as JSON; the private score only when ``revealed``."""
    body: dict = {
        "submission_id": submission.id,
        "kind": submission.kind,
        "status": submission.status,
        "created_at": submission.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "late": submission.late,
        "message": submission.message,
    }
    score = submission.score
    if score is not None:
        scores = {"public": {"accuracy": score.public_accuracy, "macro_f1": score.public_macro_f1}}
        if revealed:
            scores["private"] = {
                "accuracy": score.private_accuracy,
                "macro_f1": score.private_macro_f1,
            }
        body["scores"] = scores
        if score.total_params is not None:
            body["total_params"] = score.total_params
            body["flops"] = score.flops
    return body
