"""Sandbox overhead: the model check of a ResNet-20 on the real CIFAR-10 test images, boxed vs bare.

Prints, for one submission (the reference ResNet-20, 272k parameters, random weights):
- bare warm: ``check_task`` in this process, torch already imported (the floor);
- bare cold: the same check in a fresh ``python`` process (pays ``import torch``);
- boxed: ``grade_model_folder`` in bubblewrap (pays the jail and ``import torch``);
- box start-up: a box whose task imports no torch (bwrap + setpriv + python + seccomp);
and the ratios boxed / bare cold (jail overhead) and boxed / bare warm (what a batch pays per
submission without a pre-forked worker). Then a batch of ``--batch`` ResNet-20 submissions
(different weights) through ONE pre-forked jailed worker (:class:`grader.zygote.Zygote`: start-up
included) against the same checks bare in-process warm, and the ratio of the two.

Usage: ``uv run python benchmarks/bench_sandbox.py [--repeat 1] [--batch 6] [--batch-only]``
(needs root + bubblewrap and ``$GRADER_DATA_DIR``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from grader.assignment import load_assignment
from grader.data import load_dataset
from grader.harness import TaskContext, import_student_module
from grader.modelcheck import check_task
from grader.modelgrade import grade_model_folder, model_spec_args
from grader.sandbox import Limits, run_task
from grader.zygote import Zygote

MODEL_PY = (
    "from reference.models import get_model\n\n\n"
    "def build_model():\n    return get_model('resnet20')\n"
)
ROOT = Path(__file__).resolve().parents[1]


def make_submission(folder: Path, seed: int = 0) -> None:
    """A ResNet-20 submission: model.py + a state_dict of its initial weights."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.py").write_text(MODEL_PY)
    torch.manual_seed(seed)
    from reference.models import get_model

    torch.save(get_model("resnet20").state_dict(), folder / "model.pt")


def bare_warm(folder: Path, args: dict, images) -> float:
    """The check in this process (torch imported already)."""
    started = time.perf_counter()
    ctx = TaskContext(folder, folder, args, {"images": images}, None, folder / "model.pt")
    ctx.module = import_student_module(folder)
    result = check_task(ctx)
    elapsed = time.perf_counter() - started
    if result["errors"] or "logits" not in ctx.arrays:
        raise SystemExit(f"bare check failed: {result['errors']}")
    return elapsed


def bare_cold(folder: Path) -> float:
    """The check in a fresh process, import torch included."""
    code = (
        "import sys; from pathlib import Path; from grader.assignment import load_assignment\n"
        "from grader.data import load_dataset\n"
        "from grader.harness import TaskContext, import_student_module\n"
        "from grader.modelcheck import check_task\n"
        "from grader.modelgrade import model_spec_args\n"
        "spec = load_assignment('resnet20'); f = Path(sys.argv[1])\n"
        "images = load_dataset('cifar10', 'test').images\n"
        "args = model_spec_args(spec.model, require_weights=True)\n"
        "ctx = TaskContext(f, f, args, {'images': images}, None, f / 'model.pt')\n"
        "ctx.module = import_student_module(f); r = check_task(ctx)\n"
        "sys.exit(1 if r['errors'] else 0)\n"
    )
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(folder)], check=True, cwd=ROOT)
    return time.perf_counter() - started


def boxed(folder: Path) -> tuple[float, float | None]:
    """grade_model_folder in the sandbox: wall time and the images/s measured inside."""
    started = time.perf_counter()
    grade = grade_model_folder(folder, load_assignment("resnet20"))
    elapsed = time.perf_counter() - started
    if grade.logits is None:
        raise SystemExit(f"boxed check failed: {grade.message}")
    return elapsed, grade.images_per_s


def box_startup(folder: Path) -> float:
    """A box that imports no torch: the jail's own start-up and tear-down."""
    result = run_task(folder, task="grader.harness:import_task", args={}, limits=Limits(wall_s=60))
    if result.status != "ok":
        raise SystemExit(f"empty box failed: {result.message}")
    return result.wall_s


def zygote_batch(folders: list[Path], images) -> tuple[float, float, list[float]]:
    """The batch through one pre-forked worker: total wall, start-up, and each submission's."""
    spec = load_assignment("resnet20")
    started = time.perf_counter()
    each = []
    warm_up = model_spec_args(spec.model, require_weights=True)
    with Zygote(images=images, warm_up=warm_up) as worker:
        startup = time.perf_counter() - started
        for folder in folders:
            t = time.perf_counter()
            grade = grade_model_folder(folder, spec, zygote=worker)
            each.append(time.perf_counter() - t)
            if grade.logits is None:
                raise SystemExit(f"pre-forked check failed: {grade.message}")
    return time.perf_counter() - started, startup, each


def batch_main(n: int, images, check_args: dict) -> None:
    """Print the batch comparison: pre-forked worker vs bare in-process warm."""
    with tempfile.TemporaryDirectory() as tmp:
        folders = [Path(tmp) / f"student{i}" for i in range(n)]
        for seed, folder in enumerate(folders):
            make_submission(folder, seed)
        bare_warm(folders[0], check_args, images)  # warm-up, as for the single figures
        warm = [bare_warm(folder, check_args, images) for folder in folders]
        total, startup, each = zygote_batch(folders, images)
    bare_total = sum(warm)
    print(f"batch of {n} ResNet-20 submissions (different weights)")
    print(f"bare warm in-process, total:         {bare_total:7.2f} s  "
          f"(median {statistics.median(warm):.2f} s each)")  # fmt: skip
    print(f"pre-forked worker, total:            {total:7.2f} s  (start-up {startup:.2f} s, "
          f"median {statistics.median(each):.2f} s each)")  # fmt: skip
    print(f"ratio pre-forked / bare warm, batch: {total / bare_total:7.2f}x")
    print(f"ratio per submission (no start-up): "
          f"{statistics.median(each) / statistics.median(warm):7.2f}x")  # fmt: skip


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    spec = load_assignment("resnet20")
    images = load_dataset("cifar10", "test").images
    check_args = model_spec_args(spec.model, require_weights=True)
    if args.batch_only:
        batch_main(args.batch, images, check_args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "resnet20"
        make_submission(folder)
        empty = Path(tmp) / "empty"
        empty.mkdir()
        (empty / "model.py").write_text("VALUE = 1\n")
        bare_warm(folder, check_args, images)  # warm-up: imports torchinfo, reference models
        warm = [bare_warm(folder, check_args, images) for _ in range(args.repeat)]
        cold = [bare_cold(folder) for _ in range(args.repeat)]
        box = [boxed(folder) for _ in range(args.repeat)]
        start = [box_startup(empty) for _ in range(args.repeat)]
    w, c = statistics.median(warm), statistics.median(cold)
    b = statistics.median(t for t, _ in box)
    s = statistics.median(start)
    print(f"ResNet-20 model check on {len(images)} real CIFAR-10 test images, 1 thread")
    print(f"bare warm (in-process):      {w:7.2f} s")
    print(f"bare cold (fresh process):   {c:7.2f} s")
    print(f"boxed (grade_model_folder):  {b:7.2f} s   inference {box[0][1]} images/s in the box")
    print(f"box start-up (no torch):     {s:7.2f} s")
    print(f"ratio boxed / bare cold:     {b / c:7.2f}x  (jail overhead)")
    print(f"ratio boxed / bare warm:     {b / w:7.2f}x  (per submission in a batch)")
    if args.batch > 0:
        batch_main(args.batch, images, check_args)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each kind (default: 1)")
    parser.add_argument(
        "--batch",
        type=int,
        default=6,
        help="submissions in the pre-forked batch; 0 skips it (default: 6)",
    )
    parser.add_argument(
        "--batch-only", action="store_true", help="measure only the pre-forked batch (default: off)"
    )
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args())
