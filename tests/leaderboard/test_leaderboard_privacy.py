"""Privacy: a student's pages are theirs alone (after signing in, or with their bearer token),
pseudonyms by default, real names only when the instructor switches them on."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from lb_support import Submitter, enrol

from grader.cli import main

PSEUDONYM = re.compile(r"[a-z]+-[a-z]+-\d\d")


@pytest.fixture
def actions(make_app, make_predictions):
    app = make_app(teams=True)
    people = enrol(app, roster="student,name,team\nalice,Alice,\nbob,Bob,blue\ncarol,Carol,blue\n")
    actions = Submitter(app.test_client(), people)
    actions.alice = actions.api("alice", make_predictions(100)).get_json()["submission_id"]
    actions.bob = actions.api("bob", make_predictions(200)).get_json()["submission_id"]
    return actions


def _sign_in(client, token):
    return client.post("/login", data={"token": token})


def test_visitors_and_other_students_get_404(actions):
    client = actions.client
    for path in ["/students/1", f"/submissions/{actions.alice}"]:
        assert client.get(path).status_code == 404  # nobody signed in
    assert client.get("/me").status_code == 302
    assert "/login?next=/me" in client.get("/me").headers["Location"]
    _sign_in(client, actions.people.students["bob"])
    assert client.get("/students/1").status_code == 404  # alice's history
    assert client.get(f"/submissions/{actions.alice}").status_code == 404
    assert client.get(f"/submissions/{actions.bob}").status_code == 200
    bearer = {"Authorization": f"Bearer {actions.people.students['bob']}"}
    assert (
        actions.client.get(f"/api/v1/submissions/{actions.alice}", headers=bearer).status_code
        == 404
    )


def test_a_student_sees_their_own_and_their_teams_pages(actions):
    client = actions.client
    response = _sign_in(client, actions.people.students["carol"])
    assert response.status_code == 302 and response.headers["Location"].endswith("/me")
    page = client.get("/me").get_data(as_text=True)
    assert "Submissions of Carol" in page and f">{actions.bob}</a>" in page  # her team's
    assert "Carol" in client.get("/students/3").get_data(as_text=True)
    assert client.get(f"/submissions/{actions.bob}").status_code == 200  # bob is on her team
    assert client.get(f"/submissions/{actions.alice}").status_code == 404
    assert _sign_in(client, "not-a-token").status_code == 401


def test_instructors_see_every_page(actions):
    actions.login_instructor()
    assert actions.client.get("/students/1").status_code == 200
    page = actions.client.get(f"/submissions/{actions.alice}").get_data(as_text=True)
    # instructors see the private score and the points before the reveal
    assert "private split accuracy" in page and "hidden /" not in page


def test_sign_in_never_redirects_off_site(actions):
    for target in ["//evil.example/x", "https://evil.example/", "/\\evil.example"]:
        response = actions.client.post(
            "/login", data={"token": actions.people.students["alice"], "next": target}
        )
        assert response.headers["Location"] == "/me", target


def test_a_token_reset_ends_the_session_and_the_old_token(actions, make_predictions):
    client = actions.client
    _sign_in(client, actions.people.students["alice"])
    assert client.get("/me").status_code == 200
    url = actions.client.application.config["DATABASE_URL"]
    result = CliRunner().invoke(main, ["roster", "reset-token", "alice", "--database", url])
    assert result.exit_code == 0, result.output
    new = result.stdout.strip()
    assert client.get("/me").status_code == 302  # signed out: the token behind it is revoked
    assert actions.api("alice", make_predictions(5)).status_code == 401  # the old token
    actions.people.students["alice"] = new
    assert actions.api("alice", make_predictions(5)).status_code == 200
    unknown = CliRunner().invoke(main, ["roster", "reset-token", "zed", "--database", url])
    assert unknown.exit_code == 1 and "no student 'zed'" in unknown.output


def test_pseudonyms_by_default_and_the_instructors_switch(make_app, make_predictions):
    app = make_app(config={"PSEUDONYMS": True})  # what create_app does without settings
    actions = Submitter(app.test_client(), enrol(app))
    actions.api("alice", make_predictions(10))
    client = actions.client
    (row,) = client.get("/api/v1/leaderboard").get_json()["rows"]
    assert PSEUDONYM.fullmatch(row["name"]) and "Alice" not in client.get(
        "/assignments/cifar10/"
    ).get_data(as_text=True)
    board = client.get("/assignments/cifar10/").get_data(as_text=True)
    assert "/students/" not in board  # no row links to anyone's pages
    actions.login_instructor()
    client.post("/instructor/names", data={"real": "1"})
    assert client.get("/api/v1/leaderboard").get_json()["rows"][0]["name"] == "Alice"
    assert "Alice" in client.get("/assignments/cifar10/").get_data(as_text=True)
    client.post("/instructor/names", data={"real": "0"})
    assert PSEUDONYM.fullmatch(client.get("/api/v1/leaderboard").get_json()["rows"][0]["name"])
    assert client.post("/instructor/logout").status_code == 302
    assert client.post("/instructor/names", data={"real": "1"}).status_code == 302  # login page
    assert PSEUDONYM.fullmatch(client.get("/api/v1/leaderboard").get_json()["rows"][0]["name"])


def test_create_app_defaults_to_pseudonyms(tmp_path, monkeypatch):
    from leaderboard import create_app
    from leaderboard.server import init_database

    monkeypatch.delenv("GRADER_PSEUDONYMS", raising=False)
    url = f"sqlite:///{tmp_path / 'g.db'}"
    init_database(database=url)
    assert create_app({"DATABASE_URL": url}).config["PSEUDONYMS"] is True


def test_a_signed_in_student_uploads_without_pasting_the_token(make_app, make_predictions):
    import io

    app = make_app()
    people = enrol(app)
    client = app.test_client()
    client.post("/login", data={"token": people.students["bob"]})
    form = client.get("/submit").get_data(as_text=True)
    assert "signed in: leave empty" in form and 'name="assignment"' in form
    response = client.post(
        "/submit",
        data={"assignment": "cifar10", "file": (io.BytesIO(make_predictions(10)), "p.csv")},
    )
    assert response.status_code == 303
    assert "Feedback for Bob" in client.get(response.headers["Location"]).get_data(as_text=True)
    client.post("/logout")
    anonymous = client.post("/submit", data={"file": (io.BytesIO(make_predictions(10)), "p.csv")})
    assert anonymous.status_code == 401
