"""Shared fixtures: where the real data is, and the real CIFAR-10 test labels."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data folder: ``$GRADER_DATA_DIR``, else ``<repo>/../shared/data``."""
    path = Path(os.environ.get("GRADER_DATA_DIR", REPO.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.fail(f"data folder {path} not found; set GRADER_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def labels_csv(data_dir: Path) -> Path:
    """The complete CIFAR-10 test labels (``Id,Category``, 10,000 rows)."""
    return data_dir / "cifar10-test-labels.csv"
