"""Public pages: the board, the upload form, a student's history, the accuracy/parameters plot."""

from __future__ import annotations

import io
from pathlib import Path

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    render_template,
    request,
)
from sqlalchemy import select

from leaderboard.auth import identify
from leaderboard.cache import cached_response
from leaderboard.db import get_session
from leaderboard.models import Score, Student, Submission, utcnow
from leaderboard.standings import display_name, is_revealed, load_baselines, standings
from leaderboard.submitting import Upload, next_reset, submit, used_today

bp = Blueprint("board", __name__)


@bp.get("/")
def index() -> Response:
    """The public board (cached; see :mod:`leaderboard.cache`)."""
    spec = current_app.config["SPEC"]

    def render(revealed: bool) -> str:
        rows = standings(
            get_session(), spec, revealed=revealed, pseudonyms=current_app.config["PSEUDONYMS"]
        )
        return render_template(
            "board.html",
            spec=spec,
            rows=rows,
            baselines=load_baselines(spec, current_app.config.get("BASELINE_DIR")),
            revealed=revealed,
            reset_at=next_reset(utcnow()),
        )

    return cached_response("board.html", render, "text/html")


@bp.route("/submit", methods=["GET", "POST"])
def upload() -> Response | str:
    """The upload form: a token and a predictions.csv (or a model's files)."""
    spec = current_app.config["SPEC"]
    if request.method == "GET":
        return render_template("submit.html", spec=spec, outcome=None)
    session = get_session()
    identity = identify(session, request.form.get("token", ""))
    if identity is None or identity.student_id is None:
        flash("Unknown token: paste the student token you were given.")
        return render_template("submit.html", spec=spec, outcome=None), 401
    uploads = [Upload(f.filename or "", f.read()) for f in request.files.getlist("file")]
    outcome = submit(
        session,
        spec,
        student_id=identity.student_id,
        uploads=uploads,
        upload_dir=Path(current_app.config["UPLOAD_DIR"]),
        data_dir=current_app.config["DATA_DIR"],
    )
    session.commit()
    return render_template("submit.html", spec=spec, outcome=outcome), outcome.http_status


@bp.get("/students/<int:student_id>")
def history(student_id: int) -> str:
    """One student's submissions with their public scores (private ones after the reveal)."""
    session = get_session()
    spec = current_app.config["SPEC"]
    student = session.get(Student, student_id)
    if student is None:
        abort(404)
    submissions = session.scalars(
        select(Submission)
        .where(Submission.student_id == student_id, Submission.assignment == spec.name)
        .order_by(Submission.created_at.desc(), Submission.id.desc())
    ).all()
    return render_template(
        "history.html",
        spec=spec,
        name=display_name(student, current_app.config["PSEUDONYMS"]),
        submissions=submissions,
        revealed=is_revealed(session, spec, utcnow()),
        used=used_today(session, student_id, utcnow()),
        reset_at=next_reset(utcnow()),
    )


@bp.get("/submissions/<int:submission_id>")
def status(submission_id: int) -> str:
    """The status of one submission (queued, running, done, failed with its reason)."""
    session = get_session()
    submission = session.get(Submission, submission_id)
    if submission is None:
        abort(404)
    spec = current_app.config["SPEC"]
    return render_template(
        "status.html",
        spec=spec,
        submission=submission,
        name=display_name(submission.student, current_app.config["PSEUDONYMS"]),
        revealed=is_revealed(session, spec, utcnow()),
    )


@bp.get("/plot/accuracy-vs-params.png")
def scatter() -> Response:
    """Public accuracy against parameter count for scored model submissions (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    session = get_session()
    spec = current_app.config["SPEC"]
    points = session.execute(
        select(Score.total_params, Score.public_accuracy)
        .join(Submission, Submission.id == Score.submission_id)
        .where(Submission.assignment == spec.name, Score.total_params.is_not(None))
    ).all()
    figure = Figure(figsize=(6, 4), dpi=100)
    axes = figure.subplots()
    baselines = [
        b
        for b in load_baselines(spec, current_app.config.get("BASELINE_DIR"))
        if b.parameters is not None
    ]
    if points or baselines:
        if points:
            axes.scatter(
                [p[0] for p in points], [p[1] for p in points], alpha=0.7, label="submissions"
            )
        if baselines:
            axes.scatter(
                [b.parameters for b in baselines],
                [b.accuracy for b in baselines],
                marker="*",
                s=120,
                color="tab:red",
                label="baselines (their own test images)",
            )
        axes.set_xscale("log")
        axes.legend(loc="lower right")
    else:
        axes.text(0.5, 0.5, "no model submissions scored yet", ha="center", va="center")
    axes.set_xlabel("trainable parameters")
    axes.set_ylabel("public accuracy")
    axes.set_title(f"{spec.title or spec.name}: accuracy vs. parameters")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return Response(buffer.getvalue(), mimetype="image/png")


@bp.app_template_filter("pct")
def pct(value: float | None) -> str:
    """An accuracy as a percentage with two decimals, or a dash."""
    return "–" if value is None else f"{100 * value:.2f}%"
