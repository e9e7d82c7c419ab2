"""Instructor pages: every submission of an assignment with the live flags, reveal, rescore,
grades for the LMS, real names on the board, imported flags, jobs sent to the broker again."""

from __future__ import annotations

import functools

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from grader.exports import ExportFormat, MissingGrade
from leaderboard.auth import identify
from leaderboard.db import (
    begin_write,
    bump_board_version,
    get_session,
    write_setting,
)
from leaderboard.flags import live_flags
from leaderboard.grades import GradesFileError, export_grades, import_flags, rescore_all
from leaderboard.jobs import requeue_waiting
from leaderboard.models import Event, Job, Override, Submission, utcnow
from leaderboard.rules import entrant_of, is_revealed, manually_revealed
from leaderboard.scoring import store_grade, stored_evidence, stored_grade
from leaderboard.standings import real_names_shown
from leaderboard.status import Role
from leaderboard.web import assignment_or_404, bearer_identity, course, signed_in

bp = Blueprint("instructor", __name__, url_prefix="/instructor")


def instructor_required(view):
    """Allow the view to a signed-in instructor, or to an instructor bearer token for GETs."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        identity = signed_in()
        if identity is not None and identity.role is Role.INSTRUCTOR:
            return view(*args, **kwargs)
        identity = bearer_identity()
        if identity is not None and identity.role is Role.INSTRUCTOR and request.method == "GET":
            return view(*args, **kwargs)
        return redirect(url_for("instructor.login"))

    return wrapped


def _chosen():
    return assignment_or_404(request.values.get("assignment") or course().first.name)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int]:
    """Sign in with an instructor token."""
    if request.method == "POST":
        identity = identify(get_session(), request.form.get("token", ""))
        if identity is not None and identity.role is Role.INSTRUCTOR:
            session.clear()
            session["token_id"] = identity.token_id
            return redirect(url_for("instructor.overview"))
        flash("That is not an instructor token.")
        return render_template("login.html", who="Instructor", next=None), 401
    return render_template("login.html", who="Instructor", next=None)


@bp.post("/logout")
def logout() -> Response:
    """Sign out."""
    session.clear()
    return redirect(url_for("board.index"))


@bp.get("/")
@instructor_required
def overview() -> str:
    """Every submission of one assignment with private scores, live flags, jobs, overrides."""
    db = get_session()
    assignment = _chosen()
    spec = assignment.spec
    submissions = db.scalars(
        select(Submission)
        .options(
            joinedload(Submission.score),
            joinedload(Submission.student),
            joinedload(Submission.grade),
        )
        .where(Submission.assignment == spec.name)
        .order_by(Submission.id.desc())
        .limit(500)
    ).all()
    flags = live_flags(db, spec, data_dir=current_app.config["DATA_DIR"])
    jobs = db.scalars(
        select(Job)
        .join(Submission, Submission.id == Job.submission_id)
        .where(Submission.assignment == spec.name)
        .order_by(Job.id.desc())
        .limit(100)
    ).all()
    overrides = db.scalars(select(Override).where(Override.assignment == spec.name)).all()
    return render_template(
        "instructor.html",
        spec=spec,
        course=course(),
        assignment=assignment,
        submissions=submissions,
        held=[s for s in submissions if s.grade is not None and s.grade.held],
        entrant_flags={s.id: flags.get(entrant_of(s).key, []) for s in submissions},
        flags=flags,
        jobs=jobs,
        overrides=overrides,
        revealed=is_revealed(db, spec, utcnow()),
        manual_reveal=manually_revealed(db, spec),
        real_names=real_names_shown(db, current_app.config["PSEUDONYMS"]),
        formats=[f.value for f in ExportFormat],
        missing_default=course().missing_grade.value,
        broker=current_app.extensions.get("job_publisher") is not None,
    )


@bp.post("/reveal")
@instructor_required
def reveal() -> Response:
    """Reveal the assignment's private board (or hide it again)."""
    db = get_session()
    spec = _chosen().spec
    value = "0" if request.form.get("hide") else "1"
    begin_write(db)
    write_setting(db, f"revealed:{spec.name}", value)
    shown = "hidden" if value == "0" else "shown"
    db.add(Event(kind="reveal", assignment=spec.name, message=f"private board {shown}"))
    bump_board_version(db)
    db.commit()
    flash(f"Private board of {spec.name} {'revealed' if value == '1' else 'hidden'}.")
    return redirect(url_for("instructor.overview", assignment=spec.name))


@bp.post("/names")
@instructor_required
def names() -> Response:
    """Show real names on the public boards (or pseudonyms again)."""
    db = get_session()
    real = request.form.get("real") == "1"
    begin_write(db)
    write_setting(db, "real_names", "1" if real else "0")
    db.add(Event(kind="names", message="real names shown" if real else "pseudonyms shown"))
    bump_board_version(db)
    db.commit()
    flash("The boards show real names." if real else "The boards show pseudonyms.")
    return redirect(url_for("instructor.overview", assignment=_chosen().name))


@bp.post("/rescore")
@instructor_required
def rescore() -> Response:
    """Score every submission of the assignment again with the current spec."""
    db = get_session()
    spec = _chosen().spec
    begin_write(db)
    report = rescore_all(db, spec, data_dir=current_app.config["DATA_DIR"])
    db.commit()
    flash(f"Rescored {report.rescored} submission(s).")
    for failure in report.failures[:20]:
        flash(failure)
    return redirect(url_for("instructor.overview", assignment=spec.name))


@bp.post("/requeue")
@instructor_required
def requeue() -> Response:
    """Send every queued job to the broker again (after the broker was down)."""
    publisher = current_app.extensions.get("job_publisher")
    if publisher is None:
        flash("No broker is configured: the embedded worker (grader worker) takes queued jobs.")
    else:
        sent = publisher.send_all(requeue_waiting(get_session()))
        flash(f"Sent {sent} queued job(s) to the broker again.")
    return redirect(url_for("instructor.overview", assignment=_chosen().name))


@bp.get("/grades.csv")
@instructor_required
def export() -> Response:
    """Grades for the LMS: ``?assignment=NAME&format=canvas|moodle|moodle-worksheet|gradescope|
    plain``."""
    assignment = _chosen()
    try:
        fmt = ExportFormat(request.args.get("format", "plain"))
        missing = MissingGrade(request.args.get("missing", course().missing_grade.value))
    except ValueError:
        return Response(
            f"format must be one of {', '.join(f.value for f in ExportFormat)}; missing zero or "
            "blank\n",
            status=400,
            mimetype="text/plain",
        )
    text = export_grades(
        get_session(), assignment, fmt, missing=missing, data_dir=current_app.config["DATA_DIR"]
    )
    filename = f"{assignment.name}-grades-{fmt.value}.csv"
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.post("/flags")
@instructor_required
def upload_flags() -> Response:
    """Import the flags of a ``grader check`` grades.csv for the assignment."""
    db = get_session()
    spec = _chosen().spec
    upload = request.files.get("file")
    back = redirect(url_for("instructor.overview", assignment=spec.name))
    if upload is None or not upload.filename:
        flash("Choose the grades.csv written by `grader check`.")
        return back
    begin_write(db)
    try:
        stored = import_flags(db, spec, upload.read(), name="grades.csv")
    except GradesFileError as exc:
        flash(str(exc))
        return back
    db.commit()
    flash(f"Imported {stored} flag(s).")
    return back


@bp.post("/submissions/<int:submission_id>/accept")
@instructor_required
def accept_review(submission_id: int) -> Response:
    """Accept a grade held for review: the points it earned count from now on."""
    db = get_session()
    submission = db.get(Submission, submission_id)
    if submission is None:
        abort(404)
    back = redirect(url_for("student.status", submission_id=submission_id))
    grade = stored_grade(submission)
    if grade is None or not grade.held:
        flash(f"Submission {submission_id} is not held for review.")
        return back
    identity = signed_in()
    accepted = grade.accepted(by=f"instructor (token {identity.token_id})")
    begin_write(db)
    store_grade(db, submission, accepted, stored_evidence(submission))
    db.add(
        Event(
            kind="review",
            student_id=submission.student_id,
            assignment=submission.assignment,
            message=f"submission {submission_id}: held grade accepted, {accepted.points:g} points",
        )
    )
    bump_board_version(db)
    db.commit()
    flash(f"Submission {submission_id}: grade accepted ({accepted.points:g} points).")
    return back
