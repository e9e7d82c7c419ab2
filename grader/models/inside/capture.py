"""Stage one, the capture (INSIDE a box, in the student's process): build the student's model,
load its weights safely and write it as a graph artifact.

Nothing this stage reports is trusted. The student's code shares the process and may replace
any function here, forge ``capture.json`` or write any artifact it likes: the artifact is only
data that the verified evaluation checks and runs itself, and the report only shapes messages
(why a model could not be built, the layer shapes it produced on a dummy batch).
"""

from __future__ import annotations

import inspect
import types
from typing import Any

import torch
from torch import nn

from grader.models.entry import accepted_names, missing_entry_message
from grader.models.inside.artifact import GRAPH_FILE, TRAIN_GRAPH_FILE
from grader.models.inside.export import NotExportable, export_model, write_artifact, write_tensors
from grader.models.inside.transforms import exportable_transforms
from grader.models.inside.weights import WeightsError, apply_state_dict, load_state_dict
from grader.models.records import CAPTURE_REPORT, CaptureArgs, CaptureReport
from grader.sandbox.inside.student import StudentError, describe_error, import_student_module
from grader.sandbox.inside.tasks import JobContext
from grader.sandbox.protocol import parse_record, write_record

DUMMY_BATCH = 2
WRAPPED = "model."
DATASET_NAMES = {(3, 32, 32): "CIFAR-10", (1, 28, 28): "MNIST"}
SHAPE_ERRORS = (
    "Calculated output size", "Output size is too small", "Calculated padded input size",
    "mat1 and mat2 shapes cannot be multiplied", "size mismatch", "is invalid for input of size",
    "Kernel size can't be greater", "channels, but got", "must match the size of tensor",
    "Expected input batch_size", "Given input size", "shape '[",
)  # fmt: skip
"""Words of PyTorch's errors when a model gets images of a size it was not built for."""


class Preprocessed(nn.Module):
    """The student's ``preprocess(x)`` followed by the model, captured as one graph."""

    def __init__(self, model: nn.Module, preprocess) -> None:
        super().__init__()
        self.model = model
        self.preprocess = preprocess

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.preprocess(x))


def capture_task(ctx: JobContext) -> None:
    """Build, load, probe and export the student's model; write the artifact and the report."""
    args = parse_record(ctx.args, CaptureArgs, name="capture arguments")
    report = capture(ctx, args)
    write_record(ctx.out / CAPTURE_REPORT, report)


def load_student_model(ctx: JobContext, args: CaptureArgs) -> tuple[nn.Module, nn.Module]:
    """The student's model with its weights in eval mode, and the module that is graded (the
    model after ``preprocess`` when model.py defines one); StudentError says what is wrong."""
    module = import_student_module(ctx.work)
    torch.manual_seed(0)  # the same initial weights on every run (experiments train them)
    name, model = build_student_model(module, args.entry, args.aliases)
    if not isinstance(model, nn.Module):
        raise StudentError(f"{name} returned {type(model).__name__}, not a torch.nn.Module")
    if args.weights is not None:
        try:
            state = load_state_dict(ctx.work / args.weights, expected=model.state_dict().keys())
            apply_state_dict(model, state, args.weights)
        except WeightsError as exc:
            raise StudentError(str(exc)) from None
    model.eval()
    preprocess = getattr(module, "preprocess", None)
    return model, Preprocessed(model, preprocess) if callable(preprocess) else model


def build_student_model(
    module: types.ModuleType, entry: str = "Net", aliases: tuple[str, ...] = ()
) -> tuple[str, Any]:
    """Call the first of the accepted names (the entry, its aliases, ``build_model``) that
    ``module`` defines, with no arguments; returns (name, what it returned)."""
    names = accepted_names(entry, aliases)
    name = next((n for n in names if callable(getattr(module, n, None))), None)
    if name is None:
        classes, functions = defined_models(module)
        raise StudentError(missing_entry_message("model.py", entry, aliases, classes, functions))
    try:
        return name, getattr(module, name)()
    except MemoryError:
        raise
    except RecursionError as exc:
        raise StudentError(
            f"building the model recursed too deeply: modules nested thousands of levels deep "
            f"cannot be graded ({exc})"
        ) from exc
    except BaseException as exc:  # student code: report its failure, never crash the check
        raise StudentError(f"building the model failed: {describe_error(exc)}") from exc


def defined_models(module: types.ModuleType) -> tuple[list[str], list[str]]:
    """The ``nn.Module`` classes ``module`` defines or imports from the submission, and its
    own functions that take no arguments."""
    classes, functions = [], []
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        origin = getattr(value, "__module__", "") or ""
        if isinstance(value, type) and issubclass(value, nn.Module):
            if not origin.startswith(("torch", "torchvision")):
                classes.append(name)
        elif inspect.isfunction(value) and origin == module.__name__:
            required = [
                p
                for p in inspect.signature(value).parameters.values()
                if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
            if not required:
                functions.append(name)
    return classes, functions


def capture(ctx: JobContext, args: CaptureArgs) -> CaptureReport:
    """The capture itself; every failure of the student's code becomes the report's message."""
    try:
        model, graded = load_student_model(ctx, args)
        dummy_forward(graded, tuple(args.input_shape), args.num_classes)
        prefix = WRAPPED if graded is not model else ""
        try:
            with exportable_transforms():
                program = export_model(graded, tuple(args.input_shape))
            tensors = write_artifact(program, ctx.out, graph_file=GRAPH_FILE, strip_prefix=prefix)
            if args.train_graph:
                graded.train()
                with exportable_transforms():
                    training = export_model(graded, tuple(args.input_shape))
                write_artifact(
                    training,
                    ctx.out,
                    graph_file=TRAIN_GRAPH_FILE,
                    strip_prefix=prefix,
                    tensors=tensors,
                )
                graded.eval()
            write_tensors(tensors, ctx.out)
        except NotExportable as exc:
            return CaptureReport("not_exportable", str(exc))
    except StudentError as exc:
        return CaptureReport("invalid", str(exc))
    except MemoryError:
        return CaptureReport("invalid", "the model ran out of memory inside the sandbox")
    except RecursionError as exc:
        return CaptureReport("invalid", f"the model recursed too deeply ({exc})")
    return CaptureReport("exported")


def dummy_forward(model: nn.Module, input_shape: tuple[int, ...], num_classes: int) -> None:
    """Run a dummy batch so that a broken model fails here, with a message naming the last of
    the student's layers that ran and its output shape; StudentError says what is wrong."""
    x = torch.rand((DUMMY_BATCH, *input_shape), generator=torch.Generator().manual_seed(0))
    names = {id(m): n for n, m in model.named_modules()}
    last: list[str] = []

    def record(module: nn.Module, _inputs, output) -> None:
        shape = "x".join(map(str, output.shape[1:])) if isinstance(output, torch.Tensor) else "-"
        name = names.get(id(module), "?").removeprefix(WRAPPED)
        last[:] = [f"{name} ({type(module).__name__}, output {shape})"]

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    hooks = [m.register_forward_hook(record) for m in leaves]
    try:
        with torch.no_grad():
            out = model(x)
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:  # the student's forward code
        after = f"; the last layer that ran was {last[0]}" if last else ""
        raise StudentError(
            f"the forward pass on a dummy batch of shape {tuple(x.shape)} failed: "
            f"{describe_error(exc)}{after}{input_size_hint(exc, input_shape)}"
        ) from exc
    finally:
        for hook in hooks:
            hook.remove()
    if not isinstance(out, torch.Tensor):
        raise StudentError(f"forward returned {type(out).__name__}, not a tensor of logits")
    if tuple(out.shape) != (DUMMY_BATCH, num_classes):
        raise StudentError(
            f"the model returns shape {tuple(out.shape)} for input {tuple(x.shape)}; expected "
            f"{(DUMMY_BATCH, num_classes)} (one row of {num_classes} class scores per image)"
        )


def input_size_hint(exc: BaseException, input_shape: tuple[int, ...]) -> str:
    """What the grader feeds and how ``preprocess`` adapts it, when ``exc`` is a size error."""
    if not any(marker in str(exc) for marker in SHAPE_ERRORS):
        return ""
    size = "x".join(map(str, input_shape))
    dataset = DATASET_NAMES.get(tuple(input_shape), "the assignment's")
    channels, height = input_shape[0], input_shape[-1]
    return (
        f". The grader feeds {dataset} images of {size} (batches of shape (N, {channels}, "
        f"{height}, {height}), values in [0, 1]); a model built for another size fails like "
        f"this. Build the layers for {height}x{height} inputs (nn.Linear's in_features, or "
        "nn.AdaptiveAvgPool2d(1) before the classifier), or resize in model.py: def "
        "preprocess(x): return torch.nn.functional.interpolate(x, size=(224, 224), "
        "mode='bilinear', align_corners=False)"
    )


def warm_up(_spec: dict) -> None:
    """Export a small model once, so that children skip the exporter's first-call cost."""
    import tempfile
    from pathlib import Path

    class WarmUp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)
            self.fc = nn.Linear(4, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.bn(self.conv(x)))
            y = nn.functional.max_pool2d(y + y, 2)
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))

    model = WarmUp().eval()
    dummy_forward(model, (3, 32, 32), 10)
    with tempfile.TemporaryDirectory() as tmp:
        tensors = write_artifact(export_model(model, (3, 32, 32)), Path(tmp), graph_file=GRAPH_FILE)
        write_tensors(tensors, Path(tmp))
