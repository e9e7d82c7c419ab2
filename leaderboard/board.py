"""Public pages: the course index, a board per assignment, the upload form, the accuracy plot.

Nothing here depends on who is looking (the bodies are cached and shared); the pages of one
student are in :mod:`leaderboard.student`.
"""

from __future__ import annotations

import hashlib
import hmac
import io
from dataclasses import dataclass

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

from leaderboard.auth import Identity, identify
from leaderboard.baselines import Baseline, load_baselines
from leaderboard.cache import board_state, cached_response
from leaderboard.course import CourseAssignment
from leaderboard.db import get_session
from leaderboard.models import Score, Student, Submission, utcnow
from leaderboard.progress import progress_png, series_of
from leaderboard.rules import (
    daily_limit_for,
    entrant_for,
    is_revealed,
    naive_utc,
    next_reset,
    reveal_at,
    used_today,
)
from leaderboard.standings import (
    TIME_FORMAT,
    Row,
    display_name,
    real_names_shown,
    shake_up,
    standings,
)
from leaderboard.status import Role
from leaderboard.student import accepted_upload
from leaderboard.submitting import submit
from leaderboard.uploads import Upload
from leaderboard.web import assignment_or_404, course, send_job, signed_in

bp = Blueprint("board", __name__)


def rules_text(assignment: CourseAssignment, reveal_moment, revealed: bool) -> dict[str, str]:
    """The assignment's rules in words: ``ranking`` (one sentence: what ranks the board, and
    which submission stands for an entrant, before and after the reveal), ``deadline``,
    ``reveal``, ``limit``, and ``entry`` (the ranking sentence, kept for older callers)."""
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
        reveal_text = "The private board has been revealed."
    ranking = ranking_sentence(spec, revealed)
    limit = (
        f"Daily limit: {spec.daily_limit} submission(s), reset at "
        f"{next_reset(utcnow()).strftime(TIME_FORMAT)}."
    )
    return {"ranking": ranking, "entry": ranking, "deadline": deadline_text,
            "reveal": reveal_text, "limit": limit}  # fmt: skip


def ranking_sentence(spec, revealed: bool) -> str:
    """One sentence saying what ranks the board and which submission stands for an entrant."""
    public = f"public accuracy (on {spec.public_fraction:.0%} of the test images)"
    private = f"private accuracy (on the other {1 - spec.public_fraction:.0%})"
    finals = (
        f"the best {private} among the up to {spec.final_submissions} submissions each entrant "
        f"marked final (their {spec.final_submissions} best public ones when none is marked)"
    )
    sentence = {
        ("best", False): f"Ranked by {public}: each entrant's best public submission stands, "
        f"and at the reveal that same submission is ranked by its {private}.",
        ("best", True): f"Ranked by {private} of each entrant's best public submission, the one "
        "that stood on the public board.",
        ("last", False): f"Ranked by {public} of each entrant's latest submission; at the reveal, "
        f"by its {private}.",
        ("last", True): f"Ranked by {private} of each entrant's latest submission.",
        ("chosen", False): f"Ranked by each entrant's best {public}; at the reveal, by {finals}.",
        ("chosen", True): f"Ranked by {finals}.",
    }[(spec.entry_rule, revealed)]
    if spec.teams:
        sentence += " Teams share one row and one daily limit."
    return sentence


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


@dataclass(frozen=True)
class Line:
    """A line of the board: an entry (``row``) or a baseline among them."""

    row: Row | None = None
    baseline: Baseline | None = None


def board_lines(rows: list[Row], baselines: list[Baseline], revealed: bool) -> list[Line]:
    """The entries in rank order with each baseline placed where its accuracy falls (after the
    entries with the same score)."""
    lines: list[Line] = []
    waiting = sorted(baselines, key=lambda b: -b.accuracy)
    for row in rows:
        score = row.private_accuracy if revealed else row.public_accuracy
        while waiting and waiting[0].accuracy > score:
            lines.append(Line(baseline=waiting.pop(0)))
        lines.append(Line(row=row))
    lines.extend(Line(baseline=b) for b in waiting)
    return lines


def row_id(entrant: str) -> str:
    """An opaque, stable HTML id for an entrant's row (the entrant key itself is not public)."""
    key = str(current_app.secret_key or "").encode()
    return "row-" + hmac.new(key, entrant.encode(), hashlib.sha256).hexdigest()[:16]


VIEWER_MARK = "<!-- viewer -->"
"""Where the signed-in student's line goes in the shared, cached board."""


@bp.get("/assignments/<name>/")
def board(name: str) -> Response:
    """The board of one assignment (cached; see :mod:`leaderboard.cache`), with the signed-in
    student's own line and row highlighted."""
    assignment = assignment_or_404(name)
    spec = assignment.spec

    def state() -> tuple:
        return board_state(_assignment_state(assignment))

    def render() -> str:
        session = get_session()
        revealed = is_revealed(session, spec, utcnow())
        real_names = real_names_shown(session, current_app.config["PSEUDONYMS"])
        rows = standings(session, spec, revealed=revealed, real_names=real_names)
        baselines = load_baselines(
            spec, current_app.config.get("BASELINE_DIR"),
            data_dir=current_app.config.get("DATA_DIR"), revealed=revealed,
        )  # fmt: skip
        return render_template(
            "board.html",
            spec=spec,
            assignment=assignment,
            lines=board_lines(rows, baselines.shown, revealed),
            rows=rows,
            baselines=baselines,
            shake_up=shake_up(rows),
            revealed=revealed,
            rules=rules_text(assignment, reveal_at(session, spec), revealed),
            viewer_mark=VIEWER_MARK,
        )

    response = cached_response(f"board:{name}", state, render, "text/html")
    if "token_id" not in session:  # an anonymous visitor: the shared page as it is
        return response
    identity = signed_in()
    if identity is None or identity.role is not Role.STUDENT:
        return response
    line, entrant = _viewer_line(assignment, identity)
    personal = response.get_data(as_text=True).replace(VIEWER_MARK, line, 1)
    if entrant is not None:  # a class, not a style: the CSP allows no inline styles
        mark = f'<tr id="{row_id(entrant)}"'
        personal = personal.replace(mark, f'{mark} class="you-row"', 1)
    response = Response(personal, mimetype="text/html")
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _viewer_line(assignment: CourseAssignment, identity: Identity) -> tuple[str, str | None]:
    """The signed-in student's line (their rank, best score and submissions left today) and the
    entrant key of their row, if they have one."""
    spec = assignment.spec
    session = get_session()
    now = utcnow()
    entrant = entrant_for(session, spec, identity.student_id)
    revealed = is_revealed(session, spec, now)
    real_names = real_names_shown(session, current_app.config["PSEUDONYMS"])
    rows = standings(session, spec, revealed=revealed, real_names=real_names)
    mine = next((r for r in rows if r.entrant == entrant.key), None)
    limit = daily_limit_for(session, spec, identity.student_id)
    left = max(0, limit - used_today(session, spec, entrant, now))
    student = session.get(Student, identity.student_id)
    line = render_template(
        "board_viewer.html",
        spec=spec,
        row=mine,
        entries=len(rows),
        left=left,
        limit=limit,
        reset=next_reset(now),
        name=display_name(student, None, real_names) if student is not None else "",
        revealed=revealed,
    )
    return line, mine.entrant if mine is not None else None


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
    if outcome.submission_id is not None:  # stored: POST/redirect/GET, a reload cannot resubmit
        return accepted_upload(identity, outcome)
    return render_template(
        "submit.html", course=course(), chosen=chosen, spec=chosen.spec, outcome=outcome,
        signed_in=signed_in(),
    ), outcome.http_status  # fmt: skip


@bp.get("/assignments/<name>/accuracy-vs-params.png")
def scatter(name: str) -> Response:
    """Public accuracy against parameter count for graded model submissions, with the labelled
    baselines (PNG, cached like the board)."""
    assignment = assignment_or_404(name)
    spec = assignment.spec

    def render() -> bytes:
        session = get_session()
        points = session.execute(
            select(Score.total_params, Score.public_accuracy)
            .join(Submission, Submission.id == Score.submission_id)
            .where(Submission.assignment == spec.name, Score.total_params.is_not(None))
        ).all()
        baselines = [b for b in _shown_baselines(spec, revealed=False) if b.parameters]
        return accuracy_vs_parameters_png(spec, [(p[0], p[1]) for p in points], baselines)

    return cached_response(f"scatter:{name}", lambda: board_state(_assignment_state(assignment)),
                           render, "image/png")  # fmt: skip


def accuracy_vs_parameters_png(spec, points: list[tuple[int, float]], baselines) -> bytes:
    """The scatter: one dot per graded model, a labelled star per baseline; the legend below
    the axes, where it covers nothing."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    figure = Figure(figsize=(6.4, 4), dpi=100)
    axes = figure.subplots()
    if points or baselines:
        if points:
            axes.scatter([p[0] for p in points], [p[1] for p in points], alpha=0.7,
                         label="submissions")  # fmt: skip
        if baselines:
            axes.scatter([b.parameters for b in baselines], [b.public_accuracy for b in baselines],
                         marker="*", s=140, color="tab:red", zorder=3,
                         label="baselines (same test images)")  # fmt: skip
            for b in baselines:
                axes.annotate(b.model, (b.parameters, b.public_accuracy), xytext=(6, 4),
                              textcoords="offset points", fontsize=8, color="tab:red")  # fmt: skip
        axes.set_xscale("log")
        axes.margins(x=0.3, y=0.1)  # room for the labels
        axes.legend(loc="upper left", bbox_to_anchor=(0, -0.16), ncol=2, frameon=False)
    else:
        axes.text(0.5, 0.5, "no model submissions graded yet", ha="center", va="center")
    axes.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    axes.set_xlabel("trainable parameters")
    axes.set_ylabel("public accuracy")
    axes.set_title(f"{spec.title or spec.name}: accuracy vs. parameters", fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _shown_baselines(spec, *, revealed: bool) -> list[Baseline]:
    return load_baselines(
        spec, current_app.config.get("BASELINE_DIR"), data_dir=current_app.config.get("DATA_DIR"),
        revealed=revealed,
    ).shown  # fmt: skip


@bp.get("/assignments/<name>/progress.png")
def progress(name: str) -> Response:
    """Score over time (PNG): the leader's best public accuracy so far, and a signed-in
    student's own submissions beside it."""
    assignment = assignment_or_404(name)
    spec = assignment.spec
    identity = signed_in()

    def draw(entrant: str | None, label: str) -> bytes:
        session = get_session()
        revealed = is_revealed(session, spec, utcnow())
        real_names = real_names_shown(session, current_app.config["PSEUDONYMS"])
        rows = standings(session, spec, revealed=revealed, real_names=real_names)
        leader = None
        if rows and rows[0].entrant == entrant:
            label = label.replace(": best so far", " (the leader): best so far")
        elif rows:
            leader = series_of(session, spec, rows[0].entrant, f"leader ({rows[0].name})")
        you = series_of(session, spec, entrant, label) if entrant is not None else None
        return progress_png(spec, leader, you, _shown_baselines(spec, revealed=False))

    if identity is not None and identity.role is Role.STUDENT:
        entrant = entrant_for(get_session(), spec, identity.student_id).key
        response = Response(draw(entrant, "you: best so far"), mimetype="image/png")
        response.headers["Cache-Control"] = "private, no-store"
        return response
    return cached_response(f"progress:{name}", lambda: board_state(_assignment_state(assignment)),
                           lambda: draw(None, ""), "image/png")  # fmt: skip


@bp.get("/plot/accuracy-vs-params.png")
def first_scatter() -> Response:
    """The plot of the first assignment (its address before the course had several)."""
    return redirect(url_for("board.scatter", name=course().first.name))


@bp.app_template_global("row_id")
def _row_id(entrant: str) -> str:
    return row_id(entrant)


@bp.app_template_filter("pct")
def pct(value: float | None) -> str:
    """An accuracy as a percentage with two decimals, or a dash."""
    return "–" if value is None else f"{100 * value:.2f}%"


@bp.app_template_filter("when")
def when(value) -> str:
    """A timestamp to the second, in UTC."""
    return "–" if value is None else value.strftime(TIME_FORMAT)
