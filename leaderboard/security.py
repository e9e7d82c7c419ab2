"""Security headers, friendly error pages and a per-client rate limit for the API."""

from __future__ import annotations

import threading
import time
from collections import deque

from flask import Flask, Response, jsonify, render_template, request

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class RateLimiter:
    """A sliding window of request times per client key, kept in this process's memory."""

    def __init__(self, limit: int, window_s: float):
        self.limit = limit
        self.window_s = window_s
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> tuple[bool, float]:
        """Record a request by ``key``; return (allowed, seconds until the next one is)."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window_s:
                hits.popleft()
            if len(hits) >= self.limit:
                return False, hits[0] + self.window_s - now
            hits.append(now)
            return True, 0.0


def init_app(app: Flask) -> None:
    """Add headers to every response and turn HTTP errors into pages or JSON without internals."""
    app.extensions["rate_limiter"] = RateLimiter(
        app.config["API_RATE_LIMIT"], app.config["API_RATE_WINDOW_S"]
    )

    @app.after_request
    def _headers(response: Response) -> Response:
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    for code, message in {
        400: "The request was not understood (a form may have expired; reload the page).",
        404: "No such page.",
        405: "That method is not allowed here.",
        413: "The upload is too large.",
        500: "Something went wrong on the server; the error was logged.",
    }.items():
        app.register_error_handler(code, _error_handler(code, message))


def _error_handler(code: int, message: str):
    def handle(error):
        text = getattr(error, "description", None) if code in (400, 413) else None
        if code == 413:
            limit = request.max_content_length or 0
            text = f"The upload is larger than the limit of {limit:,} bytes."
        if request.path.startswith("/api/"):
            return jsonify({"status": "error", "errors": [text or message]}), code
        return render_template("error.html", code=code, message=text or message), code

    return handle
