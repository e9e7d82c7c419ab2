"""The one model-grading pipeline: capture -> verified evaluation -> rules -> fingerprints.

``grader sanity``, ``grader check`` and the leaderboard worker all call :func:`grade_model`:

1. **Capture** (a box child running the student's code): build the model, load the weights,
   export it as a graph artifact. Nothing it reports is trusted.
2. **Verified evaluation** (a fresh child with no student code): check and run the artifact,
   derive the parameters, structure, FLOPs and the logits on the test images.
3. **On the host**: the structure rules on the verified graph, the parameter and FLOP budgets,
   the public-model fingerprint and the flags. Scoring happens later, against labels no box sees.

A model that cannot be captured is graded *unverified* (its own process computes the logits, as
a predictions file would, on the test images mixed with their secret variants) when the
assignment accepts that (or holds it for an instructor's review), and then passes no check that
needs the graph: each is "not verified".

Each grading draws a fresh secret seed (:func:`grader.metrics.secret_seed`) for the image
variants and the order the images are evaluated in; only the verified evaluation (or, for an
unverified model, this process) sees it, and the result carries it so that the host can score
the variants.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from grader.assignment import Assignment, ModelSpec
from grader.grading.intake import IntakeError
from grader.metrics.calibration import outputs_are_probabilities
from grader.metrics.variants import evaluation_images, secret_seed
from grader.models.files import MODEL_FILE, ModelFilesError, find_model_files
from grader.models.fingerprint import not_assigned, public_models_inside
from grader.models.graph import SMALL_TENSOR, Graph
from grader.models.notebook import NotebookError, NotebookModule, notebook_module
from grader.models.precheck import Finding, precheck
from grader.models.records import (
    CAPTURE_REPORT,
    EVALUATION_RECORD,
    LOGITS_FILE,
    UNVERIFIED_IMAGES,
    UNVERIFIED_REPORT,
    CaptureArgs,
    CaptureReport,
    EvaluateArgs,
    EvaluationRecord,
    UnverifiedReport,
)
from grader.models.registry import reference_layers, reference_size
from grader.models.result import Check, GradeStatus, ModelResult
from grader.models.rules import RuleContext, check_rules, flop_check, parameter_checks
from grader.records import to_data
from grader.sandbox.gpu import GpuDevice
from grader.sandbox.local import LocalWorker
from grader.sandbox.pool import BoxPool, BoxWorker
from grader.sandbox.protocol import Limits, ProtocolError, read_array, read_record
from grader.sandbox.staging import stage_submission
from grader.sandbox.tasks import ended_message

CAPTURE, EVALUATE, UNVERIFIED = "capture", "evaluate", "unverified"
Progress = Callable[[str], None]
"""Called with the name of each phase as it starts (``grader sanity`` prints them)."""
PROBABILITIES_FLAG = (
    "the model's outputs are probabilities (every row is non-negative and sums to 1: a softmax "
    "at the end of forward). Accuracy is the same, and calibration reads them as probabilities; "
    "but nn.CrossEntropyLoss applies log-softmax itself, so train on (and return) the logits "
    "before the softmax"
)


def model_pool(
    spec: Assignment,
    *,
    data_dir: Path | None = None,
    size: int = 1,
    with_images: bool = True,
    gpu: GpuDevice | None = None,
) -> BoxPool:
    """A pool of boxes for ``spec``'s model submissions, holding its test images (never labels)."""
    warm_up = to_data(spec.model) if spec.model is not None else {}
    return dataset_pool(
        spec.dataset, data_dir=data_dir, size=size, with_images=with_images, gpu=gpu,
        warm_up=warm_up,
    )  # fmt: skip


def dataset_pool(
    dataset: str,
    *,
    data_dir: Path | None = None,
    size: int = 1,
    with_images: bool = True,
    gpu: GpuDevice | None = None,
    warm_up: dict | None = None,
) -> BoxPool:
    """A pool of boxes for the model submissions of any assignment on ``dataset``, holding its
    test images (never labels)."""
    images = None
    if with_images:
        from grader.data import cached_dataset

        images = cached_dataset(dataset, "test", data_dir).images
    return BoxPool(size=size, images=images, warm_up=warm_up or {}, gpu=gpu)


@contextlib.contextmanager
def _borrowed(
    pool: BoxPool | None, spec: Assignment, data_dir: Path | None, with_images: bool, sandbox: bool
) -> Iterator[BoxWorker | LocalWorker]:
    if not sandbox:
        yield LocalWorker()
        return
    if pool is not None:
        with pool.worker() as worker:
            yield worker
        return
    with (
        model_pool(spec, data_dir=data_dir, with_images=with_images) as own,
        own.worker() as worker,
    ):
        yield worker


def capture_arguments(model: ModelSpec, weights: str | None) -> CaptureArgs:
    """What the capture stage is asked to build and export for ``model``'s submissions."""
    return CaptureArgs(
        entry=model.entry,
        aliases=tuple(model.aliases),
        input_shape=tuple(model.input_shape),
        num_classes=model.num_classes,
        weights=weights,
        train_graph=model.experiment is not None,
    )


def evaluate_arguments(
    model: ModelSpec, weights: str | None, seed: int = 0, *, threads: int = 1
) -> EvaluateArgs:
    """What the verified evaluation is asked to run for ``model``'s submissions, with the
    grading's secret ``seed``, on ``threads`` cores (the box's share of the machine)."""
    return EvaluateArgs(
        num_classes=model.num_classes,
        batch_size=model.batch_size,
        weights=weights,
        robustness=model.robustness,
        seed=seed,
        memory_limit_mb=model.memory_limit_mb,
        threads=max(1, threads),
    )


def grade_model(
    folder: Path,
    spec: Assignment,
    *,
    data_dir: Path | None = None,
    pool: BoxPool | None = None,
    require_weights: bool | None = None,
    with_images: bool = True,
    experiment_dir: Path | None = None,
    sandbox: bool = True,
    progress: Progress | None = None,
) -> ModelResult:
    """Grade the model submission in ``folder`` against ``spec``; never raises for a bad
    submission (the result says what is wrong).

    ``require_weights`` (default: unless the spec's experiment trains the model) refuses a
    folder without a weights file. ``pool`` (from :func:`model_pool`) keeps boxes warm across
    submissions; without one a box
    is started for this call. ``with_images=False`` checks the model on a random probe batch
    only (``grader sanity``). ``experiment_dir`` receives an experiment's figure.
    ``sandbox=False`` runs the same stages unconfined in this user's processes: only for a
    student's own check on a machine without bubblewrap. ``progress`` is called as each phase
    starts.

    Before any box starts, a notebook is built into ``model.py`` and the static look
    (:mod:`grader.models.precheck`) answers the mistakes it can see without running anything.
    """
    started = time.perf_counter()
    progress = progress or (lambda _phase: None)
    if spec.model is None:
        return ModelResult(GradeStatus.ERROR, f"assignment {spec.name!r} has no [model] table")
    model = spec.model
    if require_weights is None:  # a model an experiment trains may come without weights
        require_weights = model.experiment is None
    with tempfile.TemporaryDirectory(prefix="grader-model-") as tmp:
        work = Path(tmp)
        progress("reading the files and looking at the code (nothing runs yet)")
        notebook: NotebookModule | None = None
        try:
            files = find_model_files(Path(folder))
            if files.weights is None and require_weights:
                raise ModelFilesError(
                    f"{Path(folder).name}: no weights file; save the trained weights with "
                    "torch.save(model.state_dict(), 'model.pt') and submit them with model.py"
                )
            staged = stage_submission(Path(folder), work / "submission")
            submitted = work / "submission" / files.model.name
            if files.is_notebook:
                notebook = notebook_module(submitted, folder=work / "submission")
                (work / "submission" / MODEL_FILE).write_text(notebook.source, encoding="utf-8")
            elif files.model.name != MODEL_FILE:
                submitted.rename(work / "submission" / MODEL_FILE)
        except (ModelFilesError, IntakeError, NotebookError, OSError) as exc:
            return ModelResult(GradeStatus.INVALID, str(exc))
        weights = None if files.weights is None else (
            files.weights.relative_to(Path(folder)).as_posix()
        )  # fmt: skip
        findings = precheck(
            work / "submission",
            weights=weights,
            entry=model.entry,
            aliases=model.aliases,
            where=notebook.where if notebook is not None else None,
        )
        fatal = [f.message for f in findings if f.fatal]
        if fatal:
            result = ModelResult(GradeStatus.INVALID, " | ".join(fatal))
        else:
            phases = _starting_a_box(progress) if pool is None and sandbox else progress
            with _borrowed(pool, spec, data_dir, with_images, sandbox) as worker:
                result = _grade_staged(
                    worker, work, spec, model, weights, experiment_dir, data_dir,
                    Path(folder).name, phases,
                )  # fmt: skip
            result.sandboxed = worker.sandboxed
    _tell_the_student(result, notebook, findings)
    if files.weights is not None:
        result.weights_sha256 = next((f.sha256 for f in staged if f.name == weights), None)
    result.wall_s = round(time.perf_counter() - started, 3)
    return result


def _starting_a_box(progress: Progress) -> Progress:
    """``progress`` whose first phase says that a box starts first (it starts on first use)."""
    pending = ["starting a sandbox, then "]

    def announce(phase: str) -> None:
        progress((pending.pop() if pending else "") + phase)

    return announce


def _tell_the_student(
    result: ModelResult, notebook: NotebookModule | None, findings: list[Finding]
) -> None:
    """Add what the student should know to ``result``: how a notebook became model.py (its
    cells named where messages name lines), outputs that are probabilities (seen in the
    logits; else a softmax seen in the code), and the static look's other warnings."""
    if notebook is not None:
        result.notes.insert(0, notebook.note)
        result.message = notebook.rewrite(result.message)
        result.checks = [
            dataclasses.replace(c, message=notebook.rewrite(c.message)) for c in result.checks
        ]
    if result.logits is not None and outputs_are_probabilities(result.logits):
        result.flags.append(PROBABILITIES_FLAG)
    result.flags += [
        f.message
        for f in findings
        if not f.fatal and not (f.kind == "softmax" and result.logits is not None)
    ]


def _grade_staged(
    worker: BoxWorker | LocalWorker,
    work: Path,
    spec: Assignment,
    model: ModelSpec,
    weights: str | None,
    experiment_dir: Path | None,
    data_dir: Path | None,
    student: str,
    progress: Progress,
) -> ModelResult:
    limits = Limits.from_model_spec(model)
    root = work / "submission"  # our own checked copy: walking it is safe
    submission = {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}
    capture_args = capture_arguments(model, weights)
    progress("building the model and capturing its graph (your code runs in the sandbox)")
    job = worker.run(
        CAPTURE, files=submission, limits=limits, args=to_data(capture_args), out=work / CAPTURE
    )
    if job.error:
        return ModelResult(GradeStatus.ERROR, f"the sandbox failed: {job.error}", log=job.log)
    try:
        report = read_record(job.out / CAPTURE_REPORT, CaptureReport)
    except ProtocolError as exc:
        return ModelResult(
            GradeStatus.INVALID, ended_message(job, limits, exc, "the model"), log=job.log
        )
    if report.status == "invalid":
        return ModelResult(GradeStatus.INVALID, report.message, log=job.log)
    if report.status == "not_exportable":
        return _unverified(worker, work, submission, model, capture_args, report, limits, job.log)
    from grader.models.inside.artifact import GRAPH_FILE, TENSORS_FILE, TRAIN_GRAPH_FILE

    seed = secret_seed()
    artifact = {
        name: job.out / name
        for name in (GRAPH_FILE, TENSORS_FILE, TRAIN_GRAPH_FILE)
        if (job.out / name).is_file()
    }
    if weights is not None:
        artifact[weights] = submission[weights]
    images = f"{len(worker.images):,} test images" if worker.images is not None else "probe images"
    progress(f"verified evaluation of the captured graph on {images}")
    result = _evaluate(worker, work, artifact, model, weights, limits, seed)
    result.log = job.log
    if model.experiment is not None and result.status is not GradeStatus.ERROR:
        from grader.models.experiments import run_experiment

        progress(f"running the {model.experiment} experiment with your model")
        result.experiment = run_experiment(
            model.experiment,
            worker=worker,
            artifact=artifact,
            work=work,
            limits=limits,
            data_dir=data_dir,
            dataset=spec.dataset,
            out_dir=experiment_dir,
            student=student,
        )
    return result


def _evaluate(
    worker: BoxWorker | LocalWorker,
    work: Path,
    artifact: dict[str, Path],
    model: ModelSpec,
    weights: str | None,
    limits: Limits,
    seed: int,
) -> ModelResult:
    from grader.models.inside.artifact import GRAPH_FILE, TENSORS_FILE

    if GRAPH_FILE not in artifact or TENSORS_FILE not in artifact:
        return ModelResult(
            GradeStatus.INVALID,
            "the model's process reported a capture but wrote no graph artifact",
        )
    args = evaluate_arguments(model, weights, seed, threads=worker.core_share)
    job = worker.run(
        EVALUATE, files=artifact, limits=limits, args=to_data(args), out=work / EVALUATE
    )
    if job.error:
        return ModelResult(GradeStatus.ERROR, f"the sandbox failed: {job.error}")
    try:
        record = read_record(job.out / EVALUATION_RECORD, EvaluationRecord)
    except ProtocolError as exc:
        return ModelResult(
            GradeStatus.INVALID, ended_message(job, limits, exc, "evaluating the captured graph")
        )
    if record.status is not GradeStatus.OK or record.graph is None:
        return ModelResult(
            GradeStatus.INVALID, record.message or "the graph could not be run", verified=True
        )
    result = verified_result(record, model)
    images = worker.images
    if images is not None and weights is not None and result.status is GradeStatus.OK:
        try:
            result.logits = read_array(
                job.out / LOGITS_FILE, shape=(len(images), model.num_classes)
            )
            from grader.metrics.variants import VARIANT_NAMES

            for name in record.variants:
                if name not in VARIANT_NAMES:
                    raise ProtocolError(f"the evaluation names an unknown image variant {name!r}")
                result.variant_logits[name] = read_array(
                    job.out / f"logits_{name}.npy", shape=(None, model.num_classes)
                )
            result.variant_seed = seed if result.variant_logits else None
        except ProtocolError as exc:
            result.status, result.message = GradeStatus.INVALID, f"the logits are unusable: {exc}"
    return result


def verified_result(record: EvaluationRecord, model: ModelSpec) -> ModelResult:
    """Checks, counts, layers and flags from the verified evaluation's record."""
    graph = Graph(record.graph)
    reference = (
        reference_layers(model.reference, tuple(model.input_shape)) if model.reference else ()
    )
    checks = [
        Check(
            "output_shape",
            True,
            f"output shape {tuple(record.output_shape or [])} for {record.graph.probe_batch} "
            f"images",
        ),
        Check(
            "finite",
            record.finite,
            "all outputs finite" if record.finite else "the output holds NaN or Inf values",
        ),
        Check(
            "deterministic",
            record.deterministic,
            "the logits of an image are the same whatever else is in its batch"
            if record.deterministic
            else "the logits of an image change between runs, or with the other images of its "
            "batch: remove randomness from eval mode, and do not mix the images of a batch",
        ),
    ]
    if record.weights is not None:
        checks.append(Check("weights", record.weights.matched, record.weights.message))
    context = RuleContext(reference=reference)
    checks += check_rules(tuple(model.rules), graph, context)
    checks += parameter_checks(
        graph, exact=model.params_exact, most=model.params_max, context=context
    )
    checks += flop_check(record.flops, model.max_flops)
    checks += checklist_checks(model, graph, context)
    checks += sparsity_checks(model, record.weight_density)
    flags = graph_flags(graph, model)
    matches = public_models_inside(graph.weight_shapes(), num_classes=model.num_classes)
    exact = next((m.name for m in matches if m.exact), None)
    found = not_assigned(matches, model.reference, num_classes=model.num_classes)
    match = found[0] if found else None
    if match and model.public_models == "refuse":
        checks.append(Check("own_model", False, f"the architecture {match.describe()}: the "
                            "assignment asks for a network of your own design"))  # fmt: skip
    elif match and match.exact and match.name.startswith("torchvision "):
        flags.append(f"unmodified public model: {match.name}")
    elif match and match.exact:
        flags.append(f"same architecture as {match.name}")
    elif match:
        flags.append(f"public model inside: the architecture {match.describe()}")
    failed = [c for c in checks if not c.passed and c.points is None]
    return ModelResult(
        status=GradeStatus.INVALID if failed else GradeStatus.OK,
        message=("failed check(s): " + "; ".join(f"{c.name}: {c.message}" for c in failed))
        if failed
        else "all checks passed",
        verified=True,
        total_params=graph.parameter_count,
        buffers=graph.buffer_count,
        other_tensors=graph.other_count,
        capacity=graph.capacity,
        unused=[u.name for u in graph.unused],
        flops=record.flops,
        checks=checks,
        flags=flags,
        layers=graph.layers(),
        output_shape=record.output_shape,
        images=record.images,
        images_per_s=record.images_per_s,
        runtime=runtime_line(record),
        parameter_digest=record.parameter_digest,
        fingerprint_match=exact,
        weight_density=record.weight_density,
    )


def runtime_line(record: EvaluationRecord) -> str:
    """What computed the logits, in one line (empty when none were computed)."""
    if record.runtime == "onnxruntime":
        return f"logits computed by {record.runtime_note or 'ONNX Runtime'}"
    if record.runtime == "interpreter":
        why = f" ({record.runtime_note})" if record.runtime_note else ""
        return f"logits computed by the graph interpreter{why}"
    return ""


def graph_flags(graph: Graph, model: ModelSpec) -> list[str]:
    """What an instructor should look at: tensors not counted, tensors read as weights that are
    not parameters, weights read outside the standard layers, and the capacity evidence."""
    flags = []
    unused = graph.unused
    if unused:
        listing = ", ".join(f"{u.name} ({u.numel:,} values)" for u in unused[:5])
        flags.append(f"unused tensors, not counted: {listing}")
    big = [(i, c) for i, c in graph.other_tensors if i.numel > SMALL_TENSOR]
    if big:
        listing = ", ".join(f"{i.name} ({c:,} values, a {i.kind})" for i, c in big[:5])
        flags.append(f"tensors read as weights that are not parameters (counted): {listing}")
    for read in graph.outside_standard()[:5]:
        names = ", ".join(graph.inputs[w].name for w in read.weights[:3])
        flags.append(
            f"review: {graph.describe(read.value)} reads {names} with {read.how}, outside the "
            f"standard layers (counted as {read.kind})"
        )
    for graph_input, bound in graph.bottlenecked()[:5]:
        flags.append(
            f"review: {graph_input.name} ({graph_input.numel:,} values) reaches the image data "
            f"only through {bound:,} values (counted {bound:,})"
        )
    flag = capacity_flag(graph.parameter_count + graph.other_count, model)
    if flag:
        flags.append(flag)
    return flags


def capacity_flag(values: int, model: ModelSpec, *, what: str = "the graph reads") -> str | None:
    """The memoriser evidence of ``max_capacity_ratio``: ``values`` against the reference model's
    parameters, or None when within the ratio (or the spec states none)."""
    if model.max_capacity_ratio is None or model.reference is None:
        return None
    size = reference_size(model.reference)
    if not size or values <= model.max_capacity_ratio * size:
        return None
    return (
        f"capacity: {what} {values:,} values, {values / size:.1f}x the reference "
        f"{model.reference}'s {size:,} (the assignment flags above "
        f"{model.max_capacity_ratio:g}x): room for a table of the test images"
    )


def checklist_checks(model: ModelSpec, graph: Graph, context: RuleContext) -> list[Check]:
    """The handout's component checklist: each rule that holds earns its points."""
    checks = []
    for item in model.checklist:
        (found,) = check_rules((item.rule,), graph, context)
        label = item.label or item.rule
        checks.append(Check(f"checklist: {label}", found.passed, found.message,
                            points=item.points if found.passed else 0.0))  # fmt: skip
    return checks


def sparsity_checks(model: ModelSpec, density: float | None) -> list[Check]:
    """Points for sparse weights: the most the spec's levels give for the measured density."""
    if not model.sparsity:
        return []
    if density is None:
        return [Check("sparsity", False, "the model has no convolution or linear weights",
                      points=0.0)]  # fmt: skip
    points = model.points_for_density(density)
    levels = ", ".join(f"<= {lv.max_density:.0%}: {lv.points:g}" for lv in model.sparsity)
    return [Check("sparsity", points > 0, f"{density:.1%} of the convolution and linear weights "
                  f"are non-zero (levels {levels})", points=points)]  # fmt: skip


def _unverified(
    worker: BoxWorker | LocalWorker,
    work: Path,
    submission: dict[str, Path],
    model: ModelSpec,
    capture_args: CaptureArgs,
    report: CaptureReport,
    limits: Limits,
    log: str,
) -> ModelResult:
    reason = (
        f"the model could not be captured as a graph, so nothing about it can be verified: "
        f"{report.message}"
    )
    if model.unverified == "invalid":
        return ModelResult(GradeStatus.INVALID, reason, log=log)
    if model.public_models == "refuse":
        return ModelResult(
            GradeStatus.INVALID,
            f"{reason}. The assignment refuses public models, and only a captured graph can be "
            "checked for one: make the model exportable",
            log=log,
        )
    needs_graph = [
        *model.rules,
        *(["params_exact"] if model.params_exact is not None else []),
        *(["params_max"] if model.params_max is not None else []),
        *(["max_flops"] if model.max_flops is not None else []),
    ]
    not_verified = f"not verified: {report.message}"
    checks = [Check(name, False, not_verified) for name in needs_graph]
    checks += [Check(f"checklist: {item.label or item.rule}", False, "not verified",
                     points=0.0) for item in model.checklist]  # fmt: skip
    review = model.unverified == "review"
    flags = [f"unverified: {report.message}"]
    if review:
        flags.append("needs review: graded unverified, held at 0 points until an instructor "
                     "accepts it")  # fmt: skip
    status = GradeStatus.INVALID if needs_graph and not review else GradeStatus.OK
    result = ModelResult(
        status,
        reason
        if status is GradeStatus.INVALID
        else "graded UNVERIFIED: the accuracy comes from the model's own process",
        verified=False,
        checks=checks,
        flags=flags,
        log=log,
        needs_review=review,
    )
    held = sum(path.stat().st_size for path in submission.values())
    flag = capacity_flag(held // 4, model, what="the submission's files hold about")
    if flag:
        result.flags.append(flag)
    if worker.images is None or capture_args.weights is None:
        return result
    seed = secret_seed()
    stream = evaluation_images(worker.images, seed=seed, variants=model.robustness)
    mixed = work / "images.npy"
    np.save(mixed, stream.images, allow_pickle=False)
    args = {**to_data(capture_args), "batch_size": model.batch_size, "train_graph": False,
            "images": UNVERIFIED_IMAGES}  # fmt: skip
    files = {**submission, UNVERIFIED_IMAGES: mixed}
    job = worker.run(UNVERIFIED, files=files, limits=limits, args=args, out=work / UNVERIFIED)
    if job.error:
        return ModelResult(GradeStatus.ERROR, f"the sandbox failed: {job.error}", log=log)
    try:
        unverified = read_record(job.out / UNVERIFIED_REPORT, UnverifiedReport)
        if unverified.status is not GradeStatus.OK:
            return ModelResult(GradeStatus.INVALID, unverified.message, log=job.log)
        logits = read_array(job.out / LOGITS_FILE, shape=(len(stream.images), model.num_classes))
    except ProtocolError as exc:
        return ModelResult(
            GradeStatus.INVALID, ended_message(job, limits, exc, "the model"), log=job.log
        )
    result.logits, result.variant_logits = stream.split(logits)
    result.variant_seed = seed if result.variant_logits else None
    result.images = len(result.logits)
    return result
