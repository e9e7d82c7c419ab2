"""Data readers on the real CIFAR-10 subset and full MNIST files."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from grader.data import DataError, load_cifar10, load_dataset, load_mnist

DATA_DIR = Path(os.environ.get("GRADER_DATA_DIR", Path(__file__).parents[3] / "shared" / "data"))


def test_cifar10_subset_reads_any_batch_size():
    test = load_cifar10("test", DATA_DIR)
    train = load_cifar10("train", DATA_DIR)
    assert test.images.shape == (1017, 3, 32, 32)
    assert test.images.dtype == np.uint8
    assert train.images.shape == (5 * 1017, 3, 32, 32)
    assert test.class_names[3] == "cat"
    # The test batch holds the first images of the real test set, in order.
    full_labels = pd.read_csv(DATA_DIR / "cifar10-test-labels.csv")["Category"].to_numpy()
    np.testing.assert_array_equal(test.labels, full_labels[:1017])


def test_cifar10_pixels_are_real_images():
    test = load_cifar10("test", DATA_DIR)
    # Real photos: broad pixel ranges, neighbouring pixels correlated (noise would not be).
    first = test.images[0].astype(np.float64)
    assert first.min() < 50 and first.max() > 200
    horizontal = np.corrcoef(first[:, :, :-1].ravel(), first[:, :, 1:].ravel())[0, 1]
    assert horizontal > 0.8


def test_mnist_reads_plain_and_gzip_idx(tmp_path):
    plain = load_mnist("test", DATA_DIR)
    assert plain.images.shape == (10_000, 1, 28, 28)
    assert list(plain.labels[:5]) == [7, 2, 1, 0, 4]
    assert load_mnist("train", DATA_DIR).images.shape == (60_000, 1, 28, 28)
    for src in (DATA_DIR / "MNIST" / "raw").glob("t10k-*"):
        with gzip.open(tmp_path / f"{src.name}.gz", "wb") as fh:
            fh.write(src.read_bytes())
    packed = load_mnist("test", tmp_path, download=False)
    np.testing.assert_array_equal(packed.images, plain.images)


def test_missing_data_without_download_says_where_to_put_it(tmp_path):
    with pytest.raises(DataError, match="GRADER_DATA_DIR"):
        load_cifar10("test", tmp_path, download=False)
    with pytest.raises(DataError, match="MNIST not found"):
        load_mnist("test", tmp_path, download=False)


def test_truncated_batch_is_a_clear_error(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    shutil.copytree(load_cifar10("test", DATA_DIR).source, folder)
    (folder / "test_batch").write_bytes((folder / "test_batch").read_bytes()[:1000])
    with pytest.raises(DataError, match="test_batch: not a CIFAR batch"):
        load_cifar10("test", tmp_path, download=False)


def test_unknown_dataset_names_the_choices():
    with pytest.raises(DataError, match="unknown dataset 'svhn': use one of 'cifar10', 'mnist'"):
        load_dataset("svhn")


def test_cached_dataset_reads_once_and_cannot_be_modified():
    from grader.data import cached_dataset

    first = cached_dataset("cifar10", "test", DATA_DIR)
    assert cached_dataset("cifar10", "test", DATA_DIR) is first
    np.testing.assert_array_equal(first.images, load_cifar10("test", DATA_DIR).images)
    with pytest.raises(ValueError, match="read-only"):
        first.images[0, 0, 0, 0] = 0
