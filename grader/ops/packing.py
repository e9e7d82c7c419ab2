"""Many small arrays packed into a few, both ways across the sandbox boundary.

An ops check moves hundreds of small arrays (each op's inputs, cotangents, outputs and
vector-Jacobian products for every case), more files than a box job may carry. The host packs
its inputs into one float64 and one int64 array with a layout (names, dtypes, shapes) in the
job's arguments; the box packs its outputs, in the order of the names the host asked for, into
one float64 array of values and one int64 array of shapes. The host reads that layout strictly:
it came from the student's process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MAX_NDIM = 8
MISSING = -1
"""The ndim written for an expected output the box did not produce."""


class PackingError(ValueError):
    """The box's packed outputs do not fit their layout; the message says how."""


def pack_inputs(arrays: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[dict]]:
    """``{"real": float64, "index": int64}`` concatenations of ``arrays`` and their layout."""
    layout, real, index = [], [], []
    for name, array in arrays.items():
        integer = array.dtype.kind in "iu"
        layout.append(
            {"name": name, "dtype": "int64" if integer else "float64", "shape": list(array.shape)}
        )
        (index if integer else real).append(np.asarray(array).ravel())
    packed = {
        "real": np.concatenate(real).astype(np.float64) if real else np.zeros(0),
        "index": np.concatenate(index).astype(np.int64) if index else np.zeros(0, np.int64),
    }
    return packed, layout


def unpack_inputs(packed: Mapping[str, np.ndarray], layout: Sequence[dict]) -> dict[str, Any]:
    """The arrays of :func:`pack_inputs` back by name (inside the box; the layout is the host's)."""
    offsets = {"float64": 0, "int64": 0}
    sources = {"float64": packed["real"].ravel(), "int64": packed["index"].ravel()}
    arrays = {}
    for entry in layout:
        size = int(np.prod(entry["shape"], dtype=np.int64))
        start = offsets[entry["dtype"]]
        arrays[entry["name"]] = sources[entry["dtype"]][start : start + size].reshape(
            entry["shape"]
        )
        offsets[entry["dtype"]] = start + size
    return arrays


def pack_outputs(
    produced: Mapping[str, np.ndarray], names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """``values`` (float64) and ``layout`` (int64: ndim then dims per name, ndim -1 when the
    box produced nothing under that name), in the order of ``names``."""
    values, layout = [], []
    for name in names:
        array = produced.get(name)
        if array is None:
            layout.append(MISSING)
            continue
        array = np.asarray(array, dtype=np.float64)
        layout += [array.ndim, *array.shape]
        values.append(array.ravel())
    flat = np.concatenate(values) if values else np.zeros(0)
    return flat, np.asarray(layout, dtype=np.int64)


def unpack_outputs(
    values: Any, layout: Any, names: Sequence[str], *, max_values: int
) -> dict[str, np.ndarray]:
    """The box's outputs by name; :class:`PackingError` when they do not fit their layout."""
    if not isinstance(values, np.ndarray) or not isinstance(layout, np.ndarray):
        raise PackingError("the outputs are missing")
    if values.ndim != 1 or layout.ndim != 1 or layout.dtype.kind not in "iu":
        raise PackingError("the outputs are not flat arrays")
    if values.dtype.kind not in "fiu" or values.size > max_values:
        raise PackingError(f"the outputs hold more than {max_values:,} numbers or no numbers")
    arrays, at, used = {}, 0, 0
    for name in names:
        if at >= layout.size:
            raise PackingError("the layout ends early")
        ndim = int(layout[at])
        at += 1
        if ndim == MISSING:
            continue
        if not 0 <= ndim <= MAX_NDIM or at + ndim > layout.size:
            raise PackingError(f"the layout gives {name} {ndim} dimensions")
        shape = tuple(int(d) for d in layout[at : at + ndim])
        at += ndim
        if any(not 0 <= d <= max_values for d in shape):
            raise PackingError(f"the layout gives {name} a size out of range")
        size = int(np.prod(shape, dtype=np.int64))
        if used + size > values.size:
            raise PackingError("the layout asks for more numbers than there are")
        arrays[name] = values[used : used + size].reshape(shape)
        used += size
    if at != layout.size or used != values.size:
        raise PackingError("the layout and the values do not match in length")
    return arrays
