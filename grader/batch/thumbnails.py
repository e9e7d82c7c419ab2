"""Thumbnails of test images for the galleries of the report and the student pages.

Each image is encoded once per batch as a small PNG data URI, so a page can be one
self-contained file (the leaderboard serves it as it is); ``grader check``'s student pages share
one sheet of them instead (:class:`grader.batch.student_page.PageAssets`). Only the images present
in the data folder have thumbnails: an answer key of 10,000 ids over the 1,017-image CIFAR-10
subset gives thumbnails for ids 0..1016, and the pages say how many of the wrong answers they can
show.
"""

from __future__ import annotations

import base64
import io
import threading
from pathlib import Path

import numpy as np
from markupsafe import Markup

from grader.assignment import Assignment


class Thumbnails:
    """Test images by id (the image's index in the dataset's test set) as PNG data URIs."""

    def __init__(self, images: np.ndarray | None, note: str = ""):
        self.images = images
        self.note = note
        """Why there are none, when there are none."""
        self._uris: dict[int, Markup] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return 0 if self.images is None else len(self.images)

    def __contains__(self, image_id: object) -> bool:
        return isinstance(image_id, (int, np.integer)) and 0 <= int(image_id) < len(self)

    def available(self, ids: np.ndarray) -> np.ndarray:
        """Boolean mask over ``ids``: which have a thumbnail."""
        ids = np.asarray(ids)
        return (ids >= 0) & (ids < len(self))

    def data_uri(self, image_id: int) -> Markup:
        """The image as ``data:image/png;base64,...``; KeyError when it has no thumbnail."""
        if image_id not in self:
            raise KeyError(image_id)
        image_id = int(image_id)
        with self._lock:
            uri = self._uris.get(image_id)
        if uri is None:
            encoded = base64.b64encode(png_bytes(self.images[image_id])).decode()
            # base64 needs no HTML escaping: marked safe, pages skip scanning kilobytes per image
            uri = Markup(f"data:image/png;base64,{encoded}")
            with self._lock:
                self._uris[image_id] = uri
        return uri


def png_bytes(image: np.ndarray) -> bytes:
    """One (C, H, W) uint8 image as PNG bytes."""
    from PIL import Image

    pixels = image.transpose(1, 2, 0) if image.shape[0] == 3 else image[0]
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, "PNG", optimize=False)
    return buffer.getvalue()


def load_thumbnails(spec: Assignment, data_dir: Path | None = None) -> Thumbnails:
    """The test images of ``spec``'s dataset, or none (with the reason) when they are missing."""
    from grader.data import DataError, cached_dataset

    try:
        images = cached_dataset(spec.dataset, "test", data_dir).images
    except DataError as exc:
        return Thumbnails(None, note=f"no thumbnails: {exc}")
    return Thumbnails(images)
