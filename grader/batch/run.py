"""Grade a folder of student submissions: ``grades.csv``, ``report.html`` and flags.

Layout: ``ROOT/<student>/predictions.csv`` and/or ``ROOT/<student>/model.py`` with a weights
file. Every student folder becomes one row, whatever goes wrong inside it. Results are cached in
``OUT/.grader-cache`` by the sha256 of the submission's files and of the assignment (spec and
answer key), so a re-run grades only what changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from grader.assignment import Assignment
from grader.batch.cache import read_cache, write_cache
from grader.batch.results import BatchResult, Kind, StudentResult, write_grades
from grader.predictions.flags import batch_flags
from grader.predictions.read import SubmissionError
from grader.predictions.scoring import Score, score, score_labels
from grader.predictions.solution import load_solution

if TYPE_CHECKING:
    from grader.zygote import ZygotePool

PREDICTIONS_FILE = "predictions.csv"
MODEL_FILE = "model.py"
WEIGHT_SUFFIXES = (".pt", ".pth", ".safetensors")
CACHE_DIR = ".grader-cache"
CACHE_VERSION = 1


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
    pre_fork: bool = False,
) -> BatchResult:
    """Grade every student folder under ``root`` and write ``grades.csv`` and ``report.html``.

    ``pre_fork=True`` grades model folders in pre-forked jailed workers (:mod:`grader.zygote`,
    one per thread) that import torch once, instead of one fresh box per submission.
    """
    from grader.batch.report import write_report

    start = time.perf_counter()
    root, out_dir = Path(root), Path(out_dir)
    if not root.is_dir():
        raise BatchError(
            f"{root}: no such folder; pass the folder that holds one folder per student"
        )
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    solution = load_solution(spec, data_dir, path=solution_path)
    context = _Context(spec=spec, data_dir=data_dir, solution=solution, out_dir=out_dir)
    context.cache_dir.mkdir(parents=True, exist_ok=True)
    workers = max(1, jobs or min(8, len(folders) or 1))
    if pre_fork and spec.model is not None:
        context.zygotes = _zygote_pool(spec, data_dir)
    try:
        results = _run_all(folders, context, workers, progress)
    finally:
        if context.zygotes is not None:
            context.zygotes.close()
    _add_flags(results, context)
    grades = out_dir / "grades.csv"
    write_grades(results, grades)
    batch = BatchResult(
        results=results,
        grades_csv=grades,
        report_html=out_dir / "report.html",
        assignment=spec.name,
        elapsed_s=time.perf_counter() - start,
        cache_hits=sum(r.cached for r in results),
    )
    write_report(batch, spec=spec, out_dir=out_dir)
    return batch


@dataclass
class _Context:
    spec: Assignment
    data_dir: Path | None
    solution: pd.DataFrame
    out_dir: Path
    model_solution: pd.DataFrame | None = None
    zygotes: ZygotePool | None = None
    """Pre-forked workers for model folders (one per slot), when the batch asked for them."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def cache_dir(self) -> Path:
        return self.out_dir / CACHE_DIR

    @property
    def identity(self) -> str:
        """sha256 of everything a grade depends on besides the submission itself."""
        if not hasattr(self, "_identity"):
            fields = dataclasses.asdict(dataclasses.replace(self.spec, source=None))
            digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode())
            digest.update(self.solution["id"].to_numpy().tobytes())
            digest.update(self.solution["label"].to_numpy().tobytes())
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
    folders: list[Path], context: _Context, workers: int, progress: bool
) -> list[StudentResult]:
    from tqdm import tqdm

    _ = context.identity  # computed once, before the threads share it
    slots: queue.SimpleQueue[int] = queue.SimpleQueue()
    for slot in range(workers):
        slots.put(slot)

    def one(folder: Path) -> StudentResult:
        slot = slots.get()
        try:
            return _grade_student(folder, context, slot)
        finally:
            slots.put(slot)

    results: list[StudentResult] = []
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(total=len(folders), desc="grading", unit="student", disable=not progress) as bar,
    ):
        for result in pool.map(one, folders):
            results.append(result)
            bar.update(1)
    return results


def _grade_student(folder: Path, context: _Context, slot: int) -> StudentResult:
    student = folder.name
    try:
        kind, files = _find_submission(folder, context.spec)
        if kind == "none" and _runs_experiment(context.spec) and (folder / MODEL_FILE).is_file():
            kind, files = "model", sorted(p for p in folder.iterdir() if p.is_file())
        if kind == "none":
            found = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
            return StudentResult(
                student,
                "invalid",
                "none",
                message=f"nothing gradable: expected {PREDICTIONS_FILE} or {MODEL_FILE} with a "
                f"weights file ({', '.join(WEIGHT_SUFFIXES)}); found {found}",
            )
        if kind == "model" and context.spec.model is None:
            return StudentResult(
                student,
                "error",
                "model",
                message=f"a model submission, but assignment {context.spec.name!r} grades "
                f"{PREDICTIONS_FILE} files; grade model folders with --assignment NAME "
                f"(an assignment with a [model] table, e.g. simplenn)",
            )
        contents = {p.name: p.read_bytes() for p in files}
        key = _cache_key(context, kind, contents)
        cached = read_cache(context.cache_dir, key, student)
        if cached is not None:
            return cached
        if kind == "predictions":
            result = _grade_predictions(student, contents[files[0].name], files[0], context)
        elif _has_weights(files):
            result = _grade_model(student, folder, context, slot)
        else:  # a class to train in the experiment; nothing to evaluate on the test images
            result = StudentResult(student, "ok", "model", message="no weights: not evaluated")
        if _runs_experiment(context.spec) and result.status != "error":
            _add_experiment(result, folder, context, slot)
        write_cache(context.cache_dir, key, result)
        return result
    except Exception as exc:  # any failure becomes this student's row, never the batch's end
        return StudentResult(student, "error", "none", message=f"{type(exc).__name__}: {exc}")


def _zygote_pool(spec: Assignment, data_dir: Path | None) -> ZygotePool:
    """Workers holding the test images (never the labels); each starts on its first model."""
    from grader.data import cached_dataset
    from grader.modelgrade import model_spec_args
    from grader.zygote import ZygotePool

    images = cached_dataset(spec.dataset, "test", data_dir).images
    warm_up = model_spec_args(spec.model, require_weights=True) if spec.model else None
    return ZygotePool(images=images, warm_up=warm_up)


def _runs_experiment(spec: Assignment) -> bool:
    return spec.model is not None and spec.model.experiment == "bn_landscape"


def _has_weights(files: list[Path]) -> bool:
    return any(p.suffix.lower() in WEIGHT_SUFFIXES for p in files)


def _add_experiment(result: StudentResult, folder: Path, context: _Context, slot: int) -> None:
    """Run the batch-norm landscape experiment with the student's class (in the sandbox)."""
    from grader.vggbn import grade_vgg_bn

    out = context.out_dir / "experiments" / result.student
    report = grade_vgg_bn(folder, context.spec, data_dir=context.data_dir, out_dir=out, slot=slot)
    failed = [c for c in report.checks if not c.passed]
    result.flags += [f"failed structure check: {c.rule} ({c.message})" for c in failed]
    if report.status != "ok":
        result.status = "invalid"
        result.message = f"BN experiment: {report.message}"
        return
    if failed:
        result.status = "invalid"
    verdict = "narrower" if report.narrowed else "not narrower"
    summary = (
        f"BN loss band {report.student_band_width:.3f} vs VGG-A "
        f"{report.reference_band_width:.3f} ({verdict})"
    )
    if report.plot is not None:
        summary += f"; plot: experiments/{result.student}/{report.plot.name}"
    result.message = f"{result.message}; {summary}" if result.message else summary


def _find_submission(folder: Path, spec: Assignment) -> tuple[Kind, list[Path]]:
    files = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
    predictions = files.get(PREDICTIONS_FILE)
    model = files.get(MODEL_FILE)
    weights = sorted(p for p in files.values() if p.suffix.lower() in WEIGHT_SUFFIXES)
    has_model = model is not None and bool(weights)
    if has_model and (spec.model is not None or predictions is None):
        return "model", sorted(files.values())
    if predictions is not None:
        return "predictions", [predictions]
    return "none", []


def _cache_key(context: _Context, kind: Kind, contents: dict[str, bytes]) -> str:
    digest = hashlib.sha256(f"{context.identity}:{kind}".encode())
    for name in sorted(contents):
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.sha256(contents[name]).digest())
    return digest.hexdigest()


def _grade_predictions(student: str, raw: bytes, path: Path, context: _Context) -> StudentResult:
    from grader.predictions.read import read_predictions

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
    return result


def _grade_model(student: str, folder: Path, context: _Context, slot: int) -> StudentResult:
    try:
        from grader.modelgrade import grade_model_folder
    except ImportError:
        return StudentResult(
            student, "error", "model", message="model submissions need the model grader"
        )
    pre_forked = {"zygote": context.zygotes.get(slot)} if context.zygotes is not None else {}
    grade = grade_model_folder(
        folder, context.spec, data_dir=context.data_dir, slot=slot, **pre_forked
    )
    failed = [c for c in grade.checks if not c.passed]
    flags = list(grade.flags)
    flags += [f"failed structure check: {c.name} ({c.message})" for c in failed]
    base = {
        "total_params": grade.total_params,
        "flops": grade.flops,
        "weights_sha256": grade.weights_sha256,
        "flags": flags,
    }
    if grade.status != "ok" or grade.logits is None:
        status = grade.status if grade.status != "ok" else "error"
        message = grade.message or "the model produced no outputs"
        return StudentResult(student, status, "model", message=message, **base)
    labels = np.asarray(grade.logits).argmax(axis=1).astype(np.int64)
    try:
        scored = score_labels(context.model_labels(), labels, context.spec)
    except ValueError as exc:
        return StudentResult(student, "invalid", "model", message=str(exc), **base)
    result = _from_score(student, "model", scored)
    result.message = grade.message
    for name, value in base.items():
        setattr(result, name, value)
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
    )


# --- flags and grades.csv ------------------------------------------------------------------------


def _add_flags(results: list[StudentResult], context: _Context) -> None:
    ok = [r for r in results if r.status == "ok"]
    n_solution = len(context.solution)
    predictions = {
        r.student: r.labels
        for r in ok
        if r.kind == "predictions" and r.labels is not None and len(r.labels) == n_solution
    }
    flags = batch_flags(
        prediction_digests={r.student: r.predictions_sha256 for r in results},
        weight_digests={r.student: r.weights_sha256 for r in results},
        predictions=predictions,
        accuracies={r.student: r.all_accuracy for r in ok if r.all_accuracy is not None},
        truth=context.solution["label"].to_numpy(np.int64),
        num_classes=len(context.spec.class_names),
    )
    for r in results:
        r.flags = [*r.flags, *flags.get(r.student, [])]
