"""Academic-integrity flags across a batch: copied predictions or weights, perfect scores.

Near-identical predictions are found by the wrong answers two students share. For each pair the
number of test images where both give the SAME wrong label is compared with what independent
classifiers with the same per-class confusions would share (sum over true classes c of
n_c * sum_{l != c} r_i[c, l] * r_j[c, l], r = row-normalised confusion matrix). A pair is flagged
when the observed count is at least ``MIN_RATIO`` times that expectation and a binomial test
rejects independence at ``ALPHA`` after a Bonferroni correction over all pairs. The ratio guard
keeps honest students apart: real models share hard images, but not several times more same
wrong answers than their confusion matrices predict.

Copy evidence is grouped into clusters, the connected components of the graph whose edges are
identical files, identical weights and near-identical pairs: five students sharing one answer
sheet are one line of the report, not ten.
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
COPY_FLAG_PREFIXES = (
    "identical predictions file to ",
    "identical weights to ",
    "near-identical predictions with ",
)
"""How the copy flags of :func:`student_flags` begin (the report shows them as clusters)."""


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


@dataclass(frozen=True)
class CopyCluster:
    """Students linked by copy evidence: a connected component of the "copied from" graph whose
    edges are byte-identical files, identical weights and near-identical prediction pairs."""

    members: tuple[str, ...]
    identical_files: tuple[tuple[str, ...], ...] = ()
    identical_weights: tuple[tuple[str, ...], ...] = ()
    pairs: tuple[PairEvidence, ...] = ()
    """Near-identical prediction pairs inside the cluster (strongest first)."""

    def summary(self) -> str:
        """One line with the evidence, for the instructor's report."""
        parts = []
        for kind, groups in (
            ("byte-identical predictions files", self.identical_files),
            ("identical weights", self.identical_weights),
        ):
            if groups:
                parts.append(f"{kind}: {'; '.join(' = '.join(g) for g in groups)}")
        if self.pairs:
            n = len(self.members)
            possible = n * (n - 1) // 2
            shared = [p.shared_wrong for p in self.pairs]
            strongest = self.pairs[0]
            span = (
                f"{min(shared):,}"
                if min(shared) == max(shared)
                else (f"{min(shared):,}-{max(shared):,}")
            )
            expected = max(p.expected_wrong for p in self.pairs)
            parts.append(
                f"near-identical predictions in {len(self.pairs)} of {possible} pair(s): {span} "
                f"identical wrong answers per pair where independent work shares ~{expected:,.0f} "
                f"(strongest {strongest.a}-{strongest.b}: {strongest.shared_wrong:,}, "
                f"p={strongest.p_value:.1e})"
            )
        return f"{', '.join(self.members)}: {'; '.join(parts)}"

    def to_json(self) -> dict[str, object]:
        """JSON-ready values."""
        return {
            "members": list(self.members),
            "identical_files": [list(g) for g in self.identical_files],
            "identical_weights": [list(g) for g in self.identical_weights],
            "pairs": [
                {
                    "a": p.a,
                    "b": p.b,
                    "shared_wrong": p.shared_wrong,
                    "expected_wrong": p.expected_wrong,
                    "p_value": p.p_value,
                }
                for p in self.pairs
            ],
            "summary": self.summary(),
        }


def copy_clusters(
    *,
    prediction_digests: Mapping[str, str | None],
    weight_digests: Mapping[str, str | None],
    predictions: Mapping[str, np.ndarray],
    truth: np.ndarray | None,
    num_classes: int,
) -> list[CopyCluster]:
    """Every group of students linked by copy evidence, largest first."""
    files = identical_groups(prediction_digests)
    weights = identical_groups(weight_digests)
    identical = [frozenset(g) for g in files]
    pairs = []
    if truth is not None:
        pairs = [
            p
            for p in near_identical_pairs(predictions, truth, num_classes)
            if not any({p.a, p.b} <= group for group in identical)
        ]
    edges = [(g[0], other) for g in (*files, *weights) for other in g[1:]]
    edges += [(p.a, p.b) for p in pairs]
    if not edges:
        return []
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    students = sorted({s for edge in edges for s in edge})
    index = {s: i for i, s in enumerate(students)}
    rows = [index[a] for a, _ in edges]
    cols = [index[b] for _, b in edges]
    graph = coo_matrix((np.ones(len(edges)), (rows, cols)), shape=(len(students),) * 2)
    _, component = connected_components(graph, directed=False)
    clusters = []
    for c in np.unique(component):
        members = tuple(s for s, k in zip(students, component, strict=True) if k == c)
        inside = set(members)
        clusters.append(
            CopyCluster(
                members=members,
                identical_files=tuple(tuple(g) for g in files if set(g) <= inside),
                identical_weights=tuple(tuple(g) for g in weights if set(g) <= inside),
                pairs=tuple(
                    sorted(
                        (p for p in pairs if p.a in inside),
                        key=lambda p: (-p.shared_wrong, p.a, p.b),
                    )
                ),
            )
        )
    return sorted(clusters, key=lambda c: (-len(c.members), c.members))


def student_flags(
    clusters: Sequence[CopyCluster], accuracies: Mapping[str, float]
) -> dict[str, list[str]]:
    """Student -> flag texts: one per kind of copy evidence, and perfect scores."""
    flags: dict[str, list[str]] = defaultdict(list)
    for cluster in clusters:
        for group in cluster.identical_files:
            for student in group:
                others = ", ".join(s for s in group if s != student)
                flags[student].append(f"identical predictions file to {others}")
        for group in cluster.identical_weights:
            for student in group:
                others = ", ".join(s for s in group if s != student)
                flags[student].append(f"identical weights to {others}")
        partners: dict[str, list[PairEvidence]] = defaultdict(list)
        for pair in cluster.pairs:
            partners[pair.a].append(pair)
            partners[pair.b].append(pair)
        for student, found in sorted(partners.items()):
            evidence = ", ".join(
                f"{p.b if p.a == student else p.a} ({p.shared_wrong:,} identical wrong answers, "
                f"independent work ~{p.expected_wrong:,.0f}, p={p.p_value:.1e})"
                for p in found
            )
            flags[student].append(f"near-identical predictions with {evidence}")
    for student, accuracy in accuracies.items():
        if accuracy >= PERFECT_ACCURACY:
            flags[student].append(f"suspiciously perfect score ({accuracy:.2%})")
    return dict(flags)


def batch_flags(
    *,
    prediction_digests: Mapping[str, str | None],
    weight_digests: Mapping[str, str | None],
    predictions: Mapping[str, np.ndarray],
    accuracies: Mapping[str, float],
    truth: np.ndarray | None,
    num_classes: int,
) -> dict[str, list[str]]:
    """Student -> flag texts for the whole batch (:func:`copy_clusters` + :func:`student_flags`)."""
    clusters = copy_clusters(
        prediction_digests=prediction_digests,
        weight_digests=weight_digests,
        predictions=predictions,
        truth=truth,
        num_classes=num_classes,
    )
    return student_flags(clusters, accuracies)


def join_flags(flags: Sequence[str]) -> str:
    """One cell of grades.csv."""
    return "; ".join(flags)
