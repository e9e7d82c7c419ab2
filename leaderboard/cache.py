"""A per-process cache of rendered boards, kept fresh by the database's board version.

Within ``BOARD_CACHE_S`` seconds of the last check a cached body is served without touching the
database; after that, one small query of the state it shows (the board version, bumped by every
new score, reveal, rescore or name switch, plus whatever the page depends on) decides whether to
render again. A successful POST in this process drops the cache at once, so a student always
sees their own submission on the next page.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, Response, current_app, request

from leaderboard.db import get_session, read_setting
from leaderboard.models import utcnow


@dataclass
class Cached:
    """A rendered body, the database state it shows, and when that state was last checked."""

    key: tuple
    body: str
    checked: float


def board_state(*extra: object) -> tuple:
    """The state every board depends on: the board version, today's date, and ``extra``."""
    return (read_setting(get_session(), "board_version", "0"), utcnow().date(), *extra)


def cached_response(
    name: str, state: Callable[[], tuple], render: Callable[[], str], mimetype: str
) -> Response:
    """The cached body ``name``, rendered again by ``render()`` when ``state()`` changed."""
    caches: dict[str, Cached] = current_app.extensions.setdefault("board_cache", {})
    entry = caches.get(name)
    if entry is not None and time.monotonic() - entry.checked < current_app.config["BOARD_CACHE_S"]:
        return Response(entry.body, mimetype=mimetype)
    key = state()
    if entry is None or entry.key != key:
        entry = Cached(key=key, body=render(), checked=0.0)
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
