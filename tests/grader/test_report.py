"""The instructor's report and the batch's records on real labels: rubric, integer ticks, images
graded, copy clusters, the class's confusions and hardest images, plots only where they say
something, metrics, experiments, provenance and the cache count."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from grader.assignment import load_assignment
from grader.batch.html import tidy_message
from grader.batch.report import score_histogram
from grader.batch.run import grade_folder
from grader.cli import main
from grader.data import load_dataset
from grader.metrics import VARIANT_NAMES, variant_subset
from grader.models import pipeline
from grader.models.graph import Layer
from grader.models.result import Check, ExperimentOutcome, GradeStatus, ModelResult
from grader.predictions.solution import answer_key_digest, load_solution


@pytest.fixture(scope="module")
def truth(labels_csv) -> pd.DataFrame:
    return pd.read_csv(labels_csv)


def noisy(labels: np.ndarray, accuracy: float, rng: np.random.Generator) -> np.ndarray:
    out = labels.copy()
    wrong = rng.random(len(labels)) > accuracy
    out[wrong] = (out[wrong] + rng.integers(1, 10, wrong.sum())) % 10
    return out


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory, truth) -> tuple[Path, dict[str, np.ndarray]]:
    """Honest students, a ring of five copiers of one answer sheet, and two identical files."""
    root = tmp_path_factory.mktemp("class")
    rng = np.random.default_rng(42)
    labels = truth["Category"].to_numpy()
    written: dict[str, np.ndarray] = {}
    sheet = noisy(labels, 0.6, rng)
    for i, name in enumerate(("cal", "cam", "cat", "cay", "cob")):
        copied = sheet.copy()
        change = rng.random(len(copied)) < 0.03 * (i + 1)  # each edits a few answers
        copied[change] = noisy(labels[change], 0.8, rng)
        written[name] = copied
    for name, accuracy in (("ann", 0.93), ("bea", 0.71), ("dee", 0.45), ("eli", 0.84)):
        written[name] = noisy(labels, accuracy, rng)
    written["twin"] = written["bea"]
    for name, predicted in written.items():
        (root / name).mkdir()
        frame = truth.assign(Category=predicted)
        (root / name / "predictions.csv").write_bytes(frame.to_csv(index=False).encode())
    (root / "hal").mkdir()
    (root / "hal" / "predictions.xlsx").write_bytes(b"PK\x03\x04")
    return root, written


@pytest.fixture(scope="module")
def batch(class_folder, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    return grade_folder(class_folder[0], spec=load_assignment("cifar10"), data_dir=data_dir,
                        out_dir=out, progress=False)  # fmt: skip


def rows(batch) -> dict[str, object]:
    return {r.student: r for r in batch.results}


def test_five_copiers_are_one_cluster_and_one_line(batch):
    ring = ("cal", "cam", "cat", "cay", "cob")
    clusters = {c.members: c for c in batch.clusters}
    assert set(clusters) == {ring, ("bea", "twin")}
    assert len(clusters[ring].pairs) == 10  # every pair of the five shares the wrong answers
    assert clusters[("bea", "twin")].identical_files == (("bea", "twin"),)
    html = batch.report_html.read_text()
    items = re.findall(r"<li>(.*?)</li>", html, flags=re.S)
    assert len(items) == 2
    assert items[0].startswith("cal, cam, cat, cay, cob: near-identical predictions in 10 of 10")
    for student in ring:
        copy_flags = [f for f in rows(batch)[student].flags if "near-identical" in f]
        assert len(copy_flags) == 1 and copy_flags[0].count("identical wrong answers") == 4
    assert not rows(batch)["ann"].flags and not rows(batch)["eli"].flags


def test_rubric_table_counts_students_at_each_level(batch):
    html = batch.report_html.read_text()
    spec = load_assignment("cifar10")
    graded = [r for r in batch.results if r.status == "ok"]
    for level in spec.rubric:
        count = sum(r.points == level.points for r in graded)
        cell = f'<td>{level.min_accuracy:.0%}</td><td class="num">{level.points:g}</td>'
        assert f'{cell}<td class="num">{count}</td>' in html
    assert "below 50%" in html


def test_histogram_has_whole_students_and_labelled_thresholds():
    spec = load_assignment("cifar10")
    fig = score_histogram([0.55, 0.62, 0.81], spec)
    ax = fig.axes[0]
    ticks = [t for t in ax.get_yticks() if ax.get_ylim()[0] <= t <= ax.get_ylim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    labels = sorted(t.get_text().strip() for t in ax.texts)
    assert labels == ["50%: 4 pts", "70%: 7 pts", "80%: 9 pts", "90%: 10 pts"]


def test_report_states_the_images_and_the_provenance(batch, data_dir):
    html = batch.report_html.read_text()
    assert "The answer key has 10,000 test images (5,000 public, 5,000 private)" in html
    spec = load_assignment("cifar10")
    key = answer_key_digest(load_solution(spec, data_dir))
    assert batch.provenance.spec_sha256 == spec.digest()
    assert batch.provenance.answer_key_sha256 == key
    assert key in html and spec.digest() in html and batch.provenance.grader_version in html
    grades = pd.read_csv(batch.grades_csv, keep_default_na=False)
    assert set(grades["answer_key_sha256"]) == {key}
    assert set(grades["graded_at"]) == {batch.provenance.graded_at}


def test_the_class_confusions_and_hardest_images(batch, class_folder, truth):
    _, written = class_folder
    graded = [r for r in batch.results if r.status == "ok"]
    summed = np.sum([np.asarray(r.grade.confusion["all"]) for r in graded], axis=0)
    off = summed.copy()
    np.fill_diagonal(off, 0)
    t, p = np.unravel_index(off.argmax(), off.shape)
    names = load_assignment("cifar10").class_names
    html = batch.report_html.read_text()
    assert f"summed over {len(graded)} graded students" in html
    first_pair = html.split("Most confused class pairs")[1]
    assert f'<td>{names[t]}</td><td>{names[p]}</td><td class="num">{off[t, p]:,}</td>' in (
        first_pair
    )
    # the hardest images: most students wrong, among the 1,017 the data folder has pictures of
    labels = truth["Category"].to_numpy()
    wrong = np.sum([written[r.student] != labels for r in graded], axis=0)[:1017]
    shown = [int(i) for i in re.findall(r"alt=\"test image (\d+):", html.split("Hardest")[1])]
    assert len(shown) == 24
    assert min(wrong[shown]) >= np.sort(wrong)[::-1][23]
    assert "among the 1,017 of 10,000 test images the data folder has" in html


def test_first_run_counts_no_cache_hits_even_for_identical_twins(class_folder, data_dir, tmp_path):
    root, _ = class_folder
    args = ["check", str(root), "--data-dir", str(data_dir), "--out", str(tmp_path), "--quiet"]
    first = CliRunner().invoke(main, args, catch_exceptions=False)
    summary = first.output.splitlines()[0]
    assert first.exit_code == 0 and "cache" not in summary, summary
    second = CliRunner().invoke(main, args, catch_exceptions=False)
    graded = sum(1 for p in root.iterdir() if (p / "predictions.csv").exists())
    assert f"({graded} from the cache," in second.output.splitlines()[0]
    assert "student pages:" in first.output and (tmp_path / "students" / "ann.html").is_file()


def test_ignored_files_and_an_unreadable_spreadsheet(batch):
    hal = rows(batch)["hal"]
    assert hal.status == "invalid" and "nothing gradable" in hal.message
    assert hal.ignored == ["predictions.xlsx"]
    assert "<td>hal</td><td><code>predictions.xlsx</code></td>" in batch.report_html.read_text()


def test_messages_repeat_nothing():
    assert tidy_message("model.py line 3: NameError; weights: model.py line 3: NameError") == (
        "model.py line 3: NameError"
    )
    assert tidy_message("a; b; a") == "a; b"
    assert tidy_message("predictions.csv: x; save the file") == "predictions.csv: x; save the file"


# --- model submissions, through a stand-in for the model grader -------------------------------


def FakeGrade(  # noqa: N802 (a stand-in for the pipeline's result, built like one)
    status: str,
    message: str = "",
    logits=None,
    total_params=None,
    flops=None,
    checks=(),
    weights_sha256=None,
    *,
    layers=(),
    verified=False,
    variant_logits=None,
) -> ModelResult:
    return ModelResult(
        GradeStatus(status), message, verified, logits, variant_logits or {},
        total_params=total_params, flops=flops, checks=list(checks),
        weights_sha256=weights_sha256, layers=list(layers),
    )  # fmt: skip


LAYERS = [Layer("conv1", "Conv2d", [8, 28, 28], 608), Layer("fc3", "Linear", [10], 850)]


@pytest.fixture(scope="module")
def model_batch(tmp_path_factory, data_dir):
    labels = load_dataset("cifar10", "test", data_dir).labels
    rng = np.random.default_rng(5)
    subset = variant_subset(len(labels))

    def logits(accuracy: float) -> np.ndarray:
        return np.eye(10, dtype=np.float32)[noisy(labels, accuracy, rng)] * 3 + rng.normal(
            0, 0.5, (len(labels), 10)
        ).astype(np.float32)

    good = logits(0.62)
    memo = np.eye(10, dtype=np.float32)[labels] * 9
    grades = {
        "ada": FakeGrade("ok", "all checks passed", good, 82030, 650_000,
                         [Check("params_exact", True, "82,030 parameters as required")],
                         "a", layers=LAYERS, verified=True,
                         variant_logits={n: good[subset] + rng.normal(0, 1, (len(subset), 10))
                                         for n in VARIANT_NAMES}),
        "bo": FakeGrade("ok", "all checks passed", logits(0.55), 120_000, 900_000,
                        [Check("params_max", True, "120,000 <= 300,000")], "b", layers=LAYERS,
                        verified=False),
        "memo": FakeGrade("ok", "all checks passed", memo, 82030, 650_000, [], "c",
                          variant_logits={n: rng.normal(0, 1, (len(subset), 10))
                                          for n in VARIANT_NAMES}),
        "crash": FakeGrade("invalid", "model.py line 3: NameError: name 'nn' is not defined; "
                           "weights: model.py line 3: NameError: name 'nn' is not defined",
                           checks=[Check("build", False, "model.py line 3: NameError")]),
    }  # fmt: skip
    root = tmp_path_factory.mktemp("models")
    for student in grades:
        (root / student).mkdir()
        (root / student / "model.py").write_text(f"# {student}\n")
        (root / student / "model.pt").write_bytes(student.encode())
        (root / student / "README.md").write_text("notes")

    def grade_model(folder, spec, **kwargs):
        assert sorted(p.name for p in folder.iterdir()) == ["README.md", "model.pt", "model.py"]
        return grades[folder.name]

    saved = pipeline.grade_model
    pipeline.grade_model = grade_model
    try:
        out = tmp_path_factory.mktemp("model-out")
        yield grade_folder(root, spec=load_assignment("simplenn"), data_dir=data_dir,
                           out_dir=out, progress=False)  # fmt: skip
    finally:
        pipeline.grade_model = saved


def test_model_metrics_reach_grades_results_and_the_report(model_batch):
    by = rows(model_batch)
    ada, memo = by["ada"], by["memo"]
    assert (
        ada.grade.metrics.corruption_accuracy is not None and not ada.grade.metrics.likely_memoriser
    )
    assert memo.grade.metrics.likely_memoriser and memo.grade.metrics.memoriser_reason in memo.flags
    assert (
        by["bo"].grade.metrics.ece is not None and by["bo"].grade.metrics.flip_consistency is None
    )
    grades = pd.read_csv(model_batch.grades_csv).set_index("student")
    assert grades.loc["ada", "ece"] == pytest.approx(round(ada.grade.metrics.ece, 4))
    assert grades.loc["ada", "flip_consistency"] == pytest.approx(
        round(ada.grade.metrics.flip_consistency, 4)
    )
    assert bool(grades.loc["memo", "likely_memoriser"]) is True
    assert grades.loc["ada", "verified"] == True  # noqa: E712 (a CSV cell)
    data = {r["student"]: r for r in json.loads(model_batch.results_json.read_text())["results"]}
    assert data["ada"]["metrics"]["corruption_accuracy"]["jpeg"] == list(
        ada.grade.metrics.corruption_accuracy["jpeg"]
    )
    assert data["ada"]["checks"] == [
        {
            "name": "params_exact",
            "passed": True,
            "message": "82,030 parameters as required",
            "points": None,
        }
    ]
    assert data["ada"]["verified"] is True and data["crash"]["status"] == "invalid"
    html = model_batch.report_html.read_text()
    assert "Flag rule: likely memoriser of the test images" in html
    assert "Models were evaluated on 1,017 test images" in html
    assert "params_vs_accuracy.png" in html  # 82,030 vs 120,000: the plot says something
    assert html.count("name &#39;nn&#39; is not defined") == 1  # the repeat is dropped
    assert "README.md" in by["ada"].files and by["ada"].ignored == []  # all of model.py's folder


def test_no_parameters_plot_when_every_model_has_the_same_count(model_batch, tmp_path):
    from grader.batch.report import write_report

    same = [r for r in model_batch.results if r.grade.total_params in (82030, None)]
    batch = type(model_batch)(**{**model_batch.__dict__, "results": same,
                                 "report_html": tmp_path / "report.html"})  # fmt: skip
    write_report(batch, spec=load_assignment("simplenn"), out_dir=tmp_path)
    assert "params_vs_accuracy.png" not in (tmp_path / "report.html").read_text()
    assert not (tmp_path / "params_vs_accuracy.png").exists()


def test_experiment_plots_are_embedded(tmp_path, data_dir, monkeypatch):
    """The vgg-bn experiment's plot shows in the report and on the student's page."""

    def grade_model(folder, spec, *, experiment_dir, **kwargs):
        experiment_dir.mkdir(parents=True, exist_ok=True)
        from matplotlib.figure import Figure

        fig = Figure(figsize=(2, 2))
        fig.add_subplot().plot([0, 1], [1, 0])
        fig.savefig(experiment_dir / "vggbn_loss_band.png")
        outcome = ExperimentOutcome("bn_landscape", "BN loss band 0.190 vs VGG-A 0.290 (narrower)",
                                    plot="vggbn_loss_band.png")  # fmt: skip
        return ModelResult(GradeStatus.OK, "all checks passed", True, experiment=outcome)

    monkeypatch.setattr(pipeline, "grade_model", grade_model)
    (tmp_path / "subs" / "eve").mkdir(parents=True)
    (tmp_path / "subs" / "eve" / "model.py").write_text("# VGG_BatchNorm\n")
    batch = grade_folder(tmp_path / "subs", spec=load_assignment("vgg-bn"), data_dir=data_dir,
                         out_dir=tmp_path / "out", progress=False)  # fmt: skip
    (eve,) = batch.results
    assert eve.experiment_plots == ["experiments/eve/vggbn_loss_band.png"]
    assert '<img src="experiments/eve/vggbn_loss_band.png"' in batch.report_html.read_text()
    page = (tmp_path / "out" / "students" / "eve.html").read_text()
    assert '<img src="../experiments/eve/vggbn_loss_band.png"' in page
