"""The cost of the graph-integrity checks per ResNet-20 grading, against the logits alone.

The verified evaluation (stage 2) of the benchmarks' student ResNet-20 on the real CIFAR-10 test
images and their variants, each part timed in CPU seconds of a freshly forked child (as a box
child is), 1 thread:

- the memory estimate (shapes on the ``meta`` device);
- the probe batch's analysis: the run that records shapes, data carried and FLOPs, one
  perturbed run per tensor (effect), two per candidate skip connection, the batch-mixing run;
- the logits of every test image and variant (:func:`graph_logits`), the baseline: what stage 2
  would cost with no check at all;
- the tensors compared with the artifact's and the weights file;

then, on the host, the rules, counts, flags and the public-model containment
(:func:`verified_result`), cold (first call in a process: candidate models built) and warm.
Printed: each figure, the checks' share, and the ratio (checks + logits) / logits. Records the
load average beside the figures.

Usage: ``uv run python benchmarks/bench_integrity.py [--repeat 3]`` (``$GRADER_DATA_DIR``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from bench_stage2_memory import in_child

from grader.assignment import load_assignment
from grader.data import load_dataset
from grader.models.inside import evaluate as stage2
from grader.models.inside.capture import capture
from grader.models.pipeline import evaluate_arguments, verified_result
from grader.models.records import CaptureArgs
from grader.sandbox.inside.tasks import JobContext

HERE = Path(__file__).resolve().parent


def timed(function):
    started = time.process_time()
    result = function()
    return time.process_time() - started, result


def stage_two(artifact: Path, out: Path, images, args) -> dict:
    """Stage 2's parts, as :func:`grader.models.inside.evaluate.evaluate` runs them."""
    ctx = JobContext(artifact, out, {}, images)
    device = torch.device("cpu")
    load, program = timed(lambda: stage2.load_program(artifact, device=device))
    memory, estimate = timed(lambda: stage2.estimate_memory(program))
    batch = stage2.choose_batch(program, args, estimate)
    stream = stage2.image_stream(program, images, args, batch)
    probe = stage2._batch(stage2._take(stream.images, 0, batch), device)
    others = stage2._batch(stage2._take(stream.images, batch, batch), device)
    with torch.inference_mode():
        analysis, _ = timed(lambda: stage2.analyse(program, probe, others, seed=args.seed))
    logits, _ = timed(
        lambda: stage2.graph_logits(
            program, stream.images, batch_size=batch, num_classes=args.num_classes
        )
    )
    record = stage2.EvaluationRecord("ok")
    after, _ = timed(lambda: stage2._after_runs(program, ctx, args, record))
    return {"load": load, "memory estimate": memory, "probe analysis": analysis,
            "logits": logits, "tensor comparison": after, "batch": batch,
            "images": len(stream.images)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (default 3)")
    args = parser.parse_args()
    spec = load_assignment("resnet20").model
    images = load_dataset("cifar10", "test").images
    print(f"load average {os.getloadavg()}; 1 thread; ResNet-20, {len(images)} test images")
    with tempfile.TemporaryDirectory() as tmp:
        work, artifact, out = Path(tmp) / "w", Path(tmp) / "a", Path(tmp) / "o"
        for folder in (work, artifact, out):
            folder.mkdir()
        (work / "model.py").write_text((HERE / "resnet20_student.py").read_text())
        capture(JobContext(work, artifact, {}, None), CaptureArgs("Net", (3, 32, 32), 10))
        eval_args = evaluate_arguments(spec, None, seed=1)
        runs = [in_child(lambda: stage_two(artifact, out, images, eval_args))
                for _ in range(args.repeat)]  # fmt: skip
        record = stage2.evaluate(JobContext(artifact, out, {}, images), eval_args)

        def host() -> dict:
            cold, _ = timed(lambda: verified_result(record, spec))
            warm, _ = timed(lambda: verified_result(record, spec))
            return {"host cold": cold, "host warm": warm}

        hosts = [in_child(host) for _ in range(args.repeat)]
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    median.update({k: statistics.median(h[k] for h in hosts) for k in hosts[0]})
    print(f"batch {median['batch']:.0f} images per run, {median['images']:.0f} images in all")
    for key in ("load", "memory estimate", "probe analysis", "logits", "tensor comparison",
                "host cold", "host warm"):  # fmt: skip
        print(f"  {key:<20} {median[key]:7.3f} CPU-s")
    checks = median["memory estimate"] + median["probe analysis"] + median["tensor comparison"]
    print(
        f"checks in stage 2: {checks:.2f} CPU-s, {checks / median['logits']:.0%} of the logits "
        f"pass; stage 2 / logits alone: {(checks + median['logits']) / median['logits']:.2f}x; "
        f"host: {median['host warm']:.3f} CPU-s warm, {median['host cold']:.2f} cold"
    )


if __name__ == "__main__":
    main()
