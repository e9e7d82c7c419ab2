"""Training the captured training-mode graph for an experiment (INSIDE a box, no student code).

The graph was captured with the model in training mode (BatchNorm on batch statistics, dropout
active); its outputs are the logits and the new values of the buffers. The loss curves come
from running that graph with the grader's own optimiser loop
(:func:`grader.models.training.loss_curve`), so a submission cannot report curves it did not
earn.
"""

from __future__ import annotations

import numpy as np
import torch

from grader.models.inside.artifact import TRAIN_GRAPH_FILE, ArtifactError, load_program
from grader.models.records import TRAINING_RECORD, TrainArgs, TrainingRecord
from grader.models.training import batch_order, loss_curve, normalise
from grader.sandbox.inside.tasks import INPUTS_DIR, JobContext
from grader.sandbox.protocol import parse_record, write_record


def train_task(ctx: JobContext) -> None:
    """Train the training-mode graph at each learning rate; write the loss curves."""
    args = parse_record(ctx.args, TrainArgs, name="training arguments")
    write_record(ctx.out / TRAINING_RECORD, train(ctx, args))


def train(ctx: JobContext, args: TrainArgs) -> TrainingRecord:
    """The training runs; a graph that cannot be trained is the submission's fault."""
    try:
        program = load_program(ctx.work, device=torch.device("cpu"), graph_file=TRAIN_GRAPH_FILE)
        images = np.load(ctx.work / INPUTS_DIR / "images.npy", allow_pickle=False)
        labels = torch.from_numpy(
            np.load(ctx.work / INPUTS_DIR / "labels.npy", allow_pickle=False).astype(np.int64)
        )
        x = normalise(images)
        order = batch_order(
            len(labels), steps=args.steps, batch_size=args.batch_size, seed=args.seed
        )
        outputs = program.artifact.outputs
        logits_at = next(i for i, o in enumerate(outputs) if o.kind == "logits")
        curves = []
        for lr in args.lrs:
            torch.manual_seed(args.seed)
            state = {name: t.clone() for name, t in program.tensors.items()}
            params = [
                state[i.name].requires_grad_()
                for i in program.artifact.inputs
                if i.kind == "parameter" and state[i.name].is_floating_point()
            ]

            def forward(batch: torch.Tensor, state=state) -> torch.Tensor:
                values = program.values(batch, tensors=state)
                for output, value in zip(outputs, values, strict=True):
                    if output.kind == "buffer_update" and output.name in state:
                        state[output.name] = value.detach()
                return values[logits_at]

            curves.append(loss_curve(forward, params, x, labels, order, lr=float(lr)))
    except ArtifactError as exc:
        return TrainingRecord("invalid", str(exc))
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        return TrainingRecord("invalid", f"training the captured graph failed: {exc}")
    except MemoryError:
        return TrainingRecord("invalid", "training the captured graph ran out of memory")
    return TrainingRecord("ok", "", [float(lr) for lr in args.lrs], curves)
