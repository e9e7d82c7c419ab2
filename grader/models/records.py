"""The records the model-grading stages exchange with the host (parsed strictly on arrival).

A :class:`CaptureReport` comes from the student's own process: it only shapes messages. An
:class:`EvaluationRecord` comes from the verified evaluation, a box with no student code, and is
the source of every number that counts: parameters, structure, FLOPs, logits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from grader.grading.status import GradeStatus

CAPTURE_REPORT = "capture.json"
EVALUATION_RECORD = "evaluation.json"
TRAINING_RECORD = "training.json"
LOGITS_FILE = "logits.npy"
UNVERIFIED_REPORT = "unverified.json"
UNVERIFIED_IMAGES = "grader-images.npy"
"""The images an unverified model's process computes logits for: the test images and their
variants, mixed in a secret order (it never sees the seed)."""


@dataclass(frozen=True)
class CaptureArgs:
    """What the capture stage builds and exports."""

    entry: str = "Net"
    input_shape: tuple[int, ...] = (3, 32, 32)
    num_classes: int = 10
    weights: str | None = None
    """The weights file's name in the submission, chosen by the host; None: initial weights."""
    train_graph: bool = False
    """Also export the model in training mode (for an experiment that trains it)."""
    aliases: tuple[str, ...] = ()
    """Other names accepted for the entry (``build_model`` is always accepted)."""


@dataclass(frozen=True)
class CaptureReport:
    """The capture stage's account: untrusted, used for messages only."""

    status: Literal["exported", "not_exportable", "invalid"]
    message: str = ""


@dataclass(frozen=True)
class EvaluateArgs:
    """What the verified evaluation runs."""

    num_classes: int = 10
    batch_size: int = 256
    """The most images per run; fewer when the memory limit asks for it."""
    weights: str | None = None
    """The submission's weights file, compared tensor by tensor with the graph's."""
    robustness: bool = False
    """Compute logits on the image variants of :func:`grader.metrics.make_variants` as well."""
    seed: int = 0
    """The grading's secret seed: the variants, the order of the images and the perturbations
    are drawn from it. The host draws a fresh one per grading and gives it to no other stage."""
    memory_limit_mb: int = 4096
    """The assignment's memory limit, named when the graph needs more."""
    threads: int = 1
    """Threads ONNX Runtime may compute with: the box's fair share of the machine's cores."""


@dataclass(frozen=True)
class InputInfo:
    """One graph input: the image batch, or a parameter, buffer or constant of the model."""

    name: str
    kind: Literal["image", "parameter", "buffer", "constant"]
    dtype: str
    shape: list[int]
    numel: int
    effect: bool = True
    """Whether the logits on the probe batch change when this tensor is perturbed (forward
    passes, never a gradient); a tensor read only to be multiplied by zero, or subtracted from
    itself, has none."""


@dataclass(frozen=True)
class SkipTest:
    """How an addition of two feature maps behaves as a skip connection, measured on the probe
    batch: the source value is changed on the skip path only and the logits compared."""

    operand: int
    """The operand of the addition that is the skip (an identity path from :attr:`source`)."""
    source: int
    """The value the skip starts from, which the other operand is computed from as well."""
    branch_layer: bool
    """Whether the other operand's path from the source runs a layer (reads a weight)."""
    kept: float = 0.0
    """The change of the logits when the source changes on every path around the branch, as a
    share of the change through the skip edge alone: ~1 when the identity survives to the
    output, 0 when something downstream cancels it (``(f + h) - h``)."""


@dataclass(frozen=True)
class NodeInfo:
    """One operation as the verified evaluation ran it."""

    op: str
    inputs: list[int]
    """Values the operation reads (indices: graph inputs first, then operations)."""
    module: str = ""
    module_type: str = ""
    source: str = ""
    shape: list[int] | None = None
    """Shape of its (first) tensor result on the probe batch; None for a non-tensor."""
    varies: bool = False
    """Whether its result differs between the images of the probe batch (carries data)."""
    spread: float = 0.0
    """Mean absolute deviation of its result across the probe batch: how much data it carries."""
    flops: int = 0
    """FLOPs for one image (torch.utils.flop_counter)."""
    rate: float | None = None
    """The drop probability of a dropout operation."""
    skip: SkipTest | None = None
    """For an addition of two feature maps that could be a skip connection: the test."""


@dataclass(frozen=True)
class GraphSummary:
    """The graph that was run: enough for the structure rules, counts and the layer table."""

    inputs: list[InputInfo]
    nodes: list[NodeInfo]
    logits: int
    """The value that holds the logits."""
    probe_batch: int = 0


@dataclass(frozen=True)
class WeightsCheck:
    """Whether the graph's tensors are those of the submitted weights file."""

    file: str
    matched: bool
    message: str = ""
    from_code: list[str] = field(default_factory=list)
    """Buffers and constants the graph reads that the weights file does not hold: their values
    come from the code (counted like any other tensor)."""


@dataclass(frozen=True)
class EvaluationRecord:
    """The verified evaluation's result."""

    status: GradeStatus
    message: str = ""
    graph: GraphSummary | None = None
    flops: int | None = None
    output_shape: list[int] | None = None
    finite: bool = False
    deterministic: bool = False
    images: int = 0
    images_per_s: float | None = None
    weights: WeightsCheck | None = None
    variants: list[str] = field(default_factory=list)
    """Variant names whose logits are in ``logits_<name>.npy``."""
    parameter_digest: str = ""
    """SHA-256 over the graph's parameters (name, dtype, shape, bytes), sorted by name."""
    weight_density: float | None = None
    """Fraction of the values of the convolution and linear weights the graph reads that are
    not exactly zero (biases left out)."""
    batch_size: int | None = None
    """Images per run (every run of the evaluation had this many)."""
    memory_per_image: int | None = None
    """Bytes of intermediate values one more image adds to a run (estimated from shapes)."""
    runtime: Literal["", "onnxruntime", "interpreter"] = ""
    """What computed the logits of the test images and variants: ONNX Runtime running the
    graph's ONNX translation (after its logits agreed with the interpreter's), or the
    interpreter itself; empty when no logits were computed (or in a record from before)."""
    runtime_note: str = ""
    """One line: the threads and agreement of ONNX Runtime, or why the interpreter ran."""


@dataclass(frozen=True)
class UnverifiedReport:
    """What the student's process reported while computing logits of an unexportable model."""

    status: GradeStatus
    message: str = ""


@dataclass(frozen=True)
class TrainArgs:
    """A short training run of the captured training-mode graph (an experiment)."""

    lrs: tuple[float, ...] = (2e-3, 1e-4)
    steps: int = 30
    batch_size: int = 32
    seed: int = 0


@dataclass(frozen=True)
class TrainingRecord:
    """Loss curves of the training-mode graph, one per learning rate."""

    status: GradeStatus
    message: str = ""
    lrs: list[float] = field(default_factory=list)
    curves: list[list[float]] = field(default_factory=list)
