"""Stage two, the verified evaluation (INSIDE a fresh box child with no student code).

Reads the graph artifact that the capture wrote (:mod:`grader.models.inside.artifact`: no
pickle, every operation allowlisted) and derives everything from it by running it: the shape,
whether it carries data and the FLOPs of every operation (on a probe batch of real test images),
the output shape, finiteness and determinism, the logits on every test image (and on image
variants when asked), and whether its tensors are those of the submitted weights file. Nothing
of the student's code is importable here; the only student input is data.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np
import torch

from grader.models.inside.artifact import ArtifactError, Program, load_program
from grader.models.ops import OPS, OpKind
from grader.models.records import (
    EVALUATION_RECORD,
    LOGITS_FILE,
    EvaluateArgs,
    EvaluationRecord,
    GraphSummary,
    InputInfo,
    NodeInfo,
    WeightsCheck,
)
from grader.sandbox.inside.tasks import JobContext
from grader.sandbox.protocol import parse_record, write_record


def evaluate_task(ctx: JobContext) -> None:
    """Run the artifact in ``ctx.work`` on the box's test images; write the record and logits."""
    args = parse_record(ctx.args, EvaluateArgs, name="evaluation arguments")
    write_record(ctx.out / EVALUATION_RECORD, evaluate(ctx, args))


def evaluate(ctx: JobContext, args: EvaluateArgs) -> EvaluationRecord:
    """The evaluation itself; a graph that cannot be run is the submission's fault."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        program = load_program(ctx.work, device=device)
        images = (
            ctx.images if ctx.images is not None else np.zeros((0, *program.image_shape), np.uint8)
        )
        if tuple(images.shape[1:]) != program.image_shape:
            raise ArtifactError(
                f"the graph takes images of shape {program.image_shape}, the test images are "
                f"{tuple(images.shape[1:])}"
            )
        probe = (
            _batch(images[: args.probe_images], device)
            if len(images)
            else torch.rand(
                (args.probe_images, *program.image_shape),
                generator=torch.Generator().manual_seed(0),
            ).to(device)
        )
        with torch.inference_mode():
            summary, output = probe_graph(program, probe)
            again = program.logits(probe)
            flops = count_flops(program, probe[:1])
        without_effect = parameters_without_effect(program, probe)
    except ArtifactError as exc:
        return EvaluationRecord("invalid", str(exc))
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        return EvaluationRecord("invalid", f"the captured graph fails to run: {_first_line(exc)}")
    except MemoryError:
        return EvaluationRecord("invalid", "running the captured graph ran out of memory")
    nodes = [
        NodeInfo(**{**node.__dict__, "flops": int(flops.get(i, 0))})
        for i, node in enumerate(summary.nodes)
    ]
    inputs = [
        InputInfo(**{**i.__dict__, "effect": i.name not in without_effect}) for i in summary.inputs
    ]
    summary = GraphSummary(inputs, nodes, summary.logits, summary.probe_batch)
    total_flops = sum(node.flops for node in nodes)
    shape = list(output.shape)
    expected = [len(probe), args.num_classes]
    if shape != expected:
        return EvaluationRecord(
            "invalid",
            f"the graph returns shape {tuple(shape)} for {len(probe)} images; expected "
            f"{tuple(expected)}",
            graph=summary,
            flops=total_flops,
            output_shape=shape,
        )
    finite = bool(torch.isfinite(output).all())
    deterministic = bool(torch.equal(output, again))
    record = dict(
        graph=summary,
        flops=total_flops,
        output_shape=shape,
        finite=finite,
        deterministic=deterministic,
        weights=check_weights(program, ctx, args.weights),
        parameter_digest=parameter_digest(program),
        weight_density=weight_density(program),
    )
    try:
        started = time.perf_counter()
        logits = all_logits(program, images, args.batch_size, args.num_classes)
        elapsed = time.perf_counter() - started
        np.save(ctx.out / LOGITS_FILE, logits, allow_pickle=False)
        variants = write_variant_logits(program, images, args, ctx)
    except (RuntimeError, ValueError, TypeError, IndexError, ArtifactError) as exc:
        return EvaluationRecord(
            "invalid", f"the graph fails on the test images: {_first_line(exc)}", **record
        )
    except MemoryError:
        return EvaluationRecord(
            "invalid", "the graph ran out of memory on the test images", **record
        )
    speed = round(len(images) / elapsed, 1) if elapsed > 0 and len(images) else None
    return EvaluationRecord(
        "ok", "", images=len(images), images_per_s=speed, variants=variants, **record
    )


def _batch(images: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.array(images, copy=True)).to(device).float().div_(255.0)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def probe_graph(program: Program, probe: torch.Tensor) -> tuple[GraphSummary, torch.Tensor]:
    """Run the graph once on the probe batch, keeping every value: shapes and data flow."""
    values = program.values(probe, keep=True)
    artifact = program.artifact
    inputs = [
        InputInfo(i.name, i.kind, i.dtype, list(i.shape), int(np.prod(i.shape, dtype=np.int64)))
        for i in artifact.inputs
    ]
    nodes = []
    offset = len(artifact.inputs)
    for index, node in enumerate(artifact.nodes):
        value = values[offset + index]
        tensor = value if isinstance(value, torch.Tensor) else _first_tensor(value)
        spread = _spread(tensor, len(probe))
        nodes.append(
            NodeInfo(
                op=node.op,
                inputs=list(dict.fromkeys(_refs(node.args) + _refs(list(node.kwargs.values())))),
                module=node.module[:300],
                module_type=node.module_type[:100],
                source=node.source[:100],
                shape=list(tensor.shape) if tensor is not None else None,
                varies=spread > 0,
                spread=spread,
                rate=_dropout_rate(node.op, node.args),
            )
        )
    logits_ref = next(o.ref for o in artifact.outputs if o.kind == "logits")
    output = values[logits_ref]
    if not isinstance(output, torch.Tensor):
        raise ArtifactError(f"the graph's logits are a {type(output).__name__}, not a tensor")
    return GraphSummary(inputs, nodes, logits_ref, len(probe)), output


def _dropout_rate(op: str, args: list) -> float | None:
    if OPS.get(op) is not OpKind.DROPOUT or len(args) < 2:
        return None
    rate = args[1]
    return float(rate) if isinstance(rate, (int, float)) and not isinstance(rate, bool) else None


def _first_tensor(value: object) -> torch.Tensor | None:
    if isinstance(value, (tuple, list)):
        return next((v for v in value if isinstance(v, torch.Tensor)), None)
    return None


def _refs(args: list) -> list[int]:
    found: list[int] = []
    for arg in args:
        if isinstance(arg, list):
            found += _refs(arg)
        elif isinstance(arg, dict) and "ref" in arg:
            found.append(int(arg["ref"]))
    return found


def _spread(tensor: torch.Tensor | None, batch: int) -> float:
    """Mean absolute deviation across the images of a per-image tensor (0: the same for every
    image, so it carries none of the images' data)."""
    if tensor is None or tensor.dim() == 0 or tensor.shape[0] != batch or batch < 2:
        return 0.0
    if not (tensor.is_floating_point() or tensor.dtype in (torch.int64, torch.int32)):
        return 0.0
    flat = tensor.reshape(batch, -1).double()
    spread = float((flat - flat.mean(dim=0, keepdim=True)).abs().mean())
    return spread if np.isfinite(spread) else 0.0


def parameters_without_effect(program: Program, probe: torch.Tensor) -> set[str]:
    """Names of float parameters whose gradient of the logits is zero on the probe batch."""
    wanted = [
        i.name
        for i in program.artifact.inputs
        if i.kind == "parameter" and program.tensors[i.name].is_floating_point()
    ]
    tensors = {
        name: (t.detach().clone().requires_grad_() if name in wanted else t)
        for name, t in program.tensors.items()
    }
    if not wanted:
        return set()
    with torch.enable_grad():
        logits = program.logits(probe, tensors=tensors)
        if not logits.requires_grad:
            return set(wanted)
        cotangent = torch.randn(logits.shape, generator=torch.Generator().manual_seed(0))
        grads = torch.autograd.grad(
            (logits * cotangent.to(logits.device)).sum(),
            [tensors[name] for name in wanted],
            allow_unused=True,
        )
    return {
        name
        for name, grad in zip(wanted, grads, strict=True)
        if grad is None or not bool(torch.any(grad != 0))
    }


def count_flops(program: Program, one_image: torch.Tensor) -> dict[int, int]:
    """FLOPs of every operation for one image (torch.utils.flop_counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    counts: dict[int, int] = {}

    def counted(index: int, call):
        with FlopCounterMode(display=False) as counter:
            result = call()
        total = counter.get_total_flops()
        if total:
            counts[index] = int(total)
        return result

    program.values(one_image, on_node=counted)
    return counts


def all_logits(
    program: Program, images: np.ndarray, batch_size: int, num_classes: int
) -> np.ndarray:
    """Logits of every image, in order, as float32 (N, num_classes)."""
    device = program.device
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(images), max(1, batch_size)):
            out = program.logits(_batch(images[start : start + batch_size], device))
            if tuple(out.shape) != (min(batch_size, len(images) - start), num_classes):
                raise ArtifactError(
                    f"on test images {start}..{start + batch_size} the graph returned shape "
                    f"{tuple(out.shape)}"
                )
            chunks.append(out.float().cpu().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, num_classes), np.float32)


def write_variant_logits(
    program: Program, images: np.ndarray, args: EvaluateArgs, ctx: JobContext
) -> list[str]:
    """Logits on each image variant (corruptions, flip, shift), as ``logits_<name>.npy``."""
    if not args.robustness or not len(images) or images.shape[1] not in (1, 3):
        return []
    from grader.metrics import make_variants

    done = []
    for name, variant in make_variants(images, seed=args.variant_seed).items():
        logits = all_logits(program, variant, args.batch_size, args.num_classes)
        np.save(ctx.out / f"logits_{name}.npy", logits, allow_pickle=False)
        done.append(name)
    return done


def check_weights(program: Program, ctx: JobContext, weights: str | None) -> WeightsCheck | None:
    """Compare the graph's parameters and buffers with the submitted weights file."""
    if weights is None:
        return None
    from grader.models.inside.weights import WeightsError, read_checkpoint

    names = [i.name for i in program.artifact.inputs if i.kind in ("parameter", "buffer")]
    try:  # the capture's own reader: a checkpoint dict unwrapped the same way
        checkpoint = read_checkpoint(ctx.work / weights, expected=names)
    except WeightsError as exc:
        return WeightsCheck(weights, False, str(exc))
    state = checkpoint.state
    for graph_input in program.artifact.inputs:
        if graph_input.kind not in ("parameter", "buffer"):
            continue
        theirs = state.get(graph_input.name)
        ours = program.tensors[graph_input.name].cpu()
        if theirs is None:
            return WeightsCheck(weights, False, f"{weights} holds no {graph_input.name}")
        if theirs.shape != ours.shape or not torch.equal(theirs.to(ours.dtype), ours):
            return WeightsCheck(weights, False, f"{graph_input.name} differs from {weights}")
    return WeightsCheck(
        weights, True, f"every tensor of the graph is the one in {weights}{checkpoint.summary}"
    )


def weight_density(program: Program) -> float | None:
    """Non-zero share of the weights (second argument) of the convolution and linear operations."""
    offset = len(program.artifact.inputs)
    names = set()
    for node in program.artifact.nodes:
        if OPS.get(node.op) not in (OpKind.CONV, OpKind.LINEAR) or len(node.args) < 2:
            continue
        weight = node.args[1]
        if isinstance(weight, dict) and "ref" in weight and weight["ref"] < offset:
            graph_input = program.artifact.inputs[weight["ref"]]
            if graph_input.kind == "parameter":
                names.add(graph_input.name)
    if not names:
        return None
    total = sum(program.tensors[name].numel() for name in names)
    nonzero = sum(int(torch.count_nonzero(program.tensors[name])) for name in names)
    return nonzero / total if total else None


def parameter_digest(program: Program) -> str:
    """SHA-256 over the graph's parameters, sorted by name (identical weights across students)."""
    digest = hashlib.sha256()
    for graph_input in sorted(program.artifact.inputs, key=lambda i: i.name):
        if graph_input.kind != "parameter":
            continue
        tensor = program.tensors[graph_input.name].detach().cpu().contiguous()
        digest.update(f"{graph_input.name}:{tensor.dtype}:{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def warm_up(_spec: dict) -> None:
    """Run the FLOP counter once, so that children skip its first-call cost."""
    from torch.utils.flop_counter import FlopCounterMode

    layer = torch.nn.Conv2d(3, 4, 3)
    with torch.inference_mode(), FlopCounterMode(display=False):
        layer(torch.zeros(1, 3, 8, 8))
