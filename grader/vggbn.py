"""Grading a student's ``VGG_BatchNorm`` (assignment ``vgg-bn``).

Two parts:

1. **Structure**: the layers the model actually runs (forward hooks on a dummy batch) must have the
   convolution and linear shapes of the reference VGG-A, and every ``Conv2d`` must be followed by a
   ``BatchNorm2d`` over its output channels; a failure names the layer.
2. **Loss landscape**: inside the sandbox the student's class is trained from one initialisation at
   each learning rate of a short schedule on the real CIFAR-10 training images; outside, the
   reference VGG-A without BN runs the same schedule. The report gives both loss-band widths (per
   step, max - min over the learning rates, averaged) and whether batch norm narrowed the band, with
   a plot.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from grader.assignment import Assignment

TASK = "reference.bn_experiments:student_band_task"
PLOT_NAME = "vggbn_loss_band.png"
REPORT_NAME = "vggbn_report.json"


class VggBnError(ValueError):
    """The submission or the spec cannot be graded as a VGG_BatchNorm; the message says why."""


@dataclass(frozen=True)
class LayerInfo:
    """One executed layer: its name in the model, its type and its sizes."""

    name: str
    kind: str
    """Class name: ``Conv2d``, ``BatchNorm2d``, ``Linear``, ``ReLU``, ..."""
    in_size: int | None = None
    """Input channels (conv), input features (linear) or ``num_features`` (batch norm)."""
    out_size: int | None = None

    def describe(self) -> str:
        """``features.3 (Conv2d 64->128)``."""
        if self.in_size is None:
            return f"{self.name} ({self.kind})"
        if self.kind.startswith("BatchNorm"):
            return f"{self.name} ({self.kind} {self.in_size})"
        return f"{self.name} ({self.kind} {self.in_size}->{self.out_size})"


@dataclass(frozen=True)
class StructureCheck:
    """One structure rule and its outcome."""

    rule: str
    passed: bool
    message: str


@dataclass
class VggBnReport:
    """The outcome of grading one VGG_BatchNorm submission."""

    submission: str
    status: str
    """``ok``, or the sandbox status (``invalid``, ``error``, ``timeout``, ``killed``)."""
    message: str = ""
    checks: list[StructureCheck] = field(default_factory=list)
    lrs: tuple[float, ...] = ()
    steps: int = 0
    student_band_width: float | None = None
    """Mean over steps of max - min training loss over the learning rates, student's model."""
    reference_band_width: float | None = None
    """The same for the reference VGG-A without batch norm."""
    narrowed: bool = False
    """Whether the student's BN model has the narrower loss band."""
    plot: Path | None = None
    wall_s: float = 0.0

    @property
    def structure_ok(self) -> bool:
        """Every structure rule passed."""
        return bool(self.checks) and all(c.passed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form of the report."""
        data = asdict(self)
        data["plot"] = str(self.plot) if self.plot else None
        data["structure_ok"] = self.structure_ok
        return data


# --- structure ------------------------------------------------------------------------------------


def executed_layers(model: nn.Module, input_shape: Sequence[int]) -> list[LayerInfo]:
    """The leaf modules ``model`` runs on a batch of two zero images, in the order they run."""
    import torch
    from torch import nn

    names = {module: name for name, module in model.named_modules()}
    seen: list[LayerInfo] = []

    def record(module: nn.Module, _inputs: Any, _output: Any) -> None:
        name = names.get(module, "?")
        if isinstance(module, nn.Conv2d):
            seen.append(LayerInfo(name, "Conv2d", module.in_channels, module.out_channels))
        elif isinstance(module, nn.Linear):
            seen.append(LayerInfo(name, "Linear", module.in_features, module.out_features))
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            kind = type(module).__name__
            seen.append(LayerInfo(name, kind, module.num_features, module.num_features))
        else:
            seen.append(LayerInfo(name, type(module).__name__))

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(record) for m in leaves]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(2, *input_shape))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return seen


def check_structure(
    student: Sequence[LayerInfo], reference: Sequence[LayerInfo]
) -> list[StructureCheck]:
    """Compare the executed layers of a student's VGG_BatchNorm with the reference VGG-A."""
    checks = [
        _same_shapes("conv_shapes", "Conv2d", student, reference),
        _same_shapes("linear_shapes", "Linear", student, reference),
    ]
    missing = []
    for i, layer in enumerate(student):
        if layer.kind != "Conv2d":
            continue
        following = student[i + 1] if i + 1 < len(student) else None
        if (
            following is None
            or following.kind != "BatchNorm2d"
            or following.in_size != layer.out_size
        ):
            after = following.describe() if following else "nothing"
            missing.append(f"{layer.describe()} is followed by {after}")
    convs = sum(1 for layer in student if layer.kind == "Conv2d")
    if not convs:
        checks.append(StructureCheck("batchnorm_after_conv", False, "the model runs no Conv2d"))
    elif missing:
        checks.append(
            StructureCheck(
                "batchnorm_after_conv",
                False,
                "a BatchNorm2d over the conv's output channels must follow every Conv2d: "
                + "; ".join(missing),
            )
        )
    else:
        checks.append(
            StructureCheck(
                "batchnorm_after_conv",
                True,
                f"all {convs} Conv2d layers are followed by BatchNorm2d",
            )
        )
    return checks


def _same_shapes(
    rule: str, kind: str, student: Sequence[LayerInfo], reference: Sequence[LayerInfo]
) -> StructureCheck:
    mine = [layer for layer in student if layer.kind == kind]
    theirs = [layer for layer in reference if layer.kind == kind]
    for index, (a, b) in enumerate(zip(mine, theirs, strict=False)):
        if (a.in_size, a.out_size) != (b.in_size, b.out_size):
            return StructureCheck(
                rule,
                False,
                f"{kind} #{index + 1} {a.describe()} should be {b.in_size}->{b.out_size} "
                "as in VGG-A",
            )
    if len(mine) != len(theirs):
        return StructureCheck(
            rule, False, f"the model runs {len(mine)} {kind} layers; VGG-A has {len(theirs)}"
        )
    return StructureCheck(rule, True, f"{len(mine)} {kind} layers with the shapes of VGG-A")


def reference_layers(input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10):
    """The executed layers of the reference VGG-A-BN."""
    from reference.models.vgg import vgg_a

    return executed_layers(vgg_a(batch_norm=True, num_classes=num_classes), input_shape)


# --- grading --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """The short training schedule both models run for the loss-band comparison."""

    lrs: tuple[float, ...] = (2e-3, 1e-4)
    steps: int = 30
    batch_size: int = 32
    seed: int = 0
    reference_width: float = 1.0
    """Channel multiplier of the reference VGG-A (1.0: the shapes students must use)."""


def grade_vgg_bn(
    folder: Path,
    spec: Assignment,
    *,
    data_dir: Path | None = None,
    out_dir: Path,
    schedule: Schedule = Schedule(),
    slot: int = 0,
) -> VggBnReport:
    """Grade the VGG_BatchNorm in ``folder``: structure rules and the loss band vs VGG-A.

    The student's code runs only in the sandbox; writes ``vggbn_report.json`` and the plot to
    ``out_dir``.
    """
    import numpy as np

    from grader.data import cached_dataset
    from grader.sandbox import Limits, run_task

    folder = Path(folder)
    if spec.model is None:
        raise VggBnError(f"assignment {spec.name!r} has no [model] table: use 'vgg-bn'")
    data = cached_dataset(spec.dataset, "train", data_dir)
    args = {
        "lrs": list(schedule.lrs),
        "steps": schedule.steps,
        "batch_size": schedule.batch_size,
        "seed": schedule.seed,
        "input_shape": list(spec.model.input_shape),
        "entry": spec.model.entry,
    }
    limits = Limits.from_model_spec(spec.model)
    inputs = {"images": np.ascontiguousarray(data.images), "labels": data.labels}
    result = run_task(folder, task=TASK, args=args, limits=limits, inputs=inputs, slot=slot)
    report = VggBnReport(
        submission=folder.name,
        status=result.status,
        message=result.message,
        lrs=schedule.lrs,
        steps=schedule.steps,
        wall_s=result.wall_s,
    )
    if result.status == "ok":
        finish_report(report, result.result, data.images, data.labels, schedule, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / REPORT_NAME).write_text(json.dumps(report.to_dict(), indent=1) + "\n")
    return report


def finish_report(
    report: VggBnReport,
    task_result: dict[str, Any],
    images: Any,
    labels: Any,
    schedule: Schedule,
    out_dir: Path,
) -> VggBnReport:
    """Fill ``report`` from what ``student_band_task`` returned: checks, bands, plot."""
    from reference import bn_experiments as bx

    layers = [LayerInfo(**layer) for layer in task_result["layers"]]
    report.checks = check_structure(layers, reference_layers())
    student = [curve["loss"] for curve in task_result["curves"]]
    reference = bx.reference_band_curves(images, labels, schedule)
    report.student_band_width = bx.band_width(student)
    report.reference_band_width = bx.band_width(reference)
    report.narrowed = report.student_band_width < report.reference_band_width
    out_dir.mkdir(parents=True, exist_ok=True)
    report.plot = bx.plot_band_comparison(
        {"VGG-A (reference)": reference, f"{report.submission} (VGG_BatchNorm)": student},
        out_dir / PLOT_NAME,
        title=f"Loss band over lr {', '.join(f'{lr:g}' for lr in schedule.lrs)}",
    )
    return report
