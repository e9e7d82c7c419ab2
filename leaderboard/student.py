"""A student's own pages: sign in with the token, the history of every assignment, a
submission's page, and marking final submissions.

Only the student (or their team, for a team's submission) and instructors see these pages;
anyone else gets the sign-in page (for ``/me``) or 404, as if the page did not exist.
"""

from __future__ import annotations

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
from markupsafe import Markup
from sqlalchemy import select

from grader.batch.results import StudentResult
from grader.batch.student_page import render_student_page
from grader.grading.points import shown_points
from leaderboard.auth import identify
from leaderboard.db import begin_write, get_session
from leaderboard.finals import FinalError, mark_final
from leaderboard.models import Student, Submission, SubmissionFile, utcnow
from leaderboard.rules import (
    daily_limit_for,
    deadline_for,
    entrant_for,
    is_revealed,
    next_reset,
    used_today,
)
from leaderboard.scoring import answer_key, stored_grade
from leaderboard.standings import own_submissions
from leaderboard.status import Role, SubmissionStatus
from leaderboard.web import course, is_instructor, may_see, signed_in, viewer

bp = Blueprint("student", __name__)
REFRESH_S = 3
"""Seconds between reloads of a submission's page while it is graded."""
FEEDBACK_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'none'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
"""The feedback page carries its own styles (one self-contained page, as ``grader check``
writes it) and no script."""


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int]:
    """Sign in with a student token (a session cookie keeps it)."""
    target = _safe_next(request.values.get("next"))
    if request.method == "POST":
        identity = identify(get_session(), request.form.get("token", ""))
        if identity is not None and identity.role is Role.STUDENT:
            session.clear()
            session["token_id"] = identity.token_id
            return redirect(target or url_for("student.me"))
        flash("That is not a student token.")
        return render_template("login.html", who="Student", next=target), 401
    return render_template("login.html", who="Student", next=target)


@bp.post("/logout")
def logout() -> Response:
    """Sign out."""
    session.clear()
    return redirect(url_for("board.index"))


@bp.get("/me")
def me() -> Response | str:
    """The signed-in student's submissions to every assignment."""
    identity = signed_in()
    if identity is None or identity.role is not Role.STUDENT:
        return redirect(url_for("student.login", next=url_for("student.me")))
    return _history(identity.student_id)


@bp.get("/students/<int:student_id>")
def history(student_id: int) -> str:
    """One student's history: for that student or an instructor only."""
    identity = viewer()
    if not (is_instructor(identity) or (identity and identity.student_id == student_id)):
        abort(404)
    return _history(student_id)


def _history(student_id: int) -> str:
    db = get_session()
    student = db.get(Student, student_id)
    if student is None:
        abort(404)
    now = utcnow()
    sections = []
    for assignment in course().assignments:
        spec = assignment.spec
        entrant = entrant_for(db, spec, student_id)
        submissions = own_submissions(db, entrant, spec)
        revealed = is_revealed(db, spec, now)
        sections.append(
            {
                "assignment": assignment,
                "submissions": submissions,
                "points": {s.id: _points_words(s, spec, revealed) for s in submissions},
                "revealed": revealed,
                "used": used_today(db, spec, entrant, now),
                "limit": daily_limit_for(db, spec, student_id),
                "deadline": deadline_for(db, spec, student_id),
                "team": student.team if spec.teams else None,
            }
        )
    return render_template(
        "history.html",
        spec=None,
        student=student,
        sections=sections,
        reset_at=next_reset(now),
    )


@bp.get("/submissions/<int:submission_id>")
def status(submission_id: int) -> Response | str:
    """One submission's page (owner or instructor only): the feedback page ``grader check``
    writes, rendered from the stored grade; while grading it reloads itself."""
    db = get_session()
    submission = db.get(Submission, submission_id)
    identity = viewer()
    if submission is None or not may_see(identity, submission):
        abort(404)
    spec = course().spec(submission.assignment)
    instructor = is_instructor(identity)
    revealed = instructor or (spec is not None and is_revealed(db, spec, utcnow()))
    grade = stored_grade(submission)
    context = {
        "submission": submission,
        "spec": spec,
        "grade": grade,
        "instructor": instructor,
        "refresh_s": REFRESH_S if submission.status.pending else None,
        "can_mark_final": _can_mark_final(identity, submission, spec),
    }
    if grade is None or spec is None:  # queued, running, or failed before any grade
        return render_template("submission.html", **context)
    splits = ("public", "private", "all") if revealed else spec.student_splits
    html = feedback_page(
        StudentResult(
            _owner_name(submission), grade, files=_file_names(submission), late=submission.late
        ),  # fmt: skip
        spec=spec,
        visible_splits=splits,
        data_dir=current_app.config["DATA_DIR"],
        header=Markup(render_template("submission_header.html", **context)),
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = FEEDBACK_CSP
    return response


def feedback_page(
    result: StudentResult,
    *,
    spec,
    visible_splits,
    data_dir,
    header: Markup,
) -> str:
    """The feedback page of ``grader check`` (:func:`render_student_page`) for one grade, with
    the server's header above it: the gallery of wrong images when the images are there."""
    answer, thumbnails = None, None
    if result.grade.scores:
        from grader.batch.thumbnails import load_thumbnails

        answer = answer_key(spec, data_dir).solution()
        thumbnails = load_thumbnails(spec, data_dir)
    return render_student_page(
        result,
        spec=spec,
        answer_key=answer,
        thumbnails=thumbnails,
        visible_splits=visible_splits,
        header=header,
    )


def accepted_upload(identity, outcome) -> Response:
    """After an upload was stored: sign the browser in as its student (the token proved it) and
    redirect to the submission's page, so a reload cannot submit it again."""
    if session.get("token_id") != identity.token_id:
        session.clear()
        session["token_id"] = identity.token_id
    if outcome.status == "graded" and outcome.points is not None:
        flash(f"Submission {outcome.submission_id} graded: {outcome.points.words()} points.")
    elif outcome.status == "graded":
        flash(f"Submission {outcome.submission_id} graded.")
    else:
        flash(f"Submission {outcome.submission_id} is queued for grading.")
    return redirect(url_for("student.status", submission_id=outcome.submission_id), code=303)


def _points_words(submission: Submission, spec, revealed: bool) -> str:
    """A submission's points as its student may see them (``7 / 10``, ``hidden / 10``)."""
    grade = stored_grade(submission)
    if grade is None:
        return "\u2013"
    splits = ("public", "private", "all") if revealed else spec.student_splits
    return shown_points(grade, spec, splits).words()


def _can_mark_final(identity, submission: Submission, spec) -> bool:
    return (
        identity is not None
        and identity.role is Role.STUDENT
        and spec is not None
        and spec.entry_rule == "chosen"
        and submission.status is SubmissionStatus.GRADED
    )


def _owner_name(submission: Submission) -> str:
    name = submission.student.name or submission.student.student
    return f"{name} (team {submission.team.name})" if submission.team is not None else name


def _file_names(submission: Submission) -> list[str]:
    """The names of the submission's files (their contents stay in the database)."""
    return list(
        get_session().scalars(
            select(SubmissionFile.name)
            .where(SubmissionFile.submission_id == submission.id)
            .order_by(SubmissionFile.name)
        )
    )


@bp.post("/submissions/<int:submission_id>/final")
def toggle_final(submission_id: int) -> Response:
    """Mark a submission final (or unmark it) for the private board."""
    identity = signed_in()
    db = get_session()
    submission = db.get(Submission, submission_id)
    if submission is None or identity is None or not may_see(identity, submission):
        abort(404)
    if identity.role is not Role.STUDENT:
        abort(404)
    spec = course().spec(submission.assignment)
    begin_write(db)
    try:
        mark_final(db, spec, submission, identity.student_id, final=not request.form.get("unmark"))
    except FinalError as exc:
        db.rollback()
        flash(str(exc))
    else:
        db.commit()
        flash(f"Submission {submission.id} is {'now' if submission.final else 'no longer'} final.")
    back = request.form.get("back")
    if back == "submission":
        return redirect(url_for("student.status", submission_id=submission.id))
    return redirect(url_for("student.me"))


def _safe_next(target: str | None) -> str | None:
    """A local path to return to after signing in (never another site)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


@bp.app_context_processor
def _config() -> dict:
    return {"course_title": current_app.config["COURSE"].title}
