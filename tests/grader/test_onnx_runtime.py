"""The ONNX translation of the graph artifact computes what the interpreter computes.

Each model is captured as the grader captures it (``torch.export`` -> artifact), translated with
:func:`to_onnx` and run by ONNX Runtime on real test images; the logits must equal the
interpreter's within :data:`TOLERANCE` of their scale, with the same predicted class for every
image but those whose two largest logits tie within that tolerance (the interpreter itself
predicts those differently at another batch size). Models: the reference models (random
initial weights), the bundled trained examples (their own weights) and student-style models that
together use every translated operation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import REPO, SUBMISSIONS
from student_style_models import MODELS, TopTwo

from grader.assignment import load_assignment
from grader.data import load_dataset
from grader.models.inside.artifact import GRAPH_FILE, Program, load_program
from grader.models.inside.capture import capture
from grader.models.inside.evaluate import graph_logits, stream_batches, stream_logits
from grader.models.inside.export import export_model, write_artifact, write_tensors
from grader.models.inside.onnx_build import Untranslatable
from grader.models.inside.onnx_graph import to_onnx
from grader.models.inside.onnx_run import (
    TOLERANCE,
    max_scaled_difference,
    run_batch,
    session,
    to_float,
)
from grader.models.records import CaptureArgs, EvaluateArgs
from grader.sandbox.inside.tasks import JobContext

CHEAP_REFERENCE = ["simplenn", "resnet20"]
OTHER_REFERENCE = ["simplenn_bn", "simplenn_swish", "resnet32", "resnet44", "resnet56",
                   "resnet18_cifar", "alexnet_cifar", "lenet5", "vgg_a", "vgg_a_bn",
                   "vgg16_cifar", "tp4_net"]  # fmt: skip
BUNDLED = sorted(
    f"{p.parent.parent.name}/{p.parent.name}" for p in SUBMISSIONS.glob("*/*/model.py")
)


def program_of(model: torch.nn.Module, shape: tuple[int, ...], folder: Path) -> Program:
    """The grader's checked artifact of ``model``, as stage 2 loads it."""
    write_tensors(write_artifact(export_model(model.eval(), shape), folder, graph_file=GRAPH_FILE),
                  folder)  # fmt: skip
    return load_program(folder, device=torch.device("cpu"))


def interpreter_logits(program: Program, images: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return program.logits(torch.from_numpy(np.array(images)).float().div_(255.0)).numpy()


def ort_logits(runner, images: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
    """ONNX Runtime's logits of ``images`` in same-size batches, as stage 2 runs them."""
    num_classes = run_batch(runner, to_float(images[:1])).shape[1]
    return stream_batches(lambda batch: run_batch(runner, to_float(batch)), images,
                          batch_size=batch_size, num_classes=num_classes)  # fmt: skip


def same_predictions(
    ours: np.ndarray, reference: np.ndarray, *, tolerance: float = TOLERANCE
) -> bool:
    """Whether both logit arrays predict the same class for every image, except where the
    reference's two largest logits are within ``tolerance`` of their scale (rounding decides
    such a tie; stage 2 gives those batches the interpreter's logits)."""
    if len(reference) == 0 or reference.shape[1] < 2:
        return True
    scale = max(1.0, float(np.abs(reference).max()))
    top_two = np.partition(reference, -2, axis=1)[:, -2:]
    tied = top_two[:, 1] - top_two[:, 0] <= tolerance * scale
    return bool(((ours.argmax(1) == reference.argmax(1)) | tied).all())


def stage_two_logits(program: Program, images: np.ndarray, *, batch_size: int = 8):
    """Stage 2's logits of ``images`` (:func:`stream_logits`), the probe being the first batch."""
    probe = torch.from_numpy(interpreter_logits(program, images[:batch_size]))
    return stream_logits(program, images, probe, EvaluateArgs(threads=1, seed=7), batch_size)


def assert_same_logits(program: Program, images: np.ndarray, *, batch_size: int) -> float:
    """ONNX Runtime's logits against the interpreter's, batch by batch; the scaled difference."""
    runner = session(to_onnx(program))
    ours = ort_logits(runner, images, batch_size=batch_size)
    theirs = graph_logits(program, images, batch_size=batch_size, num_classes=ours.shape[1])
    difference = max_scaled_difference(ours, theirs)
    assert difference <= TOLERANCE, difference
    assert same_predictions(ours, theirs)
    return difference


@pytest.fixture(scope="module")
def cifar(data_dir: Path) -> np.ndarray:
    return load_dataset("cifar10", "test", data_dir).images


def reference_case(name: str, data_dir: Path, tmp_path: Path, count: int) -> None:
    from reference.models import dataset_for, get_model

    images = load_dataset(dataset_for(name), "test", data_dir).images[:count]
    torch.manual_seed(0)
    program = program_of(get_model(name), tuple(images.shape[1:]), tmp_path)
    assert_same_logits(program, images, batch_size=64)


@pytest.mark.parametrize("name", CHEAP_REFERENCE)
def test_reference_models_give_the_interpreters_logits(name, data_dir, tmp_path):
    reference_case(name, data_dir, tmp_path, 256)


@pytest.mark.slow
@pytest.mark.parametrize("name", OTHER_REFERENCE)
def test_every_reference_model_gives_the_interpreters_logits(name, data_dir, tmp_path):
    reference_case(name, data_dir, tmp_path, 1017)


def bundled_case(example: str, data_dir: Path, tmp_path: Path) -> None:
    assignment, student = example.split("/")
    spec = load_assignment(assignment)
    folder = SUBMISSIONS / assignment / student
    images = load_dataset(spec.dataset, "test", data_dir).images
    weights = next((p.name for p in folder.iterdir() if p.suffix in (".pt", ".safetensors")), None)
    work, out = tmp_path / "work", tmp_path / "out"
    out.mkdir()
    work.mkdir()
    for path in folder.iterdir():
        (work / path.name).write_bytes(path.read_bytes())
    model = spec.model
    args = CaptureArgs(model.entry, tuple(images.shape[1:]), model.num_classes, weights)
    report = capture(JobContext(work, out, {}, None), args)
    assert report.status == "exported", report.message
    program = load_program(out, device=torch.device("cpu"))
    assert_same_logits(program, images, batch_size=256)
    if images.shape[1] == 3:  # and the robustness variants, as stage 2 evaluates them
        from grader.metrics import make_variants

        variants = np.concatenate(list(make_variants(images).values()))
        assert_same_logits(program, variants, batch_size=256)


def test_a_bundled_trained_example_gives_the_interpreters_logits(data_dir, tmp_path):
    bundled_case("simplenn/ada", data_dir, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("example", BUNDLED)
def test_every_bundled_example_gives_the_interpreters_logits(example, data_dir, tmp_path):
    bundled_case(example, data_dir, tmp_path)


@pytest.mark.parametrize("model_class", MODELS, ids=lambda m: m.__name__)
def test_student_style_models_give_the_interpreters_logits(model_class, cifar, tmp_path):
    torch.manual_seed(0)
    program = program_of(model_class(), (3, 32, 32), tmp_path)
    assert_same_logits(program, cifar[:40], batch_size=16)


def test_a_graph_decomposed_to_core_aten_gives_the_interpreters_logits(cifar, tmp_path):
    """The capture decomposes a graph whose in-place operations it cannot make functional:
    convolution, _native_batch_norm_legit_no_training, addmm, max_pool2d_with_indices..."""
    from reference.models import get_model

    torch.manual_seed(0)
    exported = export_model(get_model("resnet20").eval(), (3, 32, 32)).run_decompositions()
    write_tensors(write_artifact(exported, tmp_path, graph_file=GRAPH_FILE), tmp_path)
    program = load_program(tmp_path, device=torch.device("cpu"))
    ops = {node.op for node in program.artifact.nodes}
    assert {"aten.convolution.default", "aten._native_batch_norm_legit_no_training.default"} <= ops
    assert_same_logits(program, cifar[:64], batch_size=32)


def test_every_allowed_operation_the_bundled_models_use_translates():
    from grader.models.graph_ops import OPS
    from grader.models.inside.onnx_ops import HANDLERS

    used = {"conv2d", "linear", "batch_norm", "relu", "max_pool2d", "adaptive_avg_pool2d",
            "flatten", "add", "sub", "div", "mul", "dropout", "pad", "slice", "sigmoid",
            "silu"}  # fmt: skip
    translated = {op.split(".")[1] for op in HANDLERS}
    assert used <= translated
    assert set(HANDLERS) <= set(OPS)


def test_an_operation_without_a_translation_is_named_with_its_layer(tmp_path):
    program = program_of(TopTwo(), (3, 32, 32), tmp_path)
    with pytest.raises(Untranslatable, match=r"aten\.topk\.default \(operation \d+, layer \?\)"):
        to_onnx(program)


def test_a_model_computing_in_float64_is_left_to_the_interpreter(tmp_path):
    class Double(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3 * 32 * 32, 10)

        def forward(self, x):
            return self.fc(x.flatten(1)).double().exp().float()

    with pytest.raises(Untranslatable, match="float64"):
        to_onnx(program_of(Double(), (3, 32, 32), tmp_path))


def test_weights_of_a_diverged_training_run_are_left_to_the_interpreter(tmp_path):
    from reference.models import get_model

    model = get_model("simplenn")
    with torch.no_grad():
        model.classifier[0].weight[0, 0] = float("nan")
    with pytest.raises(Untranslatable, match="holds NaN"):
        to_onnx(program_of(model, (3, 32, 32), tmp_path))


def test_operations_on_weights_alone_become_constants(cifar, tmp_path):
    """An untranslated operation on the weights alone (here a sort) costs nothing: its value is
    the interpreter's, stored as an initializer."""

    class Sorted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3 * 32 * 32, 10)

        def forward(self, x):
            weight = torch.sort(self.fc.weight, dim=1).values
            return torch.nn.functional.linear(x.flatten(1), weight, self.fc.bias)

    torch.manual_seed(0)
    program = program_of(Sorted(), (3, 32, 32), tmp_path)
    assert_same_logits(program, cifar[:32], batch_size=32)


def test_a_branch_hidden_behind_nan_handling_is_taken_by_neither_runtime(cifar, tmp_path):
    """The attack: a lookup table max-pooled together with NaN. torch's max pooling keeps the
    NaN, so the interpreter sees the table masked out (no effect, no gradient); ONNX Runtime's
    MaxPool skips NaN and would add the table to the logits. The translation keeps NaN."""

    class NanSwitch(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3 * 32 * 32, 10)
            self.table = torch.nn.Parameter(torch.full((1, 1, 1, 10), 5.0))

        def forward(self, x):
            nan = (x[:, :1, :1, :10] * 0 + 1) / 0 * 0
            stacked = torch.cat([nan, self.table.expand(x.shape[0], -1, -1, -1)], dim=2)
            hidden = torch.nn.functional.max_pool2d(stacked, (2, 1)).flatten(1)
            return self.fc(x.flatten(1)) + torch.where(hidden == hidden, hidden, 0.0)

    torch.manual_seed(0)
    program = program_of(NanSwitch(), (3, 32, 32), tmp_path)
    images = cifar[:16]
    honest = interpreter_logits(program, images)
    runner = session(to_onnx(program))
    np.testing.assert_allclose(ort_logits(runner, images), honest, atol=1e-5)


def test_the_streams_logits_do_not_depend_on_the_batch_size(cifar, tmp_path):
    from reference.models import get_model

    torch.manual_seed(0)
    program = program_of(get_model("simplenn"), (3, 32, 32), tmp_path)
    runner = session(to_onnx(program))
    whole = ort_logits(runner, cifar[:71], batch_size=71)
    for batch_size in (1, 16, 64):
        parts = ort_logits(runner, cifar[:71], batch_size=batch_size)
        assert parts.shape == (71, 10)
        np.testing.assert_allclose(parts, whole, rtol=1e-6, atol=1e-6)


def test_images_are_converted_bit_for_bit_as_the_interpreters(cifar):
    images = cifar[:64]
    expected = torch.from_numpy(np.array(images)).float().div_(255.0).numpy()
    np.testing.assert_array_equal(to_float(images), expected)


def test_onnx_runtime_runs_only_a_translation_that_agrees_on_the_probe(
    cifar, tmp_path, monkeypatch
):
    from onnx import numpy_helper

    from grader.models.inside import onnx_run
    from reference.models import get_model

    torch.manual_seed(0)
    program = program_of(get_model("simplenn"), (3, 32, 32), tmp_path)
    images = cifar[:64]
    found = stage_two_logits(program, images)
    assert found.runtime == "onnxruntime", found.note

    model = to_onnx(program)
    weights = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    doctored = numpy_helper.to_array(weights) * 1.01
    weights.CopyFrom(numpy_helper.from_array(doctored.astype(np.float32), weights.name))
    monkeypatch.setattr(onnx_run, "to_onnx", lambda _program: model)
    found = stage_two_logits(program, images)
    assert found.runtime == "interpreter" and "differ from the interpreter's" in found.note

    del model.graph.node[0]  # a graph ONNX Runtime refuses to load
    found = stage_two_logits(program, images)
    assert found.runtime == "interpreter"
    assert found.note.startswith("ONNX Runtime refused the translation")
    np.testing.assert_allclose(found.logits, interpreter_logits(program, images), atol=1e-5)


def test_an_untranslatable_graph_is_left_to_the_interpreter_with_the_reason(cifar, tmp_path):
    class Sorting(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3 * 32 * 32, 10)

        def forward(self, x):
            return torch.sort(self.fc(x.flatten(1)), dim=1).values

    program = program_of(Sorting(), (3, 32, 32), tmp_path)
    found = stage_two_logits(program, cifar[:16])
    assert found.runtime == "interpreter"
    assert found.note.startswith("not translated to ONNX: aten.sort.default (operation")


def test_predictions_may_differ_only_where_the_interpreters_top_two_logits_tie():
    """Image 140 of the bundled alexnet-cifar10/mo: the interpreter's two largest logits are one
    float apart and it predicts 7 in a batch of 256, 6 alone; ONNX Runtime predicts 6."""
    reference = np.array([[0.6366221, 0.63662213, -1.0], [2.0, 0.0, 1.0]], np.float32)
    ours = reference.copy()
    ours[0, :2] = [0.63662213, 0.6366221]
    assert same_predictions(ours, reference)
    ours[1] = [0.0, 2.0, 1.0]
    assert not same_predictions(ours, reference)


FORK_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time, traceback
    from pathlib import Path
    import numpy as np, torch
    from grader.models.inside.artifact import load_program
    from grader.models.inside.onnx_graph import to_onnx
    from grader.models.inside.evaluate import warm_up
    from grader.models.inside.onnx_run import run_batch, session, to_float
    from grader.sandbox.inside.confine import confine
    from grader.sandbox.inside.supervisor import wait_for
    from grader.sandbox.protocol import Limits
    import pyseccomp  # as the supervisor, before any child drops its privileges
    from grader.sandbox.inside.tasks import reset_threads_after_fork

    folder, images = Path(sys.argv[1]), np.load(sys.argv[2])
    # the parent: torch and ONNX Runtime both run parallel regions with 2 threads
    torch.set_num_threads(2)
    program = load_program(folder, device=torch.device("cpu"))
    x = torch.from_numpy(images).float().div_(255.0)
    with torch.inference_mode():
        expected = program.logits(x).numpy()
    warm_up({})
    parent_runner = session(to_onnx(program), threads=2)
    parent = run_batch(parent_runner, to_float(images))
    os.environ["OMP_NUM_THREADS"] = "1"  # what a box's environment says
    status = Path("/proc/self/status").read_text().split("VmSize:")[1]
    base_vm_mb = int(status.split()[0]) // 1024
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # as the supervisor's child: torch's pool rebuilt first, then the job
        code = 1
        try:
            reset_threads_after_fork()
            if os.geteuid() == 0:
                confine(int(sys.argv[3]), Limits(), base_vm_mb=base_vm_mb)
            before = len(os.listdir("/proc/self/task"))
            runner = session(to_onnx(program), threads=2)
            threads = len(os.listdir("/proc/self/task")) - before
            child = run_batch(runner, to_float(images))
            weight = program.tensors[next(iter(program.tensors))].clone().requires_grad_()
            with torch.enable_grad():
                (weight * 2).sum().backward()  # the autograd engine's thread, as stage 2 starts it
            with torch.inference_mode():
                again = program.logits(x).numpy()
            report = dict(threads=threads, torch_threads=torch.get_num_threads(),
                          ort=float(np.abs(child - parent).max()),
                          torch=float(np.abs(again - expected).max()),
                          grad=bool((weight.grad == 2).all()), uid=os.geteuid())
            os.write(write_end, json.dumps(report).encode())
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(write_end)
    returncode, timed_out = wait_for(pid, 120)
    print(json.dumps(dict(returncode=returncode, timed_out=timed_out,
                          parent=float(np.abs(parent - expected).max()),
                          child=json.loads(os.read(read_end, 4096) or b"null"))))
    """
)


def test_onnx_runtime_and_torch_run_in_a_child_forked_after_both_ran_with_two_threads(
    cifar, tmp_path
):
    """The supervisor's fork, worst case: the parent ran torch and ONNX Runtime with 2 threads.
    The child (confined as a job is, when run as root) makes its own 2-thread session, runs
    torch at the box's 1 thread with a backward pass, and finishes with the same logits."""
    from reference.models import get_model

    torch.manual_seed(0)
    program_of(get_model("resnet20"), (3, 32, 32), tmp_path)
    np.save(tmp_path / "images.npy", cifar[:64])
    uid = 64_000 + os.getpid() % 1000  # below every box's uid range (200,000 on)
    command = [sys.executable, "-c", FORK_SCRIPT, str(tmp_path), str(tmp_path / "images.npy"),
               str(uid)]  # fmt: skip
    with tempfile.TemporaryDirectory() as home:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO,
                              env={**os.environ, "HOME": home})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert not result["timed_out"] and result["returncode"] == 0, (result, done.stderr[-3000:])
    child = result["child"]
    assert child["threads"] >= 1  # the 2-thread session started its worker in the child
    assert child["torch_threads"] == 1 and child["grad"]
    assert child["ort"] == 0.0 and child["torch"] == 0.0
    assert result["parent"] <= TOLERANCE * 100
    if os.geteuid() == 0:
        assert child["uid"] == uid


def test_remainder_of_large_values_is_torchs_bit_for_bit(tmp_path):
    """``x - floor(x / y) * y`` loses the remainder of large quotients (off by up to the divisor
    at 1e7): a graph could branch on it for chosen images only. The translation is torch's."""

    class Remainders(torch.nn.Module):
        def forward(self, x):
            big = (x - 0.5) * 1e7
            by_scalar = torch.remainder(big, -0.7).flatten(1)[:, :5]
            by_tensor = torch.remainder(big, (x[:, :1] + 0.1) * 3.0).flatten(1)[:, :5]
            return torch.cat([by_scalar, by_tensor], dim=1)

    program = program_of(Remainders(), (3, 32, 32), tmp_path)
    x = torch.rand(32, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = program.logits(x).numpy()
    got = session(to_onnx(program)).run(None, {"image": x.numpy()})[0]
    np.testing.assert_array_equal(got, expected)
