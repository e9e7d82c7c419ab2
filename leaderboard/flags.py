"""The flags ``grader check`` raises, on the server's standing submissions.

For one assignment: every flag of each standing submission's stored grade (unverified, public
models, failed checks, the memoriser evidence, held for review: computed once, by the grading
boundary), the flags of the class computed live (byte-identical and near-identical predictions,
identical weights, suspiciously perfect scores: :func:`grader.predictions.flags.batch_flags`, the
batch grader's test), plus any flags an instructor imported from a ``grader check`` grades.csv.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.assignment import Assignment
from grader.grading.status import SubmissionKind
from grader.predictions.flags import batch_flags
from leaderboard.models import Event
from leaderboard.scoring import answer_key, stored_grade
from leaderboard.standings import Entry, entries


def entrant_label(entry: Entry) -> str:
    """How flags name an entrant: the team's name, or the student's roster id."""
    return entry.team.name if entry.team is not None else entry.student.student


def live_flags(
    session: Session, spec: Assignment, *, data_dir=None, standing: list[Entry] | None = None
) -> dict[str, list[str]]:
    """Entrant key -> flag texts for the standing submission of every entrant of ``spec``."""
    standing = standing if standing is not None else entries(session, spec, revealed=True)
    by_label = {entrant_label(e): e for e in standing}
    flags: dict[str, list[str]] = defaultdict(list)
    if not standing:  # nothing ranks (an ops.py assignment): the grades' own flags
        flags.update(_own_flags(session, spec))
    else:
        _add_entry_flags(flags, spec, by_label, data_dir)
    imported = session.scalars(
        select(Event).where(Event.kind == "flag", Event.assignment == spec.name)
    )
    keys = {e.student.id: e.entrant.key for e in standing if e.team is None}
    for event in imported:
        if event.student_id is not None:
            key = keys.get(event.student_id, f"student:{event.student_id}")
            flags[key].append(f"imported: {event.message}")
    return {key: texts for key, texts in flags.items() if texts}


def _add_entry_flags(
    flags: dict[str, list[str]], spec: Assignment, by_label: dict[str, Entry], data_dir
) -> None:
    """Each standing entry's grade flags, then the flags of the class."""
    solution = answer_key(spec, data_dir).solution()
    truth = solution["label"].to_numpy(np.int64)
    predictions = {}
    for label, entry in by_label.items():
        if entry.score.labels is not None and len(entry.score.labels) == len(truth):
            predictions[label] = np.frombuffer(entry.score.labels, dtype=np.uint8).astype(np.int64)
    found = batch_flags(
        prediction_digests={
            label: e.submission.sha256
            for label, e in by_label.items()
            if e.submission.kind is SubmissionKind.PREDICTIONS
        },
        weight_digests={label: e.score.weights_sha256 for label, e in by_label.items()},
        predictions=predictions,
        accuracies={label: e.score.all_accuracy for label, e in by_label.items()},
        truth=truth,
        num_classes=len(spec.class_names),
    )
    for label, entry in by_label.items():
        key = entry.entrant.key
        grade = stored_grade(entry.submission)
        flags[key] += list(grade.flags) if grade is not None else []
        flags[key] += found.get(label, [])


def _own_flags(session: Session, spec: Assignment) -> dict[str, list[str]]:
    """Entrant key -> the flags of their latest graded submission's stored grade."""
    from leaderboard.models import Submission
    from leaderboard.rules import entrant_of
    from leaderboard.status import SubmissionStatus

    flags: dict[str, list[str]] = {}
    graded = session.scalars(
        select(Submission)
        .where(Submission.assignment == spec.name, Submission.status == SubmissionStatus.GRADED)
        .order_by(Submission.created_at.desc(), Submission.id.desc())
    )
    for submission in graded:
        key = entrant_of(submission).key
        grade = stored_grade(submission)
        if key not in flags and grade is not None and grade.flags:
            flags[key] = list(grade.flags)
    return flags
