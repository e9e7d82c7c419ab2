"""Load on the leaderboard served by gunicorn (``grader serve``) on localhost.

Seeds a fresh SQLite database with a roster and real CIFAR-10 predictions, then drives it with
threads sharing ``requests.Session`` objects: GET ``/health`` (a minimal Flask route of the same
server, through the same middleware: the floor, the baseline), GET the board (cached HTML), GET
the board as JSON and POST predictions (validated and scored per request). Prints requests/s,
p50/p99 latency and errors, the board's rate as a ratio of the floor's, and the load. Bounded: a
fixed request count and a time cap.

    uv run python benchmarks/bench_leaderboard.py [--requests 3000] [--threads 8]
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import measure
import pandas as pd
import requests

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    """Figures of one load phase."""

    name: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def line(self) -> str:
        lat = sorted(self.latencies_ms)
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        return (
            f"{self.name:<28} {self.requests:>6} req  {self.rate:>8.1f} req/s  "
            f"p50 {p50:>6.1f} ms  p99 {p99:>6.1f} ms  errors {self.errors}"
        )


def load(name: str, make_request, total: int, threads: int, cap_s: float) -> Result:
    """Run ``total`` requests over ``threads`` threads (stopping at ``cap_s``)."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))
    lock = threading.Lock()
    stop_at = time.monotonic() + cap_s

    def work() -> None:
        nonlocal errors
        session = requests.Session()
        while time.monotonic() < stop_at:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            start = time.perf_counter()
            ok = make_request(session, index)
            elapsed = (time.perf_counter() - start) * 1000
            with lock:
                latencies.append(elapsed)
                errors += 0 if ok else 1

    pool = [threading.Thread(target=work) for _ in range(threads)]
    began = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return Result(name, len(latencies), errors, time.perf_counter() - began, latencies)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="GETs per phase (default 3000)")
    parser.add_argument("--posts", type=int, default=200, help="POSTs of predictions (default 200)")
    parser.add_argument("--threads", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--cap-s", type=float, default=60, help="time cap per phase (default 60)")
    args = parser.parse_args()

    data_dir = Path(os.environ.get("GRADER_DATA_DIR") or REPO.parent / "shared" / "data")
    labels = pd.read_csv(data_dir / "cifar10-test-labels.csv")
    students = max(40, args.posts // 5 + 1)  # the cifar10 spec allows 5 submissions a day
    root = Path(tempfile.mkdtemp(prefix="bench-leaderboard-"))
    db = f"sqlite:///{root / 'grader.db'}"
    # The API's per-client limit would turn a load test into 429s; it is measured, not tested, here.
    env = {**os.environ, "GRADER_DATA_DIR": str(data_dir), "GRADER_API_RATE_LIMIT": "1000000"}
    grader = [sys.executable, "-m", "grader.cli"]
    roster = root / "roster.csv"
    roster.write_text(
        "student,name\n" + "".join(f"s{i:03d},Student {i}\n" for i in range(students))
    )
    out = subprocess.run(
        [*grader, "roster", "import", str(roster), "--database", db],
        env=env, check=True, capture_output=True, text=True, cwd=root,
    )  # fmt: skip
    tokens = list(pd.read_csv(io.StringIO(out.stdout))["token"])
    port = free_port()
    server = subprocess.Popen(
        [*grader, "serve", "--port", str(port), "--database", db, "--workers", str(args.workers)],
        env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=open(root / "server.log", "wb"),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                requests.get(base + "/", timeout=5)
                break
            except requests.RequestException:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.3)
        predictions = []
        for i in range(8):
            frame = labels.copy()
            wrong = 500 * (i + 1)
            frame.loc[: wrong - 1, "Category"] = (frame.loc[: wrong - 1, "Category"] + 1) % 10
            predictions.append(frame.to_csv(index=False).encode())

        failures: list[str] = []

        def post(session: requests.Session, index: int) -> bool:
            response = session.post(
                base + "/api/v1/submissions",
                headers={"Authorization": f"Bearer {tokens[index // 5]}"},
                files={"file": ("predictions.csv", predictions[index % len(predictions)])},
                timeout=30,
            )
            if response.status_code != 200:
                failures.append(f"{response.status_code} {response.text[:200]}")
            return response.status_code == 200

        def get(path: str):
            def request(session: requests.Session, _index: int) -> bool:
                return session.get(base + path, timeout=30).status_code == 200

            return request

        # POST first, so the board has one row per student when it is read.
        results = [load("POST predictions (scored)", post, args.posts, args.threads, args.cap_s)]
        for _ in range(2):  # warm both workers' caches and connections
            requests.get(base + "/assignments/cifar10/", timeout=10)
        results.append(load("GET /health (floor)", get("/health"), args.requests,
                            args.threads, args.cap_s))  # fmt: skip
        results.append(load("GET board (cached)", get("/assignments/cifar10/"), args.requests,
                            args.threads, args.cap_s))  # fmt: skip
        results.append(load("GET /api/v1/leaderboard", get("/api/v1/leaderboard"),
                            args.requests // 3, args.threads, args.cap_s))  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=20)
    print(f"machine: {measure.machine()}")
    print(f"gunicorn workers={args.workers}, client threads={args.threads} on the same cores, "
          f"{students} students")  # fmt: skip
    for result in results:
        print(result.line())
    for failure in sorted(set(failures))[:5]:
        print("  POST failure:", failure, f"(server log: {root / 'server.log'})")
    floor, board = results[1], results[2]
    print(f"summary: board {board.rate:.0f} req/s = {board.rate / floor.rate:.2f}x the hello "
          f"route's {floor.rate:.0f} req/s; {measure.machine()}")  # fmt: skip


if __name__ == "__main__":
    main()
