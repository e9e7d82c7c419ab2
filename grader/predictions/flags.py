"""Academic-integrity flags across a batch: copied predictions or weights, perfect scores.

Near-identical predictions are found by the wrong answers two students share. For each pair the
number of test images where both give the SAME wrong label is compared with what independent
classifiers with the same per-class confusions would share (sum over true classes c of
n_c * sum_{l != c} r_i[c, l] * r_j[c, l], r = row-normalised confusion matrix). A pair is flagged
when the observed count is at least ``MIN_RATIO`` times that expectation and a binomial test
rejects independence at ``ALPHA`` after a Bonferroni correction over all pairs. The ratio guard
keeps honest students apart: real models share hard images, but not several times more same
wrong answers than their confusion matrices predict.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

ALPHA = 1e-6
MIN_RATIO = 3.0
MIN_SHARED_ERRORS = 20
PERFECT_ACCURACY = 0.999


@dataclass(frozen=True)
class PairEvidence:
    """Why two students were flagged as near-identical."""

    a: str
    b: str
    shared_wrong: int
    expected_wrong: float
    p_value: float


def identical_groups(digests: Mapping[str, str | None]) -> list[list[str]]:
    """Groups (of two or more students) whose digest is equal; ``None`` digests are ignored."""
    groups: dict[str, list[str]] = defaultdict(list)
    for student, digest in digests.items():
        if digest:
            groups[digest].append(student)
    return [sorted(members) for members in groups.values() if len(members) > 1]


def near_identical_pairs(
    predictions: Mapping[str, np.ndarray], truth: np.ndarray, num_classes: int
) -> list[PairEvidence]:
    """Pairs of students whose shared wrong answers are far above independent chance."""
    students = sorted(predictions)
    if len(students) < 2:
        return []
    from scipy.sparse import csr_matrix  # heavy; only batches need scipy

    matrix = np.stack([np.asarray(predictions[s], dtype=np.int64) for s in students])
    wrong = matrix != truth[None, :]
    # One column per (image, wrong label): W @ W.T counts the same wrong answers of each pair.
    rows_w, images = np.nonzero(wrong)
    columns = images * num_classes + matrix[rows_w, images]
    w = csr_matrix(
        (np.ones(len(rows_w), dtype=np.int32), (rows_w, columns)),
        shape=(len(students), len(truth) * num_classes),
    )
    shared = (w @ w.T).toarray()
    support = np.bincount(truth, minlength=num_classes).astype(float)
    rates = np.empty((len(students), num_classes, num_classes))
    for i in range(len(students)):
        flat = truth * num_classes + matrix[i]
        counts = np.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)
        rates[i] = counts / np.maximum(support, 1)[:, None]
        np.fill_diagonal(rates[i], 0.0)
    expected = np.einsum("c,icl,jcl->ij", support, rates, rates)
    n = len(truth)
    n_pairs = len(students) * (len(students) - 1) // 2
    rows, cols = np.triu_indices(len(students), k=1)
    observed = shared[rows, cols].astype(np.int64)
    expect = expected[rows, cols]
    candidate = (observed >= MIN_SHARED_ERRORS) & (observed >= MIN_RATIO * expect)
    found: list[PairEvidence] = []
    if not candidate.any():
        return found
    # bdtrc(k, n, p) = P(X > k) for X ~ Binomial(n, p); scipy.stats costs seconds more to import.
    from scipy.special import bdtrc

    for k in np.flatnonzero(candidate):
        p0 = min(max(expect[k] / n, 1e-12), 1.0)
        p_value = float(bdtrc(observed[k] - 1, n, p0))
        if p_value * n_pairs < ALPHA:
            found.append(
                PairEvidence(
                    a=students[rows[k]],
                    b=students[cols[k]],
                    shared_wrong=int(observed[k]),
                    expected_wrong=float(expect[k]),
                    p_value=p_value,
                )
            )
    return found


def batch_flags(
    *,
    prediction_digests: Mapping[str, str | None],
    weight_digests: Mapping[str, str | None],
    predictions: Mapping[str, np.ndarray],
    accuracies: Mapping[str, float],
    truth: np.ndarray | None,
    num_classes: int,
) -> dict[str, list[str]]:
    """Student -> flag texts for the whole batch."""
    flags: dict[str, list[str]] = defaultdict(list)
    for group in identical_groups(prediction_digests):
        for student in group:
            others = ", ".join(s for s in group if s != student)
            flags[student].append(f"identical predictions file to {others}")
    for group in identical_groups(weight_digests):
        for student in group:
            others = ", ".join(s for s in group if s != student)
            flags[student].append(f"identical weights to {others}")
    if truth is not None:
        identical = {frozenset(g) for g in identical_groups(prediction_digests)}
        for pair in near_identical_pairs(predictions, truth, num_classes):
            if any({pair.a, pair.b} <= group for group in identical):
                continue
            text = (
                f"shares {pair.shared_wrong} identical wrong answers with {{other}} "
                f"(independent work: ~{pair.expected_wrong:.0f}, p={pair.p_value:.1e})"
            )
            flags[pair.a].append("near-identical predictions: " + text.format(other=pair.b))
            flags[pair.b].append("near-identical predictions: " + text.format(other=pair.a))
    for student, accuracy in accuracies.items():
        if accuracy >= PERFECT_ACCURACY:
            flags[student].append(f"suspiciously perfect score ({accuracy:.2%})")
    return dict(flags)


def join_flags(flags: Sequence[str]) -> str:
    """One cell of grades.csv."""
    return "; ".join(flags)
