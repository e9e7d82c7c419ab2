"""The client side of ``grader submit``: upload with requests, optionally wait for a queued
model's grade, and turn the answers into lines."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import requests


class SubmitFailed(RuntimeError):
    """The server refused the submission or could not be reached; the message says why."""


def _json(response: requests.Response, url: str) -> dict:
    try:
        return response.json()
    except ValueError:
        raise SubmitFailed(
            f"{url} answered HTTP {response.status_code} without JSON; is --server right?"
        ) from None


def submit_files(
    files: list[Path],
    *,
    server: str,
    token: str,
    assignment: str | None = None,
    timeout: float = 120.0,
) -> tuple[dict, list[str]]:
    """Upload ``files``; return the server's answer and readable lines, or raise SubmitFailed."""
    base = server.rstrip("/") + "/api/v1"
    url = f"{base}/assignments/{assignment}/submissions" if assignment else f"{base}/submissions"
    handles = [("file", (path.name, path.read_bytes())) for path in files]
    try:
        response = requests.post(
            url, headers={"Authorization": f"Bearer {token}"}, files=handles, timeout=timeout
        )
    except requests.RequestException as exc:
        raise SubmitFailed(f"cannot reach {url}: {exc}") from None
    if response.status_code == 404 and assignment:
        raise SubmitFailed(f"the server has no assignment {assignment!r} (HTTP 404)")
    body = _json(response, url)
    status = body.get("status")
    if status == "graded":
        return body, graded_lines(body)
    if status == "queued":
        return body, [
            f"queued: submission {body['submission_id']} ({body.get('assignment', '')})",
            f"status: {server.rstrip('/')}/submissions/{body['submission_id']}",
        ]
    errors = body.get("errors") or [f"HTTP {response.status_code}"]
    raise SubmitFailed(
        f"{status or 'error'} (HTTP {response.status_code}):\n"
        + "\n".join(f"  - {e}" for e in errors)
    )


def graded_lines(body: dict) -> list[str]:
    """Lines for a graded submission (the upload's answer or its status)."""
    public = (body.get("scores") or {}).get("public")
    lines = ["graded"]
    if public is not None:
        lines = [f"graded: public accuracy {public['accuracy']:.4f}"]
        if public.get("macro_f1") is not None:
            lines.append(f"public macro-F1 {public['macro_f1']:.4f}")
    points = body.get("points")
    if points is not None:
        lines.append(f"points {_points_words(points)}")
    if body.get("total_params") is not None:
        lines.append(f"parameters {body['total_params']:,}, FLOPs {body.get('flops') or 0:,}")
    if body.get("message"):
        lines.append(f"note: {body['message']}")
    if body.get("late"):
        lines.append("note: submitted after the deadline (flagged late)")
    if body.get("remaining_today") is not None:
        lines.append(f"{body['remaining_today']} submission(s) left today")
    return lines


def wait_for_grade(
    submission_id: int,
    *,
    server: str,
    token: str,
    timeout: float = 900.0,
    interval: float = 2.0,
    on_wait: Callable[[str], None] | None = None,
) -> list[str]:
    """Poll a queued submission until it is graded; its lines, or SubmitFailed when it failed,
    was invalid or took longer than ``timeout`` seconds."""
    url = f"{server.rstrip('/')}/api/v1/submissions/{submission_id}"
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            response = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        except requests.RequestException as exc:
            raise SubmitFailed(f"cannot reach {url}: {exc}") from None
        body = _json(response, url)
        status = body.get("status")
        if response.status_code != 200:
            errors = body.get("errors") or [f"HTTP {response.status_code}"]
            raise SubmitFailed(f"{url}: {'; '.join(errors)}")
        if status == "graded":
            return graded_lines(body)
        if status in ("invalid", "failed"):
            raise SubmitFailed(f"{status}: {body.get('message') or 'no reason given'}")
        if status != last and on_wait is not None:
            on_wait(f"{status}...")
        last = status
        if time.monotonic() > deadline:
            raise SubmitFailed(
                f"submission {submission_id} is still {status} after {timeout:.0f} s; "
                f"see {server.rstrip('/')}/submissions/{submission_id}"
            )
        time.sleep(interval)


def _points_words(points: dict) -> str:
    """``7 / 10``, ``3 / 10 so far (the accuracy points after the reveal)``, ``held``."""
    total = points.get("max_points") or 0
    value = points.get("points")
    shown = "-" if value is None else format(value, "g")
    if value is None and points.get("hidden"):
        shown = "hidden"
    words = f"{shown} / {total:g}"
    if points.get("hidden"):
        words += " so far (the accuracy points are shown after the reveal)"
    if points.get("held_for_review"):
        words += "; held at 0 until the instructor reviews it"
    return words
