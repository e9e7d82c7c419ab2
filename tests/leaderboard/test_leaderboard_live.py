"""Against a real ``grader serve`` (gunicorn): the CLI submit command and headless Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from lb_support import REPO

from grader.cli import main

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


def test_cli_submit_scores_and_reports_problems(gunicorn_server, tmp_path, make_predictions):
    base, people = gunicorn_server
    predictions = tmp_path / "predictions.csv"
    predictions.write_bytes(make_predictions(wrong=3000))
    runner = CliRunner()
    result = runner.invoke(
        main, ["submit", str(predictions), "--server", base, "--token", people.students["carol"]]
    )
    assert result.exit_code == 0, result.output
    assert "graded: public accuracy 0.6" in result.output
    broken = tmp_path / "broken.csv"
    broken.write_text("Id,Category\n0,3\n0,4\n")
    result = runner.invoke(
        main, ["submit", str(broken), "--server", base, "--token", people.students["carol"]]
    )
    assert result.exit_code == 1
    assert "invalid (HTTP 422)" in result.output and "Traceback" not in result.output
    result = runner.invoke(main, ["submit", str(predictions), "--server", base, "--token", "nope"])
    assert result.exit_code == 1 and "HTTP 401" in result.output
    rows = requests.get(base + "/api/v1/leaderboard", timeout=10).json()["rows"]
    assert [r["name"] for r in rows] == ["Carol"]


def test_browser_upload_shows_row_on_board(gunicorn_server, tmp_path, make_predictions):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/setup.sh as root)")
    base, people = gunicorn_server
    predictions = tmp_path / "predictions.csv"
    predictions.write_bytes(make_predictions(wrong=700))
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(java_script_enabled=False)  # the board works without JS
            page.goto(base + "/submit")
            page.fill("#token", people.students["alice"])
            page.set_input_files("#file", str(predictions))
            page.click("#submit")  # POST, then redirected to the submission's page (GET)
            page.wait_for_selector("#point-lines")
            assert "/submissions/" in page.url and "graded" in page.inner_text(".flash")
            feedback = page.inner_text("body")
            assert "public split accuracy" in feedback and "hidden / 10" in feedback
            page.screenshot(path=str(artifacts / "leaderboard-submission.png"), full_page=True)
            page.reload()  # a reload is a GET of the page: nothing is submitted again
            # Another gunicorn worker may serve its cached board for up to BOARD_CACHE_S (1 s).
            for _ in range(20):
                page.goto(base + "/assignments/cifar10/")
                board = page.inner_text("#board")
                if "Alice" in board:
                    break
                page.wait_for_timeout(250)
            page.screenshot(path=str(artifacts / "leaderboard-board.png"), full_page=True)
            page.goto(base + "/")
            index = page.inner_text("#assignments")
            page.screenshot(path=str(artifacts / "leaderboard-course.png"), full_page=True)
            page.goto(base + "/me")  # signed in by the upload's token
            history = page.inner_text("main")
            page.screenshot(path=str(artifacts / "leaderboard-history.png"), full_page=True)
        finally:
            browser.close()
    assert "Alice" in board
    first_row = board.splitlines()[1]
    assert first_row.startswith("1") and "Alice" in first_row and "9" in first_row
    assert (artifacts / "leaderboard-board.png").stat().st_size > 1000
    assert "CIFAR-10 image classification" in index and "Alice" in index  # the leader
    assert "Submissions of Alice" in history and "graded" in history
    assert history.count("hidden / 10") == 1  # one submission, its points after the reveal
