"""Speed of scoring one 10,000-row predictions.csv, against plain pandas baselines.

1. In process: ``grader.predictions.scoring.score_file`` (read + validate + score on three
   splits) vs a plain ``pandas.read_csv`` + numpy comparison of the same file. Target: ratio <= 1.5.
2. As a process: ``grader score FILE --json`` vs ``python -c "import pandas"``. Target: <= 1.3.

    GRADER_DATA_DIR=../shared/data uv run python benchmarks/bench_score.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from grader.assignment import load_assignment
from grader.predictions.scoring import score_file
from grader.predictions.solution import load_solution

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("GRADER_DATA_DIR", REPO.parent / "shared" / "data"))


def interleaved_min(fns, repeat: int) -> list[float]:
    """Fastest of ``repeat`` calls of each function, calls interleaved so load bursts hit all."""
    for fn in fns:
        fn()  # warm-up
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def main() -> None:
    spec = load_assignment("cifar10")
    solution = load_solution(spec, DATA_DIR)
    truth = solution["label"].to_numpy()
    rng = np.random.default_rng(0)
    predicted = np.where(rng.random(len(truth)) < 0.8, truth, rng.integers(0, 10, len(truth)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "predictions.csv"
        pd.DataFrame({"Id": solution["id"], "Category": predicted}).to_csv(path, index=False)

        def baseline() -> float:
            frame = pd.read_csv(path)
            return float((frame["Category"].to_numpy() == truth).mean())

        def ours() -> float:
            return score_file(path, spec=spec, solution=solution).splits["all"]["accuracy"]

        assert abs(baseline() - ours()) < 1e-12
        base_s, ours_s = interleaved_min([baseline, ours], 50)
        print(
            f"in process, 10k rows: pandas+numpy {base_s * 1e3:.2f} ms, "
            f"score_file {ours_s * 1e3:.2f} ms, ratio {ours_s / base_s:.2f} (target <= 1.5)"
        )

        grader = Path(sys.executable).with_name("grader")
        env = {**os.environ, "GRADER_DATA_DIR": str(DATA_DIR)}

        def run(cmd: list[str]) -> float:
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=env)
            return time.perf_counter() - start

        pandas_cmd = [sys.executable, "-c", "import pandas"]
        score_cmd = [str(grader), "score", str(path), "--json"]
        base_times, score_times = [], []
        run(pandas_cmd), run(score_cmd)  # warm the file cache
        for _ in range(7):  # interleaved, so a burst of load hits both alike
            base_times.append(run(pandas_cmd))
            score_times.append(run(score_cmd))
        base_p, score_p = statistics.median(base_times), statistics.median(score_times)
        print(
            f"process: import pandas {base_p:.2f} s, grader score {score_p:.2f} s, "
            f"ratio {score_p / base_p:.2f} (target <= 1.3)"
        )


if __name__ == "__main__":
    main()
