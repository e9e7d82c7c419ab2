"""A course server under load: two predictions assignments and a ResNet-20 model assignment,
``grader serve`` (gunicorn, SQLite) with its embedded worker, then with a real Redis broker and a
remote ``grader worker``.

Phases (all traffic to 127.0.0.1, bounded in count and time):

1. upload-to-score latency of a ResNet-20 model submission (the real 1017 test images of
   ``$GRADER_DATA_DIR``) through the **embedded worker** (``grader worker`` beside the server,
   no broker: what a course gets by default), then through the **remote worker** (Redis):
   p50 of the time from the POST to the graded status, split into the wait in the queue (upload
   to the worker's claim), the grading (claim to result, the baseline) and the rest (HTTP, the
   client's 50 ms poll);
2. 200 concurrent predictions uploads across the two predictions assignments: errors and lost
   uploads (every 200 answer must be a graded submission with a score in the database), against
   the same uploads sent one at a time;
3. the two boards under ``wrk`` (alternating), against ``/health``, a minimal Flask route of the
   same server (the floor).

The workers' boxes start when the workers start; the figures are taken once they are warm.

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

import measure
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
    model_zip.flops = measure.model_flops(module.Net(), (3, 32, 32))
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


class Course:
    """The benchmark course in a temporary folder: database, roster, tokens, processes."""

    def __init__(self, args) -> None:
        self.args = args
        self.data_dir = Path(os.environ.get("GRADER_DATA_DIR") or REPO.parent / "shared" / "data")
        self.root = Path(tempfile.mkdtemp(prefix="bench-course-"))
        self.env = {**os.environ, "GRADER_DATA_DIR": str(self.data_dir),
                    "GRADER_API_RATE_LIMIT": "1000000", "OMP_NUM_THREADS": "1",
                    "GRADER_COURSE": str(self.root / "course.toml")}  # fmt: skip
        self.env.pop("GRADER_DATABASE_URL", None)
        self.db = f"sqlite:///{self.root / 'grader.db'}"
        second = (REPO / "grader" / "assignments" / "cifar10.toml").read_text()
        (self.root / "cifar10-b.toml").write_text(
            second.replace('name = "cifar10"', 'name = "cifar10-b"')
        )
        (self.root / "course.toml").write_text(
            'title = "Benchmark course"\n'
            '[[assignment]]\nspec = "cifar10"\ndaily_limit = 50\n'
            '[[assignment]]\nspec = "cifar10-b.toml"\ndaily_limit = 50\n'
            '[[assignment]]\nspec = "resnet20"\ndaily_limit = 1000\n'
        )
        self.students = max(20, args.uploads // 50 + 1)
        (self.root / "roster.csv").write_text(
            "student,name\n" + "".join(f"s{i:03d},Student {i}\n" for i in range(self.students))
        )
        self.run([*GRADER, "init-db", "--database", self.db])
        out = self.run([*GRADER, "roster", "import", "roster.csv", "--database", self.db])
        self.tokens = list(pd.read_csv(io.StringIO(out.stdout))["token"])
        self.worker_token = self.run([*GRADER, "roster", "worker", "--database", self.db])
        self.processes: list[subprocess.Popen] = []
        self.base = ""

    def query(self, sql: str) -> list[tuple]:
        """The rows of one SQL query on the course's database."""
        from sqlalchemy import create_engine, text

        engine = create_engine(self.db)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(text(sql))]
        finally:
            engine.dispose()

    def run(self, command: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(command, env=self.env, cwd=self.root, check=True,
                              capture_output=True, text=True)  # fmt: skip

    def start(self, command: list[str], log: str, cwd: Path | None = None) -> subprocess.Popen:
        output = open(self.root / log, "wb")  # the process writes it until it is stopped
        proc = subprocess.Popen(command, env=self.env, cwd=cwd or self.root, stdout=output,
                                stderr=subprocess.STDOUT)  # fmt: skip
        self.processes.append(proc)
        return proc

    def serve(self, broker: str | None) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        command = [*GRADER, "serve", "--port", str(port), "--database", self.db, "--course",
                   "course.toml", "--workers", str(self.args.workers)]  # fmt: skip
        self.start(command + (["--broker", broker] if broker else []), "server.log")

        def up() -> bool:
            try:
                return requests.get(self.base + "/health", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(up, 90, "the server")

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.processes.clear()


def model_latency(course: Course, archive: bytes, runs: int) -> dict[str, object]:
    """Upload the model ``runs + 1`` times, one at a time; latency figures of all but the
    first (reported apart)."""
    headers = {"Authorization": f"Bearer {course.tokens[0]}"}
    latencies, ids = [], []
    for _ in range(runs + 1):
        started = time.perf_counter()
        response = requests.post(
            f"{course.base}/api/v1/assignments/resnet20/submissions", headers=headers,
            files={"file": ("resnet20.zip", archive)}, timeout=30,
        )  # fmt: skip
        submission = response.json()["submission_id"]
        url = f"{course.base}/api/v1/submissions/{submission}"

        def graded(url=url) -> bool:
            status = requests.get(url, headers=headers, timeout=10).json()["status"]
            return status not in ("queued", "running")

        wait_until(graded, 600, f"model submission {submission}")
        latencies.append(time.perf_counter() - started)
        status = requests.get(url, headers=headers, timeout=10).json()
        if status["status"] != "graded":
            raise SystemExit(f"the model was not graded: {status}")
        ids.append(submission)
    spans = course.query(
        "SELECT s.created_at, j.started_at, j.finished_at FROM jobs j JOIN submissions s "
        f"ON s.id = j.submission_id WHERE s.id IN ({','.join(map(str, ids[1:]))})"
    )
    seconds = [(pd.Timestamp(b) - pd.Timestamp(a)).total_seconds() for a, b, _ in spans]
    grading = [(pd.Timestamp(c) - pd.Timestamp(b)).total_seconds() for _, b, c in spans]
    return {
        "first": latencies[0],
        "p50": statistics.median(latencies[1:]),
        "p90": percentile(latencies[1:], 0.9),
        "queue": statistics.median(seconds),
        "grading": statistics.median(grading),
        "runs": len(latencies) - 1,
        "load": measure.load_now(),
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
    print(f"machine: {measure.machine()}")
    course = Course(args)
    root = course.root
    labels = pd.read_csv(course.data_dir / "cifar10-test-labels.csv")
    archive = model_zip(root)
    latency = {}
    try:
        # 1a. the embedded worker: no broker, the database is the queue
        course.serve(broker=None)
        course.start([*GRADER, "worker", "--database", course.db], "embedded-worker.log")
        wait_until(lambda: "box started" in (root / "embedded-worker.log").read_text(), 300,
                   "the embedded worker's box")  # fmt: skip
        latency["embedded worker (SQLite)"] = model_latency(course, archive, args.latency_runs)
        course.stop()

        # 1b. the remote worker: Redis delivers the job id, the server's API the rest
        redis_port = free_port()
        broker = f"redis://127.0.0.1:{redis_port}/0"
        course.processes.append(subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL,
        ))  # fmt: skip
        course.serve(broker=broker)
        base = course.base
        elsewhere = root / "worker-machine"
        elsewhere.mkdir()
        course.start([*GRADER, "worker", "--server", base, "--token",
                      course.worker_token.stdout.strip(), "--broker", broker],
                     "remote-worker.log", cwd=elsewhere)  # fmt: skip
        wait_until(lambda: "box started" in (root / "remote-worker.log").read_text(), 300,
                   "the remote worker's box")  # fmt: skip
        latency["remote worker (Redis)"] = model_latency(course, archive, args.latency_runs)

        # 2. concurrent predictions uploads across the two predictions assignments
        tokens, students = course.tokens, course.students
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
        upload_load = measure.load_now()
        ok_ids = [s for code, s, _ in answers if code == 200 and s is not None]
        ((stored,),) = course.query(
            "SELECT COUNT(*) FROM submissions s JOIN scores c ON c.submission_id = s.id "
            f"WHERE s.id IN ({','.join(map(str, ok_ids)) or '0'})"
        )

        # 3. the two boards under wrk, against the hello route of the same server
        for path in ("/assignments/cifar10/", "/assignments/cifar10-b/"):
            requests.get(base + path, timeout=10)
        script = root / "boards.lua"
        script.write_text(
            'local paths = {"/assignments/cifar10/", "/assignments/cifar10-b/"}\n'
            "local n = 0\nrequest = function()\n  n = n + 1\n"
            '  return wrk.format("GET", paths[n % 2 + 1])\nend\n'
        )
        floor = run_wrk(base + "/health", args.wrk_s, None)
        boards = run_wrk(base + "/", args.wrk_s, script)
        wrk_load = measure.load_now()
    finally:
        course.stop()

    print(f"gunicorn workers={args.workers}, {course.students} students; each figure with the "
          f"1-minute load when it was taken")  # fmt: skip
    from grader.metrics import VARIANT_NAMES, variant_subset

    evaluated = 1017 + len(variant_subset(1017)) * len(VARIANT_NAMES)
    gflops = measure.gemm_gflops(1)
    roofline = measure.roofline_s(model_zip.flops, evaluated, gflops)
    print(f"roofline of one ResNet-20 grading: {evaluated} images x {model_zip.flops / 1e6:.1f} "
          f"MFLOP / {gflops:.0f} GFLOP/s (fp32 GEMM, 1 thread) = {roofline:.2f} s")  # fmt: skip
    for name, figures in latency.items():
        rest = figures["p50"] - figures["queue"] - figures["grading"]
        print(
            f"ResNet-20 upload-to-score, {name}, {figures['runs']} runs: p50 {figures['p50']:.2f} s"
            f", p90 {figures['p90']:.2f} s; first job {figures['first']:.2f} s ({figures['load']})"
        )
        print(f"  of the p50: waiting in the queue {figures['queue']:.2f} s, grading (baseline) "
              f"{figures['grading']:.2f} s ({figures['grading'] / roofline:.1f}x the roofline), "
              f"HTTP and polling {rest:.2f} s; ratio upload-to-score/grading "
              f"{figures['p50'] / figures['grading']:.2f}")  # fmt: skip
    errors = sum(1 for code, _s, _t in answers if code != 200)
    lost = len(ok_ids) - stored
    times = [t for _c, _s, t in answers]
    print(f"{args.uploads} concurrent uploads ({args.threads} threads, 2 assignments): "
          f"{errors} errors, {lost} lost, {len(ok_ids) / concurrent_s:.1f} uploads/s, "
          f"p50 {statistics.median(times) * 1000:.0f} ms, p99 {percentile(times, 0.99) * 1000:.0f}"
          f" ms ({upload_load})")  # fmt: skip
    seq_errors = sum(1 for code, _s, _t in sequential if code != 200)
    ratio = len(ok_ids) / concurrent_s / (20 / sequential_s)
    print(f"  one at a time (baseline, 20 uploads): {20 / sequential_s:.1f} uploads/s, "
          f"{seq_errors} errors; ratio concurrent/sequential {ratio:.2f}")  # fmt: skip
    for name, result in (("GET /health (floor)", floor), ("GET two boards", boards)):
        print(f"wrk {name:<30} {result['rate']:>8.0f} req/s  p50 {result['p50']:.2f} ms  "
              f"p99 {result['p99']:.2f} ms  errors {result['errors']}  "
              f"({result['requests']} requests, {wrk_load})")  # fmt: skip
    embedded = latency["embedded worker (SQLite)"]
    print(f"summary: ResNet-20 upload-to-score p50 {embedded['p50']:.2f} s through the embedded "
          f"worker (target < 2 s); boards {boards['rate'] / floor['rate']:.2f}x the hello route; "
          f"{measure.machine()}")  # fmt: skip


if __name__ == "__main__":
    main()
