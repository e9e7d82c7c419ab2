"""Typed records from plain data: JSON or TOML values -> frozen dataclasses, strictly.

One converter serves the assignment specs (TOML) and every record that crosses a sandbox
boundary (JSON). Unknown keys, missing keys and values of the wrong type raise the caller's error
class with a message that names the key path (``spec.toml: model.rules[2]``) and what is allowed.
Nothing is evaluated: values are only checked and copied. Arrays (``numpy.ndarray`` fields) travel
as ``{"dtype", "shape", "base64"}`` tables of raw little-endian bytes, never pickled, and bytes as
base64 text.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import enum
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

T = TypeVar("T")
ARRAY_DTYPES = ("float32", "float64", "int64", "int32", "uint8", "bool")
"""The array dtypes a record may hold."""
MAX_ARRAY_BYTES = 256 * 1024 * 1024


class RecordError(ValueError):
    """Data that does not fit its record type; the message names the key at fault."""


def from_data(
    cls: type[T],
    raw: Any,
    where: str = "record",
    *,
    error: type[ValueError] = RecordError,
    skip: frozenset[str] | set[str] = frozenset(),
) -> T:
    """Build the dataclass ``cls`` from ``raw`` (a dict), checking every key and type.

    ``skip`` names fields that the data may not set (they keep their defaults).
    """
    return _Converter(error).build(cls, raw, where, skip)


def to_data(record: Any) -> Any:
    """The plain-data form of a record: dicts, lists, str, int, float, bool and None only."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: to_data(getattr(record, f.name)) for f in dataclasses.fields(record)}
    if isinstance(record, enum.Enum):
        return record.value
    if isinstance(record, (list, tuple)):
        return [to_data(v) for v in record]
    if isinstance(record, dict):
        return {str(k): to_data(v) for k, v in record.items()}
    if isinstance(record, dt.datetime):
        return record.isoformat()
    if isinstance(record, bytes):
        return base64.b64encode(record).decode("ascii")
    if _is_array(record):
        array = record.astype(record.dtype.newbyteorder("<"), copy=False)
        return {
            "dtype": array.dtype.name,
            "shape": list(array.shape),
            "base64": base64.b64encode(array.tobytes(order="C")).decode("ascii"),
        }
    return record


def _is_array(value: Any) -> bool:
    return type(value).__module__ == "numpy" and type(value).__name__ == "ndarray"


def _is_array_type(tp: Any) -> bool:
    return getattr(tp, "__module__", "") == "numpy" and getattr(tp, "__name__", "") == "ndarray"


class _Converter:
    def __init__(self, error: type[ValueError]) -> None:
        self.error = error

    def build(self, cls: type, raw: Any, where: str, skip: frozenset[str] | set[str] = frozenset()):
        if not isinstance(raw, dict):
            raise self.error(f"{where}: expected a table, got {type(raw).__name__}")
        hints = typing.get_type_hints(cls)
        known = {f.name: f for f in dataclasses.fields(cls) if f.name not in skip and f.init}
        unknown = sorted(set(raw) - set(known), key=str)
        if unknown:
            raise self.error(
                f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                f"allowed keys: {', '.join(sorted(known))}"
            )
        missing = [
            name
            for name, f in known.items()
            if f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
            and name not in raw
        ]
        if missing:
            raise self.error(f"{where}: missing required key(s) {', '.join(map(repr, missing))}")
        values = {key: self.convert(hints[key], v, f"{where}: {key}") for key, v in raw.items()}
        return cls(**values)

    def convert(self, tp: Any, value: Any, where: str) -> Any:
        origin = get_origin(tp)
        if tp is Any:
            return value
        if origin is Literal:
            allowed = get_args(tp)
            if not any(value == a and type(value) is type(a) for a in allowed):
                raise self.error(
                    f"{where} = {value!r} is not allowed; use one of "
                    f"{', '.join(map(repr, allowed))}"
                )
            return value
        if origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if value is None:
                if len(args) == len(get_args(tp)):
                    raise self.error(f"{where} must not be empty")
                return None
            return self.convert(args[0], value, where)
        if origin in (tuple, list):
            if not isinstance(value, list):
                raise self.error(f"{where} must be a list, got {value!r}")
            item_tp = get_args(tp)[0] if get_args(tp) else Any
            items = [self.convert(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value)]
            return tuple(items) if origin is tuple else items
        if origin is dict:
            if not isinstance(value, dict):
                raise self.error(f"{where} must be a table, got {value!r}")
            _key_tp, value_tp = get_args(tp) or (str, Any)
            return {str(k): self.convert(value_tp, v, f"{where}[{k!r}]") for k, v in value.items()}
        if dataclasses.is_dataclass(tp):
            return self.build(tp, value, where)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            try:
                return tp(value)
            except ValueError:
                allowed = ", ".join(repr(m.value) for m in tp)
                raise self.error(
                    f"{where} = {value!r} is not allowed; use one of {allowed}"
                ) from None
        if tp is dt.datetime:
            return self._datetime(value, where)
        if tp is bytes:
            return self._bytes(value, where)
        if _is_array_type(tp):
            return self._array(value, where)
        if tp is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.error(f"{where} must be a number, got {value!r}")
            return float(value)
        if tp is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.error(f"{where} must be an integer, got {value!r}")
            return value
        if tp is str:
            if not isinstance(value, str):
                raise self.error(f"{where} must be a string, got {value!r}")
            return value
        if tp is bool:
            if not isinstance(value, bool):
                raise self.error(f"{where} must be true or false, got {value!r}")
            return value
        raise TypeError(f"unsupported record field type {tp!r}")  # a bug in a record type

    def _bytes(self, value: Any, where: str) -> bytes:
        if not isinstance(value, str):
            raise self.error(f"{where} must be base64 text")
        try:
            return base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise self.error(f"{where} is not valid base64") from None

    def _array(self, value: Any, where: str) -> Any:
        import numpy as np

        if not isinstance(value, dict) or set(value) != {"dtype", "shape", "base64"}:
            raise self.error(f"{where} must be an array table (dtype, shape, base64)")
        dtype, shape = value["dtype"], value["shape"]
        if dtype not in ARRAY_DTYPES:
            raise self.error(f"{where}: dtype {str(dtype)[:40]!r}; use one of {ARRAY_DTYPES}")
        if (
            not isinstance(shape, list)
            or len(shape) > 8
            or not all(type(d) is int and 0 <= d < 2**31 for d in shape)
        ):
            raise self.error(f"{where}: shape must be a list of at most 8 sizes")
        itemsize = np.dtype(dtype).itemsize
        expected = itemsize
        for size in shape:
            expected *= size
        if expected > MAX_ARRAY_BYTES or not isinstance(value["base64"], str):
            raise self.error(f"{where}: over {MAX_ARRAY_BYTES:,} bytes, or no base64 text")
        raw = self._bytes(value["base64"], where)
        if len(raw) != expected:
            raise self.error(f"{where}: {len(raw):,} bytes for shape {shape} of {dtype}")
        return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape).copy()

    def _datetime(self, value: Any, where: str) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        if isinstance(value, str):
            try:
                parsed = dt.datetime.fromisoformat(value)
            except ValueError:
                pass
            else:
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
        raise self.error(f"{where} = {value!r} is not a date-time; use e.g. 2026-12-15T23:59:00Z")
