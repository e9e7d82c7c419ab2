"""The fallback for a model that cannot be captured (INSIDE a box, in the student's process).

The student's own code computes the logits on the images the host staged -- the test images and
their variants, mixed in an order drawn from a seed this process never sees -- as a predictions
file would give them: the accuracy and the memoriser rule can be scored on the host (the labels
never enter the box), but nothing about the model itself can be verified, so the host marks such
a grade unverified and no structure, parameter or FLOP check can pass on it.
"""

from __future__ import annotations

import numpy as np
import torch

from grader.models.inside.capture import load_student_model
from grader.models.records import LOGITS_FILE, UNVERIFIED_REPORT, CaptureArgs, UnverifiedReport
from grader.sandbox.inside.student import StudentError, describe_error
from grader.sandbox.inside.tasks import JobContext
from grader.sandbox.protocol import parse_record, write_record


def unverified_task(ctx: JobContext) -> None:
    """Compute the student's logits on the box's images in the student's own process."""
    args = parse_record(
        {k: v for k, v in ctx.args.items() if k not in ("batch_size", "images")},
        CaptureArgs,
        name="arguments",
    )
    batch = max(1, int(ctx.args.get("batch_size", 256)))
    staged = ctx.args.get("images")
    try:
        images = (
            np.load(ctx.work / staged, allow_pickle=False)
            if isinstance(staged, str)
            else ctx.images
            if ctx.images is not None
            else np.zeros((0, *args.input_shape), np.uint8)
        )
        _model, graded = load_student_model(ctx, args)
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
        report = UnverifiedReport("ok")
    except StudentError as exc:
        report = UnverifiedReport("invalid", str(exc))
    except MemoryError:
        report = UnverifiedReport("invalid", "the model ran out of memory inside the sandbox")
    except Exception as exc:  # the student's forward code on real images
        report = UnverifiedReport("invalid", f"inference failed: {describe_error(exc)}")
    write_record(ctx.out / UNVERIFIED_REPORT, report)
