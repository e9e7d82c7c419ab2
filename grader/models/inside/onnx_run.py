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

from typing import Any

import numpy as np

from grader.models.inside.artifact import Program, first_line
from grader.models.inside.onnx_build import Untranslatable
from grader.models.inside.onnx_graph import INPUT_NAME, to_onnx

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
        return None, f"ONNX Runtime refused the translation: {first_line(exc)}"


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


def run_batch(runner: Any, batch: np.ndarray) -> np.ndarray:
    """ONNX Runtime's logits of one float32 batch; :class:`RuntimeFailed` when it fails."""
    try:
        return runner.run([runner.get_outputs()[0].name], {INPUT_NAME: batch})[0]
    except _ort_errors() as exc:
        raise RuntimeFailed(f"ONNX Runtime failed on a batch: {first_line(exc)}") from None


def max_scaled_difference(a: np.ndarray, b: np.ndarray) -> float:
    """The largest absolute difference of two logit arrays, relative to their scale (the
    largest absolute logit, at least 1)."""
    if a.size == 0:
        return 0.0
    scale = max(1.0, float(np.abs(b).max()))
    return float(np.abs(a.astype(np.float64) - b).max() / scale)
