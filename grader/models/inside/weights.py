"""Reading a submission's weights (INSIDE a box): a ``state_dict`` only, never a pickled object.

``.pt``/``.pth`` files are read with ``torch.load(..., weights_only=True)`` (always explicit, so
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` in an environment cannot turn it off); ``.safetensors`` with
the safetensors reader. Whole pickled models and TorchScript archives are refused with a message
saying how to save a state_dict. Missing/unexpected keys and shape mismatches are named.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

HOW_TO_SAVE = "save the weights with torch.save(model.state_dict(), 'model.pt')"
MAX_LISTED = 8


class WeightsError(ValueError):
    """Weights that cannot be used; the message names the file and the keys at fault."""


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state_dict from ``.pt``/``.pth`` or ``.safetensors``; raise :class:`WeightsError`."""
    path = Path(path)
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
        loaded = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError:
        raise WeightsError(
            f"{path.name} holds pickled Python objects (a whole model or custom classes), which "
            f"are never loaded; {HOW_TO_SAVE}"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise WeightsError(f"{path.name}: not a readable torch file ({exc})") from None
    return _as_state_dict(loaded, path)


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("constants.pkl") or "/code/" in n for n in names)


def _as_state_dict(loaded: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(loaded, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(loaded.get(key), dict) and key not in _tensor_keys(loaded):
                loaded = loaded[key]  # a training checkpoint: take its model weights
                break
    if not isinstance(loaded, dict) or not loaded:
        raise WeightsError(f"{path.name} does not hold a state_dict; {HOW_TO_SAVE}")
    bad = [str(k) for k, v in loaded.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(
            f"{path.name}: entries that are not tensors: {_listing(bad)}; {HOW_TO_SAVE}"
        )
    return {str(k): v for k, v in loaded.items()}


def _tensor_keys(d: dict) -> set[str]:
    return {k for k, v in d.items() if isinstance(v, torch.Tensor)}


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def apply_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model`` strictly; names every missing, unexpected, mis-shaped key."""
    own = model.state_dict()
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from DataParallel
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
