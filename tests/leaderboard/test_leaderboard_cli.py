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
    roster.write_text("name,section\nAlice,L01\n")
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


def test_worker_token_command_makes_a_worker_token(tmp_path):
    from leaderboard.auth import identify
    from leaderboard.status import Role

    url = f"sqlite:///{tmp_path / 'g.db'}"
    result = CliRunner().invoke(main, ["roster", "worker", "--database", url])
    assert result.exit_code == 0
    engine = make_engine(url)
    with session_scope(engine) as session:
        identity = identify(session, result.stdout.strip())
    engine.dispose()
    assert identity.role is Role.WORKER and identity.student_id is None


def test_roster_import_keeps_lms_fields_and_teams(tmp_path):
    from leaderboard.models import Student

    url = f"sqlite:///{tmp_path / 'g.db'}"
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "SIS Login ID,Name,Email,SIS User ID,Section,Team\nal1,Alice,a@u.edu,S1,L01,red\n"
    )
    result = CliRunner().invoke(main, ["roster", "import", str(roster), "--database", url])
    assert result.exit_code == 0, result.output
    engine = make_engine(url)
    with session_scope(engine) as session:
        alice = session.scalar(select(Student))
        assert (alice.student, alice.sis_id, alice.login_id, alice.section, alice.email) == (
            "al1", "S1", "al1", "L01", "a@u.edu"
        )  # fmt: skip
        assert alice.team.name == "red" and alice.team.display_name != "red"
    engine.dispose()


def test_remote_worker_options_are_checked(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["worker", "--server", "http://127.0.0.1:9"])
    assert result.exit_code == 2 and "needs --server, --token" in result.output
    result = runner.invoke(main, ["worker", "--token", "x", "--database", "sqlite://"])
    assert result.exit_code == 2 and "need --server" in result.output
    result = runner.invoke(
        main, ["worker", "--server", "http://127.0.0.1:9", "--token", "t", "--broker", "redis://x"]
    )
    assert result.exit_code == 1 and "cannot reach http://127.0.0.1:9" in result.output
    assert "Traceback" not in result.output


def test_an_old_database_is_refused_with_what_to_do(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE settings (key VARCHAR(80) PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO settings VALUES ('secret_key', 'x')")
    result = CliRunner().invoke(main, ["init-db", "--database", f"sqlite:///{path}"])
    assert result.exit_code == 1 and "schema 1, this version needs schema 3" in result.output
