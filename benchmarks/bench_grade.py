"""Cost of the grading boundary's own work, against what it wraps, in one process.

1. A predictions upload: ``grade_submission`` (read, validate, score, the metrics, the point
   lines, the grade record) vs ``score_file`` (read, validate, score) of the same 10,000-row file.
2. A worker's evidence for a model evaluated on 10,000 images with the robustness variants
   (10,000 + 14 x 616 logits): encoding and strictly parsing the versioned record, then
   ``complete_grade``, vs ``json`` of the predicted labels as a plain list (what a worker sent
   before the evidence carried logits) and ``score_labels`` on them.

    GRADER_DATA_DIR=../shared/data uv run python benchmarks/bench_grade.py

Prints the machine's load beside the ratios: rerun on an idle machine for recorded figures.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from grader.assignment import load_assignment
from grader.grading import (
    AnswerKey,
    Evidence,
    GradeStatus,
    SubmissionKind,
    complete_grade,
    grade_submission,
)
from grader.metrics.variants import VARIANT_NAMES
from grader.models.result import ModelResult
from grader.predictions.scoring import score_file, score_labels

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("GRADER_DATA_DIR", REPO.parent / "shared" / "data"))


def best_of(fns, repeat: int = 7) -> list[float]:
    """Fastest of ``repeat`` interleaved calls of each function (CPU seconds of this process)."""
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.process_time()
            fn()
            best[i] = min(best[i], time.process_time() - start)
    return best


def main() -> None:
    spec = load_assignment("cifar10")
    key = AnswerKey(spec, DATA_DIR)
    solution = key.solution()
    truth = solution["label"].to_numpy()
    rng = np.random.default_rng(0)
    predicted = np.where(rng.random(len(truth)) < 0.8, truth, rng.integers(0, 10, len(truth)))
    content = pd.DataFrame({"Id": solution["id"], "Category": predicted}).to_csv(index=False)
    raw = content.encode()
    path = Path("/tmp/bench-grade-predictions.csv")
    path.write_bytes(raw)
    ours, theirs = best_of(
        [
            lambda: grade_submission({"predictions.csv": raw}, spec, answer_key=key),
            lambda: score_file(path, spec=spec, solution=solution),
        ]
    )
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"predictions upload: grade_submission {ours * 1e3:.1f} ms CPU, score_file "
          f"{theirs * 1e3:.1f} ms: {ours / theirs:.2f}x")  # fmt: skip

    # A model on 10,000 test images (the labels of a predictions key stand in for the images')
    model_spec = load_assignment("resnet20")
    n = len(truth)
    logits = np.eye(10, dtype=np.float32)[predicted] * 4 + rng.normal(0, 1, (n, 10)).astype(
        np.float32
    )
    variants = {v: rng.normal(0, 1, (616, 10)).astype(np.float32) for v in VARIANT_NAMES}
    result = ModelResult(GradeStatus.OK, "all checks passed", True, logits, variants)
    evidence = Evidence(SubmissionKind.MODEL, model=result)

    class Key(AnswerKey):
        def image_labels(self):  # the predictions key, in image order
            return solution

    model_key = Key(model_spec, DATA_DIR)

    def with_evidence():
        back = Evidence.from_json_bytes(evidence.to_json_bytes())
        return complete_grade(back, model_spec, model_key)

    def plain_labels():
        labels = json.loads(json.dumps([int(v) for v in logits.argmax(1)]))
        return score_labels(solution, np.asarray(labels), model_spec)

    ours, theirs = best_of([with_evidence, plain_labels])
    size = len(evidence.to_json_bytes())
    print(f"model evidence: record {size / 1e6:.2f} MB; encode + parse + complete_grade "
          f"{ours * 1e3:.1f} ms CPU, labels list + score_labels {theirs * 1e3:.1f} ms: "
          f"{ours / theirs:.2f}x (what the metrics and the memoriser rule cost)")  # fmt: skip
    path.unlink()


if __name__ == "__main__":
    main()
