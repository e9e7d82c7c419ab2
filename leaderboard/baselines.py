"""The baselines a board shows: the reference models its spec lists, scored like an entry.

Each name in the spec's ``baselines`` is a folder ``<BASELINE_DIR>/<model>/`` holding what
``grader train --all-baselines`` wrote: ``record.json`` (accuracy, parameters, epochs, data, the
validation curve) and ``predictions.csv``. The predictions are scored against the board's own
answer key, so a baseline's public and private accuracy are on exactly the images of the entries'.
A baseline is not shown, with the reason said, when its files are missing, when its predictions
do not cover the board's test ids (a record trained where only part of the test set was present),
or when it is below twice chance (a model that did not learn is no yardstick).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

from grader.assignment import Assignment
from grader.grading.complete import PROBLEM_SEPARATOR, complete_grade
from grader.grading.evidence import Evidence, PredictionsFile
from grader.grading.status import GradeStatus, SubmissionKind
from grader.predictions.read import SubmissionError
from leaderboard.scoring import answer_key

BASELINE_DIR = Path(__file__).resolve().parent.parent / "reference" / "baselines"
RECORD, PREDICTIONS = "record.json", "predictions.csv"

_SCORES: dict[tuple, object] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Baseline:
    """A reference result shown among the entries."""

    model: str
    public_accuracy: float
    private_accuracy: float | None
    """Only once the private board is revealed."""
    parameters: int | None = None
    epochs: int | None = None
    train_images: int | None = None
    converged: bool | None = None
    """Whether training had converged when it stopped (None: not recorded)."""
    data: str = ""
    """What it was trained on and how, in words."""

    @property
    def accuracy(self) -> float:
        """The accuracy the board ranks by: private once revealed, else public."""
        return self.private_accuracy if self.private_accuracy is not None else self.public_accuracy


@dataclass(frozen=True)
class Baselines:
    """The baselines shown on a board, and why the other listed ones are not."""

    shown: list[Baseline] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)


def load_baselines(
    spec: Assignment,
    directory: Path | None = None,
    *,
    data_dir: Path | None = None,
    revealed: bool = False,
) -> Baselines:
    """The spec's baselines scored on its answer key; see the module docstring."""
    directory = Path(directory or BASELINE_DIR)
    chance = 1 / max(1, len(spec.class_names))
    found = Baselines()
    for model in spec.baselines:
        folder = directory / model
        try:
            record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except (OSError, UnicodeDecodeError, ValueError):
            found.hidden.append(f"{model}: no readable {RECORD} in {folder}")
            continue
        try:
            public, private = _scores(folder / PREDICTIONS, spec, data_dir)
        except OSError:
            found.hidden.append(f"{model}: no {PREDICTIONS} to score on this board's test images")
            continue
        except SubmissionError as exc:
            found.hidden.append(f"{model}: its predictions do not fit this board's test images "
                                f"({exc.errors[0]})")  # fmt: skip
            continue
        if public < 2 * chance:
            found.hidden.append(
                f"{model}: {public:.1%} on the public split, below twice chance ({2 * chance:.0%})"
            )
            continue
        found.shown.append(_baseline(model, record, public, private if revealed else None))
    return found


def _scores(path: Path, spec: Assignment, data_dir: Path | None) -> tuple[float, float]:
    """Public and private accuracy of a predictions file, or its SubmissionError (either cached
    while the file is unchanged)."""
    key = (str(path), path.stat().st_mtime_ns, spec.digest(), str(data_dir))
    with _LOCK:
        cached = _SCORES.get(key)
    if cached is None:
        evidence = Evidence(
            SubmissionKind.PREDICTIONS, predictions=PredictionsFile(path.name, path.read_bytes())
        )
        grade = complete_grade(evidence, spec, answer_key(spec, data_dir))
        if grade.status is GradeStatus.OK:
            cached = (grade.public_accuracy, grade.private_accuracy)
        else:  # the same message a student's file would get
            cached = SubmissionError(grade.message.split(PROBLEM_SEPARATOR))
        with _LOCK:
            _SCORES[key] = cached
    if isinstance(cached, SubmissionError):
        raise cached
    return cached


def _baseline(model: str, record: dict, public: float, private: float | None) -> Baseline:
    data = record.get("data") if isinstance(record.get("data"), dict) else {}
    epochs = _int(record.get("epochs"))
    train_images = _int(data.get("train_images"))
    converged = _converged(record)
    words = []
    if epochs is not None:
        words.append(f"{epochs} epochs")
    if train_images is not None:
        words.append(f"on {train_images:,} training images")
    if data.get("dataset"):
        source = " (full test set)" if data.get("full_test_set") else ""
        words.append(f"of {data['dataset']}{source}")
    if converged is not None:
        words.append("converged" if converged else "still improving when stopped")
    return Baseline(
        model=model,
        public_accuracy=public,
        private_accuracy=private,
        parameters=_int(record.get("parameters")),
        epochs=epochs,
        train_images=train_images,
        converged=converged,
        data=", ".join(words) or "training not recorded",
    )


def _converged(record: dict) -> bool | None:
    """Whether training had converged: ``converged.converged`` (twice the epochs gained under a
    point of validation accuracy), else whether the curve's last quarter was flat."""
    for key, field_name in (("converged", "converged"), ("flattened", "flat")):
        entry = record.get(key)
        if isinstance(entry, dict) and isinstance(entry.get(field_name), bool):
            return entry[field_name]
    return None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
