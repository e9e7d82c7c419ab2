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

from leaderboard.auth import identify
from leaderboard.db import begin_write, get_session
from leaderboard.finals import FinalError, mark_final
from leaderboard.models import Student, Submission, utcnow
from leaderboard.rules import (
    daily_limit_for,
    deadline_for,
    entrant_for,
    is_revealed,
    next_reset,
    used_today,
)
from leaderboard.standings import own_submissions
from leaderboard.status import Role
from leaderboard.web import course, is_instructor, may_see, signed_in, viewer

bp = Blueprint("student", __name__)


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
        sections.append(
            {
                "assignment": assignment,
                "submissions": own_submissions(db, entrant, spec),
                "revealed": is_revealed(db, spec, now),
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
def status(submission_id: int) -> str:
    """One submission's page: its status, message and scores (owner or instructor only)."""
    db = get_session()
    submission = db.get(Submission, submission_id)
    if submission is None or not may_see(viewer(), submission):
        abort(404)
    spec = course().spec(submission.assignment)
    revealed = is_instructor(viewer()) or (spec is not None and is_revealed(db, spec, utcnow()))
    return render_template(
        "status.html",
        spec=spec,
        submission=submission,
        revealed=revealed,
        checks=_checks(submission),
    )


def _checks(submission: Submission) -> list[dict]:
    score = submission.score
    return list(score.checks or []) if score is not None else []


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
    return redirect(url_for("student.me"))


def _safe_next(target: str | None) -> str | None:
    """A local path to return to after signing in (never another site)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


@bp.app_context_processor
def _config() -> dict:
    return {"course_title": current_app.config["COURSE"].title}
