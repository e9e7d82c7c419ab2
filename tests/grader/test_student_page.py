"""A student's feedback page, rendered by the library function from real grading results: only
the splits the student may see, the confusions, the real test images they got wrong, and for a
model every check and the layer table; the same page at a phone width in headless Chromium."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from grader.assignment import load_assignment
from grader.batch.results import StudentResult
from grader.batch.run import grade_folder
from grader.batch.student_page import render_student_page
from grader.batch.thumbnails import load_thumbnails
from grader.data import load_dataset
from grader.grading import Grade, GradeStatus, SubmissionKind
from grader.models.graph import Layer
from grader.models.result import Check
from grader.predictions.solution import load_solution, split_ids

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def spec():
    return load_assignment("cifar10")


@pytest.fixture(scope="module")
def answer_key(spec, data_dir) -> pd.DataFrame:
    return load_solution(spec, data_dir)


@pytest.fixture(scope="module")
def graded(tmp_path_factory, answer_key, spec, data_dir):
    """A real batch: one student at ~75% with a cat/dog weakness, one broken file."""
    root = tmp_path_factory.mktemp("class")
    rng = np.random.default_rng(11)
    truth = answer_key["label"].to_numpy()
    predicted = truth.copy()
    wrong = rng.random(len(truth)) < 0.2
    predicted[wrong] = rng.integers(0, 10, wrong.sum())
    cats = (truth == 3) & (rng.random(len(truth)) < 0.4)
    predicted[cats] = 5  # cat -> dog
    (root / "mia").mkdir()
    pd.DataFrame({"Id": answer_key["id"], "Category": predicted}).to_csv(
        root / "mia" / "predictions.csv", index=False
    )
    (root / "ned").mkdir()
    (root / "ned" / "predictions.csv").write_text("Id;Category\n0;3\n")
    out = tmp_path_factory.mktemp("out")
    batch = grade_folder(root, spec=spec, data_dir=data_dir, out_dir=out, progress=False)
    return batch, {r.student: r for r in batch.results}, predicted


def test_the_page_shows_only_the_public_split(graded, spec, answer_key, data_dir):
    batch, by, predicted = graded
    mia = by["mia"]
    html = render_student_page(mia, spec=spec, answer_key=answer_key,
                               thumbnails=load_thumbnails(spec, data_dir))  # fmt: skip
    public = f"{100 * mia.public_accuracy:.1f}%"
    assert f'public split accuracy</span><span class="big">{public}' in html
    assert "private split accuracy" not in html and "whole test set" not in html
    heatmap = html.split("Confusion matrix")[1].split("</table>")[0]
    cells = [int(c.replace(",", "")) for c in re.findall(r'">([\d,]+)</td>', heatmap)]
    assert len(cells) == 100 and sum(cells) == 5000  # the public images only
    assert "Not shown yet: the private split" in html
    # the points hang on the private split: the tiers are shown, not what she reached
    assert "hidden / 10" in html and f"{mia.points:g} / 10" not in html
    assert "shown when the private split is revealed" in html and "next tier" not in html
    assert "On the public split (5,000 images)" in html
    # the gallery holds only public images she got wrong, with their true and predicted class
    truth = answer_key["label"].to_numpy()
    public = split_ids(answer_key["id"].to_numpy(), spec.public_fraction, spec.split_seed)
    shown = [(int(i), t, p) for i, t, p in re.findall(r"#(\d+)<br>(\w+) \u2192 (\w+)", html)]
    assert len(shown) == 24
    for image_id, true_name, predicted_name in shown:
        assert public[image_id] and image_id < 1017
        assert true_name == spec.class_names[truth[image_id]]
        assert predicted_name == spec.class_names[predicted[image_id]] != true_name
    assert shown[0][1:] == ("cat", "dog")  # her most frequent confusion comes first
    pairs = html.split("The classes you confuse most")[1]
    assert pairs.index("<td>cat</td><td>dog</td>") < pairs.index("</table>")
    # grader check writes the same page, linking one stylesheet and image files all pages share
    written = (batch.students_dir / "mia.html").read_text()
    assert '<link rel="stylesheet" href="assets/style.css">' in written
    pattern = r'class="thumb" role="img" aria-label="test image (\d+)'
    linked = [int(i) for i in re.findall(pattern, written)]
    assert linked == [image_id for image_id, _, _ in shown] and "data:image" not in written
    assert "<style>" not in written.split("</head>")[0]
    assert "url('assets/thumbnails.png')" in written
    assert (batch.students_dir / "assets" / "style.css").stat().st_size > 1000


def test_thumbnails_are_the_real_test_images(graded, spec, answer_key, data_dir):
    from PIL import Image

    batch, by, _ = graded
    html = render_student_page(by["mia"], spec=spec, answer_key=answer_key,
                               thumbnails=load_thumbnails(spec, data_dir))  # fmt: skip
    uri, image_id = re.search(r'<img src="data:image/png;base64,([^"]+)" alt="test image (\d+)',
                              html).groups()  # fmt: skip
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri))))
    expected = load_dataset("cifar10", "test", data_dir).images[int(image_id)].transpose(1, 2, 0)
    np.testing.assert_array_equal(decoded, expected)
    # the sheet grader check wrote holds the same pixels in the cell the page points at
    page = (batch.students_dir / "mia.html").read_text()
    sheet = np.asarray(Image.open(batch.students_dir / "assets" / "thumbnails.png"))
    columns, rows = (int(re.search(rf"--{n}: (\d+)", page).group(1)) for n in ("columns", "rows"))
    for shown_id, x, y in re.findall(
        r'aria-label="test image (\d+)[^"]*" style="background-position: ([\d.]+)% ([\d.]+)%"', page
    ):
        column, row = round(float(x) * (columns - 1) / 100), round(float(y) * (rows - 1) / 100)
        cell = sheet[32 * row : 32 * (row + 1), 32 * column : 32 * (column + 1)]
        real = load_dataset("cifar10", "test", data_dir).images[int(shown_id)].transpose(1, 2, 0)
        np.testing.assert_array_equal(cell, real)


def test_a_revealed_private_split_shows_everything_and_the_points(graded, spec, answer_key):
    _, by, _ = graded
    mia = by["mia"]
    html = render_student_page(mia, spec=spec, answer_key=answer_key,
                               visible_splits=("public", "private"))  # fmt: skip
    assert f"{100 * mia.private_accuracy:.1f}%" in html
    assert f"{mia.points:g} / 10" in html and "whole test set (10,000 images)" in html
    assert "next tier at" in html or mia.points == 10
    assert "Not shown yet" not in html
    # no thumbnails given: the page says how many wrong answers there are
    assert "none of them is among the test images the grader has pictures of" in html


def test_an_invalid_file_gets_a_list_of_what_to_fix(graded, spec):
    _, by, _ = graded
    html = render_student_page(by["ned"], spec=spec)
    assert "not gradable" in html and "What to fix" in html
    assert "<li>predictions.csv: columns are separated by semicolon" in html


def test_a_model_page_has_every_check_and_the_layer_table(graded, spec):
    _, by, _ = graded
    grade = Grade(
        GradeStatus.INVALID,
        SubmissionKind.MODEL,
        message="failed check(s): params_exact",
        total_params=62958,
        checks=[
            Check("forward", True, "output shape (2, 10) for input (2, 3, 32, 32)"),
            Check("params_exact", False, "62,958 parameters; exactly 82,030 required"),
        ],
        layers=[
            Layer("conv1", "Conv2d", [8, 28, 28], 608, 470_400),
            Layer("conv2", "Conv2d", [16, 10, 10], 3216, 320_000),
        ],
        verified=False,
    )
    html = render_student_page(StudentResult("zoe", grade), spec=load_assignment("simplenn"))
    assert '<td class="fail">FAIL</td><td>62,958 parameters; exactly 82,030 required</td>' in html
    assert '<td class="pass">pass</td>' in html
    assert "<td>Conv2d</td>" in html and "16x10x10" in html and "3,216" in html
    assert "320,000" in html  # FLOPs per layer
    assert "unverified" in html and "62,958" in html


def test_pages_render_in_chromium_at_desktop_and_phone_width(graded):
    """The student page and the report, looked at as a person would (screenshots kept)."""
    from playwright.sync_api import sync_playwright

    batch, _, _ = graded
    ARTIFACTS.mkdir(exist_ok=True)
    pages = {"student-page": batch.students_dir / "mia.html", "report": batch.report_html}
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        try:
            for name, path in pages.items():
                for width, label in ((1280, "desktop"), (390, "phone")):
                    page = browser.new_page(viewport={"width": width, "height": 900})
                    page.goto(path.as_uri())
                    page.wait_for_load_state("load")
                    # nothing wider than the screen: wide tables scroll inside their box
                    scroll_width = page.evaluate("document.documentElement.scrollWidth")
                    assert scroll_width <= width, (name, label, scroll_width)
                    broken = page.evaluate(
                        "[...document.images].filter(i => !i.complete || !i.naturalWidth).length"
                    )
                    assert broken == 0, (name, label)
                    assert page.locator("h1").first.is_visible()
                    page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
                    page.close()
        finally:
            browser.close()
        assert (ARTIFACTS / "report-phone.png").stat().st_size > 10_000
