"""Model uploads as students ship them: a notebook in place of model.py, checkpoints under the
names their training scripts give them."""

from __future__ import annotations

import io
import zipfile

import pytest

from leaderboard.uploads import Upload, UploadError, model_files


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_a_notebook_and_checkpoint_names_are_accepted():
    files = model_files([Upload("HW1.ipynb", b"{}"), Upload("resnet20-12fca82f.th", b"w")],
                        limit=1 << 20)  # fmt: skip
    assert sorted(files) == ["HW1.ipynb", "resnet20-12fca82f.th"]
    zipped = _zip({"hw/model.py": b"x = 1\n", "hw/checkpoint.pth.tar": b"w"})
    assert sorted(model_files([Upload("hw.zip", zipped)], limit=1 << 20)) == [
        "checkpoint.pth.tar",
        "model.py",
    ]
    with pytest.raises(UploadError, match="no model.py among the files .* or your notebook"):
        model_files([Upload("model.pt", b"w")], limit=1 << 20)
