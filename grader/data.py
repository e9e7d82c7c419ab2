"""Datasets as uint8 arrays: CIFAR-10 (standard python layout) and MNIST (idx files).

Files on disk are read directly, with no network; the CIFAR-10 reader accepts any number of images
per batch (the shared subset has 1017). Missing files are a :class:`DataError` at once that says
what to set; only :func:`fetch_dataset` (``grader fetch-data``) downloads, with torchvision's
downloader (this needs internet).
"""

from __future__ import annotations

import functools
import gzip
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

DATA_DIR_ENV = "GRADER_DATA_DIR"
DEFAULT_DATA_DIR = Path("~/.cache/grader/data").expanduser()

CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCH = "test_batch"
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

SplitName = Literal["train", "test"]


class DataError(RuntimeError):
    """A data set that cannot be found, downloaded or read; the message says what to do."""


@dataclass(frozen=True)
class ImageSet:
    """Images as ``uint8`` of shape (N, C, H, W) with ``int64`` labels of shape (N,)."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    source: Path

    def __len__(self) -> int:
        return len(self.labels)


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``explicit``, else ``$GRADER_DATA_DIR``, else ~/.cache/grader/data."""
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser() if env else DEFAULT_DATA_DIR


def describe_data_dir(explicit: str | os.PathLike[str] | None = None) -> str:
    """Where :func:`data_dir` looked, and why there: for messages about missing data."""
    folder = data_dir(explicit)
    if explicit is not None:
        return f"{folder} (--data-dir)"
    if os.environ.get(DATA_DIR_ENV):
        return f"{folder} (${DATA_DIR_ENV})"
    return f"{folder} (the default; ${DATA_DIR_ENV} is not set)"


def _missing(name: str, layout: str, root: str | os.PathLike[str] | None) -> DataError:
    return DataError(
        f"{name} not found under {describe_data_dir(root)}: set {DATA_DIR_ENV} (or --data-dir) "
        f"to the folder that holds {layout}, or download it with `grader fetch-data "
        f"{name.lower().replace('-', '')}` (needs internet)"
    )


def find_cifar10(root: Path) -> Path | None:
    """The ``cifar-10-batches-py`` folder under ``root`` (or ``root`` itself), if present."""
    for candidate in (
        root,
        root / "cifar-10-batches-py",
        root / "cifar10-subset" / "cifar-10-batches-py",
        root / "cifar10" / "cifar-10-batches-py",
    ):
        if (candidate / CIFAR10_TEST_BATCH).is_file() and (candidate / "batches.meta").is_file():
            return candidate
    return None


def load_cifar10(
    split: SplitName = "test", root: str | os.PathLike[str] | None = None, download: bool = False
) -> ImageSet:
    """Read CIFAR-10 ``split`` from the python-layout batches under ``root``.

    ``download=True`` fetches missing files first (needs internet); otherwise missing files are
    a :class:`DataError` at once.
    """
    base = data_dir(root)
    folder = find_cifar10(base)
    if folder is None:
        if not download:
            raise _missing("CIFAR-10", "cifar-10-batches-py", root)
        folder = fetch_dataset("cifar10", root)
    names = CIFAR10_TRAIN_BATCHES if split == "train" else (CIFAR10_TEST_BATCH,)
    images, labels = [], []
    for name in names:
        batch = _unpickle(folder / name)
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    meta = _unpickle(folder / "batches.meta")
    class_names = tuple(n.decode() for n in meta[b"label_names"])
    return ImageSet(np.concatenate(images), np.concatenate(labels), class_names, folder)


def find_mnist(root: Path) -> Path | None:
    """The folder holding MNIST's idx files (plain or ``.gz``) under ``root``, if present."""
    for candidate in (root, root / "MNIST" / "raw", root / "MNIST-gz", root / "mnist"):
        image_file = MNIST_FILES["test"][0]
        if (candidate / image_file).is_file() or (candidate / f"{image_file}.gz").is_file():
            return candidate
    return None


def load_mnist(
    split: SplitName = "test", root: str | os.PathLike[str] | None = None, download: bool = False
) -> ImageSet:
    """Read MNIST ``split`` from idx files under ``root``, as (N, 1, 28, 28) uint8."""
    base = data_dir(root)
    folder = find_mnist(base)
    if folder is None:
        if not download:
            raise _missing("MNIST", "MNIST/raw/*-idx?-ubyte", root)
        folder = fetch_dataset("mnist", root)
    image_name, label_name = MNIST_FILES[split]
    images = _read_idx(folder, image_name)
    labels = _read_idx(folder, label_name).astype(np.int64)
    return ImageSet(images[:, None], labels, tuple(str(d) for d in range(10)), folder)


def load_dataset(
    name: str,
    split: SplitName = "test",
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
) -> ImageSet:
    """Load ``cifar10`` or ``mnist`` (no network unless ``download``)."""
    if name == "cifar10":
        return load_cifar10(split, root, download)
    if name == "mnist":
        return load_mnist(split, root, download)
    raise DataError(f"unknown dataset {name!r}: use 'cifar10' or 'mnist'")


@functools.lru_cache(maxsize=4)
def cached_dataset(name: str, split: SplitName = "test", root: Path | None = None) -> ImageSet:
    """:func:`load_dataset`, read once per process, with read-only arrays.

    For graders that hand the same test images to every submission of a batch.
    """
    loaded = load_dataset(name, split, root)
    loaded.images.setflags(write=False)
    loaded.labels.setflags(write=False)
    return loaded


def _unpickle(path: Path) -> dict:
    try:
        with path.open("rb") as fh:
            # The CIFAR-10 batches are pickles by design; only ever read files the operator put in
            # the data directory, never a student's upload.
            return pickle.load(fh, encoding="bytes")
    except FileNotFoundError:
        raise DataError(f"{path}: missing; the CIFAR-10 folder is incomplete") from None
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise DataError(f"{path}: not a CIFAR-10 batch ({exc}); re-download it") from None


def _read_idx(folder: Path, name: str) -> np.ndarray:
    plain, packed = folder / name, folder / f"{name}.gz"
    try:
        raw = plain.read_bytes() if plain.is_file() else gzip.decompress(packed.read_bytes())
    except FileNotFoundError:
        raise DataError(f"{plain}: missing; the MNIST folder is incomplete") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{plain}: not an idx file of unsigned bytes")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{plain}: truncated ({body.size} bytes for shape {shape})")
    return body.reshape(shape)


def fetch_dataset(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Download ``cifar10`` or ``mnist`` (train and test) into the data directory; return its
    folder. Files already there are kept. Needs internet (torchvision's downloader)."""
    base = data_dir(root)
    if name not in ("cifar10", "mnist"):
        raise DataError(f"unknown dataset {name!r}: use 'cifar10' or 'mnist'")
    present = find_cifar10(base) if name == "cifar10" else find_mnist(base)
    if present is not None:
        return present
    from torchvision import datasets  # heavy; only needed to download

    base.mkdir(parents=True, exist_ok=True)
    try:
        if name == "cifar10":
            for train in (True, False):
                datasets.CIFAR10(str(base), train=train, download=True)
            folder = find_cifar10(base)
        else:
            for train in (True, False):
                datasets.MNIST(str(base), train=train, download=True)
            folder = find_mnist(base)
    except Exception as exc:  # network errors come in many types (URLError, OSError, ...)
        raise DataError(
            f"{name} is not under {base} and downloading it failed ({exc}); "
            f"set {DATA_DIR_ENV} to a folder that holds the data set"
        ) from None
    if folder is None:
        raise DataError(f"{name}: download finished but the files are not under {base}")
    return folder
