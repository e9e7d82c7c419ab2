"""The experiments' figures, looked at in headless Chromium: every PNG loads and shows something."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from matplotlib.image import imread

from reference.experiments import EXPERIMENTS

REPO = Path(__file__).resolve().parents[3]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


def figures_page(runs: dict[str, tuple[dict, Path, str]], path: Path) -> int:
    """An HTML page with every figure of every run, captioned; returns the number of figures."""
    parts = ["<!doctype html><meta charset='utf-8'><title>experiment figures</title>"]
    count = 0
    for name, (document, out, _output) in runs.items():
        parts.append(f"<h2>{html.escape(name)}</h2>")
        for key, file_name in document["files"].items():
            uri = (out / file_name).resolve().as_uri()
            caption = html.escape(f"{name}: {key} ({file_name})")
            parts.append(f"<figure><img src='{uri}' alt='{caption}'><figcaption>{caption}")
            parts.append("</figcaption></figure>")
            count += 1
    path.write_text("\n".join(parts), encoding="utf-8")
    return count


def test_every_figure_renders_in_a_browser(tiny_run, tmp_path):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/setup.sh as root)")
    runs = {name: tiny_run(name) for name in EXPERIMENTS}
    page_path = tmp_path / "figures.html"
    expected = figures_page(runs, page_path)
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = artifacts / "experiment-figures.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(page_path.as_uri())
            page.wait_for_load_state("load")
            images = page.evaluate(
                "Array.from(document.images).map(i => "
                "[i.alt, i.complete, i.naturalWidth, i.naturalHeight])"
            )
            captions = page.inner_text("body")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert len(images) == expected >= 2 * len(EXPERIMENTS) - 2
    for alt, complete, width, height in images:
        assert complete and width >= 600 and height >= 300, alt
    for document, _out, _output in runs.values():
        for file_name in document["files"].values():
            assert file_name in captions
    pixels = imread(shot)
    assert pixels.shape[0] > 300 * expected  # the page holds every figure, one under another
    assert pixels.std() > 0.05
