"""Grade one submission: the boundary every front-end calls.

:func:`grade_submission` = :func:`collect_evidence` (run the submission, no labels) then
:func:`grader.grading.complete.complete_grade` (score it against the answer key). ``grader
sanity`` and ``grader check`` call it whole; the server calls it for an uploaded predictions file
(graded at once, in the web process) and queues models and ``ops.py`` files; a worker, holding no
labels, calls :func:`collect_evidence` and hands the evidence to the server, which completes it.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from grader.assignment import Assignment
from grader.grading.answer_key import AnswerKey
from grader.grading.complete import complete_grade
from grader.grading.evidence import Evidence, PredictionsFile
from grader.grading.grade import Grade
from grader.grading.kinds import kind_problem, spec_kind
from grader.grading.status import GradeStatus, SubmissionKind

if TYPE_CHECKING:
    from grader.sandbox.pool import BoxPool

log = logging.getLogger(__name__)
Files = Path | Mapping[str, bytes]
"""A submission: a folder of the grader's own (staged, checked), or file name -> content."""


def grade_submission(
    files: Files,
    spec: Assignment,
    *,
    boxes: BoxPool | None = None,
    answer_key: AnswerKey | None = None,
    data_dir: Path | None = None,
    with_images: bool = True,
    sandbox: bool = True,
    experiment_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Grade:
    """The grade of ``files`` under ``spec``; never raises for a bad submission (the grade says
    what is wrong).

    ``boxes`` (from :func:`grader.models.pipeline.model_pool`) keeps jailed boxes warm across
    submissions; ``answer_key`` defaults to the spec's under ``data_dir``. ``with_images=False``
    checks a model on a probe batch only (``grader sanity``: no scores, the points its checks
    earn); ``sandbox=False`` runs a student's own check unconfined where bubblewrap is missing;
    ``progress`` is called as each phase of a model's grading starts.
    Raises :class:`grader.predictions.solution.SolutionError` when labels are needed and missing.
    """
    evidence = collect_evidence(
        files,
        spec,
        boxes=boxes,
        data_dir=data_dir,
        with_images=with_images,
        sandbox=sandbox,
        experiment_dir=experiment_dir,
        progress=progress,
    )
    return complete_grade(evidence, spec, answer_key, data_dir=data_dir)


def collect_evidence(
    files: Files,
    spec: Assignment,
    *,
    boxes: BoxPool | None = None,
    data_dir: Path | None = None,
    with_images: bool = True,
    sandbox: bool = True,
    experiment_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Evidence:
    """Run ``files`` as the kind of submission ``spec`` takes, without any label: a model or an
    ``ops.py`` in the sandbox, a predictions file kept as it is. Every failure is evidence with
    its reason (``invalid``: the submission; ``error``: the grader)."""
    started = time.perf_counter()
    kind = spec_kind(spec)
    names = _names(files)
    problem = kind_problem(spec, names, weights_required=with_images)
    if problem is not None:
        return Evidence(kind, GradeStatus.INVALID, problem, files=names)
    try:
        if kind is SubmissionKind.PREDICTIONS:
            evidence = Evidence(kind, predictions=_predictions_file(files, spec), files=names)
        else:
            with _folder(files) as folder:
                evidence = _run(kind, folder, spec, boxes, data_dir, with_images, sandbox,
                                experiment_dir, progress)  # fmt: skip
            evidence.files = names
    except _BadName as exc:
        return Evidence(kind, GradeStatus.INVALID, str(exc), files=names)
    except Exception as exc:  # noqa: BLE001 - a grader failure is this submission's error grade
        log.exception("grading failed")
        return Evidence(kind, GradeStatus.ERROR, f"grading failed: {type(exc).__name__}: {exc}")
    evidence.wall_s = round(time.perf_counter() - started, 3)
    return evidence


def _run(
    kind: SubmissionKind,
    folder: Path,
    spec: Assignment,
    boxes: BoxPool | None,
    data_dir: Path | None,
    with_images: bool,
    sandbox: bool,
    experiment_dir: Path | None,
    progress: Callable[[str], None] | None,
) -> Evidence:
    if kind is SubmissionKind.OPS:
        from grader.ops.grade import grade_ops_folder

        return Evidence(kind, ops=grade_ops_folder(folder, spec, sandbox=sandbox, pool=boxes))
    from grader.models import pipeline

    result = pipeline.grade_model(
        folder,
        spec,
        data_dir=data_dir,
        pool=boxes,
        require_weights=False if not with_images else None,
        with_images=with_images,
        experiment_dir=experiment_dir,
        sandbox=sandbox,
        progress=progress,
    )
    return Evidence(kind, model=result)


class _BadName(ValueError):
    """A file name that is not a plain relative path."""


def _names(files: Files) -> list[str]:
    if isinstance(files, Path):
        return sorted(p.relative_to(files).as_posix() for p in files.rglob("*") if p.is_file())
    return sorted(files)


def _predictions_file(files: Files, spec: Assignment) -> PredictionsFile:
    if isinstance(files, Path):
        from grader.grading.intake import read_plain_file

        (path,) = [p for p in files.rglob("*") if p.is_file()]
        content = read_plain_file(path, max_bytes=spec.max_file_bytes, shown=path.name)
        return PredictionsFile(path.name, content)
    ((name, content),) = files.items()
    return PredictionsFile(PurePosixPath(name).name, bytes(content))


class _folder:
    """The submission as a folder: ``files`` itself, or a temporary one written from bytes."""

    def __init__(self, files: Files) -> None:
        self.files = files
        self.tmp: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> Path:
        if isinstance(self.files, Path):
            return self.files
        self.tmp = tempfile.TemporaryDirectory(prefix="grader-submission-")
        folder = Path(self.tmp.name) / "submission"
        folder.mkdir()
        for name, content in self.files.items():
            parts = PurePosixPath(name).parts
            if not parts or PurePosixPath(name).is_absolute() or ".." in parts or "\\" in name:
                raise _BadName(f"file name {name[:100]!r} is not a plain relative path")
            target = folder.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        return folder

    def __exit__(self, *exc) -> None:
        if self.tmp is not None:
            self.tmp.cleanup()
