"""One server, many assignments: the course file, boards and limits per assignment, the versioned
API, final selection, teams, ties, extensions and the rules shown on the board."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re

import pytest
from click.testing import CliRunner
from lb_support import Submitter, enrol

from grader.assignment import load_assignment
from grader.cli import main
from leaderboard.course import CourseError, course_of, load_course
from leaderboard.status import JobQueue

PAST = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
FUTURE = dt.datetime(2099, 1, 1, tzinfo=dt.timezone.utc)


def _two(cifar_spec, **second):
    lab2 = dataclasses.replace(cifar_spec, name="lab2", title="Lab 2", **second)
    return course_of([cifar_spec, lab2])


def test_course_file_with_rules_queues_and_canvas_ids(tmp_path):
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    (spec_dir / "lab.toml").write_text(
        load_assignment("simplenn").source.read_text().replace('name = "simplenn"',
                                                               'name = "lab3"')
    )  # fmt: skip
    path = tmp_path / "course.toml"
    path.write_text(
        'title = "ECE 661"\nmissing_grade = "blank"\n'
        '[[assignment]]\nspec = "cifar10"\ndaily_limit = 9\ndeadline = 2026-12-15T23:59:00Z\n'
        '[[assignment]]\nspec = "specs/lab.toml"\nqueue = "gpu"\nlms_column_id = 4411\n'
        'lms_title = "Lab 3"\nentry_rule = "chosen"\nfinal_submissions = 1\nteams = true\n'
        '[[assignment]]\nspec = "mnist"\ncanvas_id = "77"\n'
    )
    course = load_course(path)
    assert course.title == "ECE 661" and course.names == ["cifar10", "lab3", "mnist"]
    first, lab, older = course.assignments
    assert first.spec.daily_limit == 9 and first.spec.deadline.year == 2026
    assert (lab.queue, lab.canvas_id, lab.spec.entry_rule, lab.spec.teams) == (
        JobQueue.GPU, "4411", "chosen", True
    )  # fmt: skip
    assert lab.grade_item.lms_id == "4411" and course.missing_grade.value == "blank"
    assert lab.grade_item.column == "Lab 3" and first.grade_item.column == first.spec.title
    assert older.grade_item.lms_id == "77"  # canvas_id: the older spelling


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[assignment]]\nspec = "cifar10"\nrubric = []\n', "'rubric' cannot be set"),
        ('[[assignment]]\nspec = "cifar10"\nqueue = "tpu"\n', "use 'cpu' or 'gpu'"),
        ('[[assignment]]\nspec = "cifar10"\ndaily_limit = 0\n', "daily_limit must be at least"),
        ('[[assignment]]\nspec = "cifar10"\n[[assignment]]\nspec = "cifar10"\n', "listed twice"),
        ('[[assignment]]\nspec = "nope"\n', "unknown assignment 'nope'"),
        ('[[assignment]]\nqueue = "cpu"\n', "needs spec"),
        ('titel = "x"\n[[assignment]]\nspec = "cifar10"\n', "unknown key(s) 'titel'"),
        ('title = "x"\n', "no [[assignment]] tables"),
    ],
)
def test_course_file_errors_name_the_entry_and_key(tmp_path, text, message):
    path = tmp_path / "course.toml"
    path.write_text(text)
    with pytest.raises(CourseError) as error:
        load_course(path)
    assert message in str(error.value) and str(path) in str(error.value)


def test_serve_refuses_a_bad_course_cleanly(tmp_path):
    path = tmp_path / "course.toml"
    path.write_text('[[assignment]]\nspec = "cifar10"\nqueue = "tpu"\n')
    result = CliRunner().invoke(main, ["serve", "--course", str(path)])
    assert result.exit_code == 2 and "use 'cpu' or 'gpu'" in result.output
    assert "Traceback" not in result.output
    twice = CliRunner().invoke(
        main, ["serve", "--assignment", "cifar10", "--assignment", "cifar10"]
    )
    assert twice.exit_code == 2 and "listed twice" in twice.output


def test_two_assignments_have_their_own_boards_limits_and_deadlines(
    make_app, cifar_spec, make_predictions
):
    course = _two(
        dataclasses.replace(cifar_spec, daily_limit=1),
        deadline=PAST,
        late_policy="refuse",
        daily_limit=5,
    )
    app = make_app(course=course)
    actions = Submitter(app.test_client(), enrol(app))
    client, token = actions.client, actions.people.students["alice"]
    auth = {"Authorization": f"Bearer {token}"}

    def post(path):
        data = {"file": (io.BytesIO(make_predictions(1000)), "predictions.csv")}
        return client.post(path, headers=auth, data=data)

    assert post("/api/v1/assignments/cifar10/submissions").status_code == 200
    assert post("/api/v1/assignments/cifar10/submissions").status_code == 429  # limit 1 there
    late = post("/api/v1/assignments/lab2/submissions")  # lab2's own deadline has passed
    assert (
        late.status_code == 403
        and "deadline (2020-01-01 00:00:00 UTC)" in late.get_json()["errors"][0]
    )
    assert post("/api/v1/submissions").status_code == 429  # the unversioned API: the first one
    assert client.post("/api/v1/assignments/nope/submissions", headers=auth).status_code == 404

    index = client.get("/").get_data(as_text=True)
    assert "CIFAR-10 image classification" in index and "Lab 2" in index
    assert "Deadline: 2020-01-01 00:00:00 UTC" in index and "No deadline." in index
    cifar = client.get("/api/v1/assignments/cifar10/leaderboard").get_json()
    lab2 = client.get("/api/v1/assignments/lab2/leaderboard").get_json()
    assert [r["name"] for r in cifar["rows"]] == ["Alice"] and lab2["rows"] == []
    assert cifar == client.get("/api/v1/leaderboard").get_json()
    assert {r["assignment"] for r in cifar["rows"]} == {"cifar10"}
    assert all(b["assignment"] == "cifar10" for b in cifar["baselines"])
    assert lab2["revealed"] is True and cifar["revealed"] is False
    mine = client.get("/api/v1/submissions", headers=auth).get_json()["submissions"]
    assert [s["assignment"] for s in mine] == ["cifar10"]
    listed = client.get("/api/v1/assignments", headers=auth).get_json()["assignments"]
    assert [(a["assignment"], a["daily_limit"]) for a in listed] == [("cifar10", 1), ("lab2", 5)]
    board = client.get("/assignments/lab2/").get_data(as_text=True)
    assert "Deadline: 2020-01-01 00:00:00 UTC; later submissions are refused." in board
    assert "revealed" in board and client.get("/assignments/nope/").status_code == 404


def test_board_states_the_rules_and_times_to_the_second(make_app, make_predictions):
    app = make_app(deadline=FUTURE)
    actions = Submitter(app.test_client(), enrol(app))
    actions.api("alice", make_predictions(10))
    html = actions.client.get("/assignments/cifar10/").get_data(as_text=True)
    assert "Deadline: 2099-01-01 00:00:00 UTC" in html
    assert "The private board is revealed after 2099-01-01 00:00:00 UTC." in html
    assert "each entrant&#39;s best public submission stands" in html
    assert re.search(r"<td class=\"wide when\">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</td>", html)
    open_ended = make_app(deadline=None).test_client().get("/assignments/cifar10/")
    text = open_ended.get_data(as_text=True)
    assert "No deadline." in text and "revealed when the instructor chooses" in text
    assert "revealed after the deadline" not in text


def test_ties_share_a_rank_and_are_marked(make_app, make_predictions):
    app = make_app()
    actions = Submitter(app.test_client(), enrol(app))
    actions.api("alice", make_predictions(1000))
    actions.api("bob", make_predictions(1000))
    actions.api("carol", make_predictions(3000))
    rows = actions.client.get("/api/v1/leaderboard").get_json()["rows"]
    assert [(r["name"], r["rank"], r["tie"]) for r in rows] == [
        ("Alice", 1, True), ("Bob", 1, True), ("Carol", 3, False)
    ]  # fmt: skip
    board = actions.client.get("/assignments/cifar10/").get_data(as_text=True)
    assert board.count('title="tied with another entry"') == 2


def test_final_selection_picks_the_best_private_score_among_marked(
    make_app, predictions_with, make_predictions
):
    app = make_app(entry_rule="chosen", final_submissions=1, deadline=FUTURE)
    actions = Submitter(app.test_client(), enrol(app))
    auth = {"Authorization": f"Bearer {actions.people.students['alice']}"}
    good_public = actions.api("alice", predictions_with(0, 2000)).get_json()["submission_id"]
    good_private = actions.api("alice", predictions_with(500, 0)).get_json()["submission_id"]
    client = actions.client
    rows = client.get("/api/v1/leaderboard").get_json()["rows"]
    assert rows[0]["public_accuracy"] == pytest.approx(1.0)  # the public board: best public

    # Nothing marked: the best public one stands in for the private board.
    actions.login_instructor()
    client.post("/instructor/reveal")
    client.post("/instructor/logout")
    rows = client.get("/api/v1/leaderboard").get_json()["rows"]
    assert rows[0]["private_accuracy"] < 0.7
    marked = client.post(f"/api/v1/submissions/{good_private}/final", headers=auth)
    assert marked.status_code == 200 and marked.get_json()["final"] is True
    too_many = client.post(f"/api/v1/submissions/{good_public}/final", headers=auth)
    assert too_many.status_code == 409 and "unmark one first" in too_many.get_json()["errors"][0]
    rows = client.get("/api/v1/leaderboard").get_json()["rows"]
    assert rows[0]["private_accuracy"] == pytest.approx(1.0)
    other = {"Authorization": f"Bearer {actions.people.students['bob']}"}
    assert client.post(f"/api/v1/submissions/{good_public}/final", headers=other).status_code == 404
    assert (
        client.delete(f"/api/v1/submissions/{good_private}/final", headers=auth).status_code == 200
    )

    closed = make_app(entry_rule="chosen", deadline=PAST, late_policy="flag")
    late = Submitter(closed.test_client(), enrol(closed))
    sid = late.api("alice", make_predictions()).get_json()["submission_id"]
    refused = late.client.post(
        f"/api/v1/submissions/{sid}/final",
        headers={"Authorization": f"Bearer {late.people.students['alice']}"},
    )
    assert refused.status_code == 409 and "selection is closed" in refused.get_json()["errors"][0]


def test_marking_final_from_the_history_page(make_app, make_predictions):
    app = make_app(entry_rule="chosen")
    actions = Submitter(app.test_client(), enrol(app))
    sid = actions.api("alice", make_predictions(100)).get_json()["submission_id"]
    client = actions.client
    client.post("/login", data={"token": actions.people.students["alice"]})
    assert "Mark final" in client.get("/me").get_data(as_text=True)
    page = client.post(f"/submissions/{sid}/final", follow_redirects=True).get_data(as_text=True)
    assert f"Submission {sid} is now final." in page and "Final: unmark" in page


def test_teams_share_a_quota_and_a_row(make_app, make_predictions):
    app = make_app(teams=True, daily_limit=2)
    people = enrol(app, roster="student,name,team\nalice,Alice,red\nbob,Bob,red\ncarol,Carol,\n")
    actions = Submitter(app.test_client(), people)
    assert actions.api("alice", make_predictions(2000)).status_code == 200
    assert actions.api("bob", make_predictions(1000)).status_code == 200
    limited = actions.api("alice", make_predictions(0))
    assert limited.status_code == 429  # the team's two are used
    assert actions.api("carol", make_predictions(500)).status_code == 200
    rows = actions.client.get("/api/v1/leaderboard").get_json()["rows"]
    assert [(r["name"], r["submissions"]) for r in rows] == [("Carol", 1), ("red", 2)]
    bob = {"Authorization": f"Bearer {people.students['bob']}"}
    team_ids = [
        s["submission_id"]
        for s in actions.client.get("/api/v1/submissions", headers=bob).get_json()["submissions"]
    ]
    assert len(team_ids) == 2  # bob sees the team's submissions, alice's included  # fmt: skip
    hidden = make_app(teams=True, config={"PSEUDONYMS": True})
    team = Submitter(hidden.test_client(), enrol(hidden, roster="student,team\nbob,red\n"))
    team.api("bob", make_predictions(10))
    (row,) = team.client.get("/api/v1/leaderboard").get_json()["rows"]
    assert row["name"] != "red" and re.fullmatch(r"[a-z]+-[a-z]+-\d\d", row["name"])


def test_extensions_and_limit_overrides_from_the_cli(make_app, make_predictions):
    app = make_app(deadline=PAST, late_policy="refuse", daily_limit=1)
    actions = Submitter(app.test_client(), enrol(app))
    url = app.config["DATABASE_URL"]
    runner = CliRunner()
    result = runner.invoke(main, ["roster", "extend", "alice", "--assignment", "cifar10",
                                  "--deadline", "2099-06-01T12:00:00Z", "--daily-limit", "3",
                                  "--database", url])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "alice on cifar10: deadline 2099-06-01 12:00:00 UTC, daily limit 3" in result.output
    for _ in range(3):
        assert actions.api("alice", make_predictions(10)).status_code == 200
    assert actions.api("alice", make_predictions(10)).status_code == 429
    assert actions.api("bob", make_predictions(10)).status_code == 403  # no extension
    board = actions.client.get("/api/v1/leaderboard").get_json()
    assert board["revealed"] is False  # not before the last extension ends
    html = actions.client.get("/assignments/cifar10/").get_data(as_text=True)
    assert "revealed after 2099-06-01 12:00:00 UTC (the last deadline, extensions included)" in html
    unknown = runner.invoke(main, ["roster", "extend", "zed", "--assignment", "cifar10",
                                   "--daily-limit", "2", "--database", url])  # fmt: skip
    assert unknown.exit_code == 1 and "no student 'zed'" in unknown.output
    nothing = runner.invoke(main, ["roster", "extend", "alice", "--assignment", "cifar10",
                                   "--database", url])  # fmt: skip
    assert nothing.exit_code == 2 and "--deadline, --daily-limit or both" in nothing.output
