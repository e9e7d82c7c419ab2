"""A per-process cache of rendered boards, kept fresh by the database's board version.

Within ``BOARD_CACHE_S`` seconds of the last check a cached body is served without touching the
database; after that, one query of the board version (bumped by every new score, reveal or
rescore) decides whether to render again. A successful POST in this process drops the cache at
once, so a student always sees their own submission on the next page.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, Response, current_app, request

from leaderboard.db import get_session, read_setting
from leaderboard.models import utcnow
from leaderboard.standings import is_revealed


@dataclass
class Cached:
    """A rendered body, the database state it shows, and when that state was last checked."""

    key: tuple
    body: str
    checked: float


def cached_response(name: str, render: Callable[[bool], str], mimetype: str) -> Response:
    """The cached body ``name``, rendered again by ``render(revealed)`` when the board changed."""
    caches: dict[str, Cached] = current_app.extensions.setdefault("board_cache", {})
    entry = caches.get(name)
    if entry is not None and time.monotonic() - entry.checked < current_app.config["BOARD_CACHE_S"]:
        return Response(entry.body, mimetype=mimetype)
    session = get_session()
    now = utcnow()
    revealed = is_revealed(session, current_app.config["SPEC"], now)
    key = (read_setting(session, "board_version", "0"), revealed, now.date())
    if entry is None or entry.key != key:
        entry = Cached(key=key, body=render(revealed), checked=0.0)
    entry.checked = time.monotonic()
    caches[name] = entry
    return Response(entry.body, mimetype=mimetype)


def init_app(app: Flask) -> None:
    """Drop the cache after every successful POST handled by this process."""

    @app.after_request
    def _drop_after_writes(response: Response) -> Response:
        if request.method == "POST" and response.status_code < 400:
            app.extensions.pop("board_cache", None)
        return response
