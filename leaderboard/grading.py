"""What a worker runs for one job, wherever it runs: the files of a submission in, label-free
:class:`~grader.grading.evidence.Evidence` out.

A worker holds no labels: it calls :func:`grader.grading.collect_evidence` (the half of the
grading boundary that runs the submission) and hands the evidence to the server, which completes
the grade (:func:`leaderboard.jobs.store_result`). The worker keeps a warm pool of boxes per
dataset (and one for ``ops.py`` jobs) between jobs. Every failure becomes evidence with its
reason; nothing here touches the database.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grader.assignment import Assignment
from grader.grading.evidence import Evidence
from grader.grading.kinds import spec_kind
from grader.grading.status import GradeStatus, SubmissionKind
from grader.grading.submission import collect_evidence
from grader.sandbox.gpu import GpuDevice
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
    gpu: GpuDevice | None = None
    """The one GPU this worker's boxes may use (a ``--queue gpu`` worker)."""


@dataclass
class SubmissionGrader:
    """Runs jobs one after another, keeping its warm boxes between them."""

    config: GradingConfig
    _boxes: dict[str, BoxPool] = field(default_factory=dict)

    def grade(
        self,
        kind: SubmissionKind,
        files: dict[str, bytes],
        spec: Assignment,
        payload: dict[str, Any] | None = None,
    ) -> Evidence:
        """Run one job's files as ``kind``; every failure becomes evidence with its reason."""
        if kind is not spec_kind(spec):
            message = f"a {kind} job for assignment {spec.name!r}, which takes {spec_kind(spec)}"
            return Evidence(kind, GradeStatus.ERROR, message)
        try:
            with tempfile.TemporaryDirectory(prefix="grader-job-") as tmp:
                folder = write_files(files, Path(tmp) / "submission")
                return collect_evidence(
                    folder, spec, boxes=self._box(spec), data_dir=self.config.data_dir
                )
        except Exception as exc:  # noqa: BLE001 - a grader crash is this job's error, not the worker's
            log.exception("grading failed")
            return Evidence(kind, GradeStatus.ERROR, f"grading failed: {type(exc).__name__}: {exc}")

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
        """The warm pool for ``spec``'s kind and test images (its box starts on the first job,
        unless :meth:`warm` started it)."""
        if not self.config.pre_fork or not spec_kind(spec).needs_box:
            return None
        return self._pool(spec.dataset if spec.model is not None else "ops")

    def _pool(self, name: str) -> BoxPool:
        """The pool of a dataset's model boxes, or of the ops boxes (``"ops"``)."""
        if name not in self._boxes:
            if name == "ops":
                from grader.sandbox.pool import BoxPool

                self._boxes[name] = BoxPool(size=1)
            else:
                from grader.models.pipeline import dataset_pool

                self._boxes[name] = dataset_pool(
                    name, data_dir=self.config.data_dir, gpu=self.config.gpu
                )
        return self._boxes[name]

    def close(self) -> None:
        """Stop the warm boxes."""
        for box in self._boxes.values():
            box.close()
        self._boxes.clear()
