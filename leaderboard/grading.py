"""What a worker runs for one job, wherever it runs: the files of a submission in, a typed
:class:`~leaderboard.protocol.JobResult` out.

Model submissions go through the model-grading pipeline in the sandbox (one call,
:func:`grade_model_submission`); the worker keeps a warm pre-forked box per dataset between jobs.
Every failure becomes a result with its reason; nothing here touches the database.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from grader.assignment import Assignment
from leaderboard.gpu import GpuDevice
from leaderboard.protocol import CheckRecord, JobResult
from leaderboard.status import GradeStatus, JobKind
from leaderboard.uploads import write_files

if TYPE_CHECKING:
    from grader.zygote import Zygote

log = logging.getLogger(__name__)


@dataclass
class GradingConfig:
    """How a worker grades."""

    data_dir: Path | None = None
    """Where the test images are (``GRADER_DATA_DIR`` when None); labels are not needed."""
    slot: int = 0
    """Sandbox slot (a distinct uid per worker on one machine)."""
    pre_fork: bool = True
    """Keep a warm pre-forked box between jobs instead of a fresh box per job."""
    allow_test_jobs: bool = False
    """Run ``selftest`` jobs (a delayed predictions scoring used to test crash recovery)."""
    gpu: GpuDevice | None = None
    """The one GPU this worker's boxes may use (a ``--queue gpu`` worker)."""


@dataclass
class SubmissionGrader:
    """Grades jobs one after another, keeping its warm boxes between them."""

    config: GradingConfig
    _boxes: dict[str, Zygote] = field(default_factory=dict)

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

    def _box(self, spec: Assignment) -> Zygote | None:
        """The warm box for ``spec``'s test images (started on its first job), if pre-forking."""
        if not self.config.pre_fork or spec.model is None:
            return None
        if spec.dataset not in self._boxes:
            from grader.data import cached_dataset
            from grader.modelgrade import model_spec_args
            from grader.zygote import Zygote

            images = cached_dataset(spec.dataset, "test", self.config.data_dir).images
            warm_up = model_spec_args(spec.model, require_weights=True)
            self._boxes[spec.dataset] = Zygote(
                images=images, slot=self.config.slot, warm_up=warm_up
            )
        return self._boxes[spec.dataset]

    def close(self) -> None:
        """Stop the warm boxes."""
        for box in self._boxes.values():
            box.close()
        self._boxes.clear()


def grade_model_submission(
    folder: Path, spec: Assignment, config: GradingConfig, box: Zygote | None = None
) -> JobResult:
    """Grade a model submission with the model-grading pipeline: predicted labels, parameters,
    FLOPs, every check and every flag (nothing dropped)."""
    from grader.modelgrade import grade_model_folder

    extra = {"zygote": box} if box is not None else {}
    grade = grade_model_folder(folder, spec, data_dir=config.data_dir, slot=config.slot, **extra)
    checks = tuple(CheckRecord(c.name, bool(c.passed), c.message) for c in grade.checks)
    failed = [f"{c.name}: {c.message}" for c in checks if not c.passed]
    common = {
        "total_params": grade.total_params,
        "flops": grade.flops,
        "weights_sha256": grade.weights_sha256,
        # Set by the verified evaluation pipeline; None while grading does not report it.
        "verified": getattr(grade, "verified", None),
        "flags": tuple(grade.flags),
        "checks": checks,
        "wall_s": float(grade.wall_s or 0.0),
    }
    if grade.status == "invalid":
        problems = [grade.message, *(e for e in grade.errors if e != grade.message), *failed]
        message = "; ".join(dict.fromkeys(p for p in problems if p))
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
