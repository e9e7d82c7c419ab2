"""Where the service's things stand, as Enums, and the one mapping from a grade to them.

A grade's own words (:class:`grader.grading.status.GradeStatus`: ``ok``, ``invalid``, ``error``)
and the kind of a submission or job (:class:`grader.grading.status.SubmissionKind`) are the
grader's; :func:`transition` maps a grade to what a submission and its job become. "graded" is
the one word for a graded submission, whatever its kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from grader.grading.status import GradeStatus


class Role(str, Enum):
    """Who a token belongs to."""

    STUDENT = "student"
    INSTRUCTOR = "instructor"
    WORKER = "worker"
    """A grading worker on any machine: fetches submissions and posts results."""


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


class JobQueue(str, Enum):
    """The queue a job waits on: any worker, or a worker with a GPU."""

    CPU = "cpu"
    GPU = "gpu"


@dataclass(frozen=True)
class Transition:
    """What a grade does to the submission and its job."""

    submission: SubmissionStatus
    job: JobStatus


TRANSITIONS: dict[GradeStatus, Transition] = {
    GradeStatus.OK: Transition(SubmissionStatus.GRADED, JobStatus.DONE),
    GradeStatus.INVALID: Transition(SubmissionStatus.INVALID, JobStatus.DONE),
    GradeStatus.ERROR: Transition(SubmissionStatus.FAILED, JobStatus.FAILED),
}


def transition(status: GradeStatus) -> Transition:
    """The submission and job statuses of a grade with ``status``."""
    return TRANSITIONS[GradeStatus(status)]
