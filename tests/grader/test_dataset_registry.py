"""The dataset registry: a new data set is one entry plus its assignment spec.

A Fashion-MNIST-shaped data set (idx files, gzipped as Zalando ships them, 28x28 grey images, ten
clothing classes) is registered from a fixture folder; its spec names only the data set, and
everything else (class names, test size, input shape, class count, normalisation, the loader) comes
from the entry. A class folder of predictions is then graded on it.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from grader.assignment import load_assignment
from grader.batch.run import grade_folder
from grader.data import (
    DATASETS,
    DataError,
    Dataset,
    IdxFiles,
    get_dataset,
    load_dataset,
    register_dataset,
)

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")  # fmt: skip
TEST_IMAGES = 240


def write_idx(path: Path, array: np.ndarray) -> None:
    """An idx file of unsigned bytes (the MNIST / Fashion-MNIST format), gzipped."""
    header = struct.pack(">4B", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                      *array.shape)  # fmt: skip
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture
def fashion(tmp_path, monkeypatch):
    """A Fashion-MNIST-shaped data set in ``tmp_path/data/fashion``, registered for the test."""
    folder = tmp_path / "data" / "fashion"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, count in (("train", 480), ("t10k", TEST_IMAGES)):
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (count, 28, 28)))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, count))
    monkeypatch.setattr("grader.data.DATASETS", dict(DATASETS))  # the registry as it was, after
    entry = register_dataset(
        Dataset(
            name="fashion-fixture",
            title="Fashion-MNIST (fixture)",
            class_names=FASHION_CLASSES,
            input_shape=(1, 28, 28),
            test_size=TEST_IMAGES,
            mean=(0.2860,),
            std=(0.3530,),
            files=IdxFiles(folders=("fashion",)),
        )
    )
    return entry, tmp_path / "data"


def test_a_spec_on_a_registered_dataset_takes_everything_from_its_entry(fashion, tmp_path):
    entry, data = fashion
    (tmp_path / "lab.toml").write_text(
        'name = "fashion-lab"\ndataset = "fashion-fixture"\n[model]\nentry = "Net"\n'
    )
    spec = load_assignment(tmp_path / "lab.toml")
    assert spec.class_names == FASHION_CLASSES and spec.test_size == TEST_IMAGES
    assert spec.model.input_shape == (1, 28, 28) and spec.model.num_classes == 10
    test = load_dataset("fashion-fixture", "test", data)
    assert test.images.shape == (TEST_IMAGES, 1, 28, 28) and test.class_names == FASHION_CLASSES
    import torch

    from grader.models.training import normalise

    x = normalise(test.images[:4], "fashion-fixture")
    expected = (test.images[:4] / 255.0 - 0.2860) / 0.3530
    assert x.shape == (4, 1, 28, 28) and torch.allclose(x, torch.from_numpy(expected).float())
    with pytest.raises(ValueError, match="already registered"):
        register_dataset(Dataset(**{**entry.__dict__, "title": "another"}))
    with pytest.raises(DataError, match="unknown dataset 'fashion': use one of"):
        get_dataset("fashion")


def test_a_class_folder_is_graded_on_the_registered_dataset(fashion, tmp_path):
    _entry, data = fashion
    (tmp_path / "lab.toml").write_text(
        'name = "fashion-lab"\ndataset = "fashion-fixture"\nsolution = "dataset"\n'
        "rubric = [{ min_accuracy = 0.5, points = 5 }, { min_accuracy = 0.9, points = 10 }]\n"
    )
    spec = load_assignment(tmp_path / "lab.toml")
    labels = load_dataset("fashion-fixture", "test", data).labels
    rng = np.random.default_rng(1)
    folder = tmp_path / "class"
    for student, accuracy in (("ada", 0.95), ("bob", 0.6)):
        guess = labels.copy()
        wrong = rng.random(len(guess)) > accuracy
        guess[wrong] = (guess[wrong] + 1) % 10
        (folder / student).mkdir(parents=True)
        pd.DataFrame({"Id": np.arange(len(guess)), "Category": guess}).to_csv(
            folder / student / "predictions.csv", index=False
        )
    batch = grade_folder(folder, spec=spec, data_dir=data, out_dir=tmp_path / "out",
                         progress=False)  # fmt: skip
    rows = {r.student: r for r in batch.results}
    assert rows["ada"].status == "ok" and rows["ada"].points == 10
    assert rows["bob"].status == "ok" and rows["bob"].points == 5
    assert abs(rows["bob"].grade.all_accuracy - 0.6) < 0.1
    assert set(rows["ada"].grade.per_class) == set(FASHION_CLASSES)
    assert batch.images["all"] == TEST_IMAGES
