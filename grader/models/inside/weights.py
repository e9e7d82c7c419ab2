"""Reading a submission's weights (INSIDE a box): tensors only, never a pickled object.

``torch.save`` files (``.pt``, ``.pth``, ``.th``, ``.tar``, ``.ckpt``) are read with
``torch.load(..., weights_only=True)`` (always explicit, so ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``
in an environment cannot turn it off); ``.safetensors`` with the safetensors reader. Whole
pickled models and TorchScript archives are refused with a message saying how to save a
state_dict.

Weights are accepted as PyTorch users save them: a training checkpoint dict is unwrapped (its
``state_dict``, ``model_state_dict``, ``model``, ``net``... entry), the prefixes ``module.``
(``DataParallel``) and ``_orig_mod.`` (``torch.compile``) are stripped, and BatchNorm counters
``num_batches_tracked`` that older PyTorch did not save are filled in. :func:`read_checkpoint`
is the one reader: the capture loads the model from it, and the verified evaluation compares
the graph's tensors with what it returns, so both see the same tensors. Its notes say what was
unwrapped.
"""

from __future__ import annotations

import contextlib
import pickle
import tarfile
import zipfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

HOW_TO_SAVE = "save the weights with torch.save(model.state_dict(), 'model.pt')"
MAX_LISTED = 8
CHECKPOINT_KEYS = (
    "state_dict", "model_state_dict", "model", "net", "model_state", "network", "weights",
)  # fmt: skip
"""Entries of a training checkpoint dict that hold the model's weights, in the order tried."""
WRAPPER_PREFIXES = {
    "module.": "DataParallel/DistributedDataParallel",
    "_orig_mod.": "torch.compile",
}
"""Prefixes that wrappers add to every key of a state_dict, and the wrapper that adds each."""
BN_COUNTER = "num_batches_tracked"
MAX_DEPTH = 2
"""Checkpoint dicts unwrapped inside each other (``{'model': {'state_dict': ...}}``) at most."""


class WeightsError(ValueError):
    """Weights that cannot be used; the message names the file and the keys at fault."""


@dataclass(frozen=True)
class Checkpoint:
    """The tensors of a weights file by state_dict key, and what was done to find them."""

    state: dict[str, torch.Tensor]
    notes: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        """The notes as one sentence ending, or '' (``"; took the 'net' entry ..."``)."""
        return "".join(f"; {note}" for note in self.notes)


def load_state_dict(path: Path, expected: Collection[str] | None = None) -> dict[str, torch.Tensor]:
    """The state_dict in ``path`` (see :func:`read_checkpoint`); raise :class:`WeightsError`."""
    return read_checkpoint(path, expected).state


def read_checkpoint(path: Path, expected: Collection[str] | None = None) -> Checkpoint:
    """Read ``path`` and normalise it to a state_dict: unwrap a checkpoint dict, strip wrapper
    prefixes and, given the ``expected`` keys (the model's or the graph's), fill in missing
    BatchNorm counters and strip a prefix every key shares. Raise :class:`WeightsError`."""
    path = Path(path)
    loaded = _read(path)
    state, notes = _unwrap(loaded, path.name, depth=0)
    wanted = None if expected is None else set(expected)
    state, stripped = _strip_wrappers(state, wanted)
    notes += stripped
    if wanted is not None:
        state, fitted = _fit(state, wanted)
        notes += fitted
    return Checkpoint(state, tuple(notes))


def _read(path: Path) -> object:
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # the reader raises its own untyped errors on corrupt files
            raise WeightsError(f"{path.name}: not a readable safetensors file ({exc})") from None
    if _is_torchscript(path):
        raise WeightsError(
            f"{path.name} is a TorchScript archive (torch.jit.save); submit a state_dict "
            f"instead: {HOW_TO_SAVE}"
        )
    try:
        with _numpy_scalars_allowed():
            return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        raise WeightsError(
            f"{path.name} holds pickled Python objects (a whole model or custom classes), which "
            f"are never loaded ({_first_line(exc)}); {HOW_TO_SAVE}"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        if tarfile.is_tarfile(path):
            raise WeightsError(
                f"{path.name} is a tar archive, not a torch.save file; submit the files "
                f"themselves (or a .zip), with the weights saved by {HOW_TO_SAVE}"
            ) from None
        raise WeightsError(f"{path.name}: not a readable torch file ({exc})") from None


def _numpy_scalars_allowed() -> contextlib.AbstractContextManager:
    """Numbers that training scripts store as numpy scalars (``'acc': np.float64(93.1)``):
    the scalar type and its dtypes, which PyTorch's documentation lists as safe to allow."""
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    if safe_globals is None:
        return contextlib.nullcontext()
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    allowed = [core.multiarray.scalar, np.dtype]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [
            getattr(dtypes, name)
            for name in ("Float64DType", "Float32DType", "Int64DType", "Int32DType", "BoolDType")
            if hasattr(dtypes, name)
        ]
    return safe_globals(allowed)


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("constants.pkl") or "/code/" in n for n in names)


def _is_state(value: object) -> bool:
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(isinstance(v, torch.Tensor) for v in value.values())
    )


def _unwrap(loaded: object, name: str, depth: int) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The state_dict inside what ``torch.load`` returned, and a note for each dict opened."""
    if not isinstance(loaded, Mapping) or not loaded:
        kind = type(loaded).__name__
        raise WeightsError(f"{name} holds a {kind}, not a state_dict; {HOW_TO_SAVE}")
    if _is_state(loaded):
        return {str(k): v for k, v in loaded.items()}, []
    tensors = [str(k) for k, v in loaded.items() if isinstance(v, torch.Tensor)]
    if depth < MAX_DEPTH:
        key = next((k for k in CHECKPOINT_KEYS if isinstance(loaded.get(k), Mapping)), None)
        if key is None:  # one entry that is a state_dict, under a name of the student's own
            found = [k for k, v in loaded.items() if _is_state(v)]
            key = found[0] if len(found) == 1 else None
        if key is not None:
            state, notes = _unwrap(loaded[key], name, depth + 1)
            others = [str(k) for k in loaded if k != key]
            left = f" (other entries left out: {_listing(others)})" if others else ""
            return state, [f"{name} is a checkpoint dict: the weights are its {key!r} entry{left}",
                           *notes]  # fmt: skip
    described = [f"{k} ({type(v).__name__})" for k, v in loaded.items()]
    if tensors:
        bad = [d for d, v in zip(described, loaded.values(), strict=True)
               if not isinstance(v, torch.Tensor)]  # fmt: skip
        raise WeightsError(f"{name}: entries that are not tensors: {_listing(bad)}; {HOW_TO_SAVE}")
    raise WeightsError(
        f"{name} is a dict of {_listing(described)}, and none of its entries is the model's "
        f"state_dict (looked for {', '.join(CHECKPOINT_KEYS)}); {HOW_TO_SAVE}, or store it as "
        f"checkpoint['state_dict']"
    )


def _strip_wrappers(
    state: dict[str, torch.Tensor], expected: set[str] | None
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Remove wrapper prefixes that every key carries, unless the ``expected`` keys have them
    too (a model whose own attribute is called ``module``)."""
    notes = []
    changed = True
    while changed:
        changed = False
        for prefix, wrapper in WRAPPER_PREFIXES.items():
            if not all(k.startswith(prefix) for k in state):
                continue
            stripped = {k.removeprefix(prefix): v for k, v in state.items()}
            if expected is not None and len(expected & set(stripped)) <= len(expected & set(state)):
                continue
            state = stripped
            notes.append(f"removed the prefix {prefix!r} that {wrapper} adds to every key")
            changed = True
    return state, notes


def _fit(
    state: dict[str, torch.Tensor], expected: set[str]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Match ``state`` to the keys a model has: a prefix on every key (a Lightning module's
    attribute), and BatchNorm counters missing from checkpoints of older PyTorch."""
    notes = []
    heads = {k.split(".", 1)[0] for k in state}
    if len(heads) == 1 and "." in next(iter(state)) and not expected & set(state):
        prefix = f"{next(iter(heads))}."
        stripped = {k.removeprefix(prefix): v for k, v in state.items()}
        if expected & set(stripped):
            state = stripped
            notes.append(f"removed the prefix {prefix!r} that every key carries")
    missing = [
        k
        for k in sorted(expected - set(state))
        if k.rsplit(".", 1)[-1] == BN_COUNTER and f"{k[: -len(BN_COUNTER)]}running_mean" in state
    ]
    if missing:
        state = dict(state)
        for key in missing:
            state[key] = torch.tensor(0, dtype=torch.long)
        notes.append(
            f"{len(missing)} BatchNorm counter(s) {BN_COUNTER} were not saved (older PyTorch); "
            "they are set to 0, which evaluation never reads"
        )
    return state, notes


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    for line in text:  # torch's message leads with advice; the refused global says what it is
        if "Unsupported global" in line or "GLOBAL" in line:
            return line.strip()[:200]
    return text[0][:200] if text else type(exc).__name__


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def apply_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model`` strictly; names every missing, unexpected, mis-shaped key."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} (model {tuple(own[k].shape)}, file {tuple(state[k].shape)})"
        for k in own
        if k in state and own[k].shape != state[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches: {_listing(mismatched)}")
    if problems:
        raise WeightsError(
            f"{source} does not fit the model in model.py: " + "; ".join(problems)
            + ". Save the state_dict of the same model class you submit."
        )  # fmt: skip
    model.load_state_dict(state, strict=True)
