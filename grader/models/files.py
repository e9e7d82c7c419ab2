"""Which files of a submission folder make a model submission: one rule for every entry point.

A model submission is ``model.py`` (or, in its place, one Jupyter notebook) plus at most one
weights file, beside it or, when none is, anywhere under the folder (``checkpoint/ckpt.pth``);
every other file under the folder (helper modules and packages such as ``utils/nn.py``) travels
with it. The suffixes are the intake policy's (:mod:`grader.grading.intake`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from grader.grading.intake import (
    MODEL_FILE,
    NOTEBOOK_SUFFIX,
    SKIPPED_DIRS,
    WEIGHT_SUFFIXES,
    is_notebook,
    is_weights_file,
)


class ModelFilesError(ValueError):
    """A folder that is not a model submission; the message says what is missing or extra."""


@dataclass(frozen=True)
class ModelFiles:
    """The model code (``model.py`` or a notebook) and the (optional) weights file."""

    model: Path
    weights: Path | None

    @property
    def is_notebook(self) -> bool:
        """Whether the model code is a notebook, built into ``model.py`` before grading."""
        return is_notebook(self.model)


def model_root(names: Iterable[str]) -> PurePosixPath | None:
    """The folder of a submission's model among the relative file ``names``: the folder of its
    shallowest ``model.py`` (else notebook), if no other lies as shallow in another folder. The
    model is graded from there: every file under it travels with it."""
    paths = [PurePosixPath(n) for n in names if not SKIPPED_DIRS & set(PurePosixPath(n).parts)]
    for wanted in (lambda p: p.name.lower() == MODEL_FILE, lambda p: is_notebook(p)):
        found = [p for p in paths if wanted(p)]
        if found:
            depth = min(len(p.parts) for p in found)
            folders = {p.parent for p in found if len(p.parts) == depth}
            return folders.pop() if len(folders) == 1 else None
    return None


def find_model_files(folder: Path) -> ModelFiles:
    """``model.py`` (any case; else the one notebook) and the one weights file at the top of
    ``folder``."""
    folder = Path(folder)
    files = [p for p in sorted(folder.iterdir()) if p.is_file() or p.is_symlink()]
    models = [p for p in files if p.name.lower() == MODEL_FILE]
    notebooks = [p for p in files if is_notebook(p.name)]
    if not models and len(notebooks) > 1:
        names = ", ".join(p.name for p in notebooks)
        raise ModelFilesError(
            f"{folder.name}: no {MODEL_FILE} and more than one notebook ({names}); submit one "
            f"notebook, or the model's code as {MODEL_FILE}"
        )
    if not models and not notebooks:
        found = ", ".join(p.name for p in files) or "nothing"
        raise ModelFilesError(
            f"{folder.name}: no {MODEL_FILE} (a model submission is {MODEL_FILE} or a notebook "
            f"{NOTEBOOK_SUFFIX}, plus a weights file {', '.join(WEIGHT_SUFFIXES)}); found {found}"
        )
    weights = [p for p in files if is_weights_file(p.name)] or nested_weights(folder)
    if len(weights) > 1:
        names = ", ".join(p.relative_to(folder).as_posix() for p in weights)
        raise ModelFilesError(f"{folder.name}: more than one weights file ({names}); keep one")
    return ModelFiles((models or notebooks)[0], weights[0] if weights else None)


def nested_weights(folder: Path) -> list[Path]:
    """Weights files in the sub-folders of ``folder`` (``checkpoint/ckpt.pth``, where training
    scripts save them), for a folder with none at its top; hidden folders are skipped."""
    return sorted(
        p
        for p in Path(folder).rglob("*")
        if is_weights_file(p.name)
        and (p.is_file() or p.is_symlink())
        and not any(part.startswith((".", "__")) for part in p.relative_to(folder).parts[:-1])
    )
