"""Scoring against the real CIFAR-10 test labels, checked against scikit-learn."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from grader.assignment import load_assignment
from grader.predictions.scoring import score, score_file, score_labels
from grader.predictions.solution import SolutionError, load_solution, split_ids


@pytest.fixture(scope="module")
def spec():
    return load_assignment("cifar10")


@pytest.fixture(scope="module")
def solution(spec, data_dir):
    return load_solution(spec, data_dir)


def noisy(labels: np.ndarray, accuracy: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = labels.copy()
    wrong = rng.random(len(out)) > accuracy
    out[wrong] = (out[wrong] + rng.integers(1, 10, wrong.sum())) % 10
    return out


def test_solution_is_the_real_labels_csv(solution, labels_csv):
    raw = pd.read_csv(labels_csv)
    assert len(solution) == 10_000
    assert solution["id"].tolist() == list(range(10_000))
    assert np.bincount(solution["label"]).tolist() == [1000] * 10
    assert (solution["label"].to_numpy() == raw["Category"].to_numpy()).all()


def test_solution_falls_back_to_the_dataset(spec, data_dir, tmp_path):
    without_csv = dataclasses.replace(spec, solution="absent-labels.csv", source=tmp_path / "x")
    from_dataset = load_solution(without_csv, data_dir)
    assert len(from_dataset) == 1017  # the shared subset's test batch
    csv_labels = load_solution(spec, data_dir)["label"].to_numpy()[:1017]
    assert (from_dataset["label"].to_numpy() == csv_labels).all()


def test_explicit_missing_solution_is_an_error(spec, tmp_path):
    with pytest.raises(SolutionError, match="solution file not found"):
        load_solution(spec, path=tmp_path / "nope.csv")


def test_split_is_deterministic_and_independent_of_row_order():
    ids = np.arange(10_000)
    public = split_ids(ids, 0.5, seed=661)
    assert public.sum() == 5000
    shuffled = np.random.default_rng(1).permutation(ids)
    again = split_ids(shuffled, 0.5, seed=661)
    assert set(shuffled[again]) == set(ids[public])
    assert not np.array_equal(split_ids(ids, 0.5, seed=662), public)
    assert split_ids(ids, 0.3, seed=661).sum() == 3000


def test_scores_match_scikit_learn(spec, solution):
    truth = solution["label"].to_numpy()
    predicted = noisy(truth, 0.7, seed=3)
    submission = pd.DataFrame({"id": solution["id"], "label": predicted}).sample(
        frac=1.0, random_state=2
    )
    result = score(solution, submission, spec)
    public = split_ids(solution["id"].to_numpy(), spec.public_fraction, spec.split_seed)
    for split, mask in (("public", public), ("private", ~public), ("all", slice(None))):
        t, p = truth[mask], predicted[mask]
        assert result.splits[split]["accuracy"] == pytest.approx(accuracy_score(t, p))
        assert result.splits[split]["macro_f1"] == pytest.approx(
            f1_score(t, p, average="macro", zero_division=0)
        )
        assert list(result.per_class[split].values()) == pytest.approx(
            recall_score(t, p, average=None, labels=range(10), zero_division=0)
        )
        assert result.confusion[split] == sk_confusion_matrix(t, p, labels=range(10)).tolist()
    assert result.counts == {"public": 5000, "private": 5000, "all": 10_000}
    assert 0.65 < result.graded_accuracy < 0.75
    assert result.points == spec.points_for(result.splits["private"]["accuracy"]) == 7


def test_macro_f1_with_a_class_never_predicted(spec, solution):
    truth = solution["label"].to_numpy()
    predicted = np.where(truth == 3, 5, truth)
    result = score_labels(solution, predicted, spec)
    assert result.splits["all"]["macro_f1"] == pytest.approx(
        f1_score(truth, predicted, average="macro", zero_division=0)
    )
    assert result.per_class["all"]["cat"] == 0.0
    assert result.per_class["all"]["dog"] == 1.0


def test_score_labels_equals_score_of_the_same_csv(spec, solution, tmp_path):
    predicted = noisy(solution["label"].to_numpy(), 0.55, seed=5)
    path = tmp_path / "predictions.csv"
    pd.DataFrame({"Id": solution["id"], "Category": predicted}).to_csv(path, index=False)
    from_file = score_file(path, spec=spec, solution=solution)
    from_labels = score_labels(solution, predicted, spec)
    assert from_file.splits == from_labels.splits
    with pytest.raises(ValueError, match="10000 test images"):
        score_labels(solution, predicted[:100], spec)


def test_to_json_is_flat_like_codabench(spec, solution):
    result = score_labels(solution, solution["label"].to_numpy(), spec)
    flat = result.to_json()
    assert flat["private_accuracy"] == 1.0 and flat["points"] == 10.0
    assert all(isinstance(v, float) for v in flat.values())
    json.dumps(result.details())
