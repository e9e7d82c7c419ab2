"""The flags ``grader check`` raises, computed live on the server's standing submissions.

For one assignment: byte-identical and near-identical predictions across entrants and identical
weights (:func:`grader.flags.batch_flags`, the same test as the batch grader's), suspiciously
perfect scores, every flag the model grading raised (public models, weights-count mismatches)
and failed checks, plus any flags an instructor imported from a ``grader check`` grades.csv.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.assignment import Assignment
from grader.predictions.flags import batch_flags
from leaderboard.models import Event
from leaderboard.scoring import solution_for
from leaderboard.standings import Entry, entries
from leaderboard.status import SubmissionKind


def entrant_label(entry: Entry) -> str:
    """How flags name an entrant: the team's name, or the student's roster id."""
    return entry.team.name if entry.team is not None else entry.student.student


def live_flags(
    session: Session, spec: Assignment, *, data_dir=None, standing: list[Entry] | None = None
) -> dict[str, list[str]]:
    """Entrant key -> flag texts for the standing submission of every entrant of ``spec``."""
    standing = standing if standing is not None else entries(session, spec, revealed=True)
    by_label = {entrant_label(e): e for e in standing}
    solution = solution_for(spec, data_dir).sort_values("id")
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
    flags: dict[str, list[str]] = defaultdict(list)
    for label, entry in by_label.items():
        key = entry.entrant.key
        flags[key] += [str(f) for f in entry.score.flags or []]
        flags[key] += [
            f"failed structure check: {c.get('name')} ({c.get('message', '')})"
            for c in entry.score.checks or []
            if not c.get("passed", True)
        ]
        flags[key] += found.get(label, [])
    imported = session.scalars(
        select(Event).where(Event.kind == "flag", Event.assignment == spec.name)
    )
    keys = {e.student.id: e.entrant.key for e in standing if e.team is None}
    for event in imported:
        if event.student_id is not None:
            key = keys.get(event.student_id, f"student:{event.student_id}")
            flags[key].append(f"imported: {event.message}")
    return {key: texts for key, texts in flags.items() if texts}
