"""Which files of a submission folder make a model submission: one rule for every entry point."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from grader.grading.intake import MODEL_FILE, WEIGHT_SUFFIXES, is_weights_file


class ModelFilesError(ValueError):
    """A folder that is not a model submission; the message says what is missing or extra."""


@dataclass(frozen=True)
class ModelFiles:
    """The model code and the (optional) weights file of a submission."""

    model: Path
    weights: Path | None


def find_model_files(folder: Path) -> ModelFiles:
    """``model.py`` (any case) and the one weights file at the top of ``folder``."""
    folder = Path(folder)
    files = [p for p in sorted(folder.iterdir()) if p.is_file() or p.is_symlink()]
    models = [p for p in files if p.name.lower() == MODEL_FILE]
    if not models:
        found = ", ".join(p.name for p in files) or "nothing"
        raise ModelFilesError(
            f"{folder.name}: no {MODEL_FILE} (a model submission is {MODEL_FILE} plus a weights "
            f"file {', '.join(WEIGHT_SUFFIXES)}); found {found}"
        )
    weights = [p for p in files if is_weights_file(p.name)]
    if len(weights) > 1:
        names = ", ".join(p.name for p in weights)
        raise ModelFilesError(f"{folder.name}: more than one weights file ({names}); keep one")
    return ModelFiles(models[0], weights[0] if weights else None)
