"""Instructor pages: every submission, reveal, rescore, grades export, flag import."""

from __future__ import annotations

import functools

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import select

from leaderboard.auth import identify
from leaderboard.db import (
    begin_write,
    bump_board_version,
    get_session,
    read_setting,
    write_setting,
)
from leaderboard.grades import GradesFileError, flag_events, grades_csv, import_flags, rescore_all
from leaderboard.models import Event, Job, Submission, utcnow
from leaderboard.standings import is_revealed

bp = Blueprint("instructor", __name__, url_prefix="/instructor")


def instructor_required(view):
    """Allow the view to an instructor session or an instructor bearer token."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if session.get("instructor"):
            return view(*args, **kwargs)
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        identity = identify(get_session(), token) if scheme.lower() == "bearer" else None
        if identity is not None and identity.role == "instructor" and request.method == "GET":
            return view(*args, **kwargs)
        return redirect(url_for("instructor.login"))

    return wrapped


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str:
    """Sign in with an instructor token."""
    if request.method == "POST":
        identity = identify(get_session(), request.form.get("token", ""))
        if identity is not None and identity.role == "instructor":
            session.clear()
            session["instructor"] = True
            return redirect(url_for("instructor.overview"))
        flash("That is not an instructor token.")
        return render_template("login.html"), 401
    return render_template("login.html")


@bp.post("/logout")
def logout() -> Response:
    """Sign out."""
    session.clear()
    return redirect(url_for("board.index"))


@bp.get("/")
@instructor_required
def overview() -> str:
    """Every submission with private scores, jobs and flags."""
    db = get_session()
    spec = current_app.config["SPEC"]
    submissions = db.scalars(
        select(Submission)
        .where(Submission.assignment == spec.name)
        .order_by(Submission.id.desc())
        .limit(500)
    ).all()
    jobs = db.scalars(select(Job).order_by(Job.id.desc()).limit(100)).all()
    return render_template(
        "instructor.html",
        spec=spec,
        submissions=submissions,
        jobs=jobs,
        flags=flag_events(db),
        revealed=is_revealed(db, spec, utcnow()),
        manual_reveal=read_setting(db, f"revealed:{spec.name}") == "1",
    )


@bp.post("/reveal")
@instructor_required
def reveal() -> Response:
    """Reveal the private board (or hide it again)."""
    db = get_session()
    spec = current_app.config["SPEC"]
    value = "0" if request.form.get("hide") else "1"
    begin_write(db)
    write_setting(db, f"revealed:{spec.name}", value)
    db.add(Event(kind="reveal", message=f"private board {'hidden' if value == '0' else 'shown'}"))
    bump_board_version(db)
    db.commit()
    flash("Private board revealed." if value == "1" else "Private board hidden.")
    return redirect(url_for("instructor.overview"))


@bp.post("/rescore")
@instructor_required
def rescore() -> Response:
    """Score every submission again with the current spec."""
    db = get_session()
    begin_write(db)
    report = rescore_all(db, current_app.config["SPEC"], data_dir=current_app.config["DATA_DIR"])
    db.commit()
    flash(f"Rescored {report.rescored} submission(s).")
    for failure in report.failures[:20]:
        flash(failure)
    return redirect(url_for("instructor.overview"))


@bp.get("/grades.csv")
@instructor_required
def export_grades() -> Response:
    """Grades for the LMS as CSV."""
    spec = current_app.config["SPEC"]
    text = grades_csv(get_session(), spec)
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{spec.name}-grades.csv"'},
    )


@bp.post("/flags")
@instructor_required
def upload_flags() -> Response:
    """Import the flags of a ``grader check`` grades.csv."""
    db = get_session()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash("Choose the grades.csv written by `grader check`.")
        return redirect(url_for("instructor.overview"))
    begin_write(db)
    try:
        stored = import_flags(db, upload.read(), name="grades.csv")
    except GradesFileError as exc:
        flash(str(exc))
        return redirect(url_for("instructor.overview"))
    db.commit()
    flash(f"Imported {stored} flag(s).")
    return redirect(url_for("instructor.overview"))
