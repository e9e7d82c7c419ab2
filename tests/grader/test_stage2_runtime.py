"""Stage 2 computes the logits with ONNX Runtime when it agrees with the interpreter, and with
the interpreter otherwise; the record says which, and why.

Honest models keep their grades: a ResNet-20 and a bundled SimpleNN example graded in real boxes
get ONNX Runtime's logits with every prediction the interpreter's. A graph with an operation
ONNX has no translation for, and a translation whose logits differ from the interpreter's on a
batch other than the probe, are computed by the interpreter with the reason recorded.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import REPO, SUBMISSIONS
from student_style_models import TopTwo

from grader.assignment import load_assignment
from grader.data import load_dataset
from grader.grading.grade import Grade
from grader.grading.status import SubmissionKind
from grader.grading.text import render_text
from grader.models.inside import onnx_run
from grader.models.inside.artifact import GRAPH_FILE, load_program
from grader.models.inside.capture import capture
from grader.models.inside.evaluate import CHECKED_BATCHES, evaluate, graph_logits, image_stream
from grader.models.inside.export import export_model, write_artifact, write_tensors
from grader.models.pipeline import grade_model, model_pool, runtime_line
from grader.models.records import LOGITS_FILE, EvaluateArgs, EvaluationRecord
from grader.models.result import GradeStatus
from grader.records import to_data
from grader.sandbox.inside.tasks import JobContext
from grader.sandbox.jail import bubblewrap_available
from grader.sandbox.pool import BoxPool, machine_cores
from grader.sandbox.protocol import parse_record

RESNET20 = (REPO / "benchmarks" / "resnet20_student.py").read_text()
"""A ResNet-20 (He et al. 2016, option A shortcuts) as a student writes it."""


def student_model(folder: Path) -> torch.nn.Module:
    """The submission's ``Net`` with its weights, loaded in this process."""
    import importlib.util

    from grader.models.inside.weights import load_state_dict

    spec = importlib.util.spec_from_file_location(f"student_{folder.name}", folder / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.Net()
    net.load_state_dict(load_state_dict(folder / "model.pt"))
    return net.eval()


def interpreter_logits(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    """The interpreter's logits of ``images`` for ``model``'s graph artifact, in batches of the
    probe's size as stage 2 runs it."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        graph = export_model(model, tuple(images.shape[1:]))
        write_tensors(write_artifact(graph, out, graph_file=GRAPH_FILE), out)
        program = load_program(out, device=torch.device("cpu"))
        return graph_logits(program, images, batch_size=16, num_classes=10)


def resnet20_submission(folder: Path) -> Path:
    """A ResNet-20 submission with trained-looking weights (random, batch-norm statistics
    drawn away from their defaults)."""
    import importlib.util

    (folder / "model.py").write_text(RESNET20)
    loader = importlib.util.spec_from_file_location("resnet20_submission", folder / "model.py")
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    torch.manual_seed(0)
    net = module.Net()
    for layer in net.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.running_mean.normal_(0, 0.1)
            layer.running_var.uniform_(0.5, 2.0)
    torch.save(net.state_dict(), folder / "model.pt")
    return folder


@pytest.fixture(scope="module")
def cifar(data_dir):
    return load_dataset("cifar10", "test", data_dir)


@pytest.fixture(scope="module")
def cifar_pool(data_dir):
    """One box for the CIFAR-10 assignments' models."""
    if not bubblewrap_available():
        pytest.fail("bubblewrap is missing: apt-get install bubblewrap (scripts/setup.sh)")
    with model_pool(load_assignment("resnet20"), data_dir=data_dir) as pool:
        yield pool


@pytest.mark.parametrize(
    ("assignment", "student"),
    [("resnet20", None), ("simplenn", "ada")],
    ids=["resnet20", "ada"],
)
def test_honest_models_graded_in_a_box_get_onnx_runtimes_logits_and_the_interpreters_accuracy(
    assignment, student, cifar, cifar_pool, tmp_path
):
    spec = load_assignment(assignment)
    folder = SUBMISSIONS / "simplenn" / student if student else resnet20_submission(tmp_path)
    result = grade_model(folder, spec, pool=cifar_pool)
    assert result.verified and result.status is GradeStatus.OK, result.message
    assert result.runtime.startswith("logits computed by ONNX Runtime, "), result.runtime
    threads = machine_cores()
    assert f"{threads} thread" in result.runtime

    reference = interpreter_logits(student_model(folder), cifar.images)
    assert onnx_run.max_scaled_difference(result.logits, reference) <= onnx_run.TOLERANCE
    assert (result.logits.argmax(1) == reference.argmax(1)).all()
    ours = float((result.logits.argmax(1) == cifar.labels).mean())
    assert ours == float((reference.argmax(1) == cifar.labels).mean())


WEIGHTS_SUFFIXES = (".pt", ".safetensors")
BUNDLED = sorted(
    f"{p.parent.parent.name}/{p.parent.name}"
    for p in SUBMISSIONS.glob("*/*/model.py")
    if any(f.suffix in WEIGHTS_SUFFIXES for f in p.parent.iterdir())
)
"""The bundled examples with weights (the others are graded on their structure alone)."""


@pytest.mark.slow
@pytest.mark.parametrize("example", BUNDLED)
def test_every_bundled_example_keeps_the_interpreters_predictions(example, data_dir, tmp_path):
    """The shipped stage 2 on the example's test images and variants: ONNX Runtime computes the
    logits, and every test image's predicted class is the interpreter's (same stream, same
    batches), so the verified accuracy is unchanged."""
    from grader.models.pipeline import capture_arguments, evaluate_arguments

    assignment, student = example.split("/")
    spec = load_assignment(assignment)
    folder = SUBMISSIONS / assignment / student
    weights = next(p.name for p in folder.iterdir() if p.suffix in WEIGHTS_SUFFIXES)
    images = load_dataset(spec.dataset, "test", data_dir).images
    work, out, evaluated = tmp_path / "work", tmp_path / "out", tmp_path / "evaluated"
    for path in (work, out, evaluated):
        path.mkdir()
    for path in folder.iterdir():
        (work / path.name).write_bytes(path.read_bytes())
    report = capture(JobContext(work, out, {}, None), capture_arguments(spec.model, weights))
    assert report.status == "exported", report.message
    (out / weights).write_bytes((folder / weights).read_bytes())
    args = evaluate_arguments(spec.model, weights, seed=11, threads=1)
    record = evaluate(JobContext(out, evaluated, {}, images), args)
    assert record.status == "ok", record.message
    assert record.runtime == "onnxruntime", record.runtime_note
    ours = np.load(evaluated / LOGITS_FILE)
    program = load_program(out, device=torch.device("cpu"))
    stream = image_stream(program, images, args, record.batch_size)
    reference, _ = stream.split(
        graph_logits(program, stream.images, batch_size=record.batch_size,
                     num_classes=spec.model.num_classes)
    )  # fmt: skip
    assert onnx_run.max_scaled_difference(ours, reference) <= onnx_run.TOLERANCE
    np.testing.assert_array_equal(ours.argmax(1), reference.argmax(1))


def evaluate_in_process(model: torch.nn.Module, images: np.ndarray, folder: Path, **args):
    """Capture ``model`` as the capture stage does and evaluate it with the stage function in
    this process; the record and the logits of the test images."""
    out, evaluated = folder / "artifact", folder / "evaluated"
    out.mkdir()
    evaluated.mkdir()
    graph = export_model(model.eval(), (3, 32, 32))
    write_tensors(write_artifact(graph, out, graph_file=GRAPH_FILE), out)
    torch.save(model.state_dict(), out / "model.pt")
    context = JobContext(out, evaluated, {}, images)
    record = evaluate(context, EvaluateArgs(weights="model.pt", **args))
    logits = evaluated / LOGITS_FILE
    return record, np.load(logits) if logits.exists() else None


def test_a_graph_onnx_cannot_translate_is_computed_by_the_interpreter_with_the_reason(
    cifar, tmp_path
):
    torch.manual_seed(0)
    model = TopTwo().eval()
    images = cifar.images[:100]
    record, logits = evaluate_in_process(model, images, tmp_path, robustness=True, seed=3)
    assert record.status == "ok", record.message
    assert record.runtime == "interpreter"
    assert record.runtime_note.startswith("not translated to ONNX: aten.topk.default (operation")
    with torch.inference_mode():
        eager = model(torch.from_numpy(images).float().div_(255.0)).numpy()
    np.testing.assert_allclose(logits, eager, rtol=1e-5, atol=1e-5)
    line = runtime_line(record)
    assert line.startswith("logits computed by the graph interpreter (not translated to ONNX: ")
    # shown to instructors with the grade's other facts
    grade = Grade(GradeStatus.OK, SubmissionKind.MODEL, verified=True, runtime=line)
    assert line in render_text(grade).splitlines()


@pytest.mark.parametrize(
    ("differing", "reason"),
    [({0}, "on the probe images differ"), ({1, 2, 3}, "of the stream differ from the interpreter")],
    ids=["probe", "secret-batches"],
)
def test_onnx_runtime_logits_that_differ_from_the_interpreters_are_replaced_by_its_logits(
    differing, reason, cifar, tmp_path, monkeypatch
):
    """A translation that differs on the probe, or agrees on the probe but not on the batches
    after it (as an operation whose ONNX semantics differ on chosen values would): the
    interpreter computes every logit, and the record says why."""
    from reference.models import get_model

    torch.manual_seed(0)
    model = get_model("simplenn").eval()
    images = cifar.images[:64]  # 4 batches of 16: the probe and 3 others, some checked
    assert CHECKED_BATCHES >= 1
    run_batch, calls = onnx_run.run_batch, []

    def differs(runner, batch):
        out = run_batch(runner, batch)
        calls.append(len(batch))
        if len(calls) - 1 in differing:
            out = out + np.eye(out.shape[0], out.shape[1], dtype=out.dtype)
        return out

    monkeypatch.setattr(onnx_run, "run_batch", differs)
    record, logits = evaluate_in_process(model, images, tmp_path)
    assert calls == [16] * 4  # ONNX Runtime ran the whole stream in the probe's batch size
    assert record.status == "ok" and record.runtime == "interpreter"
    assert reason in record.runtime_note, record.runtime_note
    with torch.inference_mode():
        eager = model(torch.from_numpy(images).float().div_(255.0)).numpy()
    np.testing.assert_allclose(logits, eager, rtol=1e-5, atol=1e-5)


class Offset(torch.nn.Module):
    """A linear model whose logits all carry a constant of 1e6: the tolerance, relative to the
    largest logit, becomes 100 absolute, so every image's top two logits are a "tie"."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 32 * 32, 10)

    def forward(self, x):
        return self.fc(x.flatten(1)) + 1e6


def test_a_large_constant_on_the_logits_does_not_widen_what_counts_as_agreement(
    cifar, tmp_path, monkeypatch
):
    """ONNX Runtime's classes differing from the interpreter's on the checked batches, by 5 on
    logits of 1e6 (within the tolerance, and a "tie" for :func:`same_predictions`): the
    interpreter computes every logit."""
    torch.manual_seed(0)
    model = Offset().eval()
    images = cifar.images[:64]
    run_batch = onnx_run.run_batch

    def other_classes(runner, batch):
        out = run_batch(runner, batch)
        rows = np.arange(len(out))
        out[rows, (out.argmax(1) + 1) % out.shape[1]] += 5.0
        return out

    monkeypatch.setattr(onnx_run, "run_batch", other_classes)
    record, logits = evaluate_in_process(model, images, tmp_path)
    assert record.runtime == "interpreter", record.runtime_note
    assert onnx_run.PROBE_DIFFERS in record.runtime_note
    with torch.inference_mode():
        eager = model(torch.from_numpy(images).float().div_(255.0)).numpy()
    assert (logits.argmax(1) == eager.argmax(1)).all()


class TiedWhenBright(torch.nn.Module):
    """A linear model whose two largest logits (classes 0 and 1) tie exactly on the brightest
    images only."""

    def __init__(self, threshold: float):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 32 * 32, 10)
        self.threshold = threshold

    def forward(self, x):
        scores = self.fc(x.flatten(1))
        bright = x.mean(dim=(1, 2, 3)) > self.threshold
        top = scores.amax(dim=1) + 1.0
        first = torch.where(bright, top, scores[:, 0])
        second = torch.where(bright, top, scores[:, 1])
        return torch.cat([first[:, None], second[:, None], scores[:, 2:]], dim=1)


@pytest.mark.parametrize("brightest", [1, 64], ids=["one", "every"])
def test_near_tied_classes_are_decided_by_the_interpreter(brightest, cifar, tmp_path):
    """Rounding decides a tie, differently in each runtime: the batches holding one take the
    interpreter's logits; when most batches do, the interpreter computes every one."""
    images = cifar.images[:64]
    means = images.reshape(len(images), -1).mean(1) / 255.0
    threshold = float(np.sort(means)[-brightest]) - 1e-6 if brightest < 64 else -1.0
    torch.manual_seed(0)
    model = TiedWhenBright(threshold).eval()
    record, logits = evaluate_in_process(model, images, tmp_path)
    assert record.status == "ok", record.message
    if brightest < 64:
        assert record.runtime == "onnxruntime"
        assert record.runtime_note.endswith(
            "; 1 batch(es) with near-tied classes from the interpreter"
        )
    else:
        assert record.runtime == "interpreter"
        assert record.runtime_note.startswith("near-tied classes in 4 of 4 batches")
    tied = means > threshold
    assert (logits[tied, 0] == logits[tied, 1]).all()


def test_each_box_of_a_pool_computes_with_its_share_of_the_cores():
    cores = machine_cores()
    for size in (1, 2, cores + 1):
        pool = BoxPool(size=size)
        try:
            shares = {worker.core_share for worker in pool._all}
        finally:
            pool.close()
        assert shares == {max(1, cores // size)}


def test_records_from_before_the_runtime_was_recorded_stay_readable():
    record = to_data(EvaluationRecord("ok", "", images=3))
    for key in ("runtime", "runtime_note"):
        del record[key]
    old = parse_record(record, EvaluationRecord, name="evaluation record")
    assert old.runtime == "" and runtime_line(old) == ""
    grade = Grade(GradeStatus.OK, SubmissionKind.MODEL, verified=True).to_record()
    del grade["grade"]["runtime"]
    assert Grade.from_record(grade).runtime == ""


class NanWhenBright(torch.nn.Module):
    """Finite logits except on the brightest test image(s): NaN there."""

    def __init__(self, threshold: float):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 32 * 32, 10)
        self.threshold = threshold

    def forward(self, x):
        bright = x.mean(dim=(1, 2, 3)) > self.threshold
        scores = self.fc(x.flatten(1))
        return torch.where(bright[:, None], scores * float("nan"), scores)


def test_logits_that_are_nan_on_one_image_of_the_stream_are_not_finite(cifar, tmp_path):
    """Finiteness is judged on every image evaluated, not only on the probe batch."""
    images = cifar.images[:256]
    means = images.reshape(len(images), -1).mean(1) / 255.0
    threshold = float(np.sort(means)[-1]) - 1e-6  # the brightest image alone
    torch.manual_seed(0)
    record, logits = evaluate_in_process(NanWhenBright(threshold).eval(), images, tmp_path)
    assert record.status == "ok", record.message
    assert np.isnan(logits[means > threshold]).all()
    assert record.finite is False
