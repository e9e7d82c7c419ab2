"""Helpers for model-grading tests: student folders, and the stages run in this process.

The stage functions are plain functions of a :class:`JobContext`; running them here (no box)
tests what they compute. The tests of the sandbox itself run them in real boxes.
"""

from __future__ import annotations

import tempfile
import textwrap
from pathlib import Path

import numpy as np
import torch

from grader.models.graph import Graph
from grader.models.inside.capture import capture
from grader.models.inside.evaluate import evaluate
from grader.models.records import CaptureArgs, EvaluateArgs, EvaluationRecord
from grader.sandbox.inside.tasks import JobContext

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SIMPLENN_CODE = (HERE / "attacks" / "simplenn.py").read_text()
SUBMISSIONS = REPO / "submissions"

BLOCK = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        {skip}
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))
"""


def block(skip: str) -> str:
    """A conv + BatchNorm net whose forward runs ``skip`` after its first layer (a second conv
    and BatchNorm are there to build a residual branch from)."""
    return BLOCK.replace("{skip}", skip)


def student_folder(
    root: Path,
    name: str,
    code: str,
    *,
    weights: bytes | None = None,
    weights_name: str = "model.pt",
) -> Path:
    """A submission folder holding ``model.py`` (dedented) and optional weights bytes."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "model.py").write_text(textwrap.dedent(code))
    if weights is not None:
        (folder / weights_name).write_bytes(weights)
    return folder


def run_stages(
    code: str,
    *,
    input_shape: tuple[int, ...] = (3, 32, 32),
    num_classes: int = 10,
    images: np.ndarray | None = None,
    entry: str = "Net",
    out: Path | None = None,
    state: dict | None = None,
    **evaluate_args,
) -> EvaluationRecord:
    """Capture ``code``'s ``Net`` (with the weights ``state``, if given) and evaluate the
    artifact, both in this process (``out`` receives the logits files; ``evaluate_args`` go to
    :class:`EvaluateArgs`)."""
    with tempfile.TemporaryDirectory() as tmp:
        work, artifact = Path(tmp) / "w", Path(tmp) / "o"
        out = out or Path(tmp) / "o2"
        for folder in (work, artifact, out):
            folder.mkdir(exist_ok=True)
        (work / "model.py").write_text(textwrap.dedent(code))
        if state is not None:
            torch.save(state, work / "model.pt")
        report = capture(
            JobContext(work, artifact, {}, None),
            CaptureArgs(entry, input_shape, num_classes, "model.pt" if state else None),
        )
        if report.status != "exported":
            raise AssertionError(f"capture failed: {report.status}: {report.message}")
        return evaluate(
            JobContext(artifact, out, {}, images),
            EvaluateArgs(num_classes=num_classes, **evaluate_args),
        )


def graph_of(code: str, **kwargs) -> Graph:
    """The verified graph of ``code``'s ``Net``."""
    record = run_stages(code, **kwargs)
    if record.status != "ok" or record.graph is None:
        raise AssertionError(record.message)
    return Graph(record.graph)


def assert_stage2_logits(logits: np.ndarray, expected: np.ndarray) -> None:
    """Stage 2's logits against a model's own (eager or the interpreter's): ONNX Runtime may
    compute them, so within :data:`~grader.models.inside.onnx_run.TOLERANCE` of their scale,
    with every predicted class the same."""
    from grader.models.inside.onnx_run import TOLERANCE, max_scaled_difference

    assert logits.shape == expected.shape
    assert max_scaled_difference(logits, expected) <= TOLERANCE
    np.testing.assert_array_equal(logits.argmax(1), expected.argmax(1))
