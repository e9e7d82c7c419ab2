"""Graph formats for the verified evaluation: torch.export artifact vs ONNX, on a ResNet-20.

The capture stage could hand the verified evaluation either of two graphs. This measures, for
the student's ResNet-20 on the real CIFAR-10 test images (1 thread, batches of 256):

- capture: ``torch.export`` + writing the grader's artifact, vs ``torch.onnx.export``;
- load: reading and checking the artifact (:func:`load_program`) vs ``onnx.load`` + an ONNX
  Runtime session;
- run: the logits of every test image by the grader's interpreter over the artifact, by
  ``ExportedProgram.module()``, by ONNX Runtime, and by eager PyTorch (the baseline);

and prints each run as a ratio against eager, plus whether the logits agree.

Usage: ``uv run python benchmarks/bench_graph_runtime.py [--repeat 3]`` (``$GRADER_DATA_DIR``).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from grader.data import load_dataset
from grader.models.inside.artifact import GRAPH_FILE, load_program
from grader.models.inside.export import export_model, write_artifact, write_tensors

HERE = Path(__file__).resolve().parent
BATCH = 256


def student_model() -> torch.nn.Module:
    """The benchmarks' student ResNet-20, eval mode."""
    spec = importlib.util.spec_from_file_location("student", HERE / "resnet20_student.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    return module.Net().eval()


def timed(function, repeat: int) -> tuple[float, object]:
    """Median seconds of ``repeat`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def batches(images: np.ndarray):
    for start in range(0, len(images), BATCH):
        yield torch.from_numpy(np.array(images[start : start + BATCH])).float().div_(255.0)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (default: 3)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    images = load_dataset("cifar10", "test").images
    model = student_model()
    export_model(model, (3, 32, 32))  # the exporter's first call in a process is slower

    def run_with(call):
        with torch.inference_mode():
            return np.concatenate([call(x).numpy() for x in batches(images)])

    eager_s, eager = timed(lambda: run_with(model), args.repeat)
    rows = [("eager PyTorch (baseline)", eager_s, eager)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        def capture_artifact():
            program = export_model(model, (3, 32, 32))
            write_tensors(write_artifact(program, folder, graph_file=GRAPH_FILE), folder)
            return program

        export_s, exported = timed(capture_artifact, args.repeat)
        load_s, program = timed(lambda: load_program(folder, device=torch.device("cpu")),
                                args.repeat)  # fmt: skip
        run_s, ours = timed(lambda: run_with(program.logits), args.repeat)
        rows.append(("grader artifact interpreter", run_s, ours))
        module = exported.module()
        module_s, theirs = timed(lambda: run_with(module), args.repeat)
        rows.append(("ExportedProgram.module()", module_s, theirs))
        onnx_row = onnx_figures(model, folder, images, args.repeat)
    print(f"ResNet-20 (student model.py), {len(images)} real CIFAR-10 test images, 1 thread")
    print(f"capture: torch.export + artifact {export_s:.3f} s", end="")
    if onnx_row is not None:
        print(f"; torch.onnx.export {onnx_row['export_s']:.3f} s")
        print(f"load:    artifact {load_s:.3f} s; onnx + ORT session {onnx_row['load_s']:.3f} s")
        rows.append(("ONNX Runtime", onnx_row["run_s"], onnx_row["logits"]))
    else:
        print("\n(onnx / onnxruntime not installed: pip install 'grader[bench]')")
        print(f"load:    artifact {load_s:.3f} s")
    for name, seconds, logits in rows:
        close = np.allclose(logits, eager, atol=1e-4, rtol=1e-4)
        agree = "equal" if np.array_equal(logits, eager) else "close" if close else "DIFFER"
        print(
            f"run {name:<28} {seconds:6.3f} s  {eager_s / seconds:5.2f}x eager speed  "
            f"logits {agree}"
        )


def onnx_figures(model, folder: Path, images: np.ndarray, repeat: int) -> dict | None:
    """Export, load and run the model with ONNX and ONNX Runtime (None when not installed)."""
    try:
        import onnx
        import onnxruntime as ort
    except ImportError:
        return None
    path = folder / "model.onnx"
    example = torch.rand(2, 3, 32, 32)

    def export():
        torch.onnx.export(model, (example,), str(path), dynamo=True, input_names=["x"],
                          dynamic_shapes={"x": {0: torch.export.Dim("batch")}})  # fmt: skip

    export_s, _ = timed(export, repeat)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1

    def load():
        onnx.checker.check_model(onnx.load(str(path)))
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    load_s, session = timed(load, repeat)

    def run():
        return np.concatenate([session.run(None, {"x": x.numpy()})[0] for x in batches(images)])

    run_s, logits = timed(run, repeat)
    return {"export_s": export_s, "load_s": load_s, "run_s": run_s, "logits": logits}


if __name__ == "__main__":
    main()
