"""Grading hand-written operations (``ops.py``) against torch's autograd, outside the sandbox.

For each op the spec names, the grader draws float64 inputs of several shapes, a cotangent and a
probe direction, and computes the reference's output and vector-Jacobian product with torch's
autograd. The student's code runs in the sandbox (:mod:`grader.ops.inside`) and returns only
arrays: its outputs, its vector-Jacobian products and its outputs at two probe points. Here,
outside the box, every comparison is made:

- **forward**: the student's output against the reference's (largest absolute error);
- **backward**: the student's vector-Jacobian product against the reference's;
- **gradcheck**: the student's backward against finite differences of the student's own forward
  along the probe direction (``u . (f(x + h v) - f(x - h v)) / 2h`` against ``sum_k <g_k, v_k>``,
  the check of ``torch.autograd.gradcheck`` with random vectors, with its tolerances).

Nothing the box reports is taken as a verdict; a missing, mis-shaped or non-finite array fails the
op. The source of ``ops.py`` is read here too (as text, never run) to see that the op has a
hand-written ``backward``.
"""

from __future__ import annotations

import ast
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from grader.assignment import Assignment, OpCheck, OpsSpec
from grader.grading.status import GradeStatus
from grader.ops.inside import MAX_MESSAGE, OPS_FILE
from grader.ops.packing import PackingError, pack_inputs, unpack_outputs
from grader.ops.references import OpReference, get_reference

if TYPE_CHECKING:
    from grader.sandbox.pool import BoxPool

OPS_TASK = "grader.ops.inside:ops_task"
PROBE_STEP = 1e-6
"""h of the central differences along the probe direction (float64)."""
GRADCHECK_ATOL, GRADCHECK_RTOL = 1e-5, 1e-3
"""torch.autograd.gradcheck's default tolerances, for the finite-difference comparison."""
MAX_SOURCE_BYTES = 1_000_000
MAX_OUTPUT_VALUES = 10_000_000
"""The most numbers the box's packed outputs may hold (the reference shapes need far fewer)."""


@dataclass
class CasePrep:
    """One test case of one op, as the grader prepared it (never leaves the host but as inputs)."""

    inputs: list[np.ndarray]
    cotangent: np.ndarray
    direction: list[np.ndarray | None]
    """The probe direction per input (None for integer inputs)."""
    out: np.ndarray
    """The reference's output."""
    grads: dict[str, np.ndarray]
    """The reference's vector-Jacobian product per differentiable input."""


@dataclass
class OpRow:
    """One op of the report: the largest errors found over its cases, and its points."""

    name: str
    reference: str
    points: float
    earned: float = 0.0
    passed: bool = False
    shapes: list[list[list[int]]] = field(default_factory=list)
    """Input shapes of each case."""
    forward_error: float | None = None
    backward_error: float | None = None
    gradcheck_error: float | None = None
    message: str = ""


@dataclass
class OpsGrade:
    """The outcome of checking one ``ops.py``."""

    status: GradeStatus
    """``ok``: the ops ran and were compared (each row says pass or fail); ``invalid``: the
    submission could not be run; ``error``: the grader failed."""
    message: str
    rows: list[OpRow] = field(default_factory=list)
    sandboxed: bool = True
    wall_s: float = 0.0

    @property
    def points(self) -> float:
        """Points of the ops that passed."""
        return sum(row.earned for row in self.rows)

    @property
    def max_points(self) -> float:
        """Points of every op."""
        return sum(row.points for row in self.rows)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict with the totals."""
        data = asdict(self)
        data.update(points=self.points, max_points=self.max_points)
        return data


@dataclass
class BoxOutput:
    """What came back from running the ops task: a status, and arrays that prove nothing yet."""

    status: GradeStatus
    message: str
    errors: dict[str, str]
    arrays: dict[str, np.ndarray]
    wall_s: float = 0.0


# --- preparing the cases --------------------------------------------------------------------------


def prepare_cases(reference: OpReference, rng: np.random.Generator) -> list[CasePrep]:
    """Inputs, cotangent and probe direction of every case, with the reference's answers."""
    import torch

    cases = []
    for inputs in reference.draw_inputs(rng):
        tensors = [
            torch.from_numpy(a).requires_grad_(spec.differentiable)
            for a, spec in zip(inputs, reference.inputs, strict=True)
        ]
        out = reference.function(*tensors)
        cotangent = rng.standard_normal(size=tuple(out.shape))
        wanted = [
            t for t, spec in zip(tensors, reference.inputs, strict=True) if spec.differentiable
        ]
        grads = torch.autograd.grad(out, wanted, grad_outputs=torch.from_numpy(cotangent))
        names = [spec.name for spec in reference.inputs if spec.differentiable]
        cases.append(
            CasePrep(
                inputs=inputs,
                cotangent=cotangent,
                direction=[
                    rng.standard_normal(size=a.shape) if spec.differentiable else None
                    for a, spec in zip(inputs, reference.inputs, strict=True)
                ],
                out=out.detach().numpy(),
                grads={n: g.numpy() for n, g in zip(names, grads, strict=True)},
            )
        )
    return cases


def box_inputs(key: str, reference: OpReference, cases: list[CasePrep]) -> dict[str, np.ndarray]:
    """The arrays the box gets for op ``key``: inputs, probe points and cotangents."""
    arrays: dict[str, np.ndarray] = {}
    for j, case in enumerate(cases):
        prefix = f"{key}_c{j}"
        arrays[f"{prefix}_cot"] = case.cotangent
        for spec, value, direction in zip(
            reference.inputs, case.inputs, case.direction, strict=True
        ):
            arrays[f"{prefix}_{spec.name}"] = value
            if direction is not None:
                arrays[f"{prefix}_plus_{spec.name}"] = value + PROBE_STEP * direction
                arrays[f"{prefix}_minus_{spec.name}"] = value - PROBE_STEP * direction
    return arrays


# --- comparing outside the box --------------------------------------------------------------------


def _array(arrays: dict[str, np.ndarray], name: str, shape: tuple[int, ...], what: str):
    """The box's array ``name`` as float64 of ``shape``, or the reason it cannot be used."""
    value = arrays.get(name)
    if value is None:
        return None, f"no {what}"
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
        return None, f"the {what} is not an array of numbers"
    if tuple(value.shape) != shape:
        return None, f"the {what} has shape {tuple(value.shape)}; the reference's is {shape}"
    value = value.astype(np.float64)
    if not np.isfinite(value).all():
        return None, f"the {what} holds NaN or Inf"
    return value, None


def compare_case(
    key: str, j: int, reference: OpReference, case: CasePrep, arrays: dict[str, np.ndarray],
    spec: OpsSpec,
) -> tuple[dict[str, float], list[str]]:  # fmt: skip
    """Largest errors of one case (forward, backward, gradcheck) and what failed."""
    prefix, problems, errors = f"{key}_c{j}", [], {}
    out, problem = _array(arrays, f"{prefix}_out", case.out.shape, "forward output")
    if problem:
        return errors, [problem]
    errors["forward"] = float(np.max(np.abs(out - case.out), initial=0.0))
    if not np.allclose(out, case.out, rtol=spec.rtol, atol=spec.atol):
        problems.append(f"forward differs from {reference.name} by up to {errors['forward']:.3g}")
    analytic, backward = 0.0, 0.0
    for spec_in, direction in zip(reference.inputs, case.direction, strict=True):
        if direction is None:
            continue
        ref = case.grads[spec_in.name]
        grad, problem = _array(arrays, f"{prefix}_grad_{spec_in.name}", ref.shape,
                               f"gradient for {spec_in.name}")  # fmt: skip
        if problem:
            problems.append(problem)
            continue
        backward = max(backward, float(np.max(np.abs(grad - ref), initial=0.0)))
        if not np.allclose(grad, ref, rtol=spec.rtol, atol=spec.atol):
            problems.append(f"backward for {spec_in.name} differs from {reference.name}'s by up "
                            f"to {float(np.max(np.abs(grad - ref))):.3g}")  # fmt: skip
        analytic += float(np.sum(grad * direction))
    errors["backward"] = backward
    plus, p1 = _array(arrays, f"{prefix}_plus_out", case.out.shape, "output at x + h v")
    minus, p2 = _array(arrays, f"{prefix}_minus_out", case.out.shape, "output at x - h v")
    if p1 or p2:
        problems.append(p1 or p2)
    elif not any(p.startswith("no gradient") for p in problems):
        numeric = float(np.sum(case.cotangent * (plus - minus)) / (2 * PROBE_STEP))
        errors["gradcheck"] = abs(numeric - analytic)
        if errors["gradcheck"] > GRADCHECK_ATOL + GRADCHECK_RTOL * abs(numeric):
            problems.append(
                f"backward disagrees with finite differences of the forward "
                f"({analytic:.6g} vs {numeric:.6g})"
            )
    return errors, problems


def backward_problem(source: str | None, attr: str) -> str | None:
    """Why ``attr`` in the ops source has no hand-written backward, or None when it has one.

    A class with a ``backward`` method counts, and so does a class or function whose body uses a
    class of the file that has one (a Module or function wrapping an autograd Function).
    """
    if source is None:
        return f"no {OPS_FILE} to read"
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return f"{OPS_FILE} line {exc.lineno}: syntax error: {exc.msg}"
    except (ValueError, RecursionError, MemoryError):
        return f"{OPS_FILE} cannot be parsed"
    top = {n.name: n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    with_backward = {
        name
        for name, node in top.items()
        if isinstance(node, ast.ClassDef)
        and any(isinstance(item, ast.FunctionDef) and item.name == "backward" for item in node.body)
    }
    node = top.get(attr)
    if node is None:
        return f"{OPS_FILE} defines no class or function {attr} at the top level"
    if attr in with_backward:
        return None
    used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    if used & with_backward:
        return None
    return (f"{attr} has no hand-written backward: define a torch.autograd.Function with "
            "forward and backward (or use one in it)")  # fmt: skip


def grade_rows(
    spec: OpsSpec, prepared: dict[str, tuple[OpCheck, OpReference, list[CasePrep]]],
    output: BoxOutput, source: str | None,
) -> list[OpRow]:  # fmt: skip
    """One row per op from the box's arrays, every comparison made here."""
    rows = []
    for key, (check, reference, cases) in prepared.items():
        row = OpRow(check.name, check.reference, check.points)
        row.shapes = [[list(a.shape) for a in case.inputs] for case in cases]
        problems: list[str] = []
        missing = backward_problem(source, check.name) if spec.require_backward else None
        if missing:
            problems.append(missing)
        reported = output.errors.get(key)
        if reported and not (missing and "defines no" in missing):
            problems.append(f"your code raised {reported}")
        found: dict[str, list[float]] = {"forward": [], "backward": [], "gradcheck": []}
        for j, case in enumerate(cases):
            errors, case_problems = compare_case(key, j, reference, case, output.arrays, spec)
            for name, value in errors.items():
                found[name].append(value)
            informative = [p for p in case_problems if not (reported and p.startswith("no "))]
            if informative and not missing:  # the first problem of each case
                problems.append(f"case {j + 1} {tuple(map(tuple, row.shapes[j]))}: "
                                f"{informative[0]}")  # fmt: skip
        row.forward_error = max(found["forward"], default=None)
        row.backward_error = max(found["backward"], default=None)
        row.gradcheck_error = max(found["gradcheck"], default=None)
        row.passed = not problems and len(found["gradcheck"]) == len(cases)
        row.earned = row.points if row.passed else 0.0
        row.message = "; ".join(problems[:3]) if problems else (
            f"matches {reference.name} on {len(cases)} cases")  # fmt: skip
        rows.append(row)
    return rows


# --- running ----------------------------------------------------------------------------------


def run_ops_task(
    folder: Path, args: dict[str, Any], inputs: dict[str, np.ndarray], spec: OpsSpec, *,
    sandbox: bool, pool: BoxPool | None = None,
) -> BoxOutput:  # fmt: skip
    """The ONE place the ops task meets the sandbox: run it on ``folder`` in a box (one of
    ``pool``'s warm boxes when given; or, with ``sandbox=False``, in an unconfined forked
    process of this user) and bring back arrays."""
    from grader.sandbox.protocol import Limits
    from grader.sandbox.tasks import run_task

    limits = Limits(
        wall_s=float(spec.time_limit_s),
        memory_mb=int(spec.memory_limit_mb),
        cpu_s=max(int(spec.time_limit_s) * 2, 30),
    )
    packed, layout = pack_inputs(inputs)
    job_args = {**args, "module": spec.file, "inputs": layout, "outputs": expected_outputs(args)}
    job = {"task": OPS_TASK, "args": job_args, "limits": limits, "inputs": packed}
    if sandbox:
        result = run_task(folder, pool=pool, **job)
    else:
        from grader.sandbox.local import LocalWorker

        with LocalWorker() as worker:
            result = run_task(folder, worker=worker, **job)
    output = BoxOutput(result.status, result.message, _errors(result.result), {}, result.wall_s)
    if result.status is GradeStatus.OK:
        try:
            output.arrays = unpack_outputs(
                result.arrays.get("values"),
                result.arrays.get("layout"),
                job_args["outputs"],
                max_values=MAX_OUTPUT_VALUES,
            )
        except PackingError as exc:
            output.status = GradeStatus.INVALID
            output.message = f"the outputs are unusable: {exc}"
    return output


def expected_outputs(args: dict[str, Any]) -> list[str]:
    """Every output name the box is asked for, in order: per op and case the forward, the
    gradient of each differentiable input and both probe forwards."""
    names = []
    for op in args["ops"]:
        grads = [n for n, d in zip(op["inputs"], op["differentiable"], strict=True) if d]
        for case in range(op["cases"]):
            prefix = f"{op['key']}_c{case}"
            names += [f"{prefix}_out", *(f"{prefix}_grad_{n}" for n in grads)]
            names += [f"{prefix}_plus_out", f"{prefix}_minus_out"]
    return names


def _errors(result: Any) -> dict[str, str]:
    """The per-op error texts of the box's result; anything malformed is dropped."""
    errors = result.get("errors") if isinstance(result, dict) else None
    if not isinstance(errors, dict):
        return {}
    return {
        str(k)[:40]: v[:MAX_MESSAGE] for k, v in list(errors.items())[:200] if isinstance(v, str)
    }


def read_source(folder: Path, file_name: str) -> str | None:
    """The ops file's text (at most MAX_SOURCE_BYTES), or None when it is absent."""
    path = folder / file_name
    if not path.is_file() or path.is_symlink():
        return None
    with path.open("rb") as fh:
        return fh.read(MAX_SOURCE_BYTES).decode("utf-8", errors="replace")


def grade_ops_folder(
    folder: Path, spec: Assignment, *, sandbox: bool = True, pool: BoxPool | None = None
) -> OpsGrade:
    """Check the ``ops.py`` in ``folder`` against ``spec``'s ``[ops]`` table.

    ``sandbox=False`` runs the student's code unconfined (a student's own machine only). Raises
    :class:`grader.sandbox.jail.SandboxUnavailable` when the sandbox is asked for and missing.
    """
    ops = spec.ops
    if ops is None:
        return OpsGrade(GradeStatus.ERROR, f"assignment {spec.name!r} has no [ops] table")
    folder = Path(folder)
    rng = np.random.default_rng(ops.seed)
    prepared: dict[str, tuple[OpCheck, OpReference, list[CasePrep]]] = {}
    inputs: dict[str, np.ndarray] = {}
    entries = []
    for index, check in enumerate(ops.op):
        key, reference = f"op{index}", get_reference(check.reference)
        cases = prepare_cases(reference, rng)
        prepared[key] = (check, reference, cases)
        inputs.update(box_inputs(key, reference, cases))
        entries.append({
            "key": key, "attr": check.name, "inputs": [s.name for s in reference.inputs],
            "differentiable": [s.differentiable for s in reference.inputs], "cases": len(cases),
        })  # fmt: skip
    args = {"file": ops.file, "ops": entries}
    source = read_source(folder, ops.file)
    if source is None:
        rows = grade_rows(ops, prepared, BoxOutput(GradeStatus.INVALID, "", {}, {}), None)
        return OpsGrade(GradeStatus.INVALID, f"no {ops.file} in the submission", rows,
                        sandboxed=sandbox)  # fmt: skip
    output = run_ops_task(folder, args, inputs, ops, sandbox=sandbox, pool=pool)
    rows = grade_rows(ops, prepared, output, source)
    if output.status is not GradeStatus.OK:
        status = output.status
        message = output.message or f"the check ended with status {output.status}"
        for row in rows:
            row.message = f"{message}; {row.message}" if row.message else message
        return OpsGrade(status, message[:MAX_MESSAGE], rows, sandbox, round(output.wall_s, 3))
    passed = sum(row.passed for row in rows)
    message = f"{passed} of {len(rows)} ops pass"
    return OpsGrade(GradeStatus.OK, message, rows, sandbox, round(output.wall_s, 3))
