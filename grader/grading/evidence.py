"""What grading finds before any label is looked at: the box's side of a grade.

A worker (embedded or remote) holds no labels. It runs the submission in its boxes and hands
back :class:`Evidence`: for a model the whole :class:`grader.models.result.ModelResult` (logits,
the logits on the image variants, checks, counts, flags, ...), for an ``ops.py`` the
:class:`grader.ops.grade.OpsGrade`. The side that holds the answer key turns it into a
:class:`grader.grading.grade.Grade` (:func:`grader.grading.complete.complete_grade`).

Evidence crosses machines as a typed, versioned JSON record (:meth:`Evidence.to_record`): every
field of ``ModelResult`` and ``OpsGrade`` travels by its type (arrays as base64 tables), so a
field added to either flows without a change here. The parser is strict: unknown keys, wrong
types, deep nesting and oversized arrays are refused with the key at fault named.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from grader.grading.status import GradeStatus, SubmissionKind
from grader.models.result import ModelResult
from grader.ops.grade import OpsGrade
from grader.records import RecordError, from_data, to_data

EVIDENCE_FORMAT = "grader.evidence"
EVIDENCE_VERSION = 1
"""Version of the evidence record: bumped when a field changes meaning or type (fields added
with a default need no bump)."""
MAX_DEPTH = 32
MAX_TEXT = 200_000
"""Longest string of a record (the log of a job is at most ~100 kB); arrays are not strings."""
MAX_ITEMS = 100_000
"""Most items of a list or table (layers, checks, flags, ...)."""


class EvidenceError(RecordError):
    """An evidence record that cannot be used; the message names the field at fault."""


@dataclass(frozen=True)
class PredictionsFile:
    """A predictions file as submitted: read and scored where the answer key is."""

    name: str
    content: bytes = field(repr=False)


@dataclass
class Evidence:
    """The label-free outcome of running one submission."""

    kind: SubmissionKind
    status: GradeStatus = GradeStatus.OK
    """``invalid`` or ``error`` when nothing could be run at all (the wrong kind of file, a
    worker that failed to start the job); the message says why. Otherwise ``ok``: the verdict
    is the model's or the ops' own."""
    message: str = ""
    model: ModelResult | None = None
    ops: OpsGrade | None = None
    predictions: PredictionsFile | None = None
    files: list[str] = field(default_factory=list)
    """The files that were graded."""
    wall_s: float = 0.0

    def to_record(self) -> dict[str, Any]:
        """The versioned JSON-able record a worker posts."""
        return {"format": EVIDENCE_FORMAT, "version": EVIDENCE_VERSION, "evidence": to_data(self)}

    def to_json_bytes(self) -> bytes:
        """:meth:`to_record` as compact JSON."""
        return json.dumps(self.to_record(), allow_nan=False, separators=(",", ":")).encode()

    @classmethod
    def from_record(cls, record: Any) -> Evidence:
        """Parse a record strictly; :class:`EvidenceError` names what is wrong."""
        if not isinstance(record, dict) or set(record) != {"format", "version", "evidence"}:
            raise EvidenceError("evidence: expected a table with format, version and evidence")
        if record["format"] != EVIDENCE_FORMAT:
            raise EvidenceError(f"evidence: format {str(record['format'])[:40]!r} is not ours")
        if record["version"] != EVIDENCE_VERSION:
            raise EvidenceError(
                f"evidence: version {str(record['version'])[:20]} from the worker, this server "
                f"reads version {EVIDENCE_VERSION}: run the same grader version on both"
            )
        _check_sizes(record["evidence"], "evidence")
        evidence = from_data(cls, record["evidence"], "evidence", error=EvidenceError)
        wanted = {SubmissionKind.MODEL: "model", SubmissionKind.OPS: "ops",
                  SubmissionKind.PREDICTIONS: "predictions"}.get(evidence.kind)  # fmt: skip
        present = [n for n in ("model", "ops", "predictions") if getattr(evidence, n) is not None]
        if evidence.status is GradeStatus.OK and present != [wanted]:
            raise EvidenceError(
                f"evidence: a {evidence.kind} record must carry its {wanted} outcome and no other"
            )
        return evidence

    @classmethod
    def from_json_bytes(cls, raw: bytes) -> Evidence:
        """Parse posted JSON, refusing deep nesting before the parser sees it."""
        from grader.sandbox.protocol import ProtocolError, parse_json

        try:
            data = parse_json(raw, name="evidence", max_depth=MAX_DEPTH)
        except ProtocolError as exc:
            raise EvidenceError(str(exc)) from None
        return cls.from_record(data)


def _check_sizes(value: Any, where: str) -> None:
    """Refuse oversized strings and lists anywhere in ``value`` (an array's base64 text is
    bounded by its shape instead; see :mod:`grader.records`)."""
    stack = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if len(item) > MAX_TEXT and not path.endswith(".base64"):
                raise EvidenceError(f"{path}: longer than {MAX_TEXT:,} characters")
        elif isinstance(item, list):
            if len(item) > MAX_ITEMS:
                raise EvidenceError(f"{path}: more than {MAX_ITEMS:,} items")
            stack += [(v, f"{path}[{i}]") for i, v in enumerate(item)]
        elif isinstance(item, dict):
            if len(item) > MAX_ITEMS:
                raise EvidenceError(f"{path}: more than {MAX_ITEMS:,} keys")
            stack += [(v, f"{path}.{str(k)[:40]}") for k, v in item.items()]
