"""Every status and kind the service stores, as Enums, and the one mapping between them.

The grader reports a grade as ``ok``, ``invalid`` (the submission is at fault) or ``error`` (the
grader failed). :func:`outcome` maps that to what a submission and its job become; "graded" is the
one word for a scored submission, whether it was a predictions file or a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Role(str, Enum):
    """Who a token belongs to."""

    STUDENT = "student"
    INSTRUCTOR = "instructor"
    WORKER = "worker"
    """A grading worker on any machine: fetches submissions and posts results."""


class SubmissionKind(str, Enum):
    """What was uploaded."""

    PREDICTIONS = "predictions"
    MODEL = "model"


class SubmissionStatus(str, Enum):
    """Where a submission stands."""

    QUEUED = "queued"
    RUNNING = "running"
    GRADED = "graded"
    INVALID = "invalid"
    """Not gradable because of the submission (costs no daily quota)."""
    FAILED = "failed"
    """The grader failed; the instructor must look."""

    @property
    def pending(self) -> bool:
        """Whether grading is still to come."""
        return self in (SubmissionStatus.QUEUED, SubmissionStatus.RUNNING)


class JobStatus(str, Enum):
    """Where a grading job stands (the database is its source of truth)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        """Whether the job has its result."""
        return self in (JobStatus.DONE, JobStatus.FAILED)


class JobKind(str, Enum):
    """What a job runs."""

    MODEL = "model"
    SELFTEST = "selftest"
    """A delayed predictions scoring, for testing crash recovery (run only when allowed)."""


class JobQueue(str, Enum):
    """The queue a job waits on: any worker, or a worker with a GPU."""

    CPU = "cpu"
    GPU = "gpu"


class GradeStatus(str, Enum):
    """The grader's own verdict on one submission (as ``grader check`` reports it)."""

    OK = "ok"
    INVALID = "invalid"
    ERROR = "error"


@dataclass(frozen=True)
class Outcome:
    """What a grade does to the submission and its job."""

    submission: SubmissionStatus
    job: JobStatus


OUTCOMES: dict[GradeStatus, Outcome] = {
    GradeStatus.OK: Outcome(SubmissionStatus.GRADED, JobStatus.DONE),
    GradeStatus.INVALID: Outcome(SubmissionStatus.INVALID, JobStatus.DONE),
    GradeStatus.ERROR: Outcome(SubmissionStatus.FAILED, JobStatus.FAILED),
}


def outcome(status: GradeStatus | str) -> Outcome:
    """The submission and job statuses of a grade with ``status``."""
    return OUTCOMES[GradeStatus(status)]
