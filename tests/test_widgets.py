"""The notebooks' parts without a browser: the set-up call's messages and demo rule, the grid's keys,
the pictures (real figures from a real tagged library), inline thumbnails, the button that a bulk change
waits behind, and the threshold detail's choice of tag."""

from __future__ import annotations

import shutil

import pytest

import photolab
from photolab.ui.notebook import NotebookError, is_demo_library, setup

from conftest import SAMPLE


@pytest.fixture
def lib(tagged_sample, tmp_path):
    root = tmp_path / "Photos"
    shutil.copytree(tagged_sample, root)
    with photolab.open_library(root) as library:
        yield library


def test_setup_says_what_is_wrong_and_creates_nothing(tmp_path):
    typo = tmp_path / "Photoss"
    with pytest.raises(NotebookError, match="no such folder; check LIBRARY") as e:
        setup(typo)
    assert str(typo.resolve()) in str(e.value) and not typo.exists()
    with pytest.raises(NotebookError, match="no such folder to gather photos from"):
        setup(tmp_path / "new", tmp_path / "no-card")
    assert not (tmp_path / "new").exists()
    empty = tmp_path / "empty"
    photolab.init_library(empty).close()
    with pytest.raises(NotebookError, match="no photos yet; set GATHER_FROM"):
        setup(empty)
    assert isinstance(e.value, photolab.PhotolabError)


def test_demo_only_on_a_demo_library(lib, tmp_path):
    with pytest.raises(NotebookError, match="DEMO = True runs only on a demo library"):
        setup(lib.root, demo=True)
    assert not is_demo_library(lib)
    assert not lib.catalog.query("SELECT 1 FROM labels")
    (tmp_path / "card").mkdir()
    shutil.copy2(SAMPLE / "coffee.png", tmp_path / "card" / "coffee.png")
    demo = setup(tmp_path / "new-demo", tmp_path / "card", demo=True, tag=False)
    assert is_demo_library(demo)
    demo.close()
    setup(tmp_path / "new-demo", demo=True, tag=False).close()     # a demo library opens again


def test_grid_keys_arrive_as_messages_and_the_script_ignores_text_boxes(lib):
    from photolab.ui.widgets import KEY_JS, ReviewGrid

    grid = ReviewGrid(lib, page_size=3, cut=1.01)
    assert grid._keys_widget in grid.children and "photolab-review-grid" in grid._dom_classes
    page = list(grid.page_ids)
    grid._keys_widget._handle_custom_msg({"key": "n"}, [])         # what the browser sends
    assert grid.page == 1
    grid._keys_widget._handle_custom_msg({"key": "p"}, [])
    grid._keys_widget._handle_custom_msg({"key": "a"}, [])
    assert not set(page) & set(grid.queue)
    assert 'closest("input, textarea, select' in KEY_JS and "document.addEventListener" not in KEY_JS
    from photolab.stages.tagging import SCORE_MEANING

    assert SCORE_MEANING in grid.children[1].value   # the grid says what a score means


def test_pictures_from_a_real_library(lib):
    from matplotlib.collections import PolyCollection

    from photolab.stages import metadata, review
    from photolab.ui import plots
    from photolab.stages.places import suggest_places

    fig = plots.tag_counts(lib)
    ax = fig.axes[0]
    assert len(ax.patches) >= 3 and ax.get_xlabel() == "photos with the tag"
    assert any(type(a).__name__ == "AnnotationBbox" for a in ax.artists)      # thumbnails beside the bars
    assert plots.png(fig)[:4] == b"\x89PNG"

    curve = review.pr_curve(lib, "dog")
    fig = plots.pr_curve(curve, 0.4, "dog")
    assert fig.axes[0].get_ylabel().startswith("precision")

    before = list(lib.catalog.conn.iterdump())
    fig = plots.timeline(lib)
    assert list(lib.catalog.conn.iterdump()) == before                         # drawing stores no events
    assert len(fig.axes) >= 3 and "events" in fig.get_suptitle()
    assert all(a.get_ylabel().isdigit() for a in fig.axes)                    # one row per year

    suggest_places(lib)
    fig = plots.photo_map(lib)
    ax = fig.axes[0]
    outlines = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert outlines and len(outlines[0].get_paths()) > 10                     # country outlines drawn
    assert sum(len(c.get_offsets()) for c in ax.collections if not isinstance(c, PolyCollection)) >= 3

    html = plots.gallery(lib, per_tag=2)
    assert "data:image/jpeg;base64," in html and "/files/" not in html

    preview = metadata.write_metadata(lib, dry_run=True, progress=False)
    cards = plots.metadata_cards(lib, preview, limit=4)
    assert cards.count("data:image/jpeg;base64,") >= 3 and "+ " in cards and "rating:" in cards


def test_empty_pictures_say_what_to_do(tmp_path):
    from photolab.ui import plots

    lib = photolab.init_library(tmp_path / "empty")
    assert "01_tag_library" in plots.tag_counts(lib).axes[0].texts[0].get_text()
    assert "GPS" in plots.photo_map(lib).axes[0].texts[0].get_text()
    lib.close()


def _files(root):
    import hashlib

    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and ".photolab" not in p.relative_to(root).parts}


def test_a_bulk_change_waits_for_the_click_and_the_undo_click_reverses_it(lib):
    """The organize moves behind an ApplyButton, driven through the buttons' own click handlers."""
    from photolab.stages import organize
    from photolab.core.fileops import undo
    from photolab.ui.widgets import ApplyButton

    before = _files(lib.root)
    plan = organize.plan(lib)
    assert len(plan)
    move = ApplyButton(f"move {len(plan)} photos", lambda: organize.apply(lib, plan, progress=False),
                       undo=lambda report: undo(lib, report.batch))
    assert move.state == "waiting" and not move.button.disabled and move.report is None
    assert move.undo_button.layout.display == "none"
    assert _files(lib.root) == before, "making the widget moved files"
    move.button.click()                                           # a person's click
    assert move.state == "done" and move.report.done == len(plan)
    moved = _files(lib.root)
    assert sorted(moved.values()) == sorted(before.values()) and set(moved) != set(before)
    assert set(plan["target"]) <= set(moved)
    assert move.button.disabled and not move.undo_button.disabled and move.undo_button.layout.display is None
    move.button.click()                                           # a second click does nothing more
    assert move.report.done == len(plan) and _files(lib.root) == moved
    move.undo_button.click()
    assert move.state == "undone" and move.undone.done == len(plan)
    assert _files(lib.root) == before and move.undo_button.disabled


def test_a_bulk_change_with_nothing_to_do_or_a_user_error_says_so_in_one_line(lib):
    from photolab.core.fileops import FileOpError, undo
    from photolab.ui.widgets import ApplyButton

    idle = ApplyButton("write keywords into 0 files", lambda: 1 / 0, nothing="Nothing to write.")
    assert idle.state == "nothing" and idle.button.disabled and "Nothing to write." in idle.children[0].value
    wrong = ApplyButton("undo a batch", lambda: undo(lib, "20200101T000000-organize-0000"))
    wrong.button.click()                                          # the error is shown, not raised into the kernel
    assert wrong.state == "failed" and "no such batch" in wrong.error and wrong.report is None
    assert not wrong.button.disabled                              # the person can try again
    with pytest.raises(FileOpError, match="no such batch"):       # from code it raises
        wrong.click()


def test_threshold_detail_starts_on_a_tag_with_reviewed_photos_and_says_why_a_curve_is_empty(lib):
    from photolab.stages import review
    from photolab.ui.widgets import ReviewGrid, ThresholdTuner

    tuner = ThresholdTuner(lib, autosave=False)
    assert tuner.tag == tuner.tags[0] and "no photo is reviewed yet" in tuner._curve_note.value
    grid = ReviewGrid(lib, page_size=8, cut=1.01)
    grid.accept_page()                                            # a person confirms a page as shown
    tuner = ThresholdTuner(lib, autosave=False)
    n, k = tuner.reviewed(tuner.tag)
    assert k > 0 and len(review.pr_curve(lib, tuner.tag)) > 0
    assert k == max(tuner.reviewed(t)[1] for t in tuner.tags)    # the tag the most reviewed photos have
    assert f"measured on {n} reviewed photos, {k} with the tag" in tuner._curve_note.value
    empty = next(t for t in tuner.tags if tuner.reviewed(t)[1] == 0)
    tuner.tag = empty
    assert f"none of the {n} reviewed photos has {empty}" in tuner._curve_note.value
    assert "no curve yet" in tuner.figure.axes[0].get_title()
