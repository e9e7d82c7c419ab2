"""Public pages: the course index, a board per assignment, the upload form, the accuracy plot.

Nothing here depends on who is looking (the bodies are cached and shared); the pages of one
student are in :mod:`leaderboard.student`.
"""

from __future__ import annotations

import io

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select

from leaderboard.auth import identify
from leaderboard.cache import board_state, cached_response
from leaderboard.course import CourseAssignment
from leaderboard.db import get_session
from leaderboard.models import Score, Submission, utcnow
from leaderboard.rules import is_revealed, naive_utc, next_reset, reveal_at
from leaderboard.standings import TIME_FORMAT, load_baselines, real_names_shown, standings
from leaderboard.status import Role
from leaderboard.submitting import submit
from leaderboard.uploads import Upload
from leaderboard.web import assignment_or_404, course, send_job, signed_in

bp = Blueprint("board", __name__)


def rules_text(assignment: CourseAssignment, reveal_moment, revealed: bool) -> dict[str, str]:
    """The deadline, reveal rule, entry rule and limit of an assignment, in words."""
    spec = assignment.spec
    deadline = naive_utc(spec.deadline)
    if deadline is None:
        deadline_text = "No deadline."
        reveal_text = "The private board is revealed when the instructor chooses."
    else:
        late = "refused" if spec.late_policy == "refuse" else "accepted and marked late"
        deadline_text = f"Deadline: {deadline.strftime(TIME_FORMAT)}; later submissions are {late}."
        reveal_text = f"The private board is revealed after {reveal_moment.strftime(TIME_FORMAT)}"
        reveal_text += (
            " (the last deadline, extensions included)." if reveal_moment != deadline else "."
        )
    if revealed:
        reveal_text = "The private board is revealed: ranked by accuracy on the private split."
    entry = {
        "best": "Each entry's best public score counts.",
        "last": "Each entry's latest submission counts.",
        "chosen": f"Mark up to {spec.final_submissions} submission(s) as final; the best private "
        f"score among them counts (with none marked, your {spec.final_submissions} best public "
        "ones).",
    }[spec.entry_rule]
    if spec.teams:
        entry += " Teams share one row and one daily limit."
    limit = (
        f"Daily limit: {spec.daily_limit} submission(s), reset at "
        f"{next_reset(utcnow()).strftime(TIME_FORMAT)}."
    )
    return {"deadline": deadline_text, "reveal": reveal_text, "entry": entry, "limit": limit}


def _assignment_state(assignment: CourseAssignment) -> tuple:
    session = get_session()
    revealed = is_revealed(session, assignment.spec, utcnow())
    return (revealed, reveal_at(session, assignment.spec))


@bp.get("/")
def index() -> Response:
    """The course index: every assignment with its deadline, entries and leader (cached)."""

    def state() -> tuple:
        return board_state(*(_assignment_state(a) for a in course().assignments))

    def render() -> str:
        session = get_session()
        real_names = real_names_shown(session, current_app.config["PSEUDONYMS"])
        summaries = []
        for assignment in course().assignments:
            revealed = is_revealed(session, assignment.spec, utcnow())
            rows = standings(session, assignment.spec, revealed=revealed, real_names=real_names)
            summaries.append(
                {
                    "assignment": assignment,
                    "rows": len(rows),
                    "leader": rows[0] if rows else None,
                    "revealed": revealed,
                    "rules": rules_text(assignment, reveal_at(session, assignment.spec), revealed),
                }
            )
        return render_template("index.html", course=course(), summaries=summaries, spec=None)

    return cached_response("index.html", state, render, "text/html")


@bp.get("/health")
def health() -> Response:
    """Liveness check: a plain ``ok`` from a worker that answers (load balancers, monitoring;
    the benchmarks' floor for any page of this server)."""
    return Response("ok\n", mimetype="text/plain")


@bp.get("/assignments/<name>/")
def board(name: str) -> Response:
    """The board of one assignment (cached; see :mod:`leaderboard.cache`)."""
    assignment = assignment_or_404(name)
    spec = assignment.spec

    def state() -> tuple:
        return board_state(_assignment_state(assignment))

    def render() -> str:
        session = get_session()
        revealed = is_revealed(session, spec, utcnow())
        real_names = real_names_shown(session, current_app.config["PSEUDONYMS"])
        return render_template(
            "board.html",
            spec=spec,
            assignment=assignment,
            rows=standings(session, spec, revealed=revealed, real_names=real_names),
            baselines=load_baselines(spec, current_app.config.get("BASELINE_DIR")),
            revealed=revealed,
            rules=rules_text(assignment, reveal_at(session, spec), revealed),
        )

    return cached_response(f"board:{name}", state, render, "text/html")


@bp.route("/submit", methods=["GET", "POST"])
@bp.route("/assignments/<name>/submit", methods=["GET", "POST"])
def upload(name: str | None = None) -> Response | str | tuple[str, int]:
    """The upload form: an assignment, a token (unless signed in) and the file(s)."""
    chosen = assignment_or_404(name) if name else None
    if request.method == "GET":
        return render_template(
            "submit.html", course=course(), chosen=chosen, spec=chosen and chosen.spec,
            outcome=None, signed_in=signed_in(),
        )  # fmt: skip
    if chosen is None:
        chosen = assignment_or_404(request.form.get("assignment") or course().first.name)
    session = get_session()
    token = request.form.get("token", "")
    identity = identify(session, token) if token else signed_in()
    if identity is None or identity.role is not Role.STUDENT:
        flash("Unknown token: paste the student token you were given, or sign in.")
        return render_template(
            "submit.html", course=course(), chosen=chosen, spec=chosen.spec, outcome=None,
            signed_in=None,
        ), 401  # fmt: skip
    uploads = [Upload(f.filename or "", f.read()) for f in request.files.getlist("file")]
    outcome = submit(
        session,
        chosen,
        student_id=identity.student_id,
        uploads=uploads,
        data_dir=current_app.config["DATA_DIR"],
    )
    session.commit()
    send_job(outcome.job_id, chosen.queue)
    return render_template(
        "submit.html", course=course(), chosen=chosen, spec=chosen.spec, outcome=outcome,
        signed_in=signed_in(),
    ), outcome.http_status  # fmt: skip


@bp.get("/assignments/<name>/accuracy-vs-params.png")
def scatter(name: str) -> Response:
    """Public accuracy against parameter count for graded model submissions (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    spec = assignment_or_404(name).spec
    session = get_session()
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
        axes.text(0.5, 0.5, "no model submissions graded yet", ha="center", va="center")
    axes.set_xlabel("trainable parameters")
    axes.set_ylabel("public accuracy")
    axes.set_title(f"{spec.title or spec.name}: accuracy vs. parameters")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return Response(buffer.getvalue(), mimetype="image/png")


@bp.get("/plot/accuracy-vs-params.png")
def first_scatter() -> Response:
    """The plot of the first assignment (its address before the course had several)."""
    return redirect(url_for("board.scatter", name=course().first.name))


@bp.app_template_filter("pct")
def pct(value: float | None) -> str:
    """An accuracy as a percentage with two decimals, or a dash."""
    return "–" if value is None else f"{100 * value:.2f}%"


@bp.app_template_filter("when")
def when(value) -> str:
    """A timestamp to the second, in UTC."""
    return "–" if value is None else value.strftime(TIME_FORMAT)
