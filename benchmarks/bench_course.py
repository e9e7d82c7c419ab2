"""A course server under load: two predictions assignments and a ResNet-20 model assignment on
``grader serve --broker`` (gunicorn, SQLite, a real Redis) with a remote ``grader worker``.

Phases (all traffic to 127.0.0.1, bounded in count and time):

1. upload-to-score latency of a ResNet-20 model submission through the warm worker (the real
   1017 test images of ``$GRADER_DATA_DIR``): p50 of the time from the POST to the graded
   status, against the grading time inside the worker (the job's start-to-finish in the database);
2. 200 concurrent predictions uploads across the two predictions assignments: errors and lost
   uploads (every 200 answer must be a graded submission with a score in the database), against
   the same uploads sent one at a time;
3. the two boards under ``wrk`` (alternating), against the static stylesheet (the server's floor).

    uv run python benchmarks/bench_course.py [--latency-runs 10] [--uploads 200] [--wrk-s 10]
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import requests

REPO = Path(__file__).resolve().parents[1]
GRADER = [sys.executable, "-m", "grader.cli"]

RESNET20 = '''"""ResNet-20 for CIFAR-10 (He et al. 2016, sec. 4.2), option A shortcuts."""

import torch
import torch.nn.functional as F
from torch import nn


class Shortcut(nn.Module):
    def __init__(self, extra, stride):
        super().__init__()
        self.extra, self.stride = extra, stride

    def forward(self, x):
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        changes = stride != 1 or cin != cout
        self.shortcut = Shortcut(cout - cin, stride) if changes else nn.Identity()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for i, width in enumerate((16, 32, 64)):
            for j in range(3):
                blocks.append(Block(cin, width, 2 if i > 0 and j == 0 else 1))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = (x - 0.5) / 0.25
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.blocks(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def model_zip(root: Path) -> bytes:
    """A ResNet-20 submission: model.py and a state_dict of its (seeded) initial weights."""
    import importlib.util

    import torch

    folder = root / "resnet20-model"
    folder.mkdir()
    (folder / "model.py").write_text(RESNET20)
    spec = importlib.util.spec_from_file_location("bench_resnet20", folder / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    torch.save(module.Net().state_dict(), folder / "model.pt")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in folder.iterdir():
            archive.write(path, arcname=path.name)
    return buffer.getvalue()


def run_wrk(url: str, seconds: int, script: Path | None) -> dict[str, float]:
    """Requests/s, p50/p99 latency (ms) and errors of one wrk run."""
    command = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50": ms("50"),
        "p99": ms("99"),
        "errors": errors + (int(non2xx.group(1)) if non2xx else 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-runs", type=int, default=10, help="model uploads (default 10)")
    parser.add_argument("--uploads", type=int, default=200, help="concurrent uploads (200)")
    parser.add_argument("--threads", type=int, default=50, help="upload threads (default 50)")
    parser.add_argument("--wrk-s", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    args = parser.parse_args()
    for tool in ("redis-server", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: run scripts/setup.sh as root")

    data_dir = Path(os.environ.get("GRADER_DATA_DIR") or REPO.parent / "shared" / "data")
    labels = pd.read_csv(data_dir / "cifar10-test-labels.csv")
    root = Path(tempfile.mkdtemp(prefix="bench-course-"))
    env = {**os.environ, "GRADER_DATA_DIR": str(data_dir), "GRADER_API_RATE_LIMIT": "1000000",
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    env.pop("GRADER_DATABASE_URL", None)
    db = f"sqlite:///{root / 'grader.db'}"
    second = (REPO / "grader" / "assignments" / "cifar10.toml").read_text()
    (root / "cifar10-b.toml").write_text(second.replace('name = "cifar10"', 'name = "cifar10-b"'))
    (root / "course.toml").write_text(
        'title = "Benchmark course"\n'
        '[[assignment]]\nspec = "cifar10"\ndaily_limit = 50\n'
        '[[assignment]]\nspec = "cifar10-b.toml"\ndaily_limit = 50\n'
        '[[assignment]]\nspec = "resnet20"\ndaily_limit = 1000\n'
    )
    students = max(20, args.uploads // 50 + 1)
    (root / "roster.csv").write_text(
        "student,name\n" + "".join(f"s{i:03d},Student {i}\n" for i in range(students))
    )
    run = {"env": env, "cwd": root, "check": True, "capture_output": True, "text": True}
    subprocess.run([*GRADER, "init-db", "--database", db], **run)
    out = subprocess.run([*GRADER, "roster", "import", "roster.csv", "--database", db], **run)
    tokens = list(pd.read_csv(io.StringIO(out.stdout))["token"])
    worker_token = subprocess.run([*GRADER, "roster", "worker", "--database", db], **run)
    redis_port, port = free_port(), free_port()
    broker = f"redis://127.0.0.1:{redis_port}/0"
    base = f"http://127.0.0.1:{port}"
    processes = []
    try:
        processes.append(subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL,
        ))  # fmt: skip
        processes.append(subprocess.Popen(
            [*GRADER, "serve", "--port", str(port), "--database", db, "--course", "course.toml",
             "--broker", broker, "--workers", str(args.workers)],
            env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=open(root / "server.log", "wb"),
        ))  # fmt: skip

        def up() -> bool:
            try:
                return requests.get(base + "/", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(up, 90, "the server")
        elsewhere = root / "worker-machine"
        elsewhere.mkdir()
        processes.append(subprocess.Popen(
            [*GRADER, "worker", "--server", base, "--token", worker_token.stdout.strip(),
             "--broker", broker],
            env=env, cwd=elsewhere, stdout=open(root / "worker.log", "wb"),
            stderr=subprocess.STDOUT,
        ))  # fmt: skip

        wait_until(lambda: "ready" in (root / "worker.log").read_text(), 90, "the worker")

        # 1. upload-to-score latency of a ResNet-20 model through the warm worker
        archive = model_zip(root)
        model_token = {"Authorization": f"Bearer {tokens[0]}"}
        latencies: list[float] = []
        first_s = 0.0
        ids = []
        for index in range(args.latency_runs + 1):
            started = time.perf_counter()
            response = requests.post(
                f"{base}/api/v1/assignments/resnet20/submissions", headers=model_token,
                files={"file": ("resnet20.zip", archive)}, timeout=30,
            )  # fmt: skip
            submission = response.json()["submission_id"]
            url = f"{base}/api/v1/submissions/{submission}"

            def graded(url=url) -> bool:
                status = requests.get(url, headers=model_token, timeout=10).json()["status"]
                return status not in ("queued", "running")

            wait_until(graded, 600, f"model submission {submission}")
            elapsed = time.perf_counter() - started
            status = requests.get(url, headers=model_token, timeout=10).json()
            if status["status"] != "graded":
                raise SystemExit(f"the model was not graded: {status}")
            ids.append(submission)
            if index == 0:
                first_s = elapsed  # the worker's box imports torch on its first job
            else:
                latencies.append(elapsed)
        from sqlalchemy import create_engine, text

        engine = create_engine(db)
        with engine.connect() as conn:
            spans = conn.execute(
                text(
                    "SELECT started_at, finished_at FROM jobs WHERE submission_id IN "
                    f"({','.join(map(str, ids[1:]))})"
                )  # fmt: skip
            ).all()
        grading = [(pd.Timestamp(f) - pd.Timestamp(s)).total_seconds() for s, f in spans]

        # 2. concurrent predictions uploads across the two predictions assignments
        files = []
        for i in range(8):
            frame = labels.copy()
            wrong = 400 * (i + 1)
            frame.loc[: wrong - 1, "Category"] = (frame.loc[: wrong - 1, "Category"] + 1) % 10
            files.append(frame.to_csv(index=False).encode())
        assignments = ["cifar10", "cifar10-b"]
        answers: list[tuple[int, int | None, float]] = []
        lock = threading.Lock()

        def upload(index: int) -> None:
            started = time.perf_counter()
            try:
                response = requests.post(
                    f"{base}/api/v1/assignments/{assignments[index % 2]}/submissions",
                    headers={"Authorization": f"Bearer {tokens[index % students]}"},
                    files={"file": ("predictions.csv", files[index % len(files)])}, timeout=120,
                )  # fmt: skip
                code = response.status_code
                submission = response.json().get("submission_id") if code == 200 else None
            except requests.RequestException:
                code, submission = 0, None
            with lock:
                answers.append((code, submission, time.perf_counter() - started))

        sequential_started = time.perf_counter()
        for index in range(20):
            upload(10_000 + index)
        sequential_s = time.perf_counter() - sequential_started
        sequential = answers[:]
        answers.clear()
        began = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.threads) as pool:
            list(pool.map(upload, range(args.uploads)))
        concurrent_s = time.perf_counter() - began
        ok_ids = [s for code, s, _ in answers if code == 200 and s is not None]
        with engine.connect() as conn:
            stored = conn.execute(
                text(
                    "SELECT COUNT(*) FROM submissions s JOIN scores c ON c.submission_id = s.id "
                    f"WHERE s.id IN ({','.join(map(str, ok_ids)) or '0'})"
                )  # fmt: skip
            ).scalar_one()
            per_assignment = dict(conn.execute(
                text("SELECT assignment, COUNT(*) FROM submissions WHERE kind = 'predictions' "
                     "GROUP BY assignment")
            ).all())  # fmt: skip
        engine.dispose()

        # 3. the two boards under wrk, against the static file
        for path in ("/assignments/cifar10/", "/assignments/cifar10-b/"):
            requests.get(base + path, timeout=10)
        script = root / "boards.lua"
        script.write_text(
            'local paths = {"/assignments/cifar10/", "/assignments/cifar10-b/"}\n'
            "local n = 0\nrequest = function()\n  n = n + 1\n"
            '  return wrk.format("GET", paths[n % 2 + 1])\nend\n'
        )
        floor = run_wrk(base + "/static/style.css", args.wrk_s, None)
        boards = run_wrk(base + "/", args.wrk_s, script)
    finally:
        for proc in reversed(processes):
            proc.terminate()
        for proc in processes:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cpus, load average {load[0]:.1f}/{load[1]:.1f}; "
          f"gunicorn workers={args.workers}, {students} students")  # fmt: skip
    p50 = statistics.median(latencies)
    grade_p50 = statistics.median(grading)
    print(
        f"model upload-to-score (ResNet-20, warm worker, {len(latencies)} runs): p50 "
        f"{p50:.2f} s, p90 {percentile(latencies, 0.9):.2f} s; first (cold box) {first_s:.2f} s"
    )
    print(f"  grading inside the worker (baseline) p50 {grade_p50:.2f} s; "
          f"ratio upload-to-score/grading {p50 / grade_p50:.2f}")  # fmt: skip
    errors = sum(1 for code, _s, _t in answers if code != 200)
    lost = len(ok_ids) - stored
    times = [t for _c, _s, t in answers]
    print(f"{args.uploads} concurrent uploads ({args.threads} threads, 2 assignments): "
          f"{errors} errors, {lost} lost, {len(ok_ids) / concurrent_s:.1f} uploads/s, "
          f"p50 {statistics.median(times) * 1000:.0f} ms, p99 {percentile(times, 0.99) * 1000:.0f}"
          f" ms; per assignment {per_assignment}")  # fmt: skip
    seq_errors = sum(1 for code, _s, _t in sequential if code != 200)
    ratio = len(ok_ids) / concurrent_s / (20 / sequential_s)
    print(f"  one at a time (baseline, 20 uploads): {20 / sequential_s:.1f} uploads/s, "
          f"{seq_errors} errors; ratio concurrent/sequential {ratio:.2f}")  # fmt: skip
    for name, result in (("GET /static/style.css (floor)", floor), ("GET two boards", boards)):
        print(f"wrk {name:<30} {result['rate']:>8.0f} req/s  p50 {result['p50']:.2f} ms  "
              f"p99 {result['p99']:.2f} ms  errors {result['errors']}  "
              f"({result['requests']} requests)")  # fmt: skip
    print(f"ratio boards/static-file rate: {boards['rate'] / floor['rate']:.2f}")


if __name__ == "__main__":
    main()
