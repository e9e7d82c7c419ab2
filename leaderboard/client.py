"""The client side of ``grader submit``: upload with requests, turn the answer into lines."""

from __future__ import annotations

from pathlib import Path

import requests


class SubmitFailed(RuntimeError):
    """The server refused the submission or could not be reached; the message says why."""


def submit_files(
    files: list[Path], *, server: str, token: str, timeout: float = 120.0
) -> list[str]:
    """Upload ``files`` to ``server``; return readable lines or raise :class:`SubmitFailed`."""
    url = server.rstrip("/") + "/api/v1/submissions"
    handles = [("file", (path.name, path.read_bytes())) for path in files]
    try:
        response = requests.post(
            url, headers={"Authorization": f"Bearer {token}"}, files=handles, timeout=timeout
        )
    except requests.RequestException as exc:
        raise SubmitFailed(f"cannot reach {url}: {exc}") from None
    try:
        body = response.json()
    except ValueError:
        raise SubmitFailed(
            f"{url} answered HTTP {response.status_code} without JSON; is --server right?"
        ) from None
    status = body.get("status")
    if status == "scored":
        public = body["scores"]["public"]
        lines = [f"scored: public accuracy {public['accuracy']:.4f}"]
        if public.get("macro_f1") is not None:
            lines.append(f"public macro-F1 {public['macro_f1']:.4f}")
        if body.get("late"):
            lines.append("note: submitted after the deadline (flagged late)")
        if body.get("remaining_today") is not None:
            lines.append(f"{body['remaining_today']} submission(s) left today")
        return lines
    if status == "queued":
        return [
            f"queued: submission {body['submission_id']}",
            f"status: {server.rstrip('/')}/submissions/{body['submission_id']}",
        ]
    errors = body.get("errors") or [f"HTTP {response.status_code}"]
    raise SubmitFailed(
        f"{status or 'error'} (HTTP {response.status_code}):\n"
        + "\n".join(f"  - {e}" for e in errors)
    )
