"""A real browser: JupyterLab on localhost, the tuning notebook run in headless Chromium (Playwright),
a tag toggled and a page accepted in the review grid, a threshold slider moved — then the catalog
is asked what was stored. Screenshots go to the test folder (and to docs/screenshots/ when
PHOTOLAB_SCREENSHOTS=1)."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import photolab

from conftest import SAMPLE

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed "
                                                   "(Debian: apt-get install chromium; .ci/run installs it)")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab serving a copy of notebooks/ beside a copy of sample_data/ (the notebooks' defaults)."""
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    shutil.copytree(SAMPLE, tmp_path / "sample_data")
    port, token = free_port(), secrets.token_hex(16)
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')   # no "news?" toast
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings")}
    proc = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                             f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
                             f"--ServerApp.root_dir={tmp_path / 'notebooks'}", "--allow-root",
                             "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except Exception:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("JupyterLab did not start")
    yield url, token, tmp_path
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_review_grid_and_threshold_sliders_in_a_real_browser(lab, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    url, token, root = lab
    shots = [tmp_path / "shots"]
    if os.environ.get("PHOTOLAB_SCREENSHOTS"):
        shots.append(REPO / "docs" / "screenshots")
    for d in shots:
        d.mkdir(parents=True, exist_ok=True)
    library = root / "demo-library-notebook"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.set_default_timeout(60_000)
        page.goto(f"{url}/lab/tree/02_tune_thresholds.ipynb?token={token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        # the kernel is up before anything runs (a first start in a new environment is slow)
        page.wait_for_function("() => { const i = document.querySelector('.jp-Notebook-ExecutionIndicator');"
                               " return i && i.getAttribute('data-status') === 'idle'; }", timeout=180_000)
        # a small page size, so the grid still has photos after the notebook's own accepted page
        params = page.locator(".jp-Cell").nth(1).locator(".cm-content")
        params.click()
        page.keyboard.press("Control+End")
        page.keyboard.type("\nPAGE_SIZE = 6")

        def run_all():
            page.click("li.lm-MenuBar-item:has-text('Run')")
            page.click("li.lm-Menu-item:has-text('Run All Cells')")

        run_all()
        # wait for the last cell to finish (the thresholds table is printed); stop early on an error,
        # and run again if nothing started (the click reached JupyterLab before the notebook was ready)
        finished = ("() => { const c = document.querySelectorAll('.jp-Cell'); const last = c[c.length - 1];"
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
        news = page.locator(".jp-toast-container button:has-text('No')")
        if news.count():
            news.first.click()                            # JupyterLab's "news?" question, not ours
        body = page.inner_text("body")
        assert "Error displaying widget" not in body and "Loading widget" not in body
        assert "Traceback" not in body, body[-3000:]
        grid = page.locator(".widget-gridbox").first
        grid.wait_for()
        grid.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        for d in shots:
            grid.locator("xpath=..").screenshot(path=str(d / "review-grid.png"))
        with photolab.open_library(library) as lib:
            before = {(r[0], r[1]): (r[2], r[3]) for r in lib.catalog.query(
                "SELECT photo_id, tag, value, at FROM labels")}
            reviewed = lib.catalog.query("SELECT count(*) FROM reviews")[0][0]
        # a person clicks the first tag of the first photo, then accepts the page
        time.sleep(1.1)                                   # labels carry second-resolution times
        grid.locator(".widget-toggle-button").first.click()
        changed = {}
        deadline = time.time() + 30
        while not changed and time.time() < deadline:
            time.sleep(0.5)
            with photolab.open_library(library) as lib:
                changed = {(r[0], r[1]): r[2] for r in lib.catalog.query(
                    "SELECT photo_id, tag, value, at FROM labels WHERE who = 'me'")
                    if before.get((r[0], r[1])) != (r[2], r[3])}
        assert len(changed) == 1, changed                 # exactly the clicked tag, stored at once
        page.locator("button:has-text('accept page (a)')").first.click()
        deadline = time.time() + 30
        while time.time() < deadline:
            with photolab.open_library(library) as lib:
                now_reviewed = lib.catalog.query("SELECT count(*) FROM reviews")[0][0]
            if now_reviewed > reviewed:
                break
            time.sleep(0.5)
        assert now_reviewed > reviewed
        # a threshold slider moved with the keyboard
        slider = page.locator(".widget-slider").first
        slider.scroll_into_view_if_needed()
        tag = slider.locator(".widget-label").first.inner_text().strip()
        with photolab.open_library(library) as lib:
            from photolab.tagging import thresholds

            t0 = thresholds(lib)[tag]
        slider.locator(".noUi-handle").first.click()
        for _ in range(5):
            page.keyboard.press("ArrowRight")
        page.wait_for_timeout(2000)
        with photolab.open_library(library) as lib:
            t1 = thresholds(lib)[tag]
        assert t1 != pytest.approx(t0), (tag, t0, t1)
        for d in shots:
            page.locator(".widget-slider").first.locator("xpath=../../..").screenshot(path=str(d / "threshold-sliders.png"))
        browser.close()
    assert (tmp_path / "shots" / "review-grid.png").stat().st_size > 10_000
