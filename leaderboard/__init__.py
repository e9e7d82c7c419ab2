"""The leaderboard web service of a course: a Flask app factory.

``create_app()`` only builds the app (config, database, blueprints); gunicorn runs
``"leaderboard:create_app()"``. Settings come from ``test_config`` or the environment:

- ``GRADER_DATABASE_URL``: the database (default ``sqlite:///grader.db``);
- ``GRADER_COURSE`` (a course TOML) or ``GRADER_ASSIGNMENT`` (one or more spec names or paths,
  comma-separated; default ``cifar10``): what the server hosts;
- ``GRADER_BROKER_URL``: a Redis broker; model jobs then go to Celery workers anywhere
  (without it they wait in the database for the embedded ``grader worker``);
- ``GRADER_REDIS_URL``: where the rate-limit counters live (default: the broker when it is
  Redis, else the database);
- ``GRADER_DATA_DIR``, ``GRADER_PSEUDONYMS`` (``0`` shows real names until the instructor
  switches), ``GRADER_API_RATE_LIMIT`` and ``GRADER_LOGIN_RATE_LIMIT`` (requests per minute per
  client address and per token), ``GRADER_BOARD_CACHE_S`` (how stale another server process's
  cached board may be);
- ``GRADER_BASELINE_DIR``: the folder of baseline records the boards show (default: the
  project's ``reference/baselines``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask


def _course(config: dict[str, Any]):
    from grader.assignment import Assignment
    from leaderboard.course import Course, course_of, load_course

    course = config.get("COURSE")
    if isinstance(course, Course):
        return course
    if course:
        return load_course(Path(course))
    assignment = config["ASSIGNMENT"]
    if isinstance(assignment, Assignment):
        return course_of([assignment])
    if isinstance(assignment, (list, tuple)):
        return course_of(list(assignment))
    return course_of([a.strip() for a in str(assignment).split(",") if a.strip()])


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the leaderboard app from ``test_config`` or the environment."""
    from flask_wtf.csrf import CSRFProtect

    from leaderboard import (
        api,
        board,
        broker,
        cache,
        db,
        instructor,
        security,
        student,
        worker_api,
    )

    app = Flask(__name__)
    env = os.environ
    broker_url = broker.broker_url()
    app.config.from_mapping(
        DATABASE_URL=db.database_url(),
        COURSE=env.get("GRADER_COURSE") or None,
        ASSIGNMENT=env.get("GRADER_ASSIGNMENT", "cifar10"),
        DATA_DIR=env.get("GRADER_DATA_DIR") or None,
        BASELINE_DIR=env.get("GRADER_BASELINE_DIR") or None,
        PSEUDONYMS=env.get("GRADER_PSEUDONYMS", "1").lower() not in {"0", "false", "no"},
        BROKER_URL=broker_url,
        REDIS_URL=env.get("GRADER_REDIS_URL")
        or (broker_url if broker_url and broker_url.startswith("redis") else None),
        MAX_CONTENT_LENGTH=64 * 1024 * 1024,
        API_RATE_LIMIT=int(env.get("GRADER_API_RATE_LIMIT", "600")),
        LOGIN_RATE_LIMIT=int(env.get("GRADER_LOGIN_RATE_LIMIT", "20")),
        RATE_WINDOW_S=60,
        BOARD_CACHE_S=float(env.get("GRADER_BOARD_CACHE_S", "1.0")),
        WTF_CSRF_TIME_LIMIT=None,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
    )
    if test_config:
        app.config.from_mapping(test_config)
    app.config["COURSE"] = _course(app.config)

    db.init_app(app)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = db.load_secret_key(app.extensions["leaderboard_engine"])
    # what the embedded worker warms its boxes for when it starts (grader worker)
    db.note_served_models(app.extensions["leaderboard_engine"], app.config["COURSE"])
    # No pooled connection may cross a fork (gunicorn --preload builds the app before forking).
    app.extensions["leaderboard_engine"].dispose()
    if app.config["BROKER_URL"]:
        app.extensions["job_publisher"] = broker.JobPublisher(app.config["BROKER_URL"])

    csrf = CSRFProtect(app)
    csrf.exempt(api.bp)
    csrf.exempt(worker_api.bp)
    security.init_app(app)
    cache.init_app(app)
    app.register_blueprint(board.bp)
    app.register_blueprint(student.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(worker_api.bp)
    app.register_blueprint(instructor.bp)
    return app
