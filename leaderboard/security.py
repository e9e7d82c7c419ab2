"""Security headers, friendly error pages, and the rate limits of the API and the sign-in forms."""

from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request

from leaderboard.ratelimit import DatabaseRateLimiter, RedisRateLimiter, client_key

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
SIGN_IN_PATHS = ("/login", "/instructor/login")


def init_app(app: Flask) -> None:
    """Add headers to every response, limit request rates, and turn HTTP errors into pages or
    JSON without internals."""
    redis_url = app.config.get("REDIS_URL")
    app.extensions["rate_limiter"] = (
        RedisRateLimiter(redis_url)
        if redis_url
        else DatabaseRateLimiter(app.extensions["leaderboard_engine"])
    )

    @app.before_request
    def _rate_limit() -> Response | None:
        limit = _limit_for(app)
        if limit is None:
            return None
        window = app.config["RATE_WINDOW_S"]
        keys = [client_key("ip", request.remote_addr or "unknown")]
        token = _token_of_request()
        if token:
            keys.append(client_key("token", token))
        if request.path in SIGN_IN_PATHS:
            keys = [client_key("sign-in", k) for k in keys]
        retry = app.extensions["rate_limiter"].hit(keys, limit, window)
        if retry is None:
            return None
        message = f"too many requests; retry in {retry:.0f} s"
        if request.path.startswith("/api/"):
            response = jsonify({"status": "error", "errors": [message]})
        else:
            response = Response(render_template("error.html", code=429, message=message))
        response.status_code = 429
        response.headers["Retry-After"] = str(max(1, round(retry)))
        return response

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


def _limit_for(app: Flask) -> int | None:
    """The per-window limit that applies to this request, or None (the public pages)."""
    if request.path.startswith("/api/"):
        return app.config["API_RATE_LIMIT"]
    if request.method == "POST" and request.path in SIGN_IN_PATHS:
        return app.config["LOGIN_RATE_LIMIT"]
    if request.method == "POST" and request.path.endswith("/submit"):
        return app.config["API_RATE_LIMIT"]
    return None


def _token_of_request() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if request.method == "POST" and request.mimetype in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        return request.form.get("token") or None
    return None


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
