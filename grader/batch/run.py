"""Grade a class folder: ``grades.csv``, ``results.json``, ``report.html`` and student pages.

:mod:`grader.batch.intake` finds the students (per-student folders, Canvas and Moodle downloads,
zips) and stages what each submission uses; every student becomes one row, whatever goes wrong.
Results are cached in ``OUT/.grader-cache`` by the sha256 of the staged files and of the
assignment (spec and answer key), so a re-run grades only what changed.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np

from grader.assignment import Assignment
from grader.batch.cache import Cached, ResultCache
from grader.batch.intake import StudentFiles, collect, select_submission, stage
from grader.batch.results import BatchResult, StudentResult, write_grades, write_results_json
from grader.grading.answer_key import AnswerKey
from grader.grading.grade import Grade, Provenance, not_graded
from grader.grading.intake import IntakeError, IntakeLimits, copy_plain_file, read_plain_file
from grader.grading.kinds import expected_files, spec_kind
from grader.grading.status import GradeStatus, SubmissionKind
from grader.grading.submission import grade_submission
from grader.predictions.flags import CopyCluster, copy_clusters, student_flags
from grader.predictions.solution import split_ids
from grader.roster import Person, match_submissions
from grader.sandbox.pool import machine_cores

if TYPE_CHECKING:
    from grader.sandbox.pool import BoxPool

CACHE_DIR = ".grader-cache"
INTAKE_DIR = ".grader-intake"
CACHE_VERSION = 4


class BatchError(RuntimeError):
    """The batch cannot start (no such folder); the message says what to do."""


def grade_folder(
    root: Path,
    *,
    spec: Assignment,
    data_dir: Path | None = None,
    jobs: int | None = None,
    out_dir: Path,
    progress: bool = True,
    solution_path: Path | None = None,
    pre_fork: bool = True,
    limits: IntakeLimits | None = None,
    student_pages: bool = True,
    boxes: BoxPool | None = None,
    roster: Sequence[Person] | None = None,
) -> BatchResult:
    """Grade every student under ``root``; write grades.csv, results.json, report.html and
    (with ``student_pages``) one feedback page per student under ``students/``. With a
    ``roster``, each submission is matched to its roster student (:attr:`BatchResult.roster`).

    Each submission is graded by :func:`grader.grading.grade_submission`, the boundary the
    server grades through as well; models and ``ops.py`` files run in a pool of jailed boxes
    (one per thread, or ``boxes`` when given) that import torch once and fork a confined child
    per stage. ``pre_fork`` is accepted from earlier callers and changes nothing.
    """
    start = time.perf_counter()
    root, out_dir = Path(root), Path(out_dir)
    if not root.is_dir():
        raise BatchError(
            f"{root}: no such folder; pass the folder that holds one folder per student "
            f"(or an LMS download)"
        )
    kind = spec_kind(spec)
    key = AnswerKey(spec, data_dir, solution_path)
    labelled = kind is not SubmissionKind.OPS
    context = _Context(spec=spec, kind=kind, data_dir=data_dir, key=key, out_dir=out_dir)
    provenance = Provenance.now(
        assignment=spec.name,
        spec_sha256=spec.digest(),
        answer_key_sha256=key.digest() if labelled else "",  # loads the key: fails early
    )
    context.cache = ResultCache(context.cache_dir)
    if context.intake_dir.exists():
        shutil.rmtree(context.intake_dir)
    try:
        context.limits = limits or IntakeLimits()
        intake = collect(root, work_dir=context.intake_dir, limits=context.limits)
        matched = match_submissions(((s.student, s.submitters) for s in intake.students), roster)
        workers = max(1, jobs or min(machine_cores(), len(intake.students) or 1))
        own = boxes is None and kind.needs_box
        context.boxes = _pool(spec, data_dir, workers) if own else boxes
        try:
            results = _run_all(intake.students, context, workers, progress)
        finally:
            context.cache.close()
            if own and context.boxes is not None:
                context.boxes.close()
    finally:
        shutil.rmtree(context.intake_dir, ignore_errors=True)
    clusters = _add_flags(results, context) if labelled else []
    grades = out_dir / "grades.csv"
    write_grades(results, grades, provenance)
    images = {}
    if labelled:
        public = split_ids(key.solution()["id"].to_numpy(), spec.public_fraction, spec.split_seed)
        images = {"public": int(public.sum()), "private": int((~public).sum()),
                  "all": len(public)}  # fmt: skip
    batch = BatchResult(
        results=results,
        grades_csv=grades,
        report_html=out_dir / "report.html",
        assignment=spec.name,
        elapsed_s=time.perf_counter() - start,
        cache_hits=sum(r.cached for r in results),
        provenance=provenance,
        results_json=out_dir / "results.json",
        students_dir=out_dir / "students" if student_pages and labelled else None,
        clusters=clusters,
        images=images,
        top_level_ignored=intake.top_level_ignored,
        roster=matched,
    )
    write_results_json(batch, batch.results_json)
    if not labelled:
        from grader.batch.ops_run import write_ops_report

        write_ops_report(batch, spec)
        return batch
    from grader.batch.report import write_report
    from grader.batch.student_page import write_student_pages
    from grader.batch.thumbnails import load_thumbnails

    thumbnails = load_thumbnails(spec, data_dir)
    if batch.students_dir is not None:
        write_student_pages(batch, spec=spec, answer_key=key.solution(), thumbnails=thumbnails)
    write_report(batch, spec=spec, out_dir=out_dir, answer_key=key.solution(),
                 thumbnails=thumbnails)  # fmt: skip
    return batch


@dataclass
class _Context:
    spec: Assignment
    kind: SubmissionKind
    data_dir: Path | None
    key: AnswerKey
    out_dir: Path
    boxes: BoxPool | None = None
    """Jailed boxes for models and ops (one per thread), each started on its first job."""
    cache: ResultCache | None = None
    limits: IntakeLimits = field(default_factory=IntakeLimits)

    @property
    def cache_dir(self) -> Path:
        return self.out_dir / CACHE_DIR

    @property
    def intake_dir(self) -> Path:
        return self.out_dir / INTAKE_DIR

    @property
    def identity(self) -> str:
        """sha256 of everything a grade depends on besides the submission itself."""
        if not hasattr(self, "_identity"):
            digest = hashlib.sha256(self.spec.digest().encode())
            if self.kind is not SubmissionKind.OPS:
                digest.update(self.key.digest().encode())
            digest.update(str(CACHE_VERSION).encode())
            self._identity = digest.hexdigest()
        return self._identity


def _run_all(
    students: list[StudentFiles], context: _Context, workers: int, progress: bool
) -> list[StudentResult]:
    from tqdm import tqdm

    _ = context.identity  # computed once, before the threads share it

    def one(student: StudentFiles) -> StudentResult:
        try:
            result = _grade_student(student, context)
        except Exception as exc:  # any failure becomes this student's row, never the batch's end
            grade = not_graded(SubmissionKind.NONE, f"{type(exc).__name__}: {exc}", error=True)
            result = StudentResult(student.student, grade)
        # who submitted and how: the student's own, even when the grade came from the cache
        result.lms_id, result.late = student.lms_id, student.late
        return result

    results: list[StudentResult] = []
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(total=len(students), desc="grading", unit="student", disable=not progress) as bar,
    ):
        for result in pool.map(one, students):
            results.append(result)
            bar.update(1)
    return results


def _grade_student(found: StudentFiles, context: _Context) -> StudentResult:
    spec, student = context.spec, found.student
    if context.kind is SubmissionKind.OPS:
        return _grade_ops_student(found, context)
    selection = select_submission(
        found.files,
        models=spec.model is not None,
        model_without_weights=spec.model is not None and spec.model.experiment is not None,
    )
    kind = SubmissionKind(selection.kind)
    ignored = sorted([*selection.ignored, *found.skipped])
    used = list(selection.used)
    if found.problems:
        grade = not_graded(kind, " | ".join(found.problems))
        return StudentResult(student, grade, files=used, ignored=ignored)
    if kind is SubmissionKind.NONE:
        listed = ", ".join(sorted([*found.files, *found.skipped])) or "nothing"
        grade = not_graded(kind, f"nothing gradable: expected {expected_files(spec)}; found "
                                 f"{listed}")  # fmt: skip
        return StudentResult(student, grade, ignored=ignored)
    try:
        if kind is SubmissionKind.PREDICTIONS:
            cached, hit = _grade_predictions_file(found, used[0], context)
        else:
            target = context.intake_dir / "staged" / found.key
            staged = stage(found, selection, target, limits=context.limits)
            cached, hit = _grade_folder(student, staged.folder, staged.digests, context)
    except IntakeError as exc:
        return StudentResult(student, not_graded(kind, str(exc)), ignored=ignored)
    return StudentResult(student, cached.grade, files=used, ignored=ignored, cached=hit,
                         experiment_plots=cached.experiment_plots)  # fmt: skip


def _grade_ops_student(found: StudentFiles, context: _Context) -> StudentResult:
    """An ``ops.py`` assignment: the student's ops file, copied with the intake's checks."""
    ops_file = context.spec.ops.file
    matches = [n for n in found.files if PurePosixPath(n).name == ops_file]
    ignored = sorted(n for n in found.files if n not in matches[:1])
    if found.problems:
        grade = not_graded(SubmissionKind.OPS, " | ".join(found.problems))
        return StudentResult(found.student, grade, ignored=ignored)
    if len(matches) != 1:
        listed = ", ".join(sorted(found.files)) or "nothing"
        why = "more than one" if matches else "no"
        grade = not_graded(SubmissionKind.OPS, f"{why} {ops_file} in the submission; found "
                                               f"{listed}")  # fmt: skip
        return StudentResult(found.student, grade, ignored=ignored)
    folder = context.intake_dir / "staged" / found.key
    try:
        copied = copy_plain_file(
            found.files[matches[0]],
            folder / ops_file,
            max_bytes=context.limits.max_file_bytes,
            shown=matches[0],
        )
    except IntakeError as exc:
        return StudentResult(found.student, not_graded(SubmissionKind.OPS, str(exc)),
                             ignored=ignored)  # fmt: skip
    cached, hit = _grade_folder(found.student, folder, {ops_file: copied.sha256}, context)
    return StudentResult(found.student, cached.grade, files=matches[:1], ignored=ignored,
                         cached=hit)  # fmt: skip


def _through_cache(context: _Context, key: str, grade: Callable[[], Cached]) -> tuple[Cached, bool]:
    """The cached grade of ``key`` (and whether it came from an earlier run), or ``grade()``
    stored under it."""
    cached = context.cache.get(key)
    if cached is not None:
        return cached, key in context.cache.preexisting  # not a twin graded earlier in this run
    fresh = grade()
    context.cache.put(key, fresh)
    return fresh, False


def _grade_predictions_file(
    found: StudentFiles, name: str, context: _Context
) -> tuple[Cached, bool]:
    """A predictions CSV is read in place (checked, capped): it needs no staging folder."""
    raw = read_plain_file(found.files[name], max_bytes=context.spec.max_file_bytes, shown=name)
    key = _cache_key(context, {PurePosixPath(name).name: hashlib.sha256(raw).hexdigest()})
    files = {PurePosixPath(name).name: raw}
    return _through_cache(
        context, key, lambda: Cached(grade_submission(files, context.spec, answer_key=context.key))
    )


def _grade_folder(
    student: str, folder: Path, digests: dict[str, str], context: _Context
) -> tuple[Cached, bool]:
    """A model or an ``ops.py``, staged in ``folder``, graded in the pool's boxes."""

    def grade() -> Cached:
        plots = context.out_dir / "experiments" / student
        result: Grade = grade_submission(
            folder,
            context.spec,
            boxes=context.boxes,
            answer_key=context.key,
            data_dir=context.data_dir,
            experiment_dir=plots,
        )
        written = sorted(p.relative_to(context.out_dir).as_posix() for p in plots.glob("*.png"))
        return Cached(result, written)

    return _through_cache(context, _cache_key(context, digests), grade)


def _pool(spec: Assignment, data_dir: Path | None, workers: int) -> BoxPool:
    """Boxes for the batch, each started on its first job: a model's hold the test images
    (never the labels)."""
    from grader.models.pipeline import model_pool

    if spec.model is None:
        from grader.sandbox.pool import BoxPool

        return BoxPool(size=workers)
    return model_pool(spec, data_dir=data_dir, size=workers)


def _cache_key(context: _Context, digests: dict[str, str]) -> str:
    digest = hashlib.sha256(f"{context.identity}:{context.kind.value}".encode())
    for name in sorted(digests):
        digest.update(name.encode() + b"\0")
        digest.update(bytes.fromhex(digests[name]))
    return digest.hexdigest()


# --- flags of the class -------------------------------------------------------------------------


def _add_flags(results: list[StudentResult], context: _Context) -> list[CopyCluster]:
    ok = [r for r in results if r.status is GradeStatus.OK]
    solution = context.key.solution()
    n_solution = len(solution)
    predictions = {  # a model's predicted classes too, as the server's flags read them
        r.student: r.grade.labels.astype(np.int64)
        for r in ok
        if r.grade.labels is not None and len(r.grade.labels) == n_solution
    }
    clusters = copy_clusters(
        prediction_digests={r.student: r.grade.predictions_sha256 for r in results},
        weight_digests={r.student: r.grade.weights_sha256 for r in results},
        predictions=predictions,
        truth=solution["label"].to_numpy(np.int64),
        num_classes=len(context.spec.class_names),
    )
    accuracies = {r.student: r.grade.all_accuracy for r in ok if r.grade.all_accuracy is not None}
    flags = student_flags(clusters, accuracies)
    for r in results:
        late = ["submitted late (the LMS marked it LATE)"] if r.late else []
        r.class_flags = [*flags.get(r.student, []), *late]
    return clusters
