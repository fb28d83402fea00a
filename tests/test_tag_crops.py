"""The labeling pass's three-view mode (``crops=3``) on real sample photos: scores pooled over the views,
features the centre view's, the mode kept per library and recorded in the run."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import SAMPLE

import photolab
from photolab.features.backbone import engine, load_backbone
from photolab.features.starter import QUALITY, load_starter, measure_inputs
from photolab.stages.tagging import (CROP_POOL, _prepare, crop_boxes, crops_setting, decisions, pool_views, prior_matrix,
                              prior_scores, set_crops, tag_library)

pytestmark = pytest.mark.slow

PHOTOS = ("arrow.heic", "kde_OneStandsOut.jpg")   # one upright (3024 x 4032), one wide (2560 x 1600)


@pytest.fixture(scope="module")
def backbone():
    return load_backbone()


@pytest.fixture(scope="module")
def both(tmp_path_factory, backbone):
    """The same two photos tagged by a default pass, then again (forced) with crops=3."""
    root = tmp_path_factory.mktemp("crops")
    lib = photolab.init_library(root / "lib")
    (lib.root / "src").mkdir()
    for name in PHOTOS:
        shutil.copy(SAMPLE / name, lib.root / "src" / name)
    photolab.index_library(lib, progress=False)

    def state():
        feats = {r["path"]: (bytes(r["embedding"]), r["top5"], r["phash"], r["sharpness"])
                 for r in lib.catalog.query("SELECT p.path, f.* FROM features f JOIN photos p ON p.id = f.photo_id")}
        rows = {(r["path"], r["tag"]): (r["score"], r["source"], r["model"]) for r in lib.catalog.query(
            "SELECT p.path, s.tag, s.score, s.source, s.model FROM scores s JOIN photos p ON p.id = s.photo_id")}
        return feats, rows, decisions(lib).set_index("path")

    one = tag_library(lib, model=backbone, progress=False)
    first = state()
    three = tag_library(lib, model=backbone, progress=False, force=True, crops=3)
    second = state()
    runs = [json.loads(r["report"]) for r in lib.catalog.query("SELECT report FROM runs WHERE stage = 'tag' ORDER BY id")]
    return lib, (one, first), (three, second), runs


def test_the_views_are_the_centre_and_both_ends_of_the_long_side():
    assert crop_boxes(400, 300, 250) == [(75.0, 25.0, 325.0, 275.0)]
    assert crop_boxes(400, 300, 250, 3) == [(75.0, 25.0, 325.0, 275.0), (0.0, 25.0, 250, 275.0),
                                            (150, 25.0, 400.0, 275.0)]
    assert crop_boxes(300, 400, 250, 3)[1:] == [(25.0, 0.0, 275.0, 250), (25.0, 150, 275.0, 400.0)]
    with pytest.raises(ValueError):
        crop_boxes(400, 300, 250, 2)


def test_three_views_come_from_one_decode_with_the_centre_first(backbone):
    args = ("photo", backbone.input_size, backbone.crop_pct, backbone.mean, backbone.std)
    x1, hashes1, q1, thumb1 = _prepare(SAMPLE / "kde_OneStandsOut.jpg", *args)
    x3, hashes3, q3, thumb3 = _prepare(SAMPLE / "kde_OneStandsOut.jpg", *args, 3)
    assert x1.shape == (3, backbone.input_size, backbone.input_size)
    assert x3.shape == (3, *x1.shape) and np.array_equal(x3[0], x1)
    assert not np.array_equal(x3[1], x1) and not np.array_equal(x3[2], x3[1])
    assert (hashes1, q1, thumb1) == (hashes3, q3, thumb3)


def test_three_view_scores_are_pooled_and_the_features_stay_the_centre_views(both, backbone):
    lib, (one, (feats1, rows1, df1)), (three, (feats3, rows3, df3)), runs = both
    assert one.tagged == three.tagged == 2 and not one.failed and not three.failed
    assert one.crops == 1 and three.crops == 3 and "3 views per photo" in three.summary()
    # what dedupe, find and train read is the default pass's, byte for byte
    assert feats3 == feats1
    # the quality tags come from the whole photo, unchanged; the starter's tags from the views
    for path in feats1:
        assert rows3[(path, "blurry")] == rows1[(path, "blurry")]
        assert rows3[(path, "person")][1:] == rows1[(path, "person")][1:]   # same source and model
    # each photo's starter score is the pool of the three views' scores, worked out here from the head itself
    st = load_starter()
    run = engine(backbone, threads=1)
    tags = st.tags
    w = prior_matrix(tags)
    changed = 0
    for name in PHOTOS:
        x, _, q, _ = _prepare(SAMPLE / name, "photo", backbone.input_size, backbone.crop_pct, backbone.mean,
                              backbone.std, 3)
        emb, probs = run(x)
        m = measure_inputs(np.array([[q[k] for k in QUALITY]] * 3))
        views = st.scores(emb.astype(np.float16).astype(np.float32), m, prior_scores(probs, w))
        want = st.pool(views[None])[0]   # the highest view's log-odds, calibrated for three views
        centre = views[0]
        for tag in ("person", "dog", "bird", "landscape"):
            j = tags.index(tag)
            assert rows3[(f"src/{name}", tag)][0] == pytest.approx(want[j], abs=2e-5)
            assert rows1[(f"src/{name}", tag)][0] == pytest.approx(centre[j], abs=2e-5)
        changed += abs(rows3[(f"src/{name}", "person")][0] - rows1[(f"src/{name}", "person")][0]) > 1e-3
        # a tag the prior scores (beach: too few everyday labels for the starter) takes the plain max of the views
        beach = prior_scores(probs, prior_matrix(["beach"]))[:, 0]
        assert rows3[(f"src/{name}", "beach")][0] == pytest.approx(beach.max(), abs=2e-5)
        assert rows1[(f"src/{name}", "beach")][0] == pytest.approx(beach[0], abs=2e-5)
    assert changed   # the ends of the long side do change a photo's score
    # the run's info says which views scored the photos; a default pass's is as it was
    assert "crops" not in runs[0] and runs[1]["crops"] == f"3 views, {CROP_POOL} of their scores"


def test_pooling_is_the_mean_or_the_max_of_the_views():
    s = np.array([[[0.2, np.nan], [0.8, np.nan], [0.5, np.nan]]])
    assert np.allclose(pool_views(s, "mean")[0, 0], 0.5) and np.isnan(pool_views(s, "mean")[0, 1])
    assert pool_views(s, "max")[0, 0] == 0.8 and np.isnan(pool_views(s, "max")[0, 1])
    with pytest.raises(ValueError):
        pool_views(s, "median")


def test_the_crop_mode_is_a_library_setting(library, backbone):
    assert crops_setting(library) == 1
    set_crops(library, 3)
    assert crops_setting(library) == 3
    with pytest.raises(ValueError, match="crops must be one of 1, 3"):
        set_crops(library, 2)
    with pytest.raises(ValueError, match="crops must be one of 1, 3"):
        tag_library(library, model=backbone, progress=False, crops=5)
    from photolab.features.cluster import ClusterError

    with pytest.raises(ClusterError, match="--crops 1"):   # the setting reaches a pass not given crops
        tag_library(library, model=backbone, progress=False, cluster="local:1")
    set_crops(library, 1)
    assert crops_setting(library) == 1 and library.catalog.get_meta("tag_crops") is None


def test_cli_crops_flag_tags_with_three_views_and_keeps_the_setting(tmp_path):
    lib = photolab.init_library(tmp_path / "lib")
    (lib.root / "src").mkdir()
    shutil.copy(SAMPLE / "kde_OneStandsOut.jpg", lib.root / "src")
    lib.close()

    def cli(*args):
        proc = subprocess.run([sys.executable, "-m", "photolab.cli", "-q", *map(str, args)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr + proc.stdout
        return proc.stdout

    cli("index", lib.root)
    out = cli("tag", lib.root, "--crops", "3")
    assert "crop mode set to 3 views per photo" in out and "1 tagged" in out and "3 views per photo" in out
    assert "cost: 3 model runs per photo" in out
    with photolab.open_library(lib.root) as again:
        assert crops_setting(again) == 3
        info = json.loads(again.catalog.query("SELECT report FROM runs WHERE stage = 'tag'")[0]["report"])
        assert info["crops"].startswith("3 views")
    out = cli("tag", lib.root, "--crops", "1", "--force")
    assert "crop mode set to 1 view per photo" in out and "3 views" not in out
    with photolab.open_library(lib.root) as again:
        assert crops_setting(again) == 1
