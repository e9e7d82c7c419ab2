"""The messages a grading worker and the server exchange, with strict parsers.

A worker may run on another machine, so everything it sends is untrusted input: the parsers
accept only the documented keys and types, within size and depth limits, and raise
:class:`WorkerMessageError` naming the offending field. A result is the worker's label-free
:class:`grader.grading.evidence.Evidence` (logits, never a score): the server completes the grade
against an answer key no worker sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from grader.grading.evidence import Evidence, EvidenceError
from grader.grading.status import SubmissionKind


class WorkerMessageError(ValueError):
    """A message between a worker and the server that does not follow the protocol; the
    message names the field."""


@dataclass(frozen=True)
class Claim:
    """A job handed to one worker for one attempt; ``key`` proves the attempt is theirs."""

    job_id: int
    attempt: int
    key: str
    kind: SubmissionKind
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
            kind = SubmissionKind(fields["kind"])
        except ValueError:
            raise WorkerMessageError(f"claim.kind = {fields['kind']!r} is not a job kind") from None
        if not isinstance(fields["spec"], dict) or not isinstance(fields["payload"], dict):
            raise WorkerMessageError("claim.spec and claim.payload must be tables")
        return cls(
            job_id=_count(fields["job_id"], "claim.job_id"),
            attempt=_count(fields["attempt"], "claim.attempt"),
            key=_text(fields["key"], "claim.key", 200),
            kind=kind,
            assignment=_text(fields["assignment"], "claim.assignment", 120),
            spec=fields["spec"],
            payload=fields["payload"],
        )


def result_fields(raw: bytes) -> tuple[int, str, Evidence]:
    """The ``attempt``, ``key`` and :class:`Evidence` of a posted result body (JSON, its
    nesting checked before it is parsed)."""
    from grader.sandbox.protocol import ProtocolError, parse_json

    try:
        body = parse_json(raw, name="the body")
    except ProtocolError as exc:
        raise WorkerMessageError(str(exc)) from None
    attempt, key = attempt_fields(body)
    if "evidence" not in body:
        raise WorkerMessageError("the body needs evidence (the worker's evidence record)")
    try:
        return attempt, key, Evidence.from_record(body["evidence"])
    except EvidenceError as exc:
        raise WorkerMessageError(str(exc)) from None


def attempt_fields(data: Any) -> tuple[int, str]:
    """The ``attempt`` and ``key`` of a heartbeat or result post."""
    if not isinstance(data, dict):
        raise WorkerMessageError("the body must be a JSON object with attempt and key")
    if "attempt" not in data or "key" not in data:
        raise WorkerMessageError("the body needs attempt (int) and key (the claim's key)")
    return _count(data["attempt"], "attempt"), _text(data["key"], "key", 200)


def _table(data: Any, where: str, required: set[str], allowed: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise WorkerMessageError(f"{where} must be a JSON object")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise WorkerMessageError(f"{where}: unknown field(s) {', '.join(map(str, unknown))[:200]}")
    missing = sorted(required - set(data))
    if missing:
        raise WorkerMessageError(f"{where}: missing field(s) {', '.join(missing)}")
    return data


def _text(value: Any, where: str, limit: int) -> str:
    if not isinstance(value, str):
        raise WorkerMessageError(f"{where} must be a string")
    if len(value) > limit:
        raise WorkerMessageError(f"{where} is longer than {limit:,} characters")
    return value


def _count(value: Any, where: str) -> int:
    if type(value) is not int or value < 0 or value > 2**62:
        raise WorkerMessageError(f"{where} must be a non-negative integer")
    return value
