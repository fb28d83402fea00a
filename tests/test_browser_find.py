"""A real browser: JupyterLab on localhost runs notebook 10 in headless Chromium (Playwright); a query
is typed into the find box and the grid of thumbnails is checked (every image loaded, inline bytes)."""

from __future__ import annotations

import os
import time

import pytest

from test_browser import CHROMIUM, REPO, lab  # noqa: F401 - the JupyterLab fixture, shared

pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed "
                                                   "(Debian: apt-get install chromium; .ci/run installs it)")]


def test_find_box_and_thumbnail_grid_in_a_real_browser(lab, tmp_path):  # noqa: F811
    sync_api = pytest.importorskip("playwright.sync_api")
    url, token, root = lab
    shots = [tmp_path / "shots"]
    if os.environ.get("PHOTOLAB_SCREENSHOTS"):
        shots.append(REPO / "docs" / "screenshots")
    for d in shots:
        d.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.set_default_timeout(60_000)
        page.goto(f"{url}/lab/tree/10_find.ipynb?token={token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        page.wait_for_function("() => { const i = document.querySelector('.jp-Notebook-ExecutionIndicator');"
                               " return i && i.getAttribute('data-status') === 'idle'; }", timeout=180_000)

        def run_all():
            dialog = page.locator(".jp-Dialog:has-text('Select Kernel')")
            if dialog.count():   # JupyterLab sometimes asks although the notebook names its kernel
                dialog.locator("button.jp-mod-accept").click()
                page.wait_for_function("() => { const i = document.querySelector('.jp-Notebook-ExecutionIndicator');"
                                       " return i && i.getAttribute('data-status') === 'idle'; }", timeout=180_000)
            page.click("li.lm-MenuBar-item:has-text('Run')")
            page.click("li.lm-Menu-item:has-text('Run All Cells')")

        run_all()
        finished = ("() => { const c = document.querySelectorAll('.jp-CodeCell'); const last = c[c.length - 1];"
                    " return last && last.querySelector('.jp-OutputArea-output') !== null; }")
        started = "() => [...document.querySelectorAll('.jp-InputPrompt')].some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))"
        failed = ("() => [...document.querySelectorAll('[data-mime-type=\"application/vnd.jupyter.stderr\"]')]"
                  ".some(o => o.textContent.includes('Traceback'))")
        deadline, retried = time.time() + 300, False
        while not page.evaluate(finished):
            if page.evaluate(failed):
                pytest.fail("a notebook cell failed:\n" + page.inner_text("body")[-3000:])
            if not retried and time.time() > deadline - 240 and not page.evaluate(started):
                run_all()
                retried = True
            if time.time() > deadline:
                pytest.fail("the notebook did not finish in 300 s:\n" + page.inner_text("body")[-3000:])
            page.wait_for_timeout(2000)
        body = page.inner_text("body")
        assert "Error displaying widget" not in body and "Traceback" not in body, body[-3000:]
        box = page.locator(".photolab-find-box input").first
        box.wait_for()
        box.scroll_into_view_if_needed()
        # a person types a query and presses Enter
        box.fill("")
        box.type("cat OR dog")
        box.press("Enter")
        grid = page.locator(".photolab-find-grid").first
        page.wait_for_function(
            "() => { const g = document.querySelector('.photolab-find-grid');"
            " const imgs = g ? [...g.querySelectorAll('img')] : [];"
            " return imgs.length === 3 && imgs.every(i => i.complete && i.naturalWidth > 0); }", timeout=60_000)
        srcs = grid.locator("img").evaluate_all("imgs => imgs.map(i => i.src)")
        assert all(s.startswith("blob:") or s.startswith("data:") for s in srcs), srcs   # inline bytes, no file URL
        names = grid.locator(".photolab-find-card button").all_inner_texts()
        assert sorted(n.strip() for n in names) == ["chelsea.png", "empty_icc.heic", "pug.heic"]
        # clicking a photo shows its details and offers more like it
        grid.locator(".photolab-find-card button:has-text('chelsea.png')").click()
        page.wait_for_selector(".photolab-find-detail")
        assert "cat" in page.inner_text(".photolab-find-detail")
        for d in shots:
            grid.locator("xpath=../..").screenshot(path=str(d / "find-grid.png"))
        # a bad query: one line naming the term, no traceback
        box.fill("guitr")
        box.press("Enter")
        page.wait_for_function("() => document.body.innerText.includes('\"guitr\"')", timeout=30_000)
        assert "guitar" in page.inner_text("body")
        browser.close()
    assert (tmp_path / "shots" / "find-grid.png").stat().st_size > 10_000
