"""The roster and database commands through click's runner."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from grader.cli import main
from leaderboard.auth import hash_token
from leaderboard.db import make_engine, session_scope
from leaderboard.models import Token


def test_init_db_and_roster_import_prints_tokens_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'g.db'}"
    runner = CliRunner()
    result = runner.invoke(main, ["init-db", "--database", url])
    assert result.exit_code == 0 and "database ready" in result.output
    roster = tmp_path / "roster.csv"
    roster.write_text("student,name,email\nalice,Alice,a@example.org\nbob,Bob,b@example.org\n")
    result = runner.invoke(main, ["roster", "import", str(roster), "--database", url])
    assert result.exit_code == 0, result.output
    tokens = pd.read_csv(io.StringIO(result.stdout))
    assert list(tokens.columns) == ["student", "token"]
    assert list(tokens["student"]) == ["alice", "bob"]
    again = runner.invoke(main, ["roster", "import", str(roster), "--database", url])
    assert again.stdout.strip() == "student,token"  # nobody new, no token shown again
    engine = make_engine(url)
    with session_scope(engine) as session:
        stored = set(session.scalars(select(Token.token_hash)))
    engine.dispose()
    assert {hash_token(t) for t in tokens["token"]} <= stored
    assert not set(tokens["token"]) & stored  # only hashes are kept


def test_instructor_token_command(tmp_path):
    url = f"sqlite:///{tmp_path / 'g.db'}"
    result = CliRunner().invoke(main, ["roster", "instructor", "--database", url])
    assert result.exit_code == 0 and len(result.stdout.strip()) >= 40


def test_roster_without_student_column_is_a_clear_error(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("name,email\nAlice,a@example.org\n")
    url = f"sqlite:///{tmp_path / 'g.db'}"
    result = CliRunner().invoke(main, ["roster", "import", str(roster), "--database", url])
    assert result.exit_code == 1
    assert f"{roster}: no 'student' column" in result.output
    assert "Traceback" not in result.output


def test_serve_rejects_an_unknown_assignment():
    result = CliRunner().invoke(main, ["serve", "--assignment", "no-such-course"])
    assert result.exit_code == 2
    assert "unknown assignment 'no-such-course'" in result.output
    assert "Traceback" not in result.output


def test_init_db_on_an_unreachable_server_is_a_clear_error():
    url = "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=3"
    result = CliRunner().invoke(main, ["init-db", "--database", url])
    assert result.exit_code == 1
    assert "cannot create the schema" in result.output and "Traceback" not in result.output


def test_worker_once_on_an_empty_queue(tmp_path):
    url = f"sqlite:///{tmp_path / 'g.db'}"
    CliRunner().invoke(main, ["init-db", "--database", url])
    result = CliRunner().invoke(main, ["worker", "--database", url, "--once"])
    assert result.exit_code == 0 and "processed 0 job(s)" in result.output
    assert "grader worker" in result.output and "embedded, queue(s) cpu, gpu" in result.output


def test_app_on_a_database_without_schema_says_what_to_do(tmp_path):
    from leaderboard import create_app
    from leaderboard.db import DatabaseError

    with pytest.raises(DatabaseError, match="run `grader init-db`"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"})
