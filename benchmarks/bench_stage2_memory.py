"""Peak memory and CPU of the verified evaluation (stage 2), against eager PyTorch.

For ResNet-20, VGG-16 (the ``vgg16-cifar10`` spec's model) and a MobileNetV2-size network, the
model is captured once as a graph artifact; then, each in a freshly forked process (as a box
child is), the shipped stage 2 (:func:`grader.models.inside.evaluate.evaluate`, with the image
variants where the spec asks for them) and, as the baseline, eager PyTorch on the same test
images in batches of the spec's size. Printed per model: the peak resident memory of each
(``ru_maxrss`` of the child, less that of a child that does nothing), the CPU seconds of each, and
their ratios. Needs ``$GRADER_DATA_DIR``; records the load average beside the figures.

Usage: ``uv run python benchmarks/bench_stage2_memory.py [--models resnet20,vgg16,mobilenetv2]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import torch

from grader.assignment import load_assignment
from grader.data import load_dataset
from grader.models.inside.capture import capture
from grader.models.inside.evaluate import evaluate
from grader.models.records import CaptureArgs, EvaluateArgs
from grader.sandbox.inside.tasks import JobContext

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MODELS = {
    # name: (model.py source, entry, assignment whose batch size, limits and variants apply)
    "resnet20": ((HERE / "resnet20_student.py").read_text(), "Net", "resnet20"),
    "vgg16": (
        "from reference.models import get_model\n\ndef build_model():\n"
        "    return get_model('vgg16_cifar')\n",
        "build_model",
        "vgg16-cifar10",
    ),
    "mobilenetv2": (
        (REPO / "tests" / "grader" / "students" / "mobilenet_v2.py").read_text(),
        "Net",
        "resnet20",
    ),
}


def in_child(function) -> dict:
    """Run ``function()`` (returning a dict) in a forked child with one thread; its result plus
    the child's peak RSS (MB) and CPU seconds."""
    with tempfile.NamedTemporaryFile("r", suffix=".json") as box:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                torch.set_num_threads(1)
                result = function()
                usage = resource.getrusage(resource.RUSAGE_SELF)
                result.update(rss_mb=usage.ru_maxrss / 1024, cpu_s=usage.ru_utime + usage.ru_stime)
                Path(box.name).write_text(json.dumps(result))
                code = 0
            finally:
                os._exit(code)
        os.waitpid(pid, 0)
        return json.loads(Path(box.name).read_text())


def eager(model: torch.nn.Module, images: np.ndarray, batch: int) -> dict:
    """Logits of every image by the eager model, the baseline."""
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            x = torch.from_numpy(np.array(images[start : start + batch])).float().div_(255.0)
            model(x)
    return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="default: all three")
    args = parser.parse_args()
    images = load_dataset("cifar10", "test").images
    idle = in_child(lambda: {})
    print(f"load average {os.getloadavg()}; {len(images)} test images; 1 thread")
    print(f"idle child: {idle['rss_mb']:.0f} MB RSS")
    for name in args.models.split(","):
        code, entry, assignment = MODELS[name]
        spec = load_assignment(assignment).model
        with tempfile.TemporaryDirectory() as tmp:
            work, art, out = Path(tmp) / "w", Path(tmp) / "a", Path(tmp) / "o"
            for folder in (work, art, out):
                folder.mkdir()
            (work / "model.py").write_text(textwrap.dedent(code))
            report = capture(JobContext(work, art, {}, None), CaptureArgs(entry, (3, 32, 32), 10))
            if report.status != "exported":
                raise SystemExit(f"{name}: {report.message}")
            eval_args = EvaluateArgs(
                num_classes=10, batch_size=spec.batch_size, robustness=spec.robustness
            )

            def staged(art=art, out=out, eval_args=eval_args) -> dict:
                record = evaluate(JobContext(art, out, {}, images), eval_args)
                used = getattr(record, "batch_size", None) or eval_args.batch_size
                return {"status": record.status, "message": record.message[:200], "batch": used}

            ours = in_child(staged)
            (work / "run.py").write_text("")
            import importlib.util

            module_spec = importlib.util.spec_from_file_location("student", work / "model.py")
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            model = getattr(module, entry)().eval()
            base = in_child(lambda model=model, b=spec.batch_size: eager(model, images, b))
        extra = {k: ours[k] for k in ("status", "message") if ours.get(k) and ours[k] != "ok"}
        ours_mb, base_mb = ours["rss_mb"] - idle["rss_mb"], base["rss_mb"] - idle["rss_mb"]
        print(
            f"{name}: stage 2 peak {ours_mb:.0f} MB, {ours['cpu_s']:.1f} CPU-s "
            f"(variants {'on' if spec.robustness else 'off'}, batch {ours['batch']}) | "
            f"eager {base_mb:.0f} MB, {base['cpu_s']:.1f} CPU-s (no variants, batch "
            f"{spec.batch_size}) | "
            f"ratio memory {ours_mb / max(base_mb, 1):.2f}x {extra}"
        )


if __name__ == "__main__":
    main()
