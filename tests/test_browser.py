"""A real browser: JupyterLab on localhost, notebooks run with "Run All" in headless Chromium
(Playwright) as a photographer meets them: thumbnails load, a tag is typed into the review grid's
add-tag box, a tag toggled and a page accepted, a threshold slider moved, the face namer offers an
unnamed face — then the catalog is asked what was stored. Screenshots of each notebook's key view go
to the test folder; with PHOTOLAB_SCREENSHOTS=1 every notebook is visited and they go to
docs/screenshots/ too."""

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


FINISHED = ("() => { const p = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];"
            " return p.length > 0 && p.every(x => /\\[\\d+\\]/.test(x.textContent)); }")
STARTED = "() => [...document.querySelectorAll('.jp-InputPrompt')].some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))"
FAILED = ("() => [...document.querySelectorAll('.jp-OutputArea-output')]"
          ".some(o => o.textContent.includes('Traceback') || o.textContent.startsWith('photolab: '))")

# notebook -> [(screenshot name, text in the source of the cell whose output is the key view)]
KEY_VIEWS = {
    "00_start_here": [("start-here-checks", "status = check(lib)")],
    "01_tag_library": [("tag-counts", "plots.tag_counts(lib)"), ("tag-gallery", "plots.gallery(lib")],
    "02_tune_thresholds": [("review-grid", "grid = ReviewGrid(lib, sample_name"),
                           ("threshold-sliders", "tuner = ThresholdTuner(")],
    "03_review": [("review-queue", "grid = ReviewGrid(lib, page_size")],
    "04_retrain": [("retrain", "report = train.train(lib)")],
    "05_write_metadata": [("metadata-cards", "plots.metadata_cards(lib, preview)")],
    "06_dedupe": [("dedupe-review", "review = DedupeReview(lib, plan)")],
    "07_organize": [("timeline", "plots.timeline(lib, table)")],
    "08_automation": [("automation-log", "one_pass = ApplyButton(")],
    "09_people_and_places": [("face-namer", "namer = FaceNamer(lib)"), ("map", "plots.photo_map(lib))")],
}


def shut_down_kernels(url: str, token: str) -> None:
    import json

    with urllib.request.urlopen(f"{url}/api/sessions?token={token}", timeout=10) as r:
        sessions = json.load(r)
    for sess in sessions:
        req = urllib.request.Request(f"{url}/api/sessions/{sess['id']}?token={token}", method="DELETE")
        urllib.request.urlopen(req, timeout=30).close()


def choose_python_kernel(page) -> bool:
    """Answer JupyterLab's "Select Kernel" question (asked when its kernel list was not loaded yet)."""
    dialog = page.locator(".jp-Dialog")
    if not dialog.count() or "Select Kernel" not in dialog.first.inner_text():
        return False
    choice = dialog.first.locator("select")
    if choice.count():
        choice.first.select_option(label="Python 3 (ipykernel)")
    dialog.first.locator(".jp-Dialog-button.jp-mod-accept").first.click()
    page.wait_for_timeout(1000)
    return True


def open_and_run(page, url: str, token: str, notebook: str, extra_params: str = "", timeout: float = 400) -> None:
    """Open a notebook, add lines to its parameters cell, Run All, wait until every code cell ran;
    fail on the first traceback or photolab error message."""
    shut_down_kernels(url, token)                         # the previous notebook's, if any
    page.goto(f"{url}/lab/tree/{notebook}.ipynb?reset&token={token}")     # reset: only this notebook open
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    # the kernel is up before anything runs (a first start in a new environment is slow); JupyterLab
    # asks for a kernel when its list of kernels was not loaded yet: the notebook's own one, Python 3
    idle = ("() => { const i = document.querySelector('.jp-Notebook-ExecutionIndicator');"
            " return i && i.getAttribute('data-status') === 'idle'; }")
    page.wait_for_timeout(2000)
    choose_python_kernel(page)
    deadline = time.time() + 180
    while not page.evaluate(idle) or choose_python_kernel(page):
        if time.time() > deadline:
            pytest.fail(f"{notebook}: no kernel in 180 s:\n" + page.inner_text("body")[-2000:])
        page.wait_for_timeout(500)
    if extra_params:
        params = page.locator(".jp-Cell").nth(1).locator(".cm-content")
        params.click()
        page.keyboard.press("Control+End")
        page.keyboard.type("\n" + extra_params)

    def run_all():
        choose_python_kernel(page)
        page.click("li.lm-MenuBar-item:has-text('Run')")
        page.click("li.lm-Menu-item:has-text('Run All Cells')")

    run_all()
    # run again if nothing started (the click reached JupyterLab before the notebook was ready)
    deadline, retried = time.time() + timeout, False
    while not page.evaluate(FINISHED):
        if page.evaluate(FAILED):
            pytest.fail(f"{notebook}: a cell failed:\n" + page.inner_text("body")[-3000:])
        if not retried and time.time() > deadline - timeout + 60 and not page.evaluate(STARTED):
            run_all()
            retried = True
        if time.time() > deadline:
            pytest.fail(f"{notebook} did not finish in {timeout:.0f} s:\n" + page.inner_text("body")[-3000:])
        page.wait_for_timeout(1000)
    page.wait_for_timeout(1000)                           # widgets render after the last reply
    news = page.locator(".jp-toast-container button:has-text('No')")
    if news.count():
        news.first.click()                                # JupyterLab's "news?" question, not ours
    body = page.inner_text("body")
    assert "Error displaying widget" not in body and "Loading widget" not in body, notebook
    assert "Traceback" not in body, body[-3000:]


def cell_with(page, text: str):
    """The notebook cell whose source contains ``text``."""
    cell = page.locator(".jp-CodeCell", has=page.locator(".jp-InputArea", has_text=text)).first
    cell.scroll_into_view_if_needed()
    return cell


def images_loaded(locator) -> list[int]:
    """naturalWidth of every <img> under ``locator`` (0: a broken image)."""
    return locator.evaluate_all("els => els.flatMap(e => [...e.querySelectorAll('img')]).map(i => i.naturalWidth)")


def screenshots(page, notebook: str, folders, only=None) -> None:
    for name, text in KEY_VIEWS.get(notebook, []):
        if only is not None and name not in only:
            continue
        out = cell_with(page, text).locator(".jp-Cell-outputWrapper")
        out.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        for d in folders:
            out.screenshot(path=str(d / f"{name}.png"))


def wait_for(fn, timeout: float = 30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.5)
    return fn()


def test_notebooks_in_a_real_browser(lab, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    url, token, root = lab
    shots = [tmp_path / "shots"]
    every = bool(os.environ.get("PHOTOLAB_SCREENSHOTS"))
    if every:
        shots.append(REPO / "docs" / "screenshots")
    for d in shots:
        d.mkdir(parents=True, exist_ok=True)
    library = root / "demo-library-notebook"
    focused = ["01_tag_library", "02_tune_thresholds", "03_review", "07_organize", "09_people_and_places"]
    after_clicks = {"threshold-sliders", "automation-log"}       # key views that show what a click did
    visit = sorted(KEY_VIEWS) if every else focused

    def ask(sql):
        with photolab.open_library(library) as lib:
            return lib.catalog.query(sql)

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 2000})   # tall: whole views fit
        page.set_default_timeout(60_000)
        for nb in visit:
            # the duplicates view needs copies: the demo makes them, in a demo library of its own
            extra = {"02_tune_thresholds": "PAGE_SIZE = 6",
                     "06_dedupe": 'LIBRARY = "../demo-library-dedupe"\nDEMO = True'}.get(nb, "")
            open_and_run(page, url, token, nb, extra)
            screenshots(page, nb, shots, only={n for n, _ in KEY_VIEWS[nb]} - after_clicks)
            if nb == "01_tag_library":
                for text in ("plots.tag_counts(lib)", "plots.gallery(lib"):
                    widths = images_loaded(cell_with(page, text).locator(".jp-OutputArea"))
                    assert widths and all(w > 0 for w in widths), (text, widths)
            if nb == "02_tune_thresholds":
                check_review_grid_and_sliders(page, ask)
            if nb == "03_review":
                check_typing_and_keys(page, ask)
            if nb == "07_organize":
                check_moves_wait_for_the_click(page, ask, library)
            if nb == "08_automation":
                click_apply(page, "one_pass = ApplyButton(", "run one pass", "new files:", timeout=300)
                assert ask("SELECT count(*) FROM import_state")[0][0] > 0
            if nb == "09_people_and_places":
                namer = cell_with(page, "namer = FaceNamer(lib)")
                text = namer.locator(".jp-OutputArea").inner_text()
                assert "No unnamed faces" not in text and "Cluster" in text, text
                assert all(w > 0 for w in images_loaded(namer.locator(".jp-OutputArea")))
            if nb in ("02_tune_thresholds", "08_automation"):
                screenshots(page, nb, shots, only=after_clicks)
        browser.close()
    assert (tmp_path / "shots" / "review-grid.png").stat().st_size > 10_000


def check_review_grid_and_sliders(page, ask) -> None:
    grid = cell_with(page, "grid = ReviewGrid(lib, sample_name").locator(".widget-gridbox").first
    grid.wait_for()
    widths = images_loaded(grid)
    assert widths and all(w > 0 for w in widths), widths
    before = {(r[0], r[1]): (r[2], r[3]) for r in ask("SELECT photo_id, tag, value, at FROM labels")}
    reviewed = ask("SELECT count(*) FROM reviews")[0][0]
    # a person clicks the first tag of the first photo, then accepts the page
    time.sleep(1.1)                                       # labels carry second-resolution times
    grid.locator(".widget-toggle-button").first.click()
    changed = wait_for(lambda: {(r[0], r[1]): r[2] for r in ask("SELECT photo_id, tag, value, at FROM labels "
                                                                "WHERE who = 'me'")
                                if before.get((r[0], r[1])) != (r[2], r[3])})
    assert len(changed) == 1, changed                     # exactly the clicked tag, stored at once
    cell_with(page, "grid = ReviewGrid(lib, sample_name").locator("button:has-text('accept page (a)')").click()
    assert wait_for(lambda: ask("SELECT count(*) FROM reviews")[0][0] > reviewed)
    # a threshold slider moved with the keyboard; the strip of photos near it shows real images
    tuner = cell_with(page, "tuner = ThresholdTuner(")
    slider = tuner.locator(".widget-slider").first
    slider.scroll_into_view_if_needed()
    tag = slider.locator(".widget-label").first.inner_text().strip()
    t0 = {r[0]: r[1] for r in ask("SELECT tag, threshold FROM thresholds")}.get(tag)
    shown = float(slider.locator(".widget-readout").first.inner_text())
    slider.locator(".noUi-handle").first.click()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    want = round(shown + 0.05, 2)
    # every key press is stored (the last one too) before anything else is clicked: a late slider
    # message would otherwise bring its own tag back into the detail
    t1 = wait_for(lambda: round({r[0]: r[1] for r in ask("SELECT tag, threshold FROM thresholds")}.get(tag, -1), 2)
                  == want and want)
    assert t1 and t1 != t0, (tag, t0, shown, want)
    page.wait_for_timeout(1000)
    # the detail of a tag that reviewed sample photos have (the accepted page): its curve with the
    # threshold marked, and the photos near it
    curved = {r[0]: r[1] for r in ask("SELECT l.tag, count(*) FROM labels l JOIN samples m ON m.photo_id = l.photo_id "
                                      "AND m.name = 'default' JOIN scores s ON s.photo_id = l.photo_id AND s.tag = l.tag "
                                      "WHERE l.value = 1 AND s.score IS NOT NULL GROUP BY l.tag")}
    rows = {(r.locator(".widget-label").first.text_content() or "").strip(): r
            for r in tuner.locator(".widget-hbox:has(.widget-slider)").all()}
    pick = max((t for t in rows if t in curved), key=lambda t: curved[t], default=None)
    assert pick, f"no tag of the tuner ({sorted(rows)}) has a reviewed sample photo ({sorted(curved)})"
    rows[pick].locator("button:has-text('show')").click()
    detail = tuner.locator(".photolab-detail-tag")
    assert wait_for(lambda: detail.first.inner_text().strip() == pick), (pick, detail.first.inner_text())
    basis = tuner.locator(".photolab-curve-basis").first.inner_text()
    assert "the curve is measured on" in basis and "no curve yet" not in basis, basis
    page.wait_for_timeout(1500)
    widths = images_loaded(tuner.locator(".jp-OutputArea"))
    assert len(widths) >= 2 and all(w > 0 for w in widths), widths     # the PR curve and the strip


def check_typing_and_keys(page, ask) -> None:
    cell = cell_with(page, "grid = ReviewGrid(lib, page_size")
    text = cell.locator(".jp-OutputArea").inner_text()
    assert " 0 in the queue" not in text and "nothing waiting" not in text, text
    grid = cell.locator(".widget-gridbox").first
    assert all(w > 0 for w in images_loaded(grid))
    reviewed = ask("SELECT count(*) FROM reviews")[0][0]
    birthdays = ask("SELECT count(*) FROM labels WHERE tag = 'birthday' AND value = 1")[0][0]
    box = grid.locator("input[placeholder='add tag…']").first
    box.click()
    page.keyboard.type("bday", delay=80)                  # "a" among the letters: no page is accepted
    assert box.input_value() == "bday"
    page.keyboard.press("Enter")
    assert wait_for(lambda: ask("SELECT count(*) FROM labels WHERE tag = 'birthday' AND value = 1")[0][0]
                    > birthdays), "typing bday + Enter added no birthday tag"
    assert ask("SELECT count(*) FROM reviews")[0][0] == reviewed, "typing in the box accepted the page"
    # with the grid focused (a click on a photo), the shortcut key accepts the page
    cell.locator(".widget-gridbox img").first.click()
    page.keyboard.press("a")
    assert wait_for(lambda: ask("SELECT count(*) FROM reviews")[0][0] > reviewed), "key a did not accept the page"


def click_apply(page, cell_text: str, button: str, done: str, timeout: float = 120):
    """Click a button of the ApplyButton in the cell whose source has ``cell_text``; wait until its
    output says ``done``. Returns the cell."""
    cell = cell_with(page, cell_text)
    cell.locator(f".photolab-apply button:has-text('{button}')").first.click()
    out = cell.locator(".jp-OutputArea").first
    assert wait_for(lambda: done in out.inner_text(), timeout), out.inner_text()
    return cell


def check_moves_wait_for_the_click(page, ask, library: Path) -> None:
    """Run All moved nothing; a click on the button files the photos, a click on undo puts them back."""
    def on_disk():
        return {p.relative_to(library).as_posix() for p in library.rglob("*")
                if p.is_file() and ".photolab" not in p.relative_to(library).parts}

    def in_catalog():
        return {r[0] for r in ask("SELECT path FROM photos")}

    before = on_disk()
    assert not ask("SELECT count(*) FROM journal WHERE batch LIKE '%-organize-%'")[0][0], "Run All moved photos"
    assert before == in_catalog()
    cell = click_apply(page, "move = ApplyButton(", "into their folders", " moved")
    moved = on_disk()
    assert moved != before and len(moved) == len(before) and moved == in_catalog()
    click_apply(page, "move = ApplyButton(", "undo", "batch undo-")
    assert on_disk() == before == in_catalog()
    assert "Traceback" not in cell.inner_text()
