"""The Flask app through its test client on SQLite: every route, the rules and the safeguards."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re

import pandas as pd
import pytest
from lb_support import Submitter, enrol, zip_of

PAST = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
FUTURE = dt.datetime(2099, 1, 1, tzinfo=dt.timezone.utc)
BOARD = "/assignments/cifar10/"


@pytest.fixture
def app(make_app):
    return make_app(daily_limit=3)


@pytest.fixture
def people(app):
    return enrol(app)


@pytest.fixture
def actions(app, people):
    return Submitter(app.test_client(), people)


def test_api_scores_a_real_predictions_file(actions, labels, make_predictions):
    response = actions.api("alice", make_predictions(wrong=2000))
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "graded" and body["assignment"] == "cifar10"
    assert set(body["scores"]) == {"public"}  # no private score before the reveal
    public = body["scores"]["public"]["accuracy"]
    assert 0.75 < public < 0.85  # 2000 of 10000 rows wrong, spread over both splits
    assert body["remaining_today"] == 2


def test_perfect_predictions_score_one(actions, make_predictions):
    body = actions.api("bob", make_predictions(wrong=0)).get_json()
    assert body["scores"]["public"]["accuracy"] == pytest.approx(1.0)


def test_bad_token_is_401(actions, make_predictions):
    client = actions.client
    data = {"file": (io.BytesIO(make_predictions()), "predictions.csv")}
    response = client.post("/api/v1/submissions", data=data)
    assert response.status_code == 401
    response = client.post(
        "/api/v1/submissions",
        headers={"Authorization": "Bearer not-a-token"},
        data={"file": (io.BytesIO(make_predictions()), "predictions.csv")},
    )
    assert response.status_code == 401
    assert "Bearer" in response.get_json()["errors"][0]


def test_instructor_token_cannot_submit(actions, make_predictions):
    response = actions.client.post(
        "/api/v1/submissions",
        headers={"Authorization": f"Bearer {actions.people.instructor}"},
        data={"file": (io.BytesIO(make_predictions()), "predictions.csv")},
    )
    assert response.status_code == 401


def test_invalid_file_lists_problems_and_costs_no_quota(actions, labels, make_predictions):
    broken = labels.head(50).to_csv(index=False, sep=";").encode()
    for _ in range(4):
        response = actions.api("alice", broken)
        assert response.status_code == 422
    body = response.get_json()
    assert body["status"] == "invalid"
    text = " ".join(body["errors"])
    assert "semicolon" in text and "missing" in text
    assert actions.api("alice", make_predictions()).status_code == 200


def test_daily_limit_is_429_with_reset_time(actions, make_predictions):
    for _ in range(3):
        assert actions.api("carol", make_predictions(10)).status_code == 200
    response = actions.api("carol", make_predictions(10))
    assert response.status_code == 429
    body = response.get_json()
    tomorrow = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).strftime("%Y-%m-%d")
    assert body["reset_at"] == f"{tomorrow}T00:00:00Z"
    assert int(response.headers["Retry-After"]) > 0
    assert actions.api("alice", make_predictions(10)).status_code == 200  # others unaffected


def test_deadline_refuses(make_app, make_predictions):
    app = make_app(deadline=PAST, late_policy="refuse")
    actions = Submitter(app.test_client(), enrol(app))
    response = actions.api("alice", make_predictions())
    assert response.status_code == 403
    assert "deadline" in response.get_json()["errors"][0]


def test_deadline_flags_late_and_reveals(make_app, make_predictions):
    app = make_app(deadline=PAST, late_policy="flag")
    actions = Submitter(app.test_client(), enrol(app))
    body = actions.api("alice", make_predictions(100)).get_json()
    assert body["status"] == "graded" and body["late"] is True
    board = actions.client.get("/api/v1/leaderboard").get_json()
    assert board["revealed"] is True
    assert board["rows"][0]["private_accuracy"] is not None
    assert "late" in actions.client.get(BOARD).get_data(as_text=True)


def test_board_ranks_by_entry_rule_best(actions, make_predictions):
    actions.api("alice", make_predictions(1000))
    actions.api("alice", make_predictions(3000))  # worse: "best" keeps the first
    actions.api("bob", make_predictions(2000))
    rows = actions.client.get("/api/v1/leaderboard").get_json()["rows"]
    assert [r["name"] for r in rows] == ["Alice", "Bob"]
    assert rows[0]["submissions"] == 2
    assert rows[0]["public_accuracy"] > rows[1]["public_accuracy"]
    assert all(r["private_accuracy"] is None for r in rows)


def test_board_entry_rule_last(make_app, make_predictions):
    app = make_app(entry_rule="last")
    actions = Submitter(app.test_client(), enrol(app))
    actions.api("alice", make_predictions(1000))
    actions.api("alice", make_predictions(3000))
    actions.api("bob", make_predictions(2000))
    rows = actions.client.get("/api/v1/leaderboard").get_json()["rows"]
    assert [r["name"] for r in rows] == ["Bob", "Alice"]


def test_reveal_shows_private_board_only_after_instructor_action(actions, make_predictions):
    actions.api("alice", make_predictions(500))
    html = actions.client.get(BOARD).get_data(as_text=True)
    assert "Private accuracy" not in html
    assert actions.client.post("/instructor/reveal").status_code == 302
    assert "Private accuracy" not in actions.client.get(BOARD).get_data(as_text=True)  # no login
    actions.login_instructor()
    actions.client.post("/instructor/reveal")
    html = actions.client.get(BOARD).get_data(as_text=True)
    assert "Private accuracy" in html and "Private leaderboard" in html
    body = actions.client.get(
        "/api/v1/submissions/1",
        headers={"Authorization": f"Bearer {actions.people.students['alice']}"},
    ).get_json()
    assert "private" in body["scores"]


def test_board_page_escapes_student_text(make_app, make_predictions):
    app = make_app()
    people = enrol(app, roster='student,name\nmallory,"<script>alert(1)</script>"\n')
    actions = Submitter(app.test_client(), people)
    actions.api("mallory", make_predictions(), name="<img src=x onerror=alert(1)>.csv")
    html = actions.client.get(BOARD).get_data(as_text=True)
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    actions.login_instructor()
    html = actions.client.get("/instructor/").get_data(as_text=True)
    assert "<img src=x" not in html


def test_security_headers_on_every_page(actions):
    for path in ["/", "/submit", "/instructor/login", "/api/v1/leaderboard", "/nope"]:
        response = actions.client.get(path)
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["Referrer-Policy"] == "no-referrer"


def test_upload_form_works_without_javascript_and_updates_board(actions, make_predictions):
    page = actions.client.get("/submit").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page and "<script" not in page
    response = actions.client.post(
        "/submit",
        data={
            "token": actions.people.students["bob"],
            "file": (io.BytesIO(make_predictions(4000)), "predictions.csv"),
        },
    )
    # POST/redirect/GET: the upload answers with the submission's page, signed in as Bob
    assert response.status_code == 303 and "/submissions/" in response.headers["Location"]
    page = actions.client.get(response.headers["Location"])
    html = page.get_data(as_text=True)
    assert "Feedback for Bob" in html and "public split accuracy" in html
    assert "graded: hidden / 10 points" in html  # the flash: points hang on the private split
    assert "'unsafe-inline'" in page.headers["Content-Security-Policy"]  # its own styles
    assert "script-src 'none'" in page.headers["Content-Security-Policy"]
    board = actions.client.get(BOARD).get_data(as_text=True)
    assert "Bob" in board and "<script" not in board
    wrong = actions.client.post("/submit", data={"token": "x", "file": (io.BytesIO(b"a"), "p.csv")})
    assert wrong.status_code == 401


def test_forms_require_csrf_token(make_app, make_predictions):
    app = make_app(config={"WTF_CSRF_ENABLED": True})
    people = enrol(app)
    client = app.test_client()
    response = client.post(
        "/submit",
        data={"token": people.students["bob"], "file": (io.BytesIO(make_predictions()), "p.csv")},
    )
    assert response.status_code == 400
    page = client.get("/submit").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post(
        "/submit",
        data={
            "csrf_token": token,
            "token": people.students["bob"],
            "file": (io.BytesIO(make_predictions()), "p.csv"),
        },
    )
    assert response.status_code == 303


def test_upload_over_the_cap_is_413(make_app):
    app = make_app(config={"MAX_CONTENT_LENGTH": 1000})
    actions = Submitter(app.test_client(), enrol(app))
    response = actions.api("alice", b"x" * 5000)
    assert response.status_code == 413
    assert "limit" in response.get_json()["errors"][0]


def test_history_and_status_pages_for_the_signed_in_student(actions, make_predictions):
    submission_id = actions.api("alice", make_predictions(100)).get_json()["submission_id"]
    actions.client.post("/login", data={"token": actions.people.students["alice"]})
    history = actions.client.get("/me").get_data(as_text=True)
    assert "Submissions of Alice" in history and "Private accuracy" not in history
    status = actions.client.get(f"/submissions/{submission_id}").get_data(as_text=True)
    assert '<dd id="status">graded</dd>' in status
    assert actions.client.get("/students/999").status_code == 404


def test_students_cannot_read_each_others_submissions(actions, make_predictions):
    submission_id = actions.api("alice", make_predictions()).get_json()["submission_id"]
    response = actions.client.get(
        f"/api/v1/submissions/{submission_id}",
        headers={"Authorization": f"Bearer {actions.people.students['bob']}"},
    )
    assert response.status_code == 404
    mine = actions.client.get(
        "/api/v1/submissions",
        headers={"Authorization": f"Bearer {actions.people.students['alice']}"},
    ).get_json()
    assert [s["submission_id"] for s in mine["submissions"]] == [submission_id]
    assert "private" not in mine["submissions"][0]["scores"]


def test_api_rate_limit(make_app):
    app = make_app(config={"API_RATE_LIMIT": 5})
    client = app.test_client()
    codes = [client.get("/api/v1/leaderboard").status_code for _ in range(7)]
    assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]


def test_model_submission_is_stored_under_server_names_and_queued(make_app, tmp_path):
    from grader.assignment import ModelSpec

    app = make_app(model=ModelSpec(input_shape=(3, 32, 32)))
    actions = Submitter(app.test_client(), enrol(app))
    archive = zip_of({"sub/model.py": b"import torch\n", "sub/weights.pt": b"\x80"})
    response = actions.api("alice", archive, name="../../evil.zip")
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "queued"
    from leaderboard.db import session_scope
    from leaderboard.uploads import load_files

    with session_scope(app.extensions["leaderboard_engine"]) as session:
        stored = load_files(session, body["submission_id"])
    assert stored == {"model.py": b"import torch\n", "weights.pt": b"\x80"}  # in the database
    assert not list(tmp_path.rglob("weights.pt"))  # nothing on the server's disk
    status = actions.client.get(
        f"/api/v1/submissions/{body['submission_id']}",
        headers={"Authorization": f"Bearer {actions.people.students['alice']}"},
    ).get_json()
    assert status["status"] == "queued" and status["assignment"] == "cifar10"
    bad = zip_of({"../x.sh": b"rm -rf /", "model.py": b""})
    response = actions.api("alice", bad, name="m.zip")
    assert response.status_code == 422
    assert "a path outside the archive" in response.get_json()["errors"][0]
    assert actions.api("alice", b"Id,Category\n", name="p.csv").status_code == 422


def test_instructor_pages_need_a_login(actions):
    assert actions.client.get("/instructor/").status_code == 302
    assert actions.client.get("/instructor/grades.csv").status_code == 302
    response = actions.client.post(
        "/instructor/login", data={"token": actions.people.students["alice"]}
    )
    assert response.status_code == 401
    assert actions.login_instructor().status_code == 302
    assert actions.client.get("/instructor/").status_code == 200


def test_grades_export_rescore_and_flags(actions, make_predictions, labels):
    actions.api("alice", make_predictions(500))
    actions.api("bob", make_predictions(2500))
    actions.login_instructor()
    grades = pd.read_csv(io.StringIO(actions.client.get("/instructor/grades.csv").text))
    assert list(grades["student"]) == ["alice", "bob", "carol"]
    alice = grades.set_index("student").loc["alice"]
    assert alice["points"] == 10.0 and 0.9 < alice["private_accuracy"] < 1.0
    assert grades.set_index("student").loc["carol"]["points"] == 0.0

    flags = "student,accuracy,flags\nbob,0.75,identical predictions to alice\nalice,0.95,\n"
    response = actions.client.post(
        "/instructor/flags", data={"file": (io.BytesIO(flags.encode()), "grades.csv")}
    )
    assert response.status_code == 302
    grades = pd.read_csv(io.StringIO(actions.client.get("/instructor/grades.csv").text))
    assert (
        "imported: identical predictions to alice"
        in grades.set_index("student").loc["bob"]["flags"]
    )
    bad = actions.client.post(
        "/instructor/flags", data={"file": (io.BytesIO(b"who,what\n1,2\n"), "g.csv")}
    )
    assert bad.status_code == 302
    page = actions.client.get("/instructor/").get_data(as_text=True)
    assert "missing column(s) flags, student" in page

    response = actions.client.post("/instructor/rescore", follow_redirects=True)
    assert "Rescored 2 submission(s)" in response.get_data(as_text=True)


def test_rescore_after_answer_key_change(make_app, make_predictions, labels, tmp_path):
    from leaderboard.db import session_scope
    from leaderboard.grades import rescore_all

    app = make_app()
    actions = Submitter(app.test_client(), enrol(app))
    actions.api("alice", make_predictions(0))
    changed = labels.copy()
    changed["Category"] = (changed["Category"] + 1) % 10
    key = tmp_path / "new-labels.csv"
    changed.to_csv(key, index=False)
    spec = dataclasses.replace(app.config["COURSE"].first.spec, solution=str(key))
    with session_scope(app.extensions["leaderboard_engine"]) as session:
        report = rescore_all(session, spec)
    assert report.rescored == 1 and not report.failures
    rows = actions.client.get("/api/v1/leaderboard").get_json()["rows"]
    assert rows[0]["public_accuracy"] == pytest.approx(0.0)


def test_a_rescore_the_grader_cannot_do_keeps_the_stored_grade(
    make_app, make_predictions, monkeypatch
):
    from grader.grading.grade import not_graded
    from grader.grading.status import SubmissionKind
    from leaderboard import grades
    from leaderboard.db import session_scope

    app = make_app()
    actions = Submitter(app.test_client(), enrol(app))
    actions.api("alice", make_predictions(0))
    before = actions.client.get("/api/v1/leaderboard").get_json()["rows"]
    failed = not_graded(SubmissionKind.PREDICTIONS, "grading failed: no answer key", error=True)
    monkeypatch.setattr(grades, "grade_submission", lambda *_args, **_kwargs: failed)
    with session_scope(app.extensions["leaderboard_engine"]) as session:
        report = grades.rescore_all(session, app.config["COURSE"].first.spec)
    assert report.rescored == 0 and "no answer key" in report.failures[0]
    after = actions.client.get("/api/v1/leaderboard").get_json()["rows"]
    assert after == before and after[0]["public_accuracy"] == pytest.approx(1.0)


def test_scatter_plot_is_a_png(actions):
    response = actions.client.get("/plot/accuracy-vs-params.png", follow_redirects=True)
    assert response.status_code == 200 and response.data[:8] == b"\x89PNG\r\n\x1a\n"


def test_pseudonyms_hide_names(make_app, make_predictions):
    app = make_app(config={"PSEUDONYMS": True})
    actions = Submitter(app.test_client(), enrol(app))
    actions.api("alice", make_predictions())
    rows = actions.client.get("/api/v1/leaderboard").get_json()["rows"]
    assert rows[0]["name"] != "Alice" and re.fullmatch(r"[a-z]+-[a-z]+-\d\d", rows[0]["name"])
