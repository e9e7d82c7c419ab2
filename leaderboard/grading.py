"""What a worker runs for one job, wherever it runs: the files of a submission in, a typed
:class:`~leaderboard.protocol.JobResult` out.

Model submissions go through the one model-grading pipeline (:func:`grade_model_submission`
calls :func:`grader.models.pipeline.grade_model`); the worker keeps a warm pool of boxes per
dataset between jobs. Every failure becomes a result with its reason; nothing here touches the
database.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from grader.assignment import Assignment
from grader.sandbox.gpu import GpuDevice
from leaderboard.protocol import CheckRecord, JobResult
from leaderboard.status import GradeStatus, JobKind
from leaderboard.uploads import write_files

if TYPE_CHECKING:
    from grader.sandbox.pool import BoxPool

log = logging.getLogger(__name__)


@dataclass
class GradingConfig:
    """How a worker grades."""

    data_dir: Path | None = None
    """Where the test images are (``GRADER_DATA_DIR`` when None); labels are not needed."""
    pre_fork: bool = True
    """Keep a warm pool of boxes between jobs instead of a fresh box per job."""
    allow_test_jobs: bool = False
    """Run ``selftest`` jobs (a delayed predictions scoring used to test crash recovery)."""
    gpu: GpuDevice | None = None
    """The one GPU this worker's boxes may use (a ``--queue gpu`` worker)."""


@dataclass
class SubmissionGrader:
    """Grades jobs one after another, keeping its warm boxes between them."""

    config: GradingConfig
    _boxes: dict[str, BoxPool] = field(default_factory=dict)

    def grade(
        self, kind: JobKind, files: dict[str, bytes], spec: Assignment, payload: dict[str, Any]
    ) -> JobResult:
        """Grade one job's files; every failure becomes a result with its reason."""
        started = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory(prefix="grader-job-") as tmp:
                folder = write_files(files, Path(tmp) / "submission")
                if kind is JobKind.MODEL:
                    result = grade_model_submission(folder, spec, self.config, self._box(spec))
                elif kind is JobKind.SELFTEST and self.config.allow_test_jobs:
                    result = _selftest(folder, spec, payload, self.config)
                else:
                    message = f"unknown job kind {kind.value!r}; this worker cannot run it"
                    result = JobResult(GradeStatus.ERROR, message)
        except Exception as exc:  # noqa: BLE001 - a grader crash is this job's error, not the worker's
            log.exception("grading failed")
            result = JobResult(GradeStatus.ERROR, f"grading failed: {type(exc).__name__}: {exc}")
        if not result.wall_s:
            result = replace(result, wall_s=round(time.perf_counter() - started, 3))
        return result

    def warm(self, datasets: Iterable[str]) -> None:
        """Start the boxes for ``datasets`` now, in the background, and keep them started, so
        that the first job of each finds its box warm."""
        if not self.config.pre_fork:
            return
        for dataset in datasets:
            try:
                self._pool(dataset).warm()
            except Exception as exc:  # noqa: BLE001 - e.g. its data is missing: the job will say
                log.warning("boxes for %s not started: %s", dataset, exc)

    def _box(self, spec: Assignment) -> BoxPool | None:
        """The warm pool for ``spec``'s test images (its box starts on the first job, unless
        :meth:`warm` started it)."""
        if not self.config.pre_fork or spec.model is None:
            return None
        return self._pool(spec.dataset)

    def _pool(self, dataset: str) -> BoxPool:
        if dataset not in self._boxes:
            from grader.models.pipeline import dataset_pool

            self._boxes[dataset] = dataset_pool(
                dataset, data_dir=self.config.data_dir, gpu=self.config.gpu
            )
        return self._boxes[dataset]

    def close(self) -> None:
        """Stop the warm boxes."""
        for box in self._boxes.values():
            box.close()
        self._boxes.clear()


def grade_model_submission(
    folder: Path, spec: Assignment, config: GradingConfig, box: BoxPool | None = None
) -> JobResult:
    """Grade a model submission with the model-grading pipeline: predicted labels, parameters,
    FLOPs, every check and every flag (nothing dropped), the experiment's outcome too."""
    from grader.models.pipeline import grade_model

    grade = grade_model(folder, spec, data_dir=config.data_dir, pool=box)
    checks = tuple(CheckRecord(c.name, bool(c.passed), c.message) for c in grade.checks)
    failed = [f"{c.name}: {c.message}" for c in checks if not c.passed]
    flags = list(grade.flags)
    if grade.experiment is not None:
        flags.append(grade.experiment.summary)
    common = {
        "total_params": grade.total_params,
        "flops": grade.flops,
        "weights_sha256": grade.parameter_digest or grade.weights_sha256,
        "verified": grade.verified,
        "flags": tuple(flags),
        "checks": checks,
        "wall_s": float(grade.wall_s or 0.0),
    }
    if grade.status == "invalid":
        message = "; ".join(dict.fromkeys(p for p in (grade.message, *failed) if p))
        return JobResult(GradeStatus.INVALID, message, **common)
    if grade.status != "ok" or grade.logits is None:
        message = grade.message or "the model check returned no logits"
        return JobResult(GradeStatus.ERROR, message, **common)
    labels = np.asarray(grade.logits).argmax(axis=1).astype(np.int64)
    return JobResult(GradeStatus.OK, "; ".join(failed), labels=labels, **common)


def _selftest(folder: Path, spec: Assignment, payload: dict[str, Any], config: GradingConfig):
    """Sleep, then read the predictions file's labels (tests of crash recovery)."""
    from leaderboard.scoring import SubmissionError, read_labels

    time.sleep(float(payload.get("seconds", 0)))
    try:
        labels = read_labels((folder / "predictions.csv").read_bytes(), spec,
                             data_dir=config.data_dir)  # fmt: skip
    except SubmissionError as exc:
        return JobResult(GradeStatus.INVALID, "; ".join(exc.errors))
    return JobResult(GradeStatus.OK, labels=labels)
