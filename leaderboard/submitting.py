"""Accepting a submission: deadline and daily limit, then score (predictions) or queue (model).

Uploaded file names are only ever displayed (escaped) or checked against a strict pattern; the
server chooses every path it writes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from grader.assignment import Assignment
from leaderboard.db import begin_write, bump_board_version
from leaderboard.grading import Scored, SubmissionError, score_predictions
from leaderboard.models import Event, Job, Score, Submission, utcnow

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
MODEL_SUFFIXES = {".py", ".pt", ".pth", ".safetensors", ".json", ".txt", ".md"}
MAX_MODEL_FILES = 20


@dataclass(frozen=True)
class Upload:
    """One uploaded file: the name the student gave (display only) and its bytes."""

    name: str
    content: bytes


@dataclass
class Outcome:
    """What happened to an upload, in the shape the API answers."""

    status: str
    """scored, queued, invalid, refused or limited."""
    http_status: int
    submission_id: int | None = None
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    late: bool = False
    reset_at: str | None = None
    remaining_today: int | None = None

    def to_json(self) -> dict:
        """The API's JSON body."""
        body: dict = {"status": self.status}
        if self.submission_id is not None:
            body["submission_id"] = self.submission_id
        if self.scores:
            body["scores"] = self.scores
        if self.errors:
            body["errors"] = self.errors
        if self.late:
            body["late"] = True
        if self.reset_at is not None:
            body["reset_at"] = self.reset_at
        if self.remaining_today is not None:
            body["remaining_today"] = self.remaining_today
        return body


def next_reset(now: dt.datetime) -> dt.datetime:
    """When the daily limit resets: the next UTC midnight after ``now`` (naive UTC)."""
    return dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time())


def used_today(session: Session, student_id: int, now: dt.datetime) -> int:
    """Submissions counted against today's limit (invalid ones cost nothing)."""
    start = dt.datetime.combine(now.date(), dt.time())
    return session.scalar(
        select(func.count(Submission.id)).where(
            Submission.student_id == student_id,
            Submission.created_at >= start,
            Submission.status != "invalid",
        )
    )


def is_past_deadline(spec: Assignment, now: dt.datetime) -> bool:
    """Whether ``now`` (naive UTC) is after the spec's deadline."""
    if spec.deadline is None:
        return False
    deadline = spec.deadline.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return now > deadline


def submit(
    session: Session,
    spec: Assignment,
    *,
    student_id: int,
    uploads: list[Upload],
    upload_dir: Path,
    data_dir: Path | None = None,
    now: dt.datetime | None = None,
) -> Outcome:
    """Apply the rules to an upload and score or queue it; the caller commits.

    Validation and scoring run before the write transaction starts, so the database's write
    lock is held only for the inserts; the daily limit is checked again under that lock.
    """
    now = now or utcnow()
    uploads = [u for u in uploads if u.name or u.content]
    if not uploads:
        return Outcome("invalid", 422, errors=["no file was uploaded; choose a file to submit"])
    late = is_past_deadline(spec, now)
    if late and spec.late_policy == "refuse":
        deadline = spec.deadline.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return Outcome(
            "refused", 403, errors=[f"the deadline ({deadline}) has passed; no more submissions"]
        )
    if used_today(session, student_id, now) >= spec.daily_limit:
        return _limited(spec, now)
    is_predictions = len(uploads) == 1 and uploads[0].name.lower().endswith(".csv")
    if spec.model is None and not is_predictions:
        return Outcome(
            "invalid",
            422,
            errors=[
                "this assignment takes one predictions .csv file (columns "
                f"{spec.id_column},{spec.label_column})"
            ],
        )
    if spec.model is not None and is_predictions:
        return Outcome(
            "invalid",
            422,
            errors=[
                "this assignment takes a model: a .zip holding model.py and a weights file "
                "(.pt or .safetensors), or those files uploaded together"
            ],
        )
    scored: Scored | None = None
    files: dict[str, bytes] = {}
    try:
        if is_predictions:
            name = _display_name(uploads[0].name)
            scored = score_predictions(uploads[0].content, spec, name=name, data_dir=data_dir)
        else:
            files = _model_files(uploads, limit=spec.max_file_bytes * 4)
    except SubmissionError as exc:
        errors = exc.errors
    except ValueError as exc:
        errors = [str(exc)]
    else:
        errors = []
    begin_write(session)
    if errors:
        session.add(Event(kind="invalid", student_id=student_id, message="; ".join(errors)))
        return Outcome("invalid", 422, errors=errors)
    used = used_today(session, student_id, now)
    if used >= spec.daily_limit:  # a parallel upload took the last slot
        return _limited(spec, now)
    upload_dir.mkdir(parents=True, exist_ok=True)
    if scored is not None:
        outcome = _store_predictions(session, spec, student_id, uploads[0], scored, upload_dir)
    else:
        outcome = _store_model(session, spec, student_id, uploads, files, upload_dir)
    submission = session.get(Submission, outcome.submission_id)
    submission.created_at, submission.late = now, late
    outcome.late = late
    outcome.remaining_today = spec.daily_limit - used - 1
    return outcome


def _limited(spec: Assignment, now: dt.datetime) -> Outcome:
    reset = next_reset(now).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Outcome(
        "limited",
        429,
        errors=[
            f"daily limit of {spec.daily_limit} submission(s) reached; "
            f"it resets at {reset} (UTC midnight)"
        ],
        reset_at=reset,
        remaining_today=0,
    )


def _store_predictions(
    session: Session,
    spec: Assignment,
    student_id: int,
    upload: Upload,
    scored: Scored,
    upload_dir: Path,
) -> Outcome:
    stored = upload_dir / f"{uuid.uuid4().hex}.csv"
    stored.write_bytes(upload.content)
    submission = Submission(
        student_id=student_id,
        assignment=spec.name,
        kind="predictions",
        status="scored",
        original_name=_display_name(upload.name),
        stored_path=str(stored),
        sha256=hashlib.sha256(upload.content).hexdigest(),
    )
    session.add(submission)
    session.flush()
    session.add(score_row(submission.id, scored))
    bump_board_version(session)
    return Outcome(
        "scored",
        200,
        submission_id=submission.id,
        scores={"public": {"accuracy": scored.public_accuracy, "macro_f1": scored.public_macro_f1}},
    )


def score_row(submission_id: int, scored: Scored, **extra) -> Score:
    """A :class:`Score` row from flattened numbers."""
    return Score(
        submission_id=submission_id,
        public_accuracy=scored.public_accuracy,
        public_macro_f1=scored.public_macro_f1,
        private_accuracy=scored.private_accuracy,
        private_macro_f1=scored.private_macro_f1,
        all_accuracy=scored.all_accuracy,
        points=scored.points,
        details=scored.details,
        **extra,
    )


def _store_model(
    session: Session,
    spec: Assignment,
    student_id: int,
    uploads: list[Upload],
    files: dict[str, bytes],
    upload_dir: Path,
) -> Outcome:
    folder = upload_dir / uuid.uuid4().hex
    folder.mkdir()
    digest = hashlib.sha256()
    for name in sorted(files):
        (folder / name).write_bytes(files[name])
        digest.update(name.encode() + b"\0" + files[name])
    submission = Submission(
        student_id=student_id,
        assignment=spec.name,
        kind="model",
        status="queued",
        original_name=", ".join(_display_name(u.name) for u in uploads)[:255],
        stored_path=str(folder),
        sha256=digest.hexdigest(),
    )
    session.add(submission)
    session.flush()
    session.add(
        Job(
            submission_id=submission.id,
            kind="model",
            status="queued",
            payload={"assignment": str(spec.source or spec.name)},
        )
    )
    return Outcome("queued", 202, submission_id=submission.id)


def _model_files(uploads: list[Upload], *, limit: int) -> dict[str, bytes]:
    """The files of a model submission by safe base name; raises ValueError naming the problem."""
    files: dict[str, bytes] = {}
    for upload in uploads:
        if upload.name.lower().endswith(".zip"):
            files.update(_unzip(upload, limit=limit))
        else:
            files[_checked_name(upload.name, where="upload")] = upload.content
    if "model.py" not in files:
        raise ValueError(
            f"no model.py among the files ({', '.join(sorted(files)) or 'none'}); "
            "include model.py defining the model class"
        )
    if not any(Path(n).suffix in {".pt", ".pth", ".safetensors"} for n in files):
        raise ValueError("no weights file (.pt, .pth or .safetensors) among the files")
    if len(files) > MAX_MODEL_FILES:
        raise ValueError(f"{len(files)} files uploaded; at most {MAX_MODEL_FILES} are allowed")
    return files


def _unzip(upload: Upload, *, limit: int) -> dict[str, bytes]:
    where = _display_name(upload.name)
    try:
        archive = zipfile.ZipFile(io.BytesIO(upload.content))
    except zipfile.BadZipFile:
        raise ValueError(f"{where}: not a valid .zip archive") from None
    members = [m for m in archive.infolist() if not m.is_dir()]
    members = [m for m in members if not m.filename.startswith("__MACOSX/")]
    if len(members) > MAX_MODEL_FILES:
        raise ValueError(f"{where}: holds {len(members)} files; at most {MAX_MODEL_FILES}")
    total = sum(m.file_size for m in members)
    if total > limit:
        raise ValueError(f"{where}: unpacks to {total:,} bytes, over the limit of {limit:,}")
    files: dict[str, bytes] = {}
    for member in members:
        name = _checked_name(PurePosixPath(member.filename).name, where=where)
        if name in files:
            raise ValueError(f"{where}: holds two files named {name}; keep one")
        files[name] = archive.read(member)
    return files


def _checked_name(name: str, *, where: str) -> str:
    base = PurePosixPath(name.replace("\\", "/")).name
    if not SAFE_NAME.fullmatch(base) or Path(base).suffix.lower() not in MODEL_SUFFIXES:
        raise ValueError(
            f"{where}: file name {_display_name(name)!r} is not allowed; use letters, digits, "
            f"'_', '-' or '.' and one of the suffixes {', '.join(sorted(MODEL_SUFFIXES))}"
        )
    return base


def _display_name(name: str) -> str:
    """The uploaded name trimmed for display (templates escape it)."""
    return (PurePosixPath(name.replace("\\", "/")).name or "upload")[:100]
