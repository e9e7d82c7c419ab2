"""The model check: what runs inside the sandbox for ``grader sanity`` and model grading.

:func:`check_task` builds the student's model, loads its weights, and reports the layer table
(torchinfo), parameter counts, FLOPs (``torch.utils.flop_counter``), the output shape on a dummy
batch, NaN/Inf and eval-mode determinism, each assignment rule as pass/fail with its reason, an
architecture fingerprint match against public models, and -- when test images are given -- the
logits on them with the throughput. Labels never reach this code.

Model convention: the model receives float32 images in [0, 1] of shape (B, C, H, W); put any
normalisation inside the model, or define ``preprocess(x)`` in ``model.py``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from grader.fingerprint import fingerprint, match_public_model
from grader.harness import StudentError, TaskContext, describe_error
from grader.modelgrade import Check
from grader.weights import WeightsError, apply_state_dict, load_state_dict

DUMMY_BATCH = 2
NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)


class _Report:
    def __init__(self) -> None:
        self.checks: list[Check] = []
        self.errors: list[str] = []
        self.data: dict[str, Any] = {
            "total_params": None, "trainable_params": None, "output_shape": None,
            "flops": None, "layers": [], "fingerprint": None, "fingerprint_match": None,
            "flags": [], "images_per_s": None, "weights_loaded": False,
        }  # fmt: skip

    def add(self, name: str, passed: bool, message: str, fatal: bool = False) -> None:
        self.checks.append(Check(name, passed, message))
        if fatal and not passed:
            self.errors.append(message)

    def result(self) -> dict[str, Any]:
        return {**self.data, "checks": [asdict(c) for c in self.checks], "errors": self.errors}


def check_task(ctx: TaskContext) -> dict[str, Any]:
    """Check the student's model; with ``ctx.inputs["images"]`` also save its ``logits``.

    ``ctx.args`` holds the assignment's ``ModelSpec`` fields plus ``require_weights`` (bool).
    """
    spec = ctx.args
    report = _Report()
    try:
        model = ctx.build_model(spec.get("entry", "Net"))
    except StudentError as exc:
        report.add("build", False, str(exc), fatal=True)
        return report.result()
    if not isinstance(model, nn.Module):
        report.add("build", False, f"{spec.get('entry')} returned {type(model).__name__}, "
                   "not a torch.nn.Module", fatal=True)  # fmt: skip
        return report.result()
    report.add("build", True, f"built {type(model).__name__} from model.py")
    _load_weights(ctx, model, report, require=bool(spec.get("require_weights")))
    model.eval()
    report.data["total_params"] = sum(p.numel() for p in model.parameters())
    report.data["trainable_params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    shape = tuple(spec["input_shape"])
    trace = _dummy_forward(model, shape, int(spec.get("num_classes", 10)), report)
    if trace is not None:
        _layer_table(model, shape, report)
        _flops(model, shape, report)
        _rules(model, spec, trace, report)
    _param_rules(model, spec, report)
    if not report.errors:  # only a working model is worth comparing with public ones
        _fingerprint(model, spec, report)
    images = ctx.inputs.get("images")
    if images is not None and not report.errors:
        logits = _evaluate(ctx, model, images, spec, report)
        if logits is not None:
            ctx.save_array("logits", logits)
    return report.result()


# --- steps ---------------------------------------------------------------------------------------


def _load_weights(ctx: TaskContext, model: nn.Module, report: _Report, *, require: bool) -> None:
    path = ctx.weights_path
    if path is None:
        if require:
            report.add("weights", False, "no weights file (.pt, .pth or .safetensors) in the "
                       "submission", fatal=True)  # fmt: skip
        else:
            report.add("weights", True, "no weights file given: checked with the initial weights")
        return
    try:
        apply_state_dict(model, load_state_dict(path), path.name)
    except WeightsError as exc:
        report.add("weights", False, str(exc), fatal=True)
        return
    report.data["weights_loaded"] = True
    report.add("weights", True, f"loaded {path.name}")


@dataclass
class _Trace:
    leaf_order: list[nn.Module]
    residual_adds: int


class _AddRecorder(torch.overrides.TorchFunctionMode):
    """Counts element-wise additions of two same-shaped feature maps (skip connections)."""

    ADDS = {torch.add, torch.Tensor.add, torch.Tensor.add_, torch.Tensor.__add__,
            torch.Tensor.__iadd__, torch.Tensor.__radd__}  # fmt: skip

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.ADDS and len(args) >= 2:
            a, b = args[0], args[1]
            if (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
                    and not isinstance(a, nn.Parameter) and not isinstance(b, nn.Parameter)
                    and a.dim() == 4 and a.shape == b.shape):  # fmt: skip
                self.count += 1
        return func(*args, **kwargs)


def _dummy_forward(
    model: nn.Module, shape: tuple[int, ...], num_classes: int, report: _Report
) -> _Trace | None:
    x = torch.rand((DUMMY_BATCH, *shape), generator=torch.Generator().manual_seed(0))
    order: list[nn.Module] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, _o: order.append(mod))
        for m in model.modules()
        if next(m.children(), None) is None
    ]
    recorder = _AddRecorder()
    try:
        with torch.no_grad(), recorder:
            out = model(x)
        with torch.no_grad():
            again = model(x)
    except StudentError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # student forward code
        report.add("forward", False, f"forward pass on a dummy batch {tuple(x.shape)} failed: "
                   f"{describe_error(exc)}", fatal=True)  # fmt: skip
        return None
    finally:
        for h in hooks:
            h.remove()
    if not isinstance(out, torch.Tensor):
        report.add("output_shape", False, f"forward returned {type(out).__name__}, not a tensor "
                   "of logits", fatal=True)  # fmt: skip
        return None
    report.data["output_shape"] = list(out.shape)
    expected = (DUMMY_BATCH, num_classes)
    report.add("output_shape", tuple(out.shape) == expected,
               f"output shape {tuple(out.shape)} for input {tuple(x.shape)}; expected {expected}",
               fatal=True)  # fmt: skip
    finite = bool(torch.isfinite(out).all())
    report.add("finite", finite, "all outputs finite" if finite else
               "the output holds NaN or Inf values", fatal=True)  # fmt: skip
    same = isinstance(again, torch.Tensor) and torch.equal(out, again)
    report.add("deterministic", same, "two eval-mode passes give identical outputs" if same else
               "two eval-mode passes on the same input differ: remove randomness (dropout in "
               "forward, torch.rand) from eval mode")  # fmt: skip
    return _Trace(order, recorder.count)


def _layer_table(model: nn.Module, shape: tuple[int, ...], report: _Report) -> None:
    from torchinfo import summary

    names = {id(m): n for n, m in model.named_modules()}
    try:
        stats = summary(model, input_size=(1, *shape), depth=20, verbose=0, mode="eval",
                        device="cpu")  # fmt: skip
    except Exception as exc:  # torchinfo on student code: the table is optional, say why
        report.add("layer_table", False, f"layer table unavailable: {describe_error(exc)}")
        return
    report.data["layers"] = [
        {
            "name": names.get(info.layer_id, info.var_name),
            "type": info.class_name,
            "depth": info.depth,
            "output_shape": list(info.output_size) if isinstance(info.output_size, list) else [],
            "params": sum(p.numel() for p in info.module.parameters()),
        }
        for info in stats.summary_list
    ]


def _flops(model: nn.Module, shape: tuple[int, ...], report: _Report) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros((1, *shape)))
    report.data["flops"] = int(counter.get_total_flops())


def _rules(model: nn.Module, spec: dict[str, Any], trace: _Trace, report: _Report) -> None:
    rules = spec.get("rules") or ()
    if "batchnorm_after_conv" in rules:
        names = {id(m): n for n, m in model.named_modules()}
        order = trace.leaf_order
        bad = [
            names.get(id(m), type(m).__name__)
            for i, m in enumerate(order)
            if isinstance(m, nn.Conv2d)
            and not (i + 1 < len(order) and isinstance(order[i + 1], nn.BatchNorm2d))
        ]
        convs = sum(isinstance(m, nn.Conv2d) for m in order)
        if bad:
            message = f"convolution(s) not followed by BatchNorm2d: {', '.join(bad[:5])}"
        elif convs:
            message = f"every one of {convs} convolutions is followed by BatchNorm2d"
        else:
            message = "the model has no Conv2d layer"
        report.add("batchnorm_after_conv", convs > 0 and not bad, message)
    if "no_batchnorm" in rules:
        norms = [n for n, m in model.named_modules() if isinstance(m, NORM_TYPES)]
        listing = ", ".join(norms[:5])
        report.add("no_batchnorm", not norms, "no normalisation layers" if not norms else
                   f"normalisation layers are not allowed here: {listing}")  # fmt: skip
    if "residual" in rules:
        n = trace.residual_adds
        message = (f"{n} skip connection(s) (feature map additions) found" if n
                   else "no skip connection: no feature map is added to another one")  # fmt: skip
        report.add("residual", n > 0, message)


def _param_rules(model: nn.Module, spec: dict[str, Any], report: _Report) -> None:
    total = report.data["total_params"]
    exact, most = spec.get("params_exact"), spec.get("params_max")
    if exact is not None:
        if total == exact:
            report.add("params_exact", True, f"{total:,} parameters, as required")
        else:
            diff = _reference_difference(model, spec.get("reference"))
            report.add("params_exact", False,
                       f"{total:,} parameters; the assignment requires exactly {exact:,}"
                       + (f". {diff}" if diff else ""))  # fmt: skip
    if most is not None:
        report.add("params_max", total <= most,
                   f"{total:,} parameters; the limit is {most:,}")  # fmt: skip
    flops, max_flops = report.data["flops"], spec.get("max_flops")
    if max_flops is not None and flops is not None:
        report.add("max_flops", flops <= max_flops, f"{flops:,} FLOPs per image; the limit is "
                   f"{max_flops:,}")  # fmt: skip


def param_table(model: nn.Module) -> list[tuple[str, str, list[tuple[int, ...]], int]]:
    """(name, type, parameter shapes, count) for every module that owns parameters, in order."""
    rows = []
    for name, module in model.named_modules():
        params = list(module.parameters(recurse=False))
        if params:
            shapes = [tuple(p.shape) for p in params]
            rows.append((name, type(module).__name__, shapes, sum(p.numel() for p in params)))
    return rows


def _describe_row(row: tuple[str, str, list[tuple[int, ...]], int]) -> str:
    name, kind, shapes, count = row
    return f"{name} ({kind}, {' + '.join('x'.join(map(str, s)) for s in shapes)} = {count:,})"


def layer_difference(student: nn.Module, reference: nn.Module) -> str | None:
    """A sentence naming the first layer whose parameters differ from ``reference``'s."""
    mine, theirs = param_table(student), param_table(reference)
    for ours, ref in zip(mine, theirs, strict=False):
        if (ours[1], ours[2]) != (ref[1], ref[2]):
            return f"layer {_describe_row(ours)} differs from the reference's {_describe_row(ref)}"
    if len(mine) > len(theirs):
        return f"extra layer {_describe_row(mine[len(theirs)])} not in the reference"
    if len(mine) < len(theirs):
        return f"missing layer: the reference has {_describe_row(theirs[len(mine)])}"
    return None


def _reference_difference(model: nn.Module, reference: str | None) -> str | None:
    if not reference:
        return None
    try:
        from reference.models import get_model

        with torch.device("meta"):
            ref = get_model(reference)
    except (ImportError, ValueError, TypeError, RuntimeError):
        return None  # no reference model here: the totals alone are reported
    return layer_difference(model, ref)


def _fingerprint(model: nn.Module, spec: dict[str, Any], report: _Report) -> None:
    report.data["fingerprint"] = fingerprint(model)
    match = match_public_model(model, int(spec.get("num_classes", 10)))
    report.data["fingerprint_match"] = match
    if match and match.startswith("torchvision "):
        report.data["flags"].append(f"unmodified public model: {match}")
    elif match and match != f"reference {spec.get('reference')}":
        report.data["flags"].append(f"same architecture as {match}")


def _evaluate(
    ctx: TaskContext, model: nn.Module, images: np.ndarray, spec: dict[str, Any], report: _Report
) -> np.ndarray | None:
    preprocess = getattr(ctx.module, "preprocess", None)
    batch = max(1, int(spec.get("batch_size", 256)))
    num_classes = int(spec.get("num_classes", 10))
    chunks = []
    started = time.perf_counter()
    try:
        with torch.inference_mode():
            for start in range(0, len(images), batch):
                x = torch.from_numpy(images[start : start + batch]).float().div_(255.0)
                if callable(preprocess):
                    x = preprocess(x)
                out = model(x)
                if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(x), num_classes):
                    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                    report.add("test_inference", False, f"on test images {start}..{start + len(x)}"
                               f" the model returned {got}", fatal=True)  # fmt: skip
                    return None
                chunks.append(out.float().cpu().numpy())
    except MemoryError:
        raise
    except Exception as exc:  # student forward code on real images
        report.add("test_inference", False, f"inference on the test images failed: "
                   f"{describe_error(exc)}", fatal=True)  # fmt: skip
        return None
    elapsed = time.perf_counter() - started
    logits = np.concatenate(chunks) if chunks else np.zeros((0, num_classes), np.float32)
    report.data["images_per_s"] = round(len(images) / elapsed, 1) if elapsed > 0 else None
    finite = bool(np.isfinite(logits).all())
    report.add("test_inference", finite,
               f"logits for {len(logits)} test images ({report.data['images_per_s']} images/s)"
               if finite else "the logits on the test images hold NaN or Inf",
               fatal=True)  # fmt: skip
    return logits if finite else None
