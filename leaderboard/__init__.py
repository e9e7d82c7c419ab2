"""The leaderboard web service: a Flask app factory.

``create_app()`` only builds the app (config, database, blueprints); gunicorn runs
``"leaderboard:create_app()"``. Settings come from ``test_config`` or the environment:
``GRADER_DATABASE_URL``, ``GRADER_ASSIGNMENT``, ``GRADER_UPLOAD_DIR``, ``GRADER_DATA_DIR``,
``GRADER_PSEUDONYMS``, ``GRADER_API_RATE_LIMIT`` (API requests per minute per client) and
``GRADER_BOARD_CACHE_S`` (how stale another server process's cached board may be).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the leaderboard app from ``test_config`` or the environment."""
    from flask_wtf.csrf import CSRFProtect

    from grader.assignment import Assignment, load_assignment
    from leaderboard import api, board, cache, db, instructor, security

    app = Flask(__name__)
    env = os.environ
    app.config.from_mapping(
        DATABASE_URL=db.database_url(),
        ASSIGNMENT=env.get("GRADER_ASSIGNMENT", "cifar10"),
        UPLOAD_DIR=env.get("GRADER_UPLOAD_DIR", str(Path.cwd() / "uploads")),
        DATA_DIR=env.get("GRADER_DATA_DIR") or None,
        PSEUDONYMS=env.get("GRADER_PSEUDONYMS", "0").lower() in {"1", "true", "yes"},
        MAX_CONTENT_LENGTH=64 * 1024 * 1024,
        API_RATE_LIMIT=int(env.get("GRADER_API_RATE_LIMIT", "600")),
        API_RATE_WINDOW_S=60,
        BOARD_CACHE_S=float(env.get("GRADER_BOARD_CACHE_S", "1.0")),
        WTF_CSRF_TIME_LIMIT=None,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
    )
    if test_config:
        app.config.from_mapping(test_config)
    assignment = app.config["ASSIGNMENT"]
    app.config["SPEC"] = (
        assignment if isinstance(assignment, Assignment) else load_assignment(assignment)
    )

    db.init_app(app)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = db.load_secret_key(app.extensions["leaderboard_engine"])
    # No pooled connection may cross a fork (gunicorn --preload builds the app before forking).
    app.extensions["leaderboard_engine"].dispose()

    CSRFProtect(app).exempt(api.bp)
    security.init_app(app)
    cache.init_app(app)
    app.register_blueprint(board.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(instructor.bp)
    return app
