"""The records a grading worker and the server exchange, with strict parsers.

A worker may run on another machine, so everything it sends is untrusted input: the parsers
accept only the documented keys and types, within size limits, and raise :class:`ProtocolError`
naming the offending field. A result carries the predicted class of every test image, never a
score: the server scores against an answer key no worker sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from leaderboard.status import GradeStatus, JobKind

MAX_TEXT = 20_000
"""Longest message accepted."""
MAX_ITEMS = 200
"""Most flags or checks accepted."""
MAX_ITEM_TEXT = 2_000
MAX_LABELS = 1_000_000
MAX_CLASSES = 1_000


class ProtocolError(ValueError):
    """A record that does not follow the protocol; the message names the field."""


@dataclass(frozen=True)
class CheckRecord:
    """One pass/fail line of a model check."""

    name: str
    passed: bool
    message: str = ""


@dataclass(frozen=True)
class JobResult:
    """The outcome of grading one job, as a worker posts it."""

    status: GradeStatus
    """``ok``, ``invalid`` (the submission is at fault) or ``error`` (the grader failed)."""
    message: str = ""
    labels: np.ndarray | None = field(default=None, compare=False, repr=False)
    """The predicted class of every test image, in id order (None unless ``ok``)."""
    total_params: int | None = None
    flops: int | None = None
    weights_sha256: str | None = None
    verified: bool | None = None
    """Whether the numbers come from the grader's verified evaluation (None: not known)."""
    flags: tuple[str, ...] = ()
    checks: tuple[CheckRecord, ...] = ()
    wall_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (the body a worker posts)."""
        return {
            "status": self.status.value,
            "message": self.message,
            "labels": None if self.labels is None else [int(v) for v in self.labels],
            "total_params": self.total_params,
            "flops": self.flops,
            "weights_sha256": self.weights_sha256,
            "verified": self.verified,
            "flags": list(self.flags),
            "checks": [
                {"name": c.name, "passed": c.passed, "message": c.message} for c in self.checks
            ],
            "wall_s": self.wall_s,
        }

    @classmethod
    def from_json(cls, data: Any) -> JobResult:
        """Parse a posted result strictly; :class:`ProtocolError` names what is wrong."""
        fields = _table(data, "result", required={"status"}, allowed=set(cls.__dataclass_fields__))
        try:
            status = GradeStatus(fields["status"])
        except ValueError:
            raise ProtocolError(
                f"result.status = {fields['status']!r}; use one of "
                f"{', '.join(s.value for s in GradeStatus)}"
            ) from None
        labels = fields.get("labels")
        if labels is not None:
            if not isinstance(labels, list) or len(labels) > MAX_LABELS:
                raise ProtocolError(f"result.labels must be a list of at most {MAX_LABELS} ints")
            if not all(type(v) is int and 0 <= v < MAX_CLASSES for v in labels):
                raise ProtocolError("result.labels must hold class indices (ints from 0)")
            labels = np.asarray(labels, dtype=np.int64)
        checks = []
        for i, check in enumerate(_list(fields.get("checks", []), "result.checks")):
            where = f"result.checks[{i}]"
            item = _table(check, where, {"name", "passed"}, {"name", "passed", "message"})
            checks.append(
                CheckRecord(
                    name=_text(item["name"], f"{where}.name", MAX_ITEM_TEXT),
                    passed=_bool(item["passed"], f"{where}.passed"),
                    message=_text(item.get("message", ""), f"{where}.message", MAX_ITEM_TEXT),
                )
            )
        return cls(
            status=status,
            message=_text(fields.get("message", ""), "result.message", MAX_TEXT),
            labels=labels,
            total_params=_optional_count(fields.get("total_params"), "result.total_params"),
            flops=_optional_count(fields.get("flops"), "result.flops"),
            weights_sha256=_digest(fields.get("weights_sha256")),
            verified=(
                None
                if fields.get("verified") is None
                else _bool(fields["verified"], "result.verified")
            ),  # fmt: skip
            flags=tuple(
                _text(f, f"result.flags[{i}]", MAX_ITEM_TEXT)
                for i, f in enumerate(_list(fields.get("flags", []), "result.flags"))
            ),
            checks=tuple(checks),
            wall_s=_number(fields.get("wall_s", 0.0), "result.wall_s"),
        )


@dataclass(frozen=True)
class Claim:
    """A job handed to one worker for one attempt; ``key`` proves the attempt is theirs."""

    job_id: int
    attempt: int
    key: str
    kind: JobKind
    assignment: str
    spec: dict[str, Any]
    """The assignment spec as a table (:func:`grader.assignment.assignment_table`)."""
    payload: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The claim as the server answers it."""
        return {
            "job_id": self.job_id,
            "attempt": self.attempt,
            "key": self.key,
            "kind": self.kind.value,
            "assignment": self.assignment,
            "spec": self.spec,
            "payload": self.payload,
        }

    @classmethod
    def from_json(cls, data: Any) -> Claim:
        """Parse a claim answer strictly."""
        allowed = {"job_id", "attempt", "key", "kind", "assignment", "spec", "payload"}
        fields = _table(data, "claim", allowed, allowed)
        try:
            kind = JobKind(fields["kind"])
        except ValueError:
            raise ProtocolError(f"claim.kind = {fields['kind']!r} is not a job kind") from None
        if not isinstance(fields["spec"], dict) or not isinstance(fields["payload"], dict):
            raise ProtocolError("claim.spec and claim.payload must be tables")
        return cls(
            job_id=_count(fields["job_id"], "claim.job_id"),
            attempt=_count(fields["attempt"], "claim.attempt"),
            key=_text(fields["key"], "claim.key", 200),
            kind=kind,
            assignment=_text(fields["assignment"], "claim.assignment", 120),
            spec=fields["spec"],
            payload=fields["payload"],
        )


def attempt_fields(data: Any) -> tuple[int, str]:
    """The ``attempt`` and ``key`` of a heartbeat or result post."""
    if not isinstance(data, dict):
        raise ProtocolError("the body must be a JSON object with attempt and key")
    if "attempt" not in data or "key" not in data:
        raise ProtocolError("the body needs attempt (int) and key (the claim's key)")
    return _count(data["attempt"], "attempt"), _text(data["key"], "key", 200)


def _table(data: Any, where: str, required: set[str], allowed: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ProtocolError(f"{where} must be a JSON object")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ProtocolError(f"{where}: unknown field(s) {', '.join(map(str, unknown))[:200]}")
    missing = sorted(required - set(data))
    if missing:
        raise ProtocolError(f"{where}: missing field(s) {', '.join(missing)}")
    return data


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise ProtocolError(f"{where} must be a list of at most {MAX_ITEMS} items")
    return value


def _text(value: Any, where: str, limit: int) -> str:
    if not isinstance(value, str):
        raise ProtocolError(f"{where} must be a string")
    if len(value) > limit:
        raise ProtocolError(f"{where} is longer than {limit:,} characters")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ProtocolError(f"{where} must be true or false")
    return value


def _optional_count(value: Any, where: str) -> int | None:
    return None if value is None else _count(value, where)


def _count(value: Any, where: str) -> int:
    if type(value) is not int or value < 0 or value > 2**62:
        raise ProtocolError(f"{where} must be a non-negative integer")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e9:
        raise ProtocolError(f"{where} must be a non-negative number")
    return float(value)


def _digest(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) != 64 or set(value) - set("0123456789abcdef"):
        raise ProtocolError("result.weights_sha256 must be 64 lowercase hex digits")
    return value
