"""Assignment specs: a TOML file -> frozen dataclasses.

A spec says what a submission is graded against (dataset, solution labels, the public/private
split), how it is scored (metrics, rubric) and the course rules (daily limit, deadline). Specs for
model submissions carry a ``[model]`` table. Unknown keys and bad values raise
:class:`SpecError` naming the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from grader.records import from_data, to_data

if TYPE_CHECKING:
    import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

BUILTIN_DIR = Path(__file__).parent / "assignments"

Metric = Literal["accuracy", "macro_f1"]
Split = Literal["public", "private", "all"]
StructureRule = Literal[
    "batchnorm_after_conv", "no_batchnorm", "residual", "has_dropout", "has_pooling",
    "has_activation", "has_conv", "has_linear", "has_batchnorm", "reference_layers",
    "swish_activation",
]  # fmt: skip
"""Names of the structure rules of :mod:`grader.models.rules`."""


class SpecError(ValueError):
    """An assignment spec that cannot be used; the message names the file and key."""


@dataclass(frozen=True)
class RubricLevel:
    """Points given when the graded accuracy reaches ``min_accuracy``."""

    min_accuracy: float
    points: float


@dataclass(frozen=True)
class ChecklistItem:
    """A structure rule worth points (the handout's component checklist)."""

    rule: StructureRule
    points: float
    label: str = ""
    """The handout's words for the component (``fully connected layer``); default: the rule."""


@dataclass(frozen=True)
class SparsityLevel:
    """Points given when at most ``max_density`` of the weights are non-zero."""

    max_density: float
    """Fraction of the convolution and linear weights (not biases) that are not exactly zero."""
    points: float


@dataclass(frozen=True)
class ModelSpec:
    """What a model submission must look like and the limits it runs under."""

    entry: str = "Net"
    """Class name in ``model.py``; a function ``build_model()`` returning the model is accepted
    for every assignment."""
    aliases: tuple[str, ...] = ()
    """Other names accepted for the entry class: the ones course skeletons and public code use
    (``VGG_A_BatchNorm`` for ``VGG_BatchNorm``)."""
    input_shape: tuple[int, ...] = ()
    """Shape of one input image (C, H, W); defaults to the dataset's."""
    num_classes: int = 10
    """Class scores a model returns; a spec that does not set it gets the dataset's count."""
    params_exact: int | None = None
    """Required number of trainable parameters, if the assignment fixes the architecture."""
    params_max: int | None = None
    rules: tuple[StructureRule, ...] = ()
    max_flops: int | None = None
    """Upper bound on forward FLOPs for one image."""
    reference: str | None = None
    """Name of the reference model (``reference.models``) the layer table is compared with."""
    time_limit_s: float = 300.0
    """Wall-clock limit for the whole sandboxed check."""
    memory_limit_mb: int = 4096
    """Address-space limit inside the sandbox."""
    batch_size: int = 256
    """Batch size used to evaluate the test images."""
    experiment: Literal["bn_landscape"] | None = None
    """An experiment run with the student's class in the sandbox besides the checks:
    ``bn_landscape`` trains it briefly and compares its loss band with the reference VGG-A."""
    unverified: Literal["accept", "review", "invalid"] = "accept"
    """What happens to a model that cannot be captured as a graph: ``accept`` scores the logits
    its own process computes (flagged unverified; no structure, parameter or FLOP check can pass),
    ``review`` scores them but holds the grade at 0 points, flagged, until an instructor accepts
    it, ``invalid`` refuses it."""
    robustness: bool = False
    """Also evaluate the model on corrupted, flipped and shifted test images
    (:func:`grader.metrics.make_variants`): robustness and consistency metrics, and the
    likely-memoriser flag."""
    checklist: tuple[ChecklistItem, ...] = ()
    """Structure rules worth points, one ``[[model.checklist]]`` table each (``rules`` are
    required; these add points when they hold)."""
    sparsity: tuple[SparsityLevel, ...] = ()
    """Points for sparse weights, one ``[[model.sparsity]]`` level each (the most reached)."""
    max_capacity_ratio: float | None = None
    """Memoriser evidence: flag a model whose graph reads more values (parameters and every other
    tensor) than this multiple of the reference model's parameters (a table of the test images
    needs room)."""
    public_models: Literal["flag", "refuse"] = "flag"
    """An unmodified public architecture (torchvision's zoo, the reference models): ``flag`` it,
    or ``refuse`` it (the submission is invalid: "by no means a publicly available model")."""

    @property
    def checklist_points(self) -> float:
        """Points of the whole checklist."""
        return sum(item.points for item in self.checklist)

    @property
    def sparsity_points(self) -> float:
        """Points of the top sparsity level."""
        return max((lv.points for lv in self.sparsity), default=0.0)

    def points_for_density(self, density: float) -> float:
        """Sparsity points for a weight density (fraction non-zero), 0 below every level."""
        return max((lv.points for lv in self.sparsity if density <= lv.max_density), default=0.0)


@dataclass(frozen=True)
class OpCheck:
    """One hand-written operation of an ``ops.py`` submission and what it is checked against."""

    name: str
    """The class (a ``torch.autograd.Function`` or ``nn.Module``) or function in ``ops.py``."""
    reference: str
    """The reference op (``grader.ops.references``): ``swish``, ``linear``, ``sum``, ..."""
    points: float = 1.0


@dataclass(frozen=True)
class OpsSpec:
    """An ``ops.py`` assignment: which ops, and the tolerances they are held to."""

    op: tuple[OpCheck, ...] = ()
    """The ops, one ``[[ops.op]]`` table each."""
    file: str = "ops.py"
    seed: int = 0
    """Seed of the random inputs, cotangents and probe directions."""
    rtol: float = 1e-6
    """Relative tolerance of the forward and backward against the reference (float64)."""
    atol: float = 1e-9
    require_backward: bool = True
    """Each op must have a hand-written ``backward`` (read from the source, never run)."""
    time_limit_s: float = 120.0
    memory_limit_mb: int = 4096

    @property
    def max_points(self) -> float:
        """Points of every op together."""
        return sum(check.points for check in self.op)


@dataclass(frozen=True)
class Assignment:
    """One assignment: what is graded, against what, and under which rules."""

    name: str
    dataset: str | None = None
    """The images graded on, a data set of :data:`grader.data.DATASETS`; required unless the
    assignment is an ``[ops]`` one."""
    title: str = ""
    solution: str = "dataset"
    """A labels CSV (absolute, relative to the spec file, or to the data dir) or ``dataset``."""
    id_column: str = "Id"
    label_column: str = "Category"
    class_names: tuple[str, ...] = ()
    public_fraction: float = 0.5
    split_seed: int = 0
    metrics: tuple[Metric, ...] = ("accuracy", "macro_f1")
    grade_split: Split = "private"
    """Split whose accuracy the rubric grades."""
    student_splits: tuple[Split, ...] = ("public",)
    """Splits whose scores a student may see: what ``grader score`` shows without ``--all`` and
    what a student's feedback page shows (per-class accuracy, confusions, wrong images)."""
    test_size: int = 0
    """Number of test images; predictions name them by ids 0..test_size-1. 0 (the default) means
    the dataset's full test set (its registry entry's ``test_size``). ``grader validate`` checks
    ids against it without the answer key."""
    rubric: tuple[RubricLevel, ...] = ()
    daily_limit: int = 5
    deadline: dt.datetime | None = None
    late_policy: Literal["refuse", "flag"] = "refuse"
    entry_rule: Literal["best", "last", "chosen"] = "best"
    """Which submission stands for a student: the best public score, the last one, or (Kaggle's
    final selection) the best private score among those the student marked final."""
    final_submissions: int = 2
    """How many submissions a student may mark final under ``entry_rule = "chosen"``."""
    teams: bool = False
    """Teams (the roster's ``team`` column) share one daily limit and one board row."""
    max_file_bytes: int = 2_000_000
    baselines: tuple[str, ...] = ()
    """Reference models whose recorded baselines the board shows beside the entries (names of
    ``reference/baselines/<model>/``), scored on the same test images; none unless listed."""
    model: ModelSpec | None = None
    ops: OpsSpec | None = None
    """Hand-written operations: the submission is an ``ops.py``, not predictions or a model."""
    source: Path | None = field(default=None, compare=False)
    """The TOML file this spec was read from."""

    @property
    def rubric_points(self) -> float:
        """The most points the accuracy rubric gives (its top tier)."""
        return max((level.points for level in self.rubric), default=0.0)

    @property
    def max_points(self) -> float:
        """The most points the assignment gives: the accuracy rubric's top tier, the checklist,
        the top sparsity level and every op (the one maximum of pages, exports and grades)."""
        total = self.rubric_points
        if self.model is not None:
            total += self.model.checklist_points + self.model.sparsity_points
        if self.ops is not None:
            total += self.ops.max_points
        return total

    def points_for(self, accuracy: float) -> float:
        """Points the rubric gives for ``accuracy`` (0 below every threshold)."""
        reached = [lvl.points for lvl in self.rubric if accuracy >= lvl.min_accuracy]
        return max(reached, default=0.0)

    def test_ids(self) -> np.ndarray:
        """The ids a predictions file must cover, 0..test_size-1, as an int64 numpy array."""
        import numpy as np

        return np.arange(self.test_size, dtype=np.int64)

    def digest(self) -> str:
        """sha256 of every graded setting of the spec (not where it was read from)."""
        import hashlib
        import json

        fields = dataclasses.asdict(dataclasses.replace(self, source=None))
        fields.pop("baselines")  # what the board shows beside the entries grades nothing
        return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()

    def solution_path(self, data_dir: Path | None = None) -> Path | None:
        """Where the solution labels CSV is, or None when labels come from the dataset."""
        if self.solution == "dataset":
            return None
        candidate = Path(self.solution).expanduser()
        if candidate.is_absolute():
            return candidate
        bases = []
        if self.source is not None:
            bases.append(self.source.parent)
        if data_dir is not None:
            bases.append(Path(data_dir))
        for base in bases:
            if (base / candidate).exists():
                return base / candidate
        return (bases[-1] / candidate) if bases else candidate


def builtin_names() -> list[str]:
    """Names of the assignment specs that ship with the grader."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))


def load_assignment(
    name_or_path: str | Path = "cifar10", overrides: dict[str, Any] | None = None
) -> Assignment:
    """Load a built-in spec by name, or a spec from a TOML file path.

    ``overrides`` (top-level keys, e.g. a course's ``daily_limit`` or ``deadline``) replace the
    file's values before validation, so a bad override is reported like a bad key in the file.
    """
    path = Path(name_or_path)
    if path.suffix != ".toml" or not path.exists():
        builtin = BUILTIN_DIR / f"{name_or_path}.toml"
        if builtin.exists():
            path = builtin
        elif path.suffix == ".toml":
            raise SpecError(f"{path}: no such assignment file")
        else:
            raise SpecError(
                f"unknown assignment {str(name_or_path)!r}: use one of "
                f"{', '.join(builtin_names())} or the path of a .toml file"
            )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_assignment({**raw, **(overrides or {})}, source=path)


def parse_assignment(raw: dict[str, Any], source: Path | None = None) -> Assignment:
    """Build an :class:`Assignment` from a parsed TOML table, validating every key."""
    where = str(source) if source else "assignment"
    spec = from_data(Assignment, raw, where, error=SpecError, skip={"source"})
    spec = dataclasses.replace(spec, source=source)
    if spec.ops is not None:
        return _check_ops(spec, where)
    from grader.data import DATASETS, DataError, get_dataset

    if spec.dataset is None:
        raise SpecError(f"{where}: missing required key 'dataset' ({', '.join(DATASETS)})")
    try:
        dataset = get_dataset(spec.dataset)
    except DataError as exc:
        raise SpecError(f"{where}: {exc}") from None
    if not spec.class_names:
        spec = dataclasses.replace(spec, class_names=dataset.class_names)
    if spec.test_size == 0:
        spec = dataclasses.replace(spec, test_size=dataset.test_size)
    if spec.test_size < 1:
        raise SpecError(f"{where}: test_size must be positive (or 0 for the dataset's test set)")
    if not spec.student_splits:
        raise SpecError(f"{where}: student_splits must name at least one split")
    if not 0.0 < spec.public_fraction < 1.0:
        raise SpecError(f"{where}: public_fraction must be between 0 and 1 (exclusive)")
    if spec.daily_limit < 1:
        raise SpecError(f"{where}: daily_limit must be at least 1")
    if spec.max_file_bytes < 1:
        raise SpecError(f"{where}: max_file_bytes must be positive")
    for name in spec.baselines:
        if not name or "/" in name or name.startswith("."):
            raise SpecError(
                f"{where}: baselines: {name!r} is not a baseline name (a folder of "
                "reference/baselines, e.g. resnet20)"
            )
    if spec.final_submissions < 1:
        raise SpecError(f"{where}: final_submissions must be at least 1")
    for level in spec.rubric:
        if not 0.0 <= level.min_accuracy <= 1.0:
            raise SpecError(f"{where}: rubric min_accuracy must be between 0 and 1")
    if spec.model is not None:
        model = spec.model
        if not model.input_shape:
            model = dataclasses.replace(model, input_shape=dataset.input_shape)
        if "num_classes" not in (raw.get("model") or {}):
            model = dataclasses.replace(model, num_classes=len(spec.class_names))
        elif model.num_classes != len(spec.class_names):
            raise SpecError(
                f"{where}: model.num_classes = {model.num_classes}, but the assignment has "
                f"{len(spec.class_names)} classes; remove num_classes (it is derived)"
            )
        if len(model.input_shape) != 3 or min(model.input_shape) < 1:
            raise SpecError(f"{where}: model.input_shape must be three positive ints (C, H, W)")
        if "batchnorm_after_conv" in model.rules and "no_batchnorm" in model.rules:
            raise SpecError(
                f"{where}: model.rules cannot hold both batchnorm_after_conv and no_batchnorm"
            )
        _check_model_rules(model, where)
        spec = dataclasses.replace(spec, model=model)
    return spec


def _check_model_rules(model: ModelSpec, where: str) -> None:
    listed = [item.rule for item in model.checklist]
    for index, item in enumerate(model.checklist):
        if item.points < 0:
            raise SpecError(f"{where}: model.checklist[{index}].points must not be negative")
        if listed.count(item.rule) > 1:
            raise SpecError(f"{where}: model.checklist lists {item.rule} twice")
        if item.rule in model.rules:
            raise SpecError(
                f"{where}: {item.rule} is both a required rule and a checklist item; keep one"
            )
    for index, level in enumerate(model.sparsity):
        if not 0.0 <= level.max_density <= 1.0:
            raise SpecError(f"{where}: model.sparsity[{index}].max_density must be in [0, 1]")


def _check_ops(spec: Assignment, where: str) -> Assignment:
    from grader.ops.references import REFERENCES

    ops = spec.ops
    if spec.model is not None:
        raise SpecError(f"{where}: an assignment has a [model] or an [ops] table, not both")
    if not ops.op:
        raise SpecError(f"{where}: [ops] names no op; add [[ops.op]] tables (name, reference)")
    names = [check.name for check in ops.op]
    for index, check in enumerate(ops.op):
        if check.reference not in REFERENCES:
            raise SpecError(
                f"{where}: ops.op[{index}].reference = {check.reference!r} is not allowed; use "
                f"one of {', '.join(REFERENCES)}"
            )
        if not check.name.isidentifier():
            raise SpecError(f"{where}: ops.op[{index}].name = {check.name!r} is not a Python name")
        if names.count(check.name) > 1:
            raise SpecError(f"{where}: ops.op name {check.name!r} appears twice")
        if check.points < 0:
            raise SpecError(f"{where}: ops.op[{index}].points must not be negative")
    if not (ops.rtol >= 0 and ops.atol >= 0):
        raise SpecError(f"{where}: ops.rtol and ops.atol must not be negative")
    if not ops.file.endswith(".py") or "/" in ops.file:
        raise SpecError(f"{where}: ops.file must be a .py file name, got {ops.file!r}")
    return spec


def assignment_table(spec: Assignment) -> dict[str, Any]:
    """``spec`` as a JSON-able table that :func:`parse_assignment` reads back to an equal spec
    (how a spec travels to a grading worker on another machine)."""

    def without_empty(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: without_empty(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [without_empty(v) for v in value]
        return value

    table = to_data(dataclasses.replace(spec, source=None))
    table.pop("source")
    return without_empty(table)
