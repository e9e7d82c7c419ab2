"""Everything that crosses a box boundary is parsed here, strictly and inside limits.

Box output is untrusted input: a file the box wrote may be missing, a link, a FIFO, huge, deeply
nested, of the wrong type or shape. Each reader opens without following links, checks the type
and size BEFORE reading, scans JSON nesting before parsing it (no RecursionError), and converts
the data into a typed record (:func:`grader.records.from_data`); every problem raises
:class:`ProtocolError`, whose message is safe to show to the student whose box wrote the file.
"""

from __future__ import annotations

import io
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from grader.records import from_data, to_data

if TYPE_CHECKING:
    from grader.assignment import ModelSpec

T = TypeVar("T")

MAX_RECORD_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 32


class ProtocolError(ValueError):
    """A record or array from a box that does not meet its contract; the message says how."""


def read_bytes(path: Path, *, max_bytes: int) -> bytes:
    """The content of the regular file ``path`` (never through a link), at most ``max_bytes``."""
    name = Path(path).name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ProtocolError(f"{name} is missing") from None
    except OSError as exc:
        raise ProtocolError(f"{name} cannot be opened ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ProtocolError(f"{name} is not a regular file")
        if info.st_size > max_bytes:
            raise ProtocolError(
                f"{name} holds {info.st_size:,} bytes, over the {max_bytes:,} allowed"
            )
        chunks, total = [], 0
        while total <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise ProtocolError(f"{name} grew past the {max_bytes:,} bytes allowed")
        return b"".join(chunks)
    finally:
        os.close(fd)


def nesting_depth(text: str) -> int:
    """The deepest nesting of JSON arrays and objects in ``text`` (brackets inside strings
    do not count); a linear scan, so any input is safe."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def parse_json(raw: bytes, *, name: str, max_depth: int = MAX_DEPTH) -> Any:
    """Decode and parse JSON from a box, refusing deep nesting before the parser sees it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"{name} is not UTF-8 text") from None
    if nesting_depth(text) > max_depth:
        raise ProtocolError(f"{name} nests deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"{name} is not valid JSON ({exc})") from None


def read_record(
    path: Path, cls: type[T], *, max_bytes: int = MAX_RECORD_BYTES, max_depth: int = MAX_DEPTH
) -> T:
    """Read the JSON file ``path`` as a ``cls`` record; ProtocolError on any problem."""
    name = Path(path).name
    data = parse_json(read_bytes(path, max_bytes=max_bytes), name=name, max_depth=max_depth)
    return parse_record(data, cls, name=name)


def parse_record(data: Any, cls: type[T], *, name: str) -> T:
    """Convert parsed JSON into a ``cls`` record; ProtocolError naming the key at fault."""
    return from_data(cls, data, name, error=ProtocolError)


def write_record(path: Path, record: Any) -> None:
    """Write ``record`` as JSON, atomically (a reader never sees half a record)."""
    tmp = Path(f"{path}.part")
    tmp.write_text(json.dumps(to_data(record), allow_nan=False), encoding="utf-8")
    tmp.replace(path)


def encode_line(record: Any) -> bytes:
    """One record as one line of JSON, for the job pipe between host and box."""
    return (json.dumps(to_data(record), allow_nan=False) + "\n").encode()


def read_array(
    path: Path,
    *,
    dtypes: tuple[str, ...] = ("float32",),
    shape: tuple[int | None, ...] | None = None,
    max_bytes: int = 1 << 30,
) -> np.ndarray:
    """Read a ``.npy`` file from a box: never pickled, the dtype and shape checked from its
    header before the data is read (``None`` in ``shape`` matches any size)."""
    name = Path(path).name
    raw = read_bytes(path, max_bytes=max_bytes)
    stream = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            header = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            header = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ProtocolError(f"{name}: unsupported .npy version {version}")
    except (ValueError, OSError) as exc:
        raise ProtocolError(f"{name} is not a .npy array ({exc})") from None
    got_shape, fortran, dtype = header
    if dtype.hasobject or dtype.name not in dtypes:
        raise ProtocolError(f"{name} holds {dtype}, expected {' or '.join(dtypes)}")
    if shape is not None and (
        len(got_shape) != len(shape)
        or any(want is not None and want != got for want, got in zip(shape, got_shape, strict=True))
    ):
        want = "x".join("N" if s is None else str(s) for s in shape)
        raise ProtocolError(f"{name} has shape {got_shape}, expected {want}")
    expected = int(np.prod(got_shape, dtype=np.int64)) * dtype.itemsize
    data = raw[stream.tell() :]
    if len(data) != expected:
        raise ProtocolError(f"{name} holds {len(data):,} data bytes, its header says {expected:,}")
    array = np.frombuffer(data, dtype=dtype).reshape(got_shape, order="F" if fortran else "C")
    return np.ascontiguousarray(array)


# --- the job pipe between the host and a box's supervisor -----------------------------------------


@dataclass(frozen=True)
class Limits:
    """Resource limits of one job's processes inside a box."""

    wall_s: float = 120.0
    """Wall-clock time of the job; then every process of its uid is killed."""
    memory_mb: int = 4096
    """Address space (RLIMIT_AS) on top of what the forked supervisor already maps."""
    cpu_s: int = 600
    """CPU seconds per process (RLIMIT_CPU)."""
    nproc: int = 64
    """Processes and threads of the job's uid (RLIMIT_NPROC)."""
    fsize_mb: int = 256
    """Largest file a job may write (RLIMIT_FSIZE)."""
    nofile: int = 256
    """Open file descriptors per process (RLIMIT_NOFILE)."""
    output_mb: int = 256
    """Total size of the files a job may hand back; larger ones are dropped."""

    @classmethod
    def from_model_spec(cls, model: ModelSpec, **overrides: Any) -> Limits:
        """Limits for one stage of grading a model under ``model``'s time and memory limits."""
        values: dict[str, Any] = {
            "wall_s": float(model.time_limit_s),
            "memory_mb": int(model.memory_limit_mb),
            "cpu_s": max(int(model.time_limit_s) * 2, 30),
        }
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class JobRequest:
    """Host -> supervisor: run ``task`` on the files staged under ``/box/jobs/<job>/in``."""

    job: str
    task: str
    """A name of :data:`grader.sandbox.inside.tasks.TASKS`."""
    uid: int
    limits: Limits
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobAnswer:
    """Supervisor -> host: how the job's child ended and which files it handed back."""

    job: str
    returncode: int = 0
    """The child's exit code; negative: killed by that signal."""
    timed_out: bool = False
    wall_s: float = 0.0
    outputs: list[str] = field(default_factory=list)
    """Files copied to ``/box/jobs/<job>/out`` (``log.txt`` holds the child's output)."""
    dropped: list[str] = field(default_factory=list)
    """Files the child wrote that were not handed back (links, devices, over the size cap)."""
    error: str = ""
    """Set when the supervisor could not run the job at all."""


@dataclass(frozen=True)
class Ready:
    """Supervisor -> host, once: the box has imported and warmed up what its children need."""

    ready: bool
    error: str = ""
    vm_mb: int = 0
    import_s: float = 0.0
    warm_up_s: float = 0.0
