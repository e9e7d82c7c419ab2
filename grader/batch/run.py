"""Grade a class folder: ``grades.csv``, ``results.json``, ``report.html`` and student pages.

:mod:`grader.batch.intake` finds the students (per-student folders, Canvas and Moodle downloads,
zips) and stages what each submission uses; every student becomes one row, whatever goes wrong.
Results are cached in ``OUT/.grader-cache`` by the sha256 of the staged files and of the
assignment (spec and answer key), so a re-run grades only what changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from grader.assignment import Assignment
from grader.batch.cache import existing_keys, read_cache, write_cache
from grader.batch.intake import (
    MODEL_FILE,
    PREDICTIONS_FILE,
    WEIGHT_SUFFIXES,
    IntakeLimits,
    StudentFiles,
    collect,
    select_submission,
    stage,
)
from grader.batch.results import (
    BatchResult,
    CheckResult,
    Kind,
    Layer,
    Provenance,
    StudentResult,
    write_grades,
    write_results_json,
)
from grader.predictions.flags import CopyCluster, copy_clusters, student_flags
from grader.predictions.read import SubmissionError
from grader.predictions.scoring import Score, score, score_labels
from grader.predictions.solution import answer_key_digest, load_solution, split_ids
from grader.sandbox.staging import IntakeError, read_plain_file

if TYPE_CHECKING:
    from grader.sandbox.pool import BoxPool

CACHE_DIR = ".grader-cache"
INTAKE_DIR = ".grader-intake"
CACHE_VERSION = 3


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
) -> BatchResult:
    """Grade every student under ``root``; write grades.csv, results.json, report.html and
    (with ``student_pages``) one feedback page per student under ``students/``.

    Model folders are graded by :func:`grader.models.pipeline.grade_model` in a pool of jailed
    boxes (one per thread) that import torch once and fork a confined child per stage;
    ``pre_fork`` is accepted from earlier callers and changes nothing.
    """
    from grader.batch.report import write_report
    from grader.batch.student_page import write_student_pages
    from grader.batch.thumbnails import load_thumbnails

    start = time.perf_counter()
    root, out_dir = Path(root), Path(out_dir)
    if not root.is_dir():
        raise BatchError(
            f"{root}: no such folder; pass the folder that holds one folder per student "
            f"(or an LMS download)"
        )
    if spec.ops is not None:
        return _grade_ops_folder(root, spec, out_dir=out_dir, limits=limits, start=start)
    solution = load_solution(spec, data_dir, path=solution_path)
    context = _Context(spec=spec, data_dir=data_dir, solution=solution, out_dir=out_dir)
    provenance = Provenance.now(
        assignment=spec.name,
        spec_sha256=spec.digest(),
        answer_key_sha256=answer_key_digest(solution),
    )
    context.cache_dir.mkdir(parents=True, exist_ok=True)
    context.preexisting = existing_keys(context.cache_dir)
    if context.intake_dir.exists():
        shutil.rmtree(context.intake_dir)
    try:
        context.limits = limits or IntakeLimits()
        intake = collect(root, work_dir=context.intake_dir, limits=context.limits)
        workers = max(1, jobs or min(8, len(intake.students) or 1))
        if spec.model is not None:
            context.boxes = _model_pool(spec, data_dir, workers)
        try:
            results = _run_all(intake.students, context, workers, progress)
        finally:
            if context.boxes is not None:
                context.boxes.close()
    finally:
        shutil.rmtree(context.intake_dir, ignore_errors=True)
    clusters = _add_flags(results, context)
    grades = out_dir / "grades.csv"
    write_grades(results, grades, provenance)
    public = split_ids(solution["id"].to_numpy(), spec.public_fraction, spec.split_seed)
    batch = BatchResult(
        results=results,
        grades_csv=grades,
        report_html=out_dir / "report.html",
        assignment=spec.name,
        elapsed_s=time.perf_counter() - start,
        cache_hits=sum(r.cached for r in results),
        provenance=provenance,
        results_json=out_dir / "results.json",
        students_dir=out_dir / "students" if student_pages else None,
        clusters=clusters,
        images={"public": int(public.sum()), "private": int((~public).sum()), "all": len(public)},
        top_level_ignored=intake.top_level_ignored,
    )
    write_results_json(batch, batch.results_json)
    thumbnails = load_thumbnails(spec, data_dir)
    if student_pages:
        write_student_pages(batch, spec=spec, answer_key=solution, thumbnails=thumbnails)
    write_report(batch, spec=spec, out_dir=out_dir, answer_key=solution, thumbnails=thumbnails)
    return batch


def _grade_ops_folder(
    root: Path, spec: Assignment, *, out_dir: Path, limits: IntakeLimits | None, start: float
) -> BatchResult:
    """grades.csv, results.json and report.html of an ``[ops]`` assignment."""
    from grader.batch.ops_run import grade_ops_student, write_ops_report

    provenance = Provenance.now(assignment=spec.name, spec_sha256=spec.digest(),
                                answer_key_sha256="")  # fmt: skip
    work = out_dir / INTAKE_DIR
    shutil.rmtree(work, ignore_errors=True)
    limits = limits or IntakeLimits()
    try:
        intake = collect(root, work_dir=work, limits=limits)
        results = [grade_ops_student(found, spec, work / "staged", limits)
                   for found in intake.students]  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    grades = out_dir / "grades.csv"
    write_grades(results, grades, provenance)
    batch = BatchResult(
        results=results, grades_csv=grades, report_html=out_dir / "report.html",
        assignment=spec.name, elapsed_s=time.perf_counter() - start, cache_hits=0,
        provenance=provenance, results_json=out_dir / "results.json", students_dir=None,
        clusters=[], images={}, top_level_ignored=intake.top_level_ignored,
    )  # fmt: skip
    write_results_json(batch, batch.results_json)
    write_ops_report(batch, spec)
    return batch


@dataclass
class _Context:
    spec: Assignment
    data_dir: Path | None
    solution: pd.DataFrame
    out_dir: Path
    model_solution: pd.DataFrame | None = None
    boxes: BoxPool | None = None
    """Jailed boxes for model folders (one per thread), each started on its first model."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    preexisting: frozenset[str] = frozenset()
    """Cache keys from earlier runs: only these count as "cached"."""
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
            digest.update(answer_key_digest(self.solution).encode())
            digest.update(str(CACHE_VERSION).encode())
            self._identity = digest.hexdigest()
        return self._identity

    def model_labels(self) -> pd.DataFrame:
        """Labels of the test images a model is evaluated on (the dataset's, in image order)."""
        with self.lock:
            if self.model_solution is None:
                as_dataset = dataclasses.replace(self.spec, solution="dataset")
                self.model_solution = load_solution(as_dataset, self.data_dir)
            return self.model_solution


def _run_all(
    students: list[StudentFiles], context: _Context, workers: int, progress: bool
) -> list[StudentResult]:
    from tqdm import tqdm

    _ = context.identity  # computed once, before the threads share it

    def one(student: StudentFiles) -> StudentResult:
        result = _grade_student(student, context)
        # who submitted and how: the student's own, even when the grade came from the cache
        result.student, result.lms_id, result.late = student.student, student.lms_id, student.late
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
    student = found.student
    try:
        selection = select_submission(
            found.files,
            models=context.spec.model is not None,
            model_without_weights=_runs_experiment(context.spec),
        )
        ignored = sorted([*selection.ignored, *found.skipped])
        if found.problems:
            return StudentResult(
                student,
                "invalid",
                selection.kind,
                message=" | ".join(found.problems),
                files=list(selection.used),
                ignored=ignored,
            )
        if selection.kind == "none":
            listed = ", ".join(sorted([*found.files, *found.skipped])) or "nothing"
            return StudentResult(
                student,
                "invalid",
                "none",
                message=f"nothing gradable: expected {PREDICTIONS_FILE} or {MODEL_FILE} with a "
                f"weights file ({', '.join(WEIGHT_SUFFIXES)}); found {listed}",
                ignored=ignored,
            )
        if selection.kind == "model" and context.spec.model is None:
            return StudentResult(
                student,
                "error",
                "model",
                message=f"a model submission, but assignment {context.spec.name!r} grades "
                f"{PREDICTIONS_FILE} files; grade model folders with --assignment NAME "
                f"(an assignment with a [model] table, e.g. simplenn)",
                files=list(selection.used),
                ignored=ignored,
            )
        try:
            if selection.kind == "predictions":
                result = _grade_predictions_file(found, selection.used[0], context)
            else:
                target = context.intake_dir / "staged" / found.key
                staged = stage(found, selection, target, limits=context.limits)
                result = _grade_model_folder(student, staged.folder, staged.digests, context)
        except IntakeError as exc:
            return StudentResult(
                student, "invalid", selection.kind, message=str(exc), ignored=ignored
            )
        result.files, result.ignored = list(selection.used), ignored
        return result
    except Exception as exc:  # any failure becomes this student's row, never the batch's end
        return StudentResult(student, "error", "none", message=f"{type(exc).__name__}: {exc}")


def _through_cache(
    context: _Context, key: str, student: str, grade: Callable[[], StudentResult]
) -> StudentResult:
    """The cached result of ``key``, or ``grade()`` stored under it."""
    cached = read_cache(context.cache_dir, key, student)
    if cached is not None:
        cached.cached = key in context.preexisting  # not a twin graded earlier in this run
        return cached
    result = grade()
    if result.metrics is not None and result.metrics.likely_memoriser:
        result.flags.append(result.metrics.memoriser_reason)
    write_cache(context.cache_dir, key, result)
    return result


def _grade_predictions_file(found: StudentFiles, name: str, context: _Context) -> StudentResult:
    """A predictions CSV is read in place (checked, capped): it needs no staging folder."""
    raw = read_plain_file(found.files[name], max_bytes=context.spec.max_file_bytes, shown=name)
    digest = hashlib.sha256(raw).hexdigest()
    key = _cache_key(context, "predictions", {PREDICTIONS_FILE: digest})
    file_name = PurePosixPath(name).name
    return _through_cache(
        context,
        key,
        found.student,
        lambda: _grade_predictions(found.student, raw, Path(file_name), context),
    )


def _grade_model_folder(
    student: str, folder: Path, digests: dict[str, str], context: _Context
) -> StudentResult:
    def grade() -> StudentResult:
        result = _grade_model(student, folder, context)
        plots = context.out_dir / "experiments" / student
        result.experiment_plots = sorted(
            p.relative_to(context.out_dir).as_posix() for p in plots.glob("*.png")
        )
        return result

    return _through_cache(context, _cache_key(context, "model", digests), student, grade)


def _model_pool(spec: Assignment, data_dir: Path | None, workers: int) -> BoxPool:
    """Boxes holding the test images (never the labels); each starts on its first model."""
    from grader.models.pipeline import model_pool

    return model_pool(spec, data_dir=data_dir, size=workers)


def _runs_experiment(spec: Assignment) -> bool:
    return spec.model is not None and spec.model.experiment is not None


def _cache_key(context: _Context, kind: Kind, digests: dict[str, str]) -> str:
    digest = hashlib.sha256(f"{context.identity}:{kind}".encode())
    for name in sorted(digests):
        digest.update(name.encode() + b"\0")
        digest.update(bytes.fromhex(digests[name]))
    return digest.hexdigest()


def _grade_predictions(student: str, raw: bytes, path: Path, context: _Context) -> StudentResult:
    from grader.predictions.read import probabilities, read_predictions

    sha = hashlib.sha256(raw).hexdigest()
    try:
        submission = read_predictions(
            raw, context.spec, expected_ids=context.solution["id"].to_numpy(), name=path.name
        )
    except SubmissionError as exc:
        return StudentResult(
            student,
            "invalid",
            "predictions",
            message=" | ".join(exc.errors),
            predictions_sha256=sha,
        )
    result = _from_score(student, "predictions", score(context.solution, submission, context.spec))
    result.predictions_sha256 = sha
    result.labels = submission["label"].to_numpy(np.int64)
    probs = probabilities(submission, context.spec)
    if probs is not None:
        from grader.metrics.robustness import prediction_metrics

        result.metrics = prediction_metrics(context.solution["label"].to_numpy(np.int64), probs)
    return result


def _grade_model(student: str, folder: Path, context: _Context) -> StudentResult:
    from grader.models.pipeline import grade_model

    grade = grade_model(
        folder,
        context.spec,
        data_dir=context.data_dir,
        pool=context.boxes,
        experiment_dir=context.out_dir / "experiments" / student,
    )
    flags = list(grade.flags)
    flags += [f"failed structure check: {c.name} ({c.message})" for c in grade.failed_checks]
    base = {
        "total_params": grade.total_params,
        "flops": grade.flops,
        "weights_sha256": grade.parameter_digest or grade.weights_sha256,
        "flags": flags,
    }
    message = grade.message
    if grade.experiment is not None:
        message = f"{message}; {grade.experiment.summary}"
    if grade.status != "ok" or grade.logits is None:
        if grade.status == "ok":  # checked and verified, but no weights to evaluate
            message = f"{message}; no weights: not evaluated"
        result = StudentResult(student, str(grade.status), "model", message=message, **base)
        return _with_model_outputs(result, grade, None)
    labels = np.asarray(grade.logits).argmax(axis=1).astype(np.int64)
    try:
        scored = score_labels(context.model_labels(), labels, context.spec)
    except ValueError as exc:
        return _with_model_outputs(
            StudentResult(student, "invalid", "model", message=str(exc), **base), grade, None
        )
    result = _from_score(student, "model", scored)
    result.message = message
    result.points = (result.points or 0.0) + grade.structure_points  # checklist and sparsity
    for name, value in base.items():
        setattr(result, name, value)
    return _with_model_outputs(result, grade, context.model_labels()["label"].to_numpy())


def _with_model_outputs(
    result: StudentResult, grade: Any, truth: np.ndarray | None
) -> StudentResult:
    """Copy what the pages and the report show from a model grade (a
    :class:`grader.models.result.ModelResult`, or any record with its field names): every check with
    its reason, the layer table, whether it was verified, and, given the labels of the test
    images, the predicted labels and the metrics (calibration; robustness and consistency when
    the grade carries ``variant_logits``)."""
    result.checks = [
        CheckResult(str(c.name), bool(c.passed), str(c.message), getattr(c, "points", None))
        for c in grade.checks or []
    ]
    result.layers = [Layer.from_mapping(row) for row in getattr(grade, "layers", None) or []]
    result.verified = getattr(grade, "verified", None)
    logits = getattr(grade, "logits", None)
    if truth is None or logits is None or len(logits) != len(truth):
        return result
    from grader.metrics.robustness import model_metrics

    result.labels = np.asarray(logits).argmax(axis=1).astype(np.int64)
    try:
        seed = getattr(grade, "variant_seed", None)  # the grading's secret variant seed
        result.metrics = model_metrics(
            truth, logits, getattr(grade, "variant_logits", None), seed=seed or 0
        )
    except ValueError as exc:  # variants of the wrong size: the grade stands, the metrics not
        result.message = f"{result.message}; metrics not computed: {exc}".lstrip("; ")
    return result


def _from_score(student: str, kind: Kind, scored: Score) -> StudentResult:
    return StudentResult(
        student,
        "ok",
        kind,
        public_accuracy=scored.splits["public"]["accuracy"],
        private_accuracy=scored.splits["private"]["accuracy"],
        all_accuracy=scored.splits["all"]["accuracy"],
        points=scored.points,
        per_class=scored.per_class["all"],
        scores=scored.splits,
        counts=scored.counts,
        confusion=scored.confusion,
    )


# --- flags ------------------------------------------------------------------------------------


def _add_flags(results: list[StudentResult], context: _Context) -> list[CopyCluster]:
    ok = [r for r in results if r.status == "ok"]
    n_solution = len(context.solution)
    predictions = {
        r.student: r.labels
        for r in ok
        if r.kind == "predictions" and r.labels is not None and len(r.labels) == n_solution
    }
    clusters = copy_clusters(
        prediction_digests={r.student: r.predictions_sha256 for r in results},
        weight_digests={r.student: r.weights_sha256 for r in results},
        predictions=predictions,
        truth=context.solution["label"].to_numpy(np.int64),
        num_classes=len(context.spec.class_names),
    )
    flags = student_flags(
        clusters, {r.student: r.all_accuracy for r in ok if r.all_accuracy is not None}
    )
    for r in results:
        late = ["submitted late (the LMS marked it LATE)"] if r.late else []
        r.flags = [*r.flags, *flags.get(r.student, []), *late]
    return clusters
