"""The notebooks' parts without a browser: the set-up call's messages and demo rule, the grid's keys,
the pictures (real figures from a real tagged library) and inline thumbnails."""

from __future__ import annotations

import shutil

import pytest

import photolab
from photolab.notebook import NotebookError, is_demo_library, setup

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
    from photolab.widgets import KEY_JS, ReviewGrid

    grid = ReviewGrid(lib, page_size=3, cut=1.01)
    assert grid._keys_widget in grid.children and "photolab-review-grid" in grid._dom_classes
    page = list(grid.page_ids)
    grid._keys_widget._handle_custom_msg({"key": "n"}, [])         # what the browser sends
    assert grid.page == 1
    grid._keys_widget._handle_custom_msg({"key": "p"}, [])
    grid._keys_widget._handle_custom_msg({"key": "a"}, [])
    assert not set(page) & set(grid.queue)
    assert 'closest("input, textarea, select' in KEY_JS and "document.addEventListener" not in KEY_JS
    from photolab.tagging import SCORE_MEANING

    assert SCORE_MEANING in grid.children[1].value   # the grid says what a score means


def test_pictures_from_a_real_library(lib):
    from matplotlib.collections import PolyCollection

    from photolab import metadata, plots, review
    from photolab.places import suggest_places

    fig = plots.tag_counts(lib)
    ax = fig.axes[0]
    assert len(ax.patches) >= 3 and ax.get_xlabel() == "photos with the tag"
    assert any(type(a).__name__ == "AnnotationBbox" for a in ax.artists)      # thumbnails beside the bars
    assert plots.png(fig)[:4] == b"\x89PNG"

    curve = review.pr_curve(lib, "dog")
    fig = plots.pr_curve(curve, 0.4, "dog")
    assert fig.axes[0].get_ylabel().startswith("precision")

    fig = plots.timeline(lib)
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
    from photolab import plots

    lib = photolab.init_library(tmp_path / "empty")
    assert "01_tag_library" in plots.tag_counts(lib).axes[0].texts[0].get_text()
    assert "GPS" in plots.photo_map(lib).axes[0].texts[0].get_text()
    lib.close()
