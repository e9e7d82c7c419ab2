"""Speed of ``grader check`` on 300 generated prediction submissions.

Writes 300 student folders (real CIFAR-10 test labels with seeded errors, as in
``submissions/make_examples.py``) to a temporary folder, then runs ``grader check`` as a process:
cold (empty cache) and warm (re-run, every grade cached), report and 300 student pages included.
Targets: cold < 10 s on 2 cores, warm >= 100 submissions/s. Also compares worker counts in
process (threads share the answer key; pandas' parser and numpy release the GIL), and the cost of
the student pages against the same batch without them.

    GRADER_DATA_DIR=../shared/data uv run python benchmarks/bench_check.py
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from grader.assignment import load_assignment
from grader.batch.run import grade_folder

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("GRADER_DATA_DIR", REPO.parent / "shared" / "data"))
STUDENTS = 300


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


def timed_check(root: Path, out: Path, extra: list[str]) -> float:
    grader = Path(sys.executable).with_name("grader")
    cmd = [str(grader), "check", str(root), "--out", str(out), "--quiet", *extra]
    env = {**os.environ, "GRADER_DATA_DIR": str(DATA_DIR)}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "subs"
        write_submissions(root)
        cold = timed_check(root, Path(tmp) / "out", [])
        warm = timed_check(root, Path(tmp) / "out", [])
        print(f"grader check, {STUDENTS} submissions (process, incl. start-up and report):")
        print(
            f"  cold {cold:.2f} s ({STUDENTS / cold:.0f}/s, target < 10 s), "
            f"warm {warm:.2f} s ({STUDENTS / warm:.0f}/s, target >= 100/s)"
        )
        spec = load_assignment("cifar10")
        timings = {}
        for jobs in (1, 2, 4):
            out = Path(tmp) / f"out-jobs{jobs}"
            timings[jobs] = timed(root, spec, out, jobs=jobs)
        warm = timed(root, spec, Path(tmp) / "out-jobs2", jobs=2)
        base = timings[1]
        print(
            "  in process, cold, by --jobs (wall incl. report and pages): "
            + ", ".join(f"{j}: {t:.2f} s (x{base / t:.2f})" for j, t in timings.items())
        )
        print(
            f"  in process, warm (all cached), 2 jobs: {warm:.2f} s "
            f"({STUDENTS / warm:.0f}/s incl. flags, report and pages)"
        )
        without = timed(root, spec, Path(tmp) / "out-nopages", jobs=1, student_pages=False)
        with_pages = timed(root, spec, Path(tmp) / "out-pages", jobs=1)
        print(
            f"  in process, cold, 1 job: without student pages {without:.2f} s, with "
            f"{with_pages:.2f} s (x{with_pages / without:.2f}; "
            f"{1000 * (with_pages - without) / STUDENTS:.1f} ms per page)"
        )


def timed(root: Path, spec, out: Path, **kwargs) -> float:
    start = time.perf_counter()
    grade_folder(root, spec=spec, data_dir=DATA_DIR, out_dir=out, progress=False, **kwargs)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
