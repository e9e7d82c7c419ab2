"""Final selection (entry rule ``chosen``): an entrant marks up to N graded submissions final for
the private board, until their deadline."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from grader.assignment import Assignment
from leaderboard.db import bump_board_version
from leaderboard.models import Submission, utcnow
from leaderboard.rules import deadline_for, entrant_of
from leaderboard.standings import TIME_FORMAT
from leaderboard.status import SubmissionStatus


class FinalError(ValueError):
    """A final selection that cannot be made; the message says why and what to do."""


def finals_of(session: Session, submission: Submission) -> int:
    """How many submissions the entrant of ``submission`` has marked final for its assignment."""
    return session.scalar(
        select(func.count(Submission.id)).where(
            Submission.assignment == submission.assignment,
            entrant_of(submission).owns(),
            Submission.final.is_(True),
        )
    )


def mark_final(
    session: Session,
    spec: Assignment | None,
    submission: Submission,
    student_id: int,
    *,
    final: bool,
) -> None:
    """Mark ``submission`` final (or not) for ``student_id``; the caller commits."""
    if spec is None:
        raise FinalError(f"assignment {submission.assignment!r} is no longer served")
    if spec.entry_rule != "chosen":
        rule = "best public score" if spec.entry_rule == "best" else "latest submission"
        raise FinalError(
            f"{spec.name} ranks each entry by its {rule}; there is nothing to mark final"
        )
    deadline = deadline_for(session, spec, student_id)
    if deadline is not None and utcnow() > deadline:
        raise FinalError(
            f"the deadline ({deadline.strftime(TIME_FORMAT)}) has passed; the final selection is "
            "closed"
        )
    if final == submission.final:
        return
    if final and submission.status is not SubmissionStatus.GRADED:
        raise FinalError(f"submission {submission.id} is {submission.status.value}, not graded")
    if final and finals_of(session, submission) >= spec.final_submissions:
        raise FinalError(
            f"{spec.final_submissions} submission(s) are marked final already; unmark one first"
        )
    submission.final = final
    bump_board_version(session)
