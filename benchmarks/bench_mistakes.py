"""Time to answer a student's common mistake, against running it in a box as grading did before.

For each mistake the static look can see (a pickled whole model, training and downloads at
import, a hard-coded GPU, ToTensor in ``preprocess``, a missing class) this measures:

1. In process: ``grade_model`` on the folder, answered before any box starts (the code path of
   ``grader check`` and the worker). Target: < 2 s.
2. As a process: ``grader sanity model.py`` (wall and CPU seconds of the process and its
   children, which is what a student waits for). Target: < 2 s.
3. The alternative, for the pickled whole model: the capture stage in a box (box start-up, then
   the job in the warm box), which is how it was refused before. Training at import ran until
   the wall-clock limit (``time_limit_s``, 120-300 s), which is not re-run here.

    GRADER_DATA_DIR=../shared/data OMP_NUM_THREADS=1 uv run python benchmarks/bench_mistakes.py
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
import types
from pathlib import Path

import torch

from grader.assignment import load_assignment
from grader.models.pipeline import CAPTURE, capture_arguments, grade_model, model_pool
from grader.records import to_data
from grader.sandbox.protocol import Limits

NET = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 16 * 16, 10)

    def forward(self, x):
        return self.fc(torch.flatten(nn.functional.max_pool2d(self.conv(x).relu(), 2), 1))
"""
MISTAKES = {
    "pickled whole model": NET,
    "training at import": NET
    + textwrap.dedent("""
        net = Net()
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        for step in range(10 ** 6):
            opt.zero_grad()
            net(torch.rand(64, 3, 32, 32)).sum().backward()
            opt.step()
        """),
    "download at import": NET
    + ("import torchvision\ndata = torchvision.datasets.CIFAR10('data', download=True)\n"),
    ".cuda() in forward": NET.replace("self.conv(x)", "self.conv(x.cuda())"),
    "ToTensor in preprocess": NET
    + (
        "import torchvision.transforms as T\n"
        "tf = T.Compose([T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)])\n\n"
        "def preprocess(x):\n    return tf(x)\n"
    ),
    "missing class": NET.replace("class Net(", "class MyCNN("),
}


def folder_for(root: Path, name: str, code: str) -> Path:
    folder = root / name.replace(" ", "_").replace(".", "").replace("()", "")
    folder.mkdir()
    (folder / "model.py").write_text(code)
    module = types.ModuleType("model")
    exec(compile(NET, "model.py", "exec"), vars(module))  # noqa: S102 - our own model
    sys.modules["model"] = module
    try:
        weights = module.Net() if name == "pickled whole model" else module.Net().state_dict()
        torch.save(weights, folder / "model.pt")
    finally:
        del sys.modules["model"]
    return folder


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    print(f"load: {os.getloadavg()}, cpus: {os.cpu_count()}, torch {torch.__version__}")
    spec = load_assignment("pj2-cifar10")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folders = {name: folder_for(root, name, code) for name, code in MISTAKES.items()}
        grade_model(folders["missing class"], spec)  # import and cache what grading imports
        print(f"{'mistake':<24} {'in process':>11} {'grader sanity wall':>19} {'cpu':>7}")
        for name, folder in folders.items():
            start = time.perf_counter()
            result = grade_model(folder, spec)
            in_process = time.perf_counter() - start
            if result.status != "invalid":
                raise SystemExit(f"{name}: not refused: {result.message}")
            before = children_cpu()
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "grader.cli", "sanity", str(folder / "model.py"),
                 "--weights", str(folder / "model.pt")],
                capture_output=True, check=False,
            )  # fmt: skip
            wall, cpu = time.perf_counter() - start, children_cpu() - before
            print(f"{name:<24} {in_process * 1000:>8.1f} ms {wall:>17.2f} s {cpu:>5.2f} s")
            print(f"    {result.message[:150]}")
        folder = folders["pickled whole model"]
        files = {p.name: p for p in folder.iterdir()}
        limits = Limits.from_model_spec(spec.model)
        args = to_data(capture_arguments(spec.model, "model.pt"))
        start = time.perf_counter()
        with model_pool(spec, with_images=False) as pool, pool.worker() as worker:
            worker.run(CAPTURE, files=files, limits=limits, args=args, out=root / "capture")
        boxed = time.perf_counter() - start
        print(f"pickled whole model through a box (start-up + capture job): {boxed:.2f} s")


if __name__ == "__main__":
    main()
