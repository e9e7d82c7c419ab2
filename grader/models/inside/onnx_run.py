"""Running a translated graph (:mod:`grader.models.inside.onnx_graph`) with ONNX Runtime.

The verified evaluation's logits come from here when the graph translates, else from the
interpreter. Images arrive as uint8 (N, C, H, W) and are converted exactly as the interpreter's
batches are (float32, divided by 255), in batches of the caller's size, with the caller's
number of threads.

Fork safety (the box's supervisor forks a child per job): ONNX Runtime's CPU threads are its
own (no OpenMP), created with each session and joined when it is freed, so a session made in
a child after any number of sessions in the parent runs with as many threads as it asks for. A
session must never cross a fork: its worker threads exist only in the process that made it.
Torch in the same child keeps the box's intra-op thread count (GNU OpenMP hangs in a child when
the parent ran parallel regions), which this module never changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from grader.models.inside.artifact import Program
from grader.models.inside.onnx_build import Untranslatable
from grader.models.inside.onnx_graph import INPUT_NAME, IR_VERSION, OPSET, to_onnx

DEFAULT_BATCH = 32
"""Images per call: small enough for a ResNet-20's activations to stay in a core's cache, large
enough for a VGG's weights to be reused (measured on both: within 4% of each one's best)."""
TOLERANCE = 1e-4
"""Largest difference from the interpreter's logits, relative to their scale (the largest
absolute logit, at least 1), with which ONNX Runtime's are used; measured: below 1e-6."""


class RuntimeFailed(Exception):
    """ONNX Runtime refused or failed a translated graph: the interpreter runs it instead."""


def _ort_errors() -> tuple[type[BaseException], ...]:
    """ONNX Runtime's own exception classes (each derives from Exception alone)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "NoSuchFile", "NoModel", "EngineError",
             "RuntimeException", "InvalidProtobuf", "ModelLoaded", "NotImplemented",
             "InvalidGraph", "EPFail")  # fmt: skip
    found = tuple(getattr(state, n) for n in names if isinstance(getattr(state, n, None), type))
    return (*found, RuntimeError, ValueError, MemoryError)


def prepare(
    program: Program, probe: np.ndarray, expected: np.ndarray, *, threads: int = 1
) -> tuple[Any | None, str]:
    """A session that runs ``program``, checked on the float32 ``probe`` batch against the
    interpreter's logits ``expected``; or None and why the interpreter runs the graph instead."""
    runner, reason = translated(program, threads=threads)
    if runner is None:
        return None, reason
    try:
        if not agrees(runner, probe, expected):
            return None, PROBE_DIFFERS
    except _ort_errors() as exc:
        return None, f"ONNX Runtime refused the translation: {_first_line(exc)}"
    return runner, ""


PROBE_DIFFERS = "ONNX Runtime's logits on the probe images differ from the interpreter's"


def translated(program: Program, *, threads: int = 1) -> tuple[Any | None, str]:
    """A session for ``program``'s ONNX translation, not yet checked against the interpreter;
    or None and why the interpreter runs the graph instead."""
    try:
        model = to_onnx(program)
    except Untranslatable as exc:
        return None, f"not translated to ONNX: {exc}"
    try:
        return session(model, threads=threads), ""
    except _ort_errors() as exc:
        return None, f"ONNX Runtime refused the translation: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def session(model: Any, *, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session for ``model`` (an ``onnx.ModelProto`` or its bytes)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Idle workers sleep instead of spinning: on a shared machine spinning burns the cores
    # other boxes need, and a batch is long enough that waking costs nothing measurable.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def to_float(images: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 images as float32 in [0, 1], bit for bit as the interpreter's batches."""
    out = np.empty(images.shape, np.float32) if out is None else out[: len(images)]
    np.divide(images, np.float32(255.0), out=out, dtype=np.float32)
    return out


def _batches(arrays: Sequence[np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
    """Consecutive uint8 batches across ``arrays``, as if they were one array."""
    pending: list[np.ndarray] = []
    held = 0
    for array in arrays:
        start = 0
        while start < len(array):
            take = min(batch_size - held, len(array) - start)
            pending.append(array[start : start + take])
            held += take
            start += take
            if held == batch_size:
                yield pending[0] if len(pending) == 1 else np.concatenate(pending)
                pending, held = [], 0
    if pending:
        yield pending[0] if len(pending) == 1 else np.concatenate(pending)


def run_batch(runner: Any, batch: np.ndarray) -> np.ndarray:
    """ONNX Runtime's logits of one float32 batch; :class:`RuntimeFailed` when it fails."""
    try:
        return runner.run([runner.get_outputs()[0].name], {INPUT_NAME: batch})[0]
    except _ort_errors() as exc:
        raise RuntimeFailed(f"ONNX Runtime failed on a batch: {_first_line(exc)}") from None


def logits(
    runner: Any, arrays: Sequence[np.ndarray], *, batch_size: int = DEFAULT_BATCH
) -> list[np.ndarray]:
    """The logits of every image of every array in ``arrays``, one float32 array each.

    The arrays run as one stream of full batches (the test images and every variant in one
    pass), so small arrays cost no extra calls. Raises :class:`RuntimeFailed` when ONNX Runtime
    fails (the interpreter then computes the logits).
    """
    batch_size = max(1, batch_size)
    shape = next((a.shape[1:] for a in arrays if len(a)), None)
    if shape is None:
        return [np.zeros((0, 0), np.float32) for _ in arrays]
    buffer = np.empty((batch_size, *shape), np.float32)
    chunks = []
    for batch in _batches(arrays, batch_size):
        out = run_batch(runner, to_float(batch, buffer))
        if out.ndim != 2 or len(out) != len(batch):
            raise RuntimeFailed(f"ONNX Runtime returned shape {out.shape} for {len(batch)} images")
        chunks.append(out)
    every = np.concatenate(chunks).astype(np.float32, copy=False)
    bounds = np.cumsum([0] + [len(a) for a in arrays])
    return [every[start:end] for start, end in zip(bounds[:-1], bounds[1:], strict=True)]


def agrees(
    runner: Any, probe: np.ndarray, expected: np.ndarray, *, tolerance: float = TOLERANCE
) -> bool:
    """Whether ONNX Runtime's logits for the float32 ``probe`` batch match the interpreter's
    ``expected`` within ``tolerance`` of their scale, with the same predicted classes."""
    got = runner.run([runner.get_outputs()[0].name], {INPUT_NAME: probe.astype(np.float32)})[0]
    if got.shape != expected.shape or not np.isfinite(got).all():
        return False
    return max_scaled_difference(got, expected) <= tolerance and same_predictions(
        got, expected, tolerance=tolerance
    )


def same_predictions(
    ours: np.ndarray, reference: np.ndarray, *, tolerance: float = TOLERANCE
) -> bool:
    """Whether both logit arrays predict the same class for every image, except where the
    reference's two largest logits are within ``tolerance`` of their scale: such a tie is decided
    by rounding, and the interpreter itself decides it differently at another batch size."""
    if len(reference) == 0 or reference.shape[1] < 2:
        return True
    scale = max(1.0, float(np.abs(reference).max()))
    top_two = np.partition(reference, -2, axis=1)[:, -2:]
    tied = top_two[:, 1] - top_two[:, 0] <= tolerance * scale
    return bool(((ours.argmax(1) == reference.argmax(1)) | tied).all())


def max_scaled_difference(a: np.ndarray, b: np.ndarray) -> float:
    """The largest absolute difference of two logit arrays, relative to their scale (the
    largest absolute logit, at least 1)."""
    if a.size == 0:
        return 0.0
    scale = max(1.0, float(np.abs(b).max()))
    return float(np.abs(a.astype(np.float64) - b).max() / scale)


def warm_up(_spec: dict | None = None) -> None:
    """Import ONNX and ONNX Runtime and run a one-thread session once, so that a forked child
    skips their first-call costs (a one-thread session starts no threads to lose in a fork)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", [INPUT_NAME], ["y"])],
        "warm_up",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    session(model, threads=1).run(None, {INPUT_NAME: np.zeros((1, 1), np.float32)})
