"""The public board as a student reads it: baselines among the entries, one ranking sentence, the
moves at the reveal, their own row and submissions left, and the charts."""

from __future__ import annotations

import json
import re
from pathlib import Path

from lb_support import REPO, Submitter, enrol

BOARD = "/assignments/cifar10/"


def write_baseline(folder: Path, predictions: bytes, **record) -> None:
    folder.mkdir(parents=True)
    body = {"model": folder.name, "accuracy": 0.0, "parameters": 269_722, "epochs": 40,
            "data": {"dataset": "cifar10", "train_images": 4068, "full_test_set": False},
            "flattened": {"flat": True}, **record}  # fmt: skip
    (folder / "record.json").write_text(json.dumps(body))
    (folder / "predictions.csv").write_bytes(predictions)


def names_in_order(html: str) -> list[str]:
    """The name cells of the board, top to bottom (baselines as ``baseline <model>``)."""
    cells = re.findall(r'<td class="name">(.*?)</td>', html, flags=re.S)
    return [re.sub(r"<[^>]+>", "", c).split("  ")[0].strip() for c in cells]


def test_listed_baselines_are_ranked_among_the_entries_on_the_same_images(
    make_app, tmp_path, predictions_with, labels
):
    root = tmp_path / "baselines"
    write_baseline(root / "resnet20", predictions_with(1000, 2000))  # 80% public, 60% private
    write_baseline(root / "vgg_a", predictions_with(4200, 4200))  # 16%: below twice chance
    write_baseline(root / "alexnet_cifar", labels.head(1017).to_csv(index=False).encode())
    write_baseline(root / "tp4_net", predictions_with(0, 0))  # a perfect record, not listed
    app = make_app(baselines=("resnet20", "vgg_a", "alexnet_cifar", "lenet5"))
    actions = Submitter(app.test_client(), enrol(app))
    actions.api("alice", predictions_with(500, 500))  # 90%
    actions.api("bob", predictions_with(2000, 2000))  # 60%
    html = actions.client.get(BOARD).get_data(as_text=True)
    assert names_in_order(html) == ["Alice", "baseline resnet20", "Bob"]
    baseline_row = re.search(r'<tr class="baseline".*?</tr>', html, flags=re.S).group(0)
    assert "80.00%" in baseline_row and "tp4_net" not in html
    assert "40 epochs" in baseline_row and "4,068 training images" in baseline_row
    assert "vgg_a: 16.0% on the public split, below twice chance (20%)" in html
    assert "alexnet_cifar: its predictions do not fit this board" in html
    assert "lenet5: no readable record.json" in html
    api = actions.client.get("/api/v1/leaderboard").get_json()
    (shown,) = api["baselines"]
    assert (shown["model"], shown["public_accuracy"], shown["private_accuracy"]) == (
        "resnet20", 0.8, None
    )  # fmt: skip
    actions.login_instructor()
    actions.client.post("/instructor/reveal")
    shown = actions.client.get("/api/v1/leaderboard").get_json()["baselines"][0]
    assert shown["private_accuracy"] == shown["accuracy"] == 0.6  # the same private images


def test_the_reveal_shows_who_moved_and_one_ranking_sentence(make_app, predictions_with):
    app = make_app()
    actions = Submitter(app.test_client(), enrol(app))
    actions.api("alice", predictions_with(0, 3000))  # public 100%, private 40%
    actions.api("bob", predictions_with(1000, 0))  # public 80%, private 100%
    actions.api("carol", predictions_with(2000, 1000))  # public 60%, private 80%
    public = actions.client.get(BOARD).get_data(as_text=True)
    assert public.count("Ranked by") == 1 and "Move" not in public
    assert "each entrant&#39;s best public submission stands" in public
    actions.login_instructor()
    actions.client.post("/instructor/reveal")
    actions.client.post("/instructor/logout")
    html = actions.client.get(BOARD).get_data(as_text=True)
    assert html.count("Ranked by") == 1 and "best public score counts" not in html
    assert "Ranked by private accuracy (on the other 50%)" in html
    assert names_in_order(html) == ["Bob", "Carol", "Alice"]
    moves = re.findall(r'<td class="num move">(.*?)</td>', html)
    assert ["&#9650;1" in moves[0], "&#9650;1" in moves[1], "&#9660;2" in moves[2]] == [True] * 3
    assert "entries moved 1.3 place(s) on average" in html
    rows = actions.client.get("/api/v1/leaderboard").get_json()["rows"]
    assert [(r["name"], r["public_rank"], r["rank_change"]) for r in rows] == [
        ("Bob", 2, 1), ("Carol", 3, 1), ("Alice", 1, -2)
    ]  # fmt: skip


def test_a_signed_in_student_sees_their_row_and_what_is_left_today(make_app, make_predictions):
    app = make_app(daily_limit=3)
    actions = Submitter(app.test_client(), enrol(app))
    actions.api("alice", make_predictions(1000))
    actions.api("alice", make_predictions(2000))
    actions.api("bob", make_predictions(500))
    anonymous = actions.client.get(BOARD)
    assert 'id="you"' not in anonymous.get_data(as_text=True)
    chart = actions.client.get("/assignments/cifar10/progress.png")
    assert chart.data[:8] == b"\x89PNG\r\n\x1a\n"
    actions.client.post("/login", data={"token": actions.people.students["alice"]})
    mine = actions.client.get(BOARD)
    html = mine.get_data(as_text=True)
    assert mine.headers["Cache-Control"] == "private, no-store"
    you = re.search(r'<section class="you" id="you">(.*?)</section>', html, flags=re.S).group(1)
    assert re.search(r"rank 2 of 2, 8\d\.\d\d%", you) and "1 of 3 submission(s) left today" in you
    (row,) = re.findall(r'<tr id="row-[0-9a-f]{16}" class="you-row">(.*?)</tr>', html, flags=re.S)
    assert "Alice" in row
    own_chart = actions.client.get("/assignments/cifar10/progress.png")
    assert own_chart.data[:8] == b"\x89PNG\r\n\x1a\n" and own_chart.data != chart.data
    assert own_chart.headers["Cache-Control"] == "private, no-store"
    history = actions.client.get("/me").get_data(as_text=True)
    assert 'src="/assignments/cifar10/progress.png"' in history  # her own page shows it too
    # the shared board another visitor gets is unchanged by her visit
    assert 'id="you"' not in app.test_client().get(BOARD).get_data(as_text=True)


def test_health_and_the_labelled_scatter(make_app, tmp_path, predictions_with):
    write_baseline(tmp_path / "baselines" / "resnet20", predictions_with(1000, 1000))
    app = make_app(baselines=("resnet20",))
    client = app.test_client()
    health = client.get("/health")
    assert (health.status_code, health.data, health.mimetype) == (200, b"ok\n", "text/plain")
    png = client.get("/assignments/cifar10/accuracy-vs-params.png")
    assert png.status_code == 200 and png.data[:8] == b"\x89PNG\r\n\x1a\n"
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "board-accuracy-vs-parameters.png").write_bytes(png.data)
