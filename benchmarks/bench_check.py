"""``grader check`` of 300 prediction submissions against a plain pandas + numpy script.

Writes 300 student folders (real CIFAR-10 test labels with seeded errors, as in
``submissions/make_examples.py``) to a temporary folder, then runs, each as its own process,
wall and CPU seconds (:func:`measure.run_counted`):

- **grader check**, cold (empty cache) and warm (every grade cached): validation with every
  message, scores on every split, flags for copied work, grades.csv, results.json, the report
  with its plots and 300 student pages;
- **plain script** (the real alternative): ``pandas.read_csv`` of each file, the predictions
  lined up with the answer key by id, accuracy on the public and private split, one grades CSV.

Then, in this process, the scoring alone: the grader's validation + scoring of the 300 files
against the plain script's loop body (target <= 1.3x). Targets: cold < 3 s on an idle 2-core
machine.

    GRADER_DATA_DIR=../shared/data uv run python benchmarks/bench_check.py
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import measure
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("GRADER_DATA_DIR", REPO.parent / "shared" / "data"))
STUDENTS = 300

PLAIN = """
import sys
from pathlib import Path
import numpy as np
import pandas as pd

root, labels, out = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
truth = pd.read_csv(labels).sort_values("Id")
ids, y = truth["Id"].to_numpy(), truth["Category"].to_numpy()
public = np.random.default_rng(661).permutation(len(ids)) < len(ids) // 2
rows = []
for path in sorted(root.glob("*/predictions.csv")):
    predicted = pd.read_csv(path).set_index("Id")["Category"].reindex(ids).to_numpy()
    correct = predicted == y
    rows.append((path.parent.name, correct[public].mean(), correct[~public].mean()))
pd.DataFrame(rows, columns=["student", "public", "private"]).to_csv(out, index=False)
"""


def make_examples_module():
    spec = importlib.util.spec_from_file_location(
        "make_examples", REPO / "submissions/make_examples.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_submissions(root: Path) -> None:
    examples = make_examples_module()
    truth = pd.read_csv(DATA_DIR / "cifar10-test-labels.csv").sort_values("Id")
    ids, labels = truth["Id"].to_numpy(), truth["Category"].to_numpy()
    rng = np.random.default_rng(0)
    for i in range(STUDENTS):
        folder = root / f"student{i:03d}"
        folder.mkdir(parents=True)
        predicted = examples.noisy_predictions(labels, rng.uniform(0.35, 0.93), rng)
        (folder / "predictions.csv").write_bytes(examples.to_csv(ids, predicted))


def scoring_in_process(root: Path, repeat: int = 3) -> tuple[float, float]:
    """Median seconds to validate and score every file: the grader's functions vs plain pandas."""
    from grader.assignment import load_assignment
    from grader.predictions.read import read_predictions
    from grader.predictions.scoring import score
    from grader.predictions.solution import load_solution

    spec = load_assignment("cifar10")
    solution = load_solution(spec, DATA_DIR)
    expected = solution["id"].to_numpy()
    files = [p.read_bytes() for p in sorted(root.glob("*/predictions.csv"))]
    truth = pd.read_csv(DATA_DIR / "cifar10-test-labels.csv").sort_values("Id")
    ids, y = truth["Id"].to_numpy(), truth["Category"].to_numpy()
    public = np.random.default_rng(661).permutation(len(ids)) < len(ids) // 2

    def grader_loop() -> None:
        for raw in files:
            score(solution, read_predictions(raw, spec, expected_ids=expected), spec)

    def plain_loop() -> None:
        import io

        for raw in files:
            frame = pd.read_csv(io.BytesIO(raw))
            correct = frame.set_index("Id")["Category"].reindex(ids).to_numpy() == y
            correct[public].mean(), correct[~public].mean()

    timings: dict[str, list[float]] = {"grader": [], "plain": []}
    for _ in range(repeat):
        for name, loop in (("grader", grader_loop), ("plain", plain_loop)):
            began = time.perf_counter()
            loop()
            timings[name].append(time.perf_counter() - began)
    return statistics.median(timings["grader"]), statistics.median(timings["plain"])


def main() -> None:
    env = {**os.environ, "GRADER_DATA_DIR": str(DATA_DIR)}
    grader = str(Path(sys.executable).with_name("grader"))
    print(f"machine: {measure.machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "subs"
        write_submissions(root)
        (Path(tmp) / "plain.py").write_text(PLAIN)
        labels = str(DATA_DIR / "cifar10-test-labels.csv")
        plain = measure.run_counted(
            [sys.executable, str(Path(tmp) / "plain.py"), str(root), labels,
             str(Path(tmp) / "plain.csv")], env=env,
        )  # fmt: skip
        plain_load = measure.load_now()
        command = [grader, "check", str(root), "--out", str(Path(tmp) / "out"), "--quiet"]
        cold = measure.run_counted(command, env=env)
        cold_load = measure.load_now()
        warm = measure.run_counted(command, env=env)
        warm_load = measure.load_now()
        for name, run in (("plain", plain), ("cold", cold), ("warm", warm)):
            if run.returncode != 0:
                raise SystemExit(f"{name} run failed:\n{run.stderr[-2000:]}")
        ours, theirs = scoring_in_process(root)
    print(f"{STUDENTS} predictions files, each run a process (wall / CPU seconds incl. start-up):")
    print(f"  plain pandas + numpy script: {plain.wall_s:5.2f} s / {plain.cpu_s:5.2f} CPU-s  "
          f"({plain_load})")  # fmt: skip
    print(f"  grader check, cold:          {cold.wall_s:5.2f} s / {cold.cpu_s:5.2f} CPU-s  "
          f"{cold.wall_s / plain.wall_s:.2f}x plain wall  ({cold_load}; target < 3 s)")  # fmt: skip
    print(f"  grader check, warm (cached): {warm.wall_s:5.2f} s / {warm.cpu_s:5.2f} CPU-s  "
          f"{warm.wall_s / plain.wall_s:.2f}x plain wall  ({warm_load})")  # fmt: skip
    print(f"scoring in process, {STUDENTS} files (median of 3): grader {ours:.3f} s, plain "
          f"{theirs:.3f} s -> {ours / theirs:.2f}x (target <= 1.3x)")  # fmt: skip
    print(f"summary: cold {cold.wall_s:.2f} s (target < 3 s), scoring {ours / theirs:.2f}x plain "
          f"(target <= 1.3x); {measure.machine()}")  # fmt: skip


if __name__ == "__main__":
    main()
