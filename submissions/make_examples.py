"""Write the example prediction submissions (``submissions/cifar10/<student>/``), seeded.

Predictions are made from the real CIFAR-10 test labels
(``$GRADER_DATA_DIR/cifar10-test-labels.csv``) by replacing a share of them with wrong classes,
the wrong class drawn from a fixed confusion pattern (cat<->dog, automobile<->truck, ...) the
way real CNNs err. The set covers honest students
of different accuracies, a copied pair, a byte-identical pair, a perfect score and broken files
that ``grader check`` must report without stopping. Only the folders listed here are written;
other folders (e.g. model submissions) are left alone.

    python submissions/make_examples.py [--data-dir DIR] [--out submissions/cifar10]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 661
HERE = Path(__file__).resolve().parent
CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
# The wrong class a CNN most often gives for each true class (CIFAR-10 confusion pairs).
LIKELY_CONFUSION = {0: 8, 1: 9, 2: 4, 3: 5, 4: 2, 5: 3, 6: 3, 7: 4, 8: 0, 9: 1}
HONEST = {
    "alice": 0.93,
    "bob": 0.81,
    "carol": 0.74,
    "dave": 0.62,
    "erin": 0.55,
    "frank": 0.47,
    "grace": 0.35,
}


def noisy_predictions(labels: np.ndarray, accuracy: float, rng: np.random.Generator) -> np.ndarray:
    """Labels with about ``1 - accuracy`` of them replaced by a plausible wrong class."""
    out = labels.copy()
    wrong = rng.random(len(labels)) > accuracy
    likely = np.vectorize(LIKELY_CONFUSION.get)(labels[wrong])
    random_other = (labels[wrong] + rng.integers(1, 10, wrong.sum())) % 10
    out[wrong] = np.where(rng.random(wrong.sum()) < 0.4, likely, random_other)
    return out


def to_csv(ids: np.ndarray, labels, **kwargs) -> bytes:
    frame = pd.DataFrame({"Id": ids, "Category": labels})
    return frame.to_csv(index=False, **kwargs).encode("utf-8")


def examples(truth: pd.DataFrame, rng: np.random.Generator) -> dict[str, dict[str, bytes]]:
    """Student folder -> file name -> content."""
    ids = truth["Id"].to_numpy()
    labels = truth["Category"].to_numpy()
    out: dict[str, dict[str, bytes]] = {}
    predicted: dict[str, np.ndarray] = {}
    for student, accuracy in HONEST.items():
        predicted[student] = noisy_predictions(labels, accuracy, rng)
        order = rng.permutation(len(ids)) if student == "carol" else np.arange(len(ids))
        out[student] = {"predictions.csv": to_csv(ids[order], predicted[student][order])}
    # heidi copies dave and changes a few rows to hide it.
    copied = predicted["dave"].copy()
    changed = rng.choice(len(ids), 40, replace=False)
    copied[changed] = rng.integers(0, 10, 40)
    out["heidi"] = {"predictions.csv": to_csv(ids, copied)}
    # ivan hands in erin's file unchanged.
    out["ivan"] = {"predictions.csv": out["erin"]["predictions.csv"]}
    out["judy"] = {"predictions.csv": to_csv(ids, labels)}
    # Spreadsheet exports: class names, BOM + CRLF; both are valid.
    names = np.array(CLASS_NAMES)[noisy_predictions(labels, 0.68, rng)]
    out["ken"] = {"predictions.csv": to_csv(ids, names)}
    crlf = to_csv(ids, noisy_predictions(labels, 0.71, rng), lineterminator="\r\n")
    out["laura"] = {"predictions.csv": b"\xef\xbb\xbf" + crlf}
    # Broken submissions.
    out["mallory"] = {"predictions.csv": to_csv(ids, predicted["bob"], sep=";")}
    keep = np.sort(rng.choice(len(ids), len(ids) - 137, replace=False))
    out["nina"] = {"predictions.csv": to_csv(ids[keep], noisy_predictions(labels, 0.7, rng)[keep])}
    out["oscar"] = {"predictions.csv": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()}
    out["peggy"] = {"predictions.csv": b""}
    out["quentin"] = {"notes.txt": b"I trained for 3 epochs, see my notebook.\n"}
    return out


def main(argv: list[str] | None = None) -> None:
    """Write the example folders."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("GRADER_DATA_DIR", HERE.parent.parent / "shared" / "data")),
        help="folder with cifar10-test-labels.csv (default: $GRADER_DATA_DIR)",
    )
    parser.add_argument(
        "--out", type=Path, default=HERE / "cifar10", help="default: submissions/cifar10"
    )
    args = parser.parse_args(argv)
    labels_csv = args.data_dir / "cifar10-test-labels.csv"
    if not labels_csv.is_file():
        parser.error(f"{labels_csv} not found; pass --data-dir or set GRADER_DATA_DIR")
    truth = pd.read_csv(labels_csv).sort_values("Id")
    for student, files in examples(truth, np.random.default_rng(SEED)).items():
        folder = args.out / student
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (folder / name).write_bytes(content)
    print(f"wrote {len(HONEST) + 10} example submissions under {args.out}")


if __name__ == "__main__":
    main()
