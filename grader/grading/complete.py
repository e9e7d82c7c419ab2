"""The side of a grade that needs the labels: scores, metrics, the memoriser flag, points.

:func:`complete_grade` is the one function that turns :class:`~grader.grading.evidence.Evidence`
into a :class:`~grader.grading.grade.Grade`. ``grader check`` calls it in its own process (through
:func:`grader.grading.grade_submission`); the course server calls it when a worker posts its
evidence and when an instructor rescores. So a grade's points and flags are computed here and
nowhere else.
"""

from __future__ import annotations

import hashlib

import numpy as np

from grader.assignment import Assignment
from grader.grading.answer_key import AnswerKey
from grader.grading.evidence import Evidence, PredictionsFile
from grader.grading.grade import HELD_FLAG, Grade, Provenance, Review, not_graded
from grader.grading.points import point_lines, total
from grader.grading.status import GradeStatus, SubmissionKind
from grader.models.result import Check, ModelResult
from grader.ops.grade import OpRow, OpsGrade
from grader.predictions.scoring import Score
from grader.predictions.solution import answer_key_digest

PROBLEM_SEPARATOR = " | "
"""Between the problems of one message (every problem of a predictions file)."""
FAILED_CHECK_FLAG = "failed structure check"


def complete_grade(
    evidence: Evidence,
    spec: Assignment,
    key: AnswerKey | None = None,
    *,
    data_dir=None,
) -> Grade:
    """The grade of ``evidence`` under ``spec``, scored against ``key`` (default: the spec's
    answer key under ``data_dir``, loaded only when labels are needed).

    Raises :class:`grader.predictions.solution.SolutionError` when labels are needed and cannot
    be loaded (the grader's set-up is at fault, not the submission).
    """
    key = key or AnswerKey(spec, data_dir)
    kind = evidence.kind
    if evidence.status is not GradeStatus.OK:
        grade = not_graded(kind, evidence.message, error=evidence.status is GradeStatus.ERROR)
    elif kind is SubmissionKind.MODEL and evidence.model is not None:
        grade = _model_grade(evidence.model, spec, key)
    elif kind is SubmissionKind.OPS and evidence.ops is not None:
        grade = _ops_grade(evidence.ops, spec)
    elif kind is SubmissionKind.PREDICTIONS and evidence.predictions is not None:
        grade = _predictions_grade(evidence.predictions, spec, key)
    else:
        grade = not_graded(kind, f"no {kind} outcome to grade", error=True)
    grade.max_points = spec.max_points
    grade.wall_s = round(grade.wall_s or evidence.wall_s, 3)
    digest = ""
    if grade.scores:  # scored against labels: which ones
        labels = key.solution() if kind is SubmissionKind.PREDICTIONS else key.image_labels()
        digest = answer_key_digest(labels)
    grade.provenance = Provenance.now(
        assignment=spec.name, spec_sha256=spec.digest(), answer_key_sha256=digest
    )
    return grade


# --- models -------------------------------------------------------------------------------------


def _model_grade(result: ModelResult, spec: Assignment, key: AnswerKey) -> Grade:
    grade = Grade(
        status=result.status,
        kind=SubmissionKind.MODEL,
        message=result.message,
        checks=list(result.checks),
        flags=list(result.flags),
        notes=list(result.notes),
        verified=result.verified,
        total_params=result.total_params,
        buffers=result.buffers,
        other_tensors=result.other_tensors,
        flops=result.flops,
        unused=list(result.unused),
        weight_density=result.weight_density,
        layers=list(result.layers),
        output_shape=result.output_shape,
        images=result.images,
        runtime=result.runtime,
        weights_sha256=result.parameter_digest or result.weights_sha256,
        fingerprint_match=result.fingerprint_match,
        experiment=result.experiment,
        sandboxed=result.sandboxed,
        wall_s=result.wall_s,
        log=result.log,
    )
    grade.flags += [f"{FAILED_CHECK_FLAG}: {c.name} ({c.message})" for c in grade.failed_checks]
    grade.point_lines = point_lines(spec, accuracy=None, checks=grade.checks)
    if result.status is not GradeStatus.OK:
        return _with_experiment(grade)
    if result.logits is None:
        if result.images == 0 and result.weights_sha256 is None:
            grade.message = f"{_passed_words(grade)}; no weights: not evaluated"
        else:
            grade.message = f"{_passed_words(grade)}; not evaluated on the test images"
        return _with_experiment(grade)
    truth = key.image_labels()["label"].to_numpy(np.int64)
    logits = np.asarray(result.logits)
    if logits.ndim != 2 or len(logits) != len(truth):  # the grader's set-up, not the student
        grade.status = GradeStatus.ERROR
        grade.message = (
            f"the model was evaluated on {len(logits)} test images, the answer key has "
            f"{len(truth)}: the worker and the server must use the same data"
        )
        return _with_experiment(grade)
    from grader.predictions.scoring import score_labels

    predicted = logits.argmax(axis=1).astype(np.int64)
    _score_into(grade, score_labels(key.image_labels(), predicted, spec), predicted)
    grade.metrics, problem = _model_metrics(truth, result)
    notes = [] if problem is None else [f"metrics not computed: {problem}"]
    if grade.metrics is not None and grade.metrics.likely_memoriser:
        grade.flags.append(grade.metrics.memoriser_reason)
    if not result.verified and result.message:
        notes.insert(0, result.message)
    grade.message = "; ".join([_passed_words(grade), *notes])
    _award(grade, spec, review=result.message if result.needs_review else None)
    return _with_experiment(grade)


def _model_metrics(truth: np.ndarray, result: ModelResult):
    """Calibration, robustness, consistency and the memoriser evidence of a model's logits."""
    from grader.metrics.robustness import model_metrics

    try:
        variants = result.variant_logits or None
        seed = result.variant_seed or 0  # the grading's secret seed the variants were drawn with
        return model_metrics(truth, result.logits, variants, seed=seed), None
    except ValueError as exc:  # variants of the wrong size: the grade stands, the metrics not
        return None, str(exc)


def _passed_words(grade: Grade) -> str:
    """ "all checks passed", or which checks cost points: never the first when any did."""
    missed = [line.name for line in grade.point_lines
              if line.source.value != "rubric" and line.earned < line.possible]  # fmt: skip
    failed = grade.failed_checks
    if failed:
        return "failed check(s): " + "; ".join(f"{c.name}: {c.message}" for c in failed)
    if missed:
        return f"required checks passed; points missed: {', '.join(missed)}"
    return "all checks passed"


def _with_experiment(grade: Grade) -> Grade:
    if grade.experiment is not None and grade.experiment.summary:
        grade.message = f"{grade.message}; {grade.experiment.summary}".lstrip("; ")
    return grade


# --- ops ----------------------------------------------------------------------------------------


def _ops_grade(ops: OpsGrade, spec: Assignment) -> Grade:
    checks = [Check(row.name, row.passed, row.message or _op_errors(row), row.earned)
              for row in ops.rows]  # fmt: skip
    grade = Grade(
        status=ops.status,
        kind=SubmissionKind.OPS,
        message=ops.message,
        checks=checks,
        sandboxed=ops.sandboxed,
        wall_s=ops.wall_s,
    )
    grade.point_lines = point_lines(spec, accuracy=None, checks=checks)
    if ops.status is GradeStatus.OK:
        _award(grade, spec)
    return grade


def _op_errors(row: OpRow) -> str:
    parts = [
        f"{what} error {value:.1e}"
        for what, value in (("forward", row.forward_error), ("backward", row.backward_error),
                            ("gradient check", row.gradcheck_error))
        if value is not None
    ]  # fmt: skip
    return ", ".join(parts) or ("pass" if row.passed else "fail")


# --- predictions --------------------------------------------------------------------------------


def _predictions_grade(file: PredictionsFile, spec: Assignment, key: AnswerKey) -> Grade:
    from grader.predictions.read import SubmissionError, probabilities, read_predictions
    from grader.predictions.scoring import score

    sha = hashlib.sha256(file.content).hexdigest()
    solution = key.solution()
    try:
        frame = read_predictions(
            file.content, spec, expected_ids=solution["id"].to_numpy(), name=file.name
        )
    except SubmissionError as exc:
        return not_graded(SubmissionKind.PREDICTIONS, PROBLEM_SEPARATOR.join(exc.errors),
                          predictions_sha256=sha)  # fmt: skip
    grade = Grade(status=GradeStatus.OK, kind=SubmissionKind.PREDICTIONS, predictions_sha256=sha)
    ordered = frame.sort_values("id")
    _score_into(grade, score(solution, frame, spec), ordered["label"].to_numpy(np.int64))
    probs = probabilities(ordered, spec)
    if probs is not None:
        from grader.metrics.robustness import prediction_metrics

        grade.metrics = prediction_metrics(solution["label"].to_numpy(np.int64), probs)
    _award(grade, spec)
    return grade


# --- shared -------------------------------------------------------------------------------------


def _score_into(grade: Grade, scored: Score, predicted: np.ndarray) -> None:
    """Scores, counts, confusion matrices, per-class accuracy and the predicted labels (one
    per test image, in the answer key's order)."""
    grade.scores = scored.splits
    grade.counts = scored.counts
    grade.confusion = scored.confusion
    grade.per_class = scored.per_class["all"]
    small = len(predicted) == 0 or int(predicted.max()) < 256
    grade.labels = predicted.astype(np.uint8 if small else np.int64)


def _award(grade: Grade, spec: Assignment, *, review: str | None = None) -> None:
    """The point lines for the graded split's accuracy, the points, and a held review."""
    grade.point_lines = point_lines(
        spec, accuracy=grade.accuracy(spec.grade_split), checks=grade.checks
    )
    grade.points = total(grade.point_lines)
    if review is not None:
        grade.review = Review(reason=review)
        grade.points = 0.0
        grade.flags.append(f"{HELD_FLAG}: {review}")
