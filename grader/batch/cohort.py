"""What the class as a whole got wrong: the summed confusion matrix, the most confused class
pairs and the hardest test images (the ones most students got wrong)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from grader.batch.results import StudentResult
from grader.grading.status import GradeStatus


@dataclass(frozen=True)
class ConfusedPair:
    """Images of class ``true`` predicted as ``predicted``."""

    true: str
    predicted: str
    count: int
    share: float
    """Of the images of class ``true``."""


@dataclass(frozen=True)
class HardImage:
    """A test image and how many students got it wrong."""

    image_id: int
    true: str
    wrong: int
    graded: int
    """Students whose predictions cover the image."""
    common_wrong: str
    """The wrong class given most often."""


@dataclass(frozen=True)
class Cohort:
    """The class's summed confusion and its hardest images."""

    students: int
    """Graded students whose confusion matrices are summed."""
    confusion: list[list[int]] | None
    pairs: list[ConfusedPair]
    hardest: list[HardImage]


def most_confused(
    matrix: Sequence[Sequence[int]] | np.ndarray, class_names: Sequence[str], top: int = 5
) -> list[ConfusedPair]:
    """The ``top`` off-diagonal cells of a confusion matrix (rows true, columns predicted)."""
    m = np.asarray(matrix, dtype=np.int64)
    if m.size == 0:
        return []
    support = m.sum(axis=1)
    off = m.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:top]
    pairs = []
    for index in flat:
        t, p = divmod(int(index), m.shape[1])
        if off[t, p] == 0:
            break
        share = float(off[t, p] / support[t]) if support[t] else 0.0
        pairs.append(ConfusedPair(class_names[t], class_names[p], int(off[t, p]), share))
    return pairs


def summarize_cohort(
    results: Sequence[StudentResult],
    answer_key: pd.DataFrame,
    class_names: Sequence[str],
    *,
    candidates: np.ndarray | None = None,
    top_pairs: int = 8,
    hardest: int = 24,
) -> Cohort:
    """Sum the graded students' confusion matrices (whole test set) and rank the images.

    ``candidates`` masks the answer key's rows that may be shown as hardest (those with a
    thumbnail); None allows all.
    """
    graded = [r for r in results if r.status is GradeStatus.OK and r.grade.confusion.get("all")]
    summed = None
    if graded:
        summed = np.sum(
            [np.asarray(r.grade.confusion["all"], dtype=np.int64) for r in graded], axis=0
        )
    truth = answer_key["label"].to_numpy(np.int64)
    ids = answer_key["id"].to_numpy(np.int64)
    rows = [
        r.grade.labels.astype(np.int64)
        for r in graded
        if r.grade.labels is not None and len(r.grade.labels) == len(truth)
    ]
    images: list[HardImage] = []
    if rows:
        predicted = np.stack(rows)
        wrong = predicted != truth[None, :]
        counts = wrong.sum(axis=0)
        allowed = np.ones(len(truth), dtype=bool) if candidates is None else candidates
        order = np.lexsort((ids, -counts))
        for i in order[allowed[order] & (counts[order] > 0)][:hardest]:
            given = predicted[wrong[:, i], i]
            common = int(np.bincount(given, minlength=len(class_names)).argmax())
            images.append(
                HardImage(
                    int(ids[i]),
                    class_names[truth[i]],
                    int(counts[i]),
                    len(rows),
                    class_names[common],
                )
            )
    return Cohort(
        students=len(graded),
        confusion=None if summed is None else summed.tolist(),
        pairs=[] if summed is None else most_confused(summed, class_names, top_pairs),
        hardest=images,
    )
