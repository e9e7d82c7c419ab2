"""The fallback for a model that cannot be captured (INSIDE a box, in the student's process).

The student's own code computes the logits on the test images, as a predictions file would
give them: the accuracy can be scored (the labels never enter the box), but nothing about the
model itself can be verified, so the host marks such a grade unverified and no structure,
parameter or FLOP check can pass on it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from grader.models.inside.capture import Preprocessed
from grader.models.inside.weights import WeightsError, apply_state_dict, load_state_dict
from grader.models.records import LOGITS_FILE, UNVERIFIED_REPORT, CaptureArgs, UnverifiedReport
from grader.sandbox.inside.student import (
    StudentError,
    build_student_model,
    describe_error,
    import_student_module,
)
from grader.sandbox.inside.tasks import JobContext
from grader.sandbox.protocol import parse_record, write_record


def unverified_task(ctx: JobContext) -> None:
    """Compute the student's logits on the box's images in the student's own process."""
    args = parse_record(
        {k: v for k, v in ctx.args.items() if k != "batch_size"}, CaptureArgs, name="arguments"
    )
    batch = max(1, int(ctx.args.get("batch_size", 256)))
    try:
        module = import_student_module(ctx.work)
        model = build_student_model(module, args.entry)
        if not isinstance(model, nn.Module):
            raise StudentError(f"{args.entry} returned {type(model).__name__}, not a module")
        if args.weights is not None:
            try:
                apply_state_dict(model, load_state_dict(ctx.work / args.weights), args.weights)
            except WeightsError as exc:
                raise StudentError(str(exc)) from None
        model.eval()
        preprocess = getattr(module, "preprocess", None)
        graded = Preprocessed(model, preprocess) if callable(preprocess) else model
        images = (
            ctx.images if ctx.images is not None else np.zeros((0, *args.input_shape), np.uint8)
        )
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(images), batch):
                x = torch.from_numpy(np.array(images[start : start + batch], copy=True))
                out = graded(x.float().div_(255.0))
                if not isinstance(out, torch.Tensor) or out.shape != (len(x), args.num_classes):
                    raise StudentError(
                        f"on test images {start}.. the model returned "
                        f"{getattr(out, 'shape', type(out).__name__)}"
                    )
                chunks.append(out.float().numpy())
        logits = np.concatenate(chunks) if chunks else np.zeros((0, args.num_classes), np.float32)
        np.save(ctx.out / LOGITS_FILE, logits, allow_pickle=False)
        count = sum(p.numel() for p in model.parameters())
        report = UnverifiedReport("ok", output_shape=list(logits.shape), reported_params=count)
    except StudentError as exc:
        report = UnverifiedReport("invalid", str(exc))
    except MemoryError:
        report = UnverifiedReport("invalid", "the model ran out of memory inside the sandbox")
    except Exception as exc:  # the student's forward code on real images
        report = UnverifiedReport("invalid", f"inference failed: {describe_error(exc)}")
    write_record(ctx.out / UNVERIFIED_REPORT, report)
