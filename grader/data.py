"""Datasets: the one registry of what the grader knows about each, and their images as arrays.

:data:`DATASETS` holds one :class:`Dataset` per data set: its class names, image shape, test-set
size, per-channel mean and standard deviation, whether flips and crops keep an image's class,
and how its files are found and read (:class:`CifarBatches`, :class:`IdxFiles`). Assignment
specs, the model checks, the training recipe and the loaders all read it, so a new data set is
one entry here (or :func:`register_dataset`) plus its assignment spec.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

DATA_DIR_ENV = "GRADER_DATA_DIR"
DEFAULT_DATA_DIR = Path("~/.cache/grader/data").expanduser()

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


def _missing(dataset: Dataset, root: str | os.PathLike[str] | None) -> DataError:
    fetch = (
        f", or download it with `grader fetch-data {dataset.name}` (needs internet)"
        if dataset.download is not None
        else ""
    )
    return DataError(
        f"{dataset.title} not found under {describe_data_dir(root)}: set {DATA_DIR_ENV} (or "
        f"--data-dir) to the folder that holds {dataset.files.layout}{fetch}"
    )


# --- how a data set's files are found and read -------------------------------------------------


@dataclass(frozen=True)
class CifarBatches:
    """CIFAR's python layout: pickled ``data_batch_N``/``test_batch`` and ``batches.meta``."""

    folders: tuple[str, ...]
    """Where under the data directory to look (``""``: the directory itself)."""
    train: tuple[str, ...] = tuple(f"data_batch_{i}" for i in range(1, 6))
    test: tuple[str, ...] = ("test_batch",)
    layout: str = "cifar-10-batches-py"

    def find(self, root: Path) -> Path | None:
        """The folder holding the batches under ``root``, if present."""
        for candidate in (root / f for f in self.folders):
            if (candidate / self.test[0]).is_file() and (candidate / "batches.meta").is_file():
                return candidate
        return None

    def read(self, folder: Path, split: SplitName, shape: tuple[int, ...]):
        """(images (N, C, H, W) uint8, labels (N,) int64) of ``split``."""
        images, labels = [], []
        for name in self.train if split == "train" else self.test:
            batch = _unpickle(folder / name)
            images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, *shape))
            labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
        return np.concatenate(images), np.concatenate(labels)


@dataclass(frozen=True)
class IdxFiles:
    """MNIST's idx layout: ``<prefix>-images-idx3-ubyte`` and labels, plain or ``.gz``."""

    folders: tuple[str, ...]
    train: tuple[str, str] = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    test: tuple[str, str] = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    layout: str = "MNIST/raw/*-idx?-ubyte"

    def find(self, root: Path) -> Path | None:
        """The folder holding the idx files under ``root``, if present."""
        for candidate in (root / f for f in self.folders):
            image_file = self.test[0]
            if (candidate / image_file).is_file() or (candidate / f"{image_file}.gz").is_file():
                return candidate
        return None

    def read(self, folder: Path, split: SplitName, shape: tuple[int, ...]):
        """(images (N, C, H, W) uint8, labels (N,) int64) of ``split``."""
        image_name, label_name = self.train if split == "train" else self.test
        images = _read_idx(folder, image_name)
        labels = _read_idx(folder, label_name).astype(np.int64)
        return images.reshape(-1, *shape), labels


# --- the registry ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """Everything the grader knows about one data set."""

    name: str
    title: str
    class_names: tuple[str, ...]
    input_shape: tuple[int, int, int]
    """One image as (channels, height, width)."""
    test_size: int
    """Images in the full test set (the ids 0..test_size-1 a predictions file covers)."""
    mean: tuple[float, ...]
    """Per-channel mean of the training pixels, in [0, 1] units."""
    std: tuple[float, ...]
    """Per-channel standard deviation of the training pixels, in [0, 1] units."""
    files: CifarBatches | IdxFiles
    flip: bool = True
    """Whether a horizontal flip keeps the class (never for digits: a mirrored 2 is not a 2)."""
    crop_pad: int = 4
    """Pixels of zero padding before a random crop when training."""
    download: Callable[[str, bool], object] | None = None
    """torchvision's dataset class, called as ``download(root, train)`` (needs internet)."""

    @property
    def num_classes(self) -> int:
        """How many classes a model must score."""
        return len(self.class_names)


def _torchvision(name: str) -> Callable[[str, bool], object]:
    def download(root: str, train: bool) -> object:
        from torchvision import datasets  # heavy; only needed to download

        return getattr(datasets, name)(root, train=train, download=True)

    return download


CIFAR10 = Dataset(
    name="cifar10",
    title="CIFAR-10",
    class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck"),
    input_shape=(3, 32, 32),
    test_size=10_000,
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
    files=CifarBatches(folders=("", "cifar-10-batches-py", "cifar10-subset/cifar-10-batches-py",
                                "cifar10/cifar-10-batches-py")),
    download=_torchvision("CIFAR10"),
)  # fmt: skip
MNIST = Dataset(
    name="mnist",
    title="MNIST",
    class_names=tuple(str(d) for d in range(10)),
    input_shape=(1, 28, 28),
    test_size=10_000,
    mean=(0.1307,),
    std=(0.3081,),
    files=IdxFiles(folders=("", "MNIST/raw", "MNIST-gz", "mnist")),
    flip=False,
    crop_pad=2,
    download=_torchvision("MNIST"),
)
DATASETS: dict[str, Dataset] = {d.name: d for d in (CIFAR10, MNIST)}
"""Every data set the grader knows, by name."""


def register_dataset(dataset: Dataset) -> Dataset:
    """Add ``dataset`` to :data:`DATASETS` (a name already there is refused)."""
    if dataset.name in DATASETS and DATASETS[dataset.name] != dataset:
        raise ValueError(f"a dataset named {dataset.name!r} is already registered")
    if len(dataset.mean) != dataset.input_shape[0] or len(dataset.std) != dataset.input_shape[0]:
        raise ValueError(f"{dataset.name}: mean and std need one value per channel")
    DATASETS[dataset.name] = dataset
    return dataset


def get_dataset(name: str) -> Dataset:
    """The registered data set ``name``; :class:`DataError` names the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(repr(n) for n in DATASETS)
        raise DataError(f"unknown dataset {name!r}: use one of {known}") from None


# --- reading --------------------------------------------------------------------------------------


def load_dataset(
    name: str,
    split: SplitName = "test",
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
) -> ImageSet:
    """Read ``split`` of the registered data set ``name`` under ``root`` (no network unless
    ``download``: missing files are a :class:`DataError` at once)."""
    dataset = get_dataset(name)
    folder = dataset.files.find(data_dir(root))
    if folder is None:
        if not download:
            raise _missing(dataset, root)
        folder = fetch_dataset(name, root)
    images, labels = dataset.files.read(folder, split, dataset.input_shape)
    return ImageSet(images, labels, dataset.class_names, folder)


def load_cifar10(
    split: SplitName = "test", root: str | os.PathLike[str] | None = None, download: bool = False
) -> ImageSet:
    """CIFAR-10 ``split`` (:func:`load_dataset` of ``cifar10``)."""
    return load_dataset("cifar10", split, root, download)


def load_mnist(
    split: SplitName = "test", root: str | os.PathLike[str] | None = None, download: bool = False
) -> ImageSet:
    """MNIST ``split`` as (N, 1, 28, 28) uint8 (:func:`load_dataset` of ``mnist``)."""
    return load_dataset("mnist", split, root, download)


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
        raise DataError(f"{path}: missing; the data set's folder is incomplete") from None
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise DataError(f"{path}: not a CIFAR batch ({exc}); re-download it") from None


def _read_idx(folder: Path, name: str) -> np.ndarray:
    plain, packed = folder / name, folder / f"{name}.gz"
    try:
        raw = plain.read_bytes() if plain.is_file() else gzip.decompress(packed.read_bytes())
    except FileNotFoundError:
        raise DataError(f"{plain}: missing; the data set's folder is incomplete") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{plain}: not an idx file of unsigned bytes")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{plain}: truncated ({body.size} bytes for shape {shape})")
    return body.reshape(shape)


def fetch_dataset(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Download the registered data set ``name`` (train and test) into the data directory;
    return its folder. Files already there are kept. Needs internet (torchvision's downloader)."""
    dataset = get_dataset(name)
    base = data_dir(root)
    present = dataset.files.find(base)
    if present is not None:
        return present
    if dataset.download is None:
        raise DataError(f"{name} cannot be downloaded by the grader; put its files under {base}")
    base.mkdir(parents=True, exist_ok=True)
    try:
        for train in (True, False):
            dataset.download(str(base), train)
    except Exception as exc:  # network errors come in many types (URLError, OSError, ...)
        raise DataError(
            f"{name} is not under {base} and downloading it failed ({exc}); "
            f"set {DATA_DIR_ENV} to a folder that holds the data set"
        ) from None
    folder = dataset.files.find(base)
    if folder is None:
        raise DataError(f"{name}: download finished but the files are not under {base}")
    return folder
