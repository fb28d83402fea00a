"""The starter head: shipped weights load offline, reproduce their stored val scores through a real
pass, bad weights fall back to the prior with a clear line, and corrections start from it."""

import csv
import hashlib
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import refused_connections

import photolab
from photolab.features.backbone import load_backbone, packaged_weights
from photolab.features.starter import Starter, StarterError, default_path, load_starter, starter_for
from photolab.stages.tagging import decisions, tag_library

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    return load_backbone()


def _library(tmp_path, src_dir, files, name="lib"):
    lib = photolab.init_library(tmp_path / name)
    dest = lib.root / "photos"
    dest.mkdir()
    for f in files:
        shutil.copy(src_dir / f, dest / f)
        (dest / f).chmod(0o644)
    photolab.index_library(lib, progress=False)
    return lib


def test_provenance_names_sources_backbone_and_figures():
    st = load_starter()
    prov = st.provenance()
    assert prov["tags"] == st.tags and "sunset" in st.tags and "person" in st.tags
    assert prov["backbone"]["weights_sha256"] == hashlib.sha256(packaged_weights().read_bytes()).hexdigest()
    assert prov["weights_sha256"] == hashlib.sha256(default_path().read_bytes()).hexdigest()
    assert {"voc", "intel", "miml", "sun", "openimages", "cocomini", "cocotiny"} <= set(prov["data_sources"])
    for t in st.tags:   # shipped only where it is at least as good as the prior on val
        m = prov["val"][t]
        assert m["prior_ap"] is None or m["val_ap"] >= m["prior_ap"]
    assert prov["val_macro"]["ap_tags_with_10_positives"] >= 0.88


def test_starter_reproduces_its_stored_val_scores_offline(shared_data, tmp_path, backbone):
    prov = load_starter().provenance()
    files = prov["check"]["files"]
    lib = _library(tmp_path, shared_data / "everyday" / "images", files)
    with refused_connections() as opened:
        report = tag_library(lib, model=backbone, progress=False)
    assert opened == [] and report.note is None and report.tagged == len(files)
    assert set(report.by_starter) == set(prov["tags"])
    df = decisions(lib)
    df["file"] = df.path.str.split("/").str[-1]
    df = df.set_index("file").loc[files]
    got = df[[f"score:{t}" for t in prov["tags"]]].to_numpy(dtype=float)
    want = np.array(prov["check"]["scores"])
    assert np.abs(got - want).max() < 2e-3
    sources = dict(lib.catalog.query("SELECT tag, min(source) FROM scores GROUP BY tag"))
    assert sources["person"] == sources["sunset"] == "starter" and sources["beach"] == "prior"
    # the stored figures on the subset: AP per tag from these scores equals the one from the stored scores
    from sklearn.metrics import average_precision_score

    with open(shared_data / "everyday" / "labels.csv", newline="") as fh:
        rows = {r["file"]: r for r in csv.DictReader(fh)}
    j = prov["tags"].index("landscape")
    known = [i for i, f in enumerate(files) if "landscape" in rows[f]["known"].split(";")]
    y = np.array([("landscape" in rows[files[i]]["tags"].split(";")) for i in known])
    if 0 < y.sum() < len(y):
        assert average_precision_score(y, got[known, j]) == pytest.approx(
            average_precision_score(y, want[known, j]), abs=1e-6)


def test_three_view_scores_reproduce_their_stored_check_and_stay_calibrated(shared_data, tmp_path, backbone):
    """crops=3 pools the views through the head's own calibration (not the plain max of three
    probabilities, which runs high): a real three-view pass gives the scores the build stored."""
    st = load_starter()
    prov = st.provenance()
    assert st.pooled is not None and st.pooled.shape == (len(st.tags), 2)
    files = prov["check"]["files"]
    lib = _library(tmp_path, shared_data / "everyday" / "images", files)
    report = tag_library(lib, model=backbone, progress=False, crops=3)
    assert report.tagged == len(files) and report.crops == 3
    df = decisions(lib)
    df["file"] = df.path.str.split("/").str[-1]
    got = df.set_index("file").loc[files][[f"score:{t}" for t in prov["tags"]]].to_numpy(dtype=float)
    assert np.abs(got - np.array(prov["check"]["scores_crops3"])).max() < 2e-3
    # the pool is sigmoid(a * the highest view's log-odds + b) per tag, which pulls the highest of three
    # calibrated probabilities back; a head without the calibration takes the plain max
    views = np.array([[[0.9, 0.2], [0.95, 0.1], [0.92, 0.3]]])
    two = st.subset(["person", "car"])
    top = views.max(axis=1)
    z = np.log(top / (1 - top))
    assert np.allclose(two.pool(views), 1 / (1 + np.exp(-(two.pooled[:, 0] * z + two.pooled[:, 1]))))
    assert (two.pool(views) < top).all()
    plain = Starter(**{**two.__dict__, "pooled": None})
    assert np.allclose(plain.pool(views), top)
    # on val (never fitted on) three views rank as well and keep the one-view precision at 0.5
    for t in ("person", "car", "cat"):
        one, three = prov["val"][t], prov["val"][t]["val_crops3"]
        assert three["ap"] >= one["val_ap"] - 0.02 and three["precision"] >= one["val_precision"] - 0.05


def test_missing_or_damaged_weights_say_which_file_and_fall_back_to_the_prior(tmp_path, backbone):
    from conftest import SAMPLE

    with pytest.raises(StarterError, match="nope.safetensors.*not found"):
        load_starter(tmp_path / "nope.safetensors")
    bad = tmp_path / "starter_head.safetensors"
    bad.write_bytes(default_path().read_bytes()[:5000])   # a truncated copy
    with pytest.raises(StarterError, match=f"{bad}.*damaged"):
        load_starter(bad)
    # a three-view calibration that does not fit the head's tags, or is not finite, is damage too
    from safetensors.numpy import load_file, save_file

    good = load_file(str(default_path()))
    meta = {"starter": json.dumps({"tags": load_starter().tags, "backbone": load_starter().backbone})}
    flipped = good["pooled"].copy()
    flipped[0, 0] = -1.0   # a negative slope would turn the ranking upside down
    for pooled in (good["pooled"][:3], np.full_like(good["pooled"], np.nan), flipped):
        odd = tmp_path / "odd.safetensors"
        save_file({**good, "pooled": pooled}, str(odd), metadata=meta)
        with pytest.raises(StarterError, match=f"{odd}.*damaged"):
            load_starter(odd)
    older = tmp_path / "older.safetensors"   # a head built before the three-view calibration: the plain max
    save_file({k: v for k, v in good.items() if k != "pooled"}, str(older), metadata=meta)
    assert load_starter(older).pooled is None
    lib = _library(tmp_path, SAMPLE, ["chelsea.png", "coffee.png"])
    report = tag_library(lib, model=backbone, progress=False, starter=bad)
    assert str(bad) in report.note and "prior" in report.note and str(bad) in report.summary()
    sources = dict(lib.catalog.query("SELECT tag, min(source) FROM scores GROUP BY tag"))
    assert sources["person"] == sources["cat"] == "prior"
    assert sources["sunset"] == "none" and "sunset" in report.untrained   # no ImageNet class votes for it
    df = decisions(lib).set_index("path")
    assert "cat" in df.loc["photos/chelsea.png"].tags.split(";")
    # the next pass with the starter there: nothing to decode again, and the prior's scores become the starter's
    prior_cat = df.loc["photos/chelsea.png", "score:cat"]
    again = tag_library(lib, model=backbone, progress=False)
    assert again.tagged == 0 and again.note is None
    sources = dict(lib.catalog.query("SELECT tag, min(source) FROM scores GROUP BY tag"))
    assert sources["person"] == sources["cat"] == sources["sunset"] == "starter" and sources["beach"] == "prior"
    fresh = _library(tmp_path, SAMPLE, ["chelsea.png", "coffee.png"], name="fresh")
    tag_library(fresh, model=backbone, progress=False)
    want = decisions(fresh).set_index("path")
    got = decisions(lib).set_index("path")
    for t in ("person", "cat", "food", "indoor", "sunset"):
        assert got[f"score:{t}"].to_numpy() == pytest.approx(want[f"score:{t}"].to_numpy(), abs=1e-4)
    assert got.loc["photos/chelsea.png", "score:cat"] != prior_cat


def test_another_backbone_gets_the_prior_with_one_line():
    other = SimpleNamespace(version="tf_efficientnet_lite0:0123456789ab", num_features=1280)
    st, note = starter_for(other)
    assert st is None and "trained on" in note and "0123456789ab" in note and "\n" not in note
    assert starter_for(SimpleNamespace(version=load_starter().backbone, num_features=1280))[0] is not None


def test_twenty_corrections_do_not_end_worse_than_the_starter(shared_data, tmp_path, backbone):
    """A person corrects `person` on 20 real everyday photos: the tag must score the other photos at
    least as well as the starter alone."""
    from sklearn.metrics import average_precision_score

    from photolab.stages.tagging import set_labels
    from photolab.stages.train import train

    with open(shared_data / "everyday" / "labels.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "val" and "person" in r["known"].split(";")
                and r["source"] in ("voc", "cocomini", "cocotiny")]
    rng = np.random.default_rng(7)
    pick = [rows[i] for i in sorted(rng.choice(len(rows), 60, replace=False))]
    lib = _library(tmp_path, shared_data / "everyday" / "images", [r["file"] for r in pick])
    tag_library(lib, model=backbone, progress=False)
    ids = {p.split("/")[-1]: i for i, p in lib.catalog.query("SELECT id, path FROM photos")}
    truth = {r["file"]: int("person" in r["tags"].split(";")) for r in pick}
    # 10 photos with people and 10 without: enough on both sides for a head to take over the tag
    corrected = [f for f in truth if truth[f]][:10] + [f for f in truth if not truth[f]][:10]
    held = [f for f in truth if f not in corrected]

    def scores():
        got = dict(lib.catalog.query("SELECT photo_id, score FROM scores WHERE tag = 'person'"))
        return np.array([got[ids[f]] for f in held])

    before = scores()
    set_labels(lib, [(ids[f], "person", truth[f]) for f in corrected])
    report = train(lib)
    after = scores()
    y = np.array([truth[f] for f in held])
    ap_before, ap_after = average_precision_score(y, before), average_precision_score(y, after)
    print(f"person AP on {len(held)} other photos: starter {ap_before:.3f}, after 20 corrections {ap_after:.3f} "
          f"({report.summary()})")
    assert report.version is not None
    assert ap_after >= ap_before - 1e-9, (ap_before, ap_after, report.why)


def test_sunset_is_a_colour_of_light_not_any_sky(tmp_path, backbone):
    """The bundled photos hold no sunset: a kite in a blue sky, grey fog over a pier, a storm over a road and
    a jetty in daylight once scored 0.52-0.85 for sunset (a head learnt from one source's natural scenes)."""
    from conftest import SAMPLE

    files = ["kde_Kite.jpg", "kde_ColdRipple.jpg", "mate_Storm.jpg", "kde_BytheWater.jpg", "mate_Dune.jpg",
             "kde_Path.jpg", "chelsea.png", "coffee.png"]
    lib = _library(tmp_path, SAMPLE, files)
    tag_library(lib, model=backbone, progress=False)
    df = decisions(lib)
    df["file"] = df.path.str.split("/").str[-1]
    sunset = df.set_index("file")["score:sunset"]
    assert (sunset < 0.5).all(), sunset.round(3).to_dict()
    assert not any("sunset" in str(t).split(";") for t in df.tags)


def test_colour_measures_of_older_features_come_from_the_thumbnail(tmp_path, backbone):
    """Features made before the colour measures existed (NULL columns): a later scoring takes them from the
    cached thumbnail once, stores them, and scores as a fresh pass does, within the thumbnail's rounding."""
    from conftest import SAMPLE

    from photolab.features.starter import COLOR_MEASURES
    from photolab.stages.train import _measures

    files = ["kde_Kite.jpg", "mate_Dune.jpg", "chelsea.png", "coffee.png"]
    lib = _library(tmp_path, SAMPLE, files)
    tag_library(lib, model=backbone, progress=False)
    ids = [i for (i,) in lib.catalog.query("SELECT photo_id FROM features ORDER BY photo_id")]
    fresh = _measures(lib, ids)
    with lib.catalog.write() as db:
        db.execute(f"UPDATE features SET {', '.join(c + ' = NULL' for c in COLOR_MEASURES)}")
    again = _measures(lib, ids)
    assert np.abs(again - fresh).max() < 0.05, np.abs(again - fresh).max(axis=0)
    stored = lib.catalog.query(f"SELECT {', '.join(COLOR_MEASURES)} FROM features")
    assert all(v is not None for r in stored for v in r)
    st = load_starter()
    j = st.tags.index("sunset")
    emb = np.zeros((len(ids), 1280), np.float32)
    prior = np.full((len(ids), len(st.tags)), 0.5)
    a = st.scores(emb, fresh, prior)[:, j]
    b = st.scores(emb, again, prior)[:, j]
    assert np.abs(a - b).max() < 0.05


def test_a_head_made_before_the_colour_measures_still_scores(tmp_path):
    """A head file whose measure weights cover the first five measures only: loaded with zero weights for
    the colour measures, so it scores exactly as before."""
    from safetensors.numpy import save_file

    from photolab.stages.train import HEADS_DIR, MEASURES, _load_head, _predict

    lib = photolab.init_library(tmp_path / "lib")
    folder = lib.state.joinpath(*HEADS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    W, Wm, b = rng.normal(size=(2, 8)).astype(np.float32), rng.normal(size=(2, 5)).astype(np.float32), np.zeros(2, np.float32)
    save_file({"weight": W, "measure_weight": Wm, "bias": b}, str(folder / "head-old.safetensors"),
              metadata={"tags": json.dumps(["party", "birthday"])})
    W2, Wm2, b2, tags = _load_head(lib, "head-old")
    assert tags == ["party", "birthday"] and Wm2.shape == (2, len(MEASURES)) and not Wm2[:, 5:].any()
    X, M = rng.normal(size=(4, 8)), rng.normal(size=(4, len(MEASURES)))
    assert _predict(X, M, W2, Wm2, b2) == pytest.approx(_predict(X, M[:, :5], W, Wm, b))
    lib.close()


def test_scores_of_an_older_starter_head_are_redone_on_the_next_pass(tmp_path, backbone):
    """A library tagged by an older photolab carries an older starter head's scores: the next pass (nothing to
    decode) rescores them with the shipped head from the cached features, as a fresh library scores them."""
    from conftest import SAMPLE

    files = ["kde_Kite.jpg", "kde_ColdRipple.jpg", "chelsea.png", "coffee.png"]
    lib = _library(tmp_path, SAMPLE, files)
    tag_library(lib, model=backbone, progress=False)
    want = decisions(lib).set_index("path")
    from photolab.stages.tagging import UPGRADED_KEY

    with lib.catalog.write() as db:   # as an older head left them: other scores, another version
        db.execute("UPDATE scores SET score = 0.99, model = 'starter:0123456789ab' WHERE source = 'starter'")
    lib.catalog.set_meta(UPGRADED_KEY, "starter:0123456789ab|" + backbone.version)   # that head's last look
    again = tag_library(lib, model=backbone, progress=False)
    assert again.tagged == 0
    versions = {m for (m,) in lib.catalog.query("SELECT DISTINCT model FROM scores WHERE source = 'starter'")}
    assert versions == {load_starter().version}
    got = decisions(lib).set_index("path")
    for t in ("person", "cat", "sunset", "food", "indoor", "landscape"):
        assert got[f"score:{t}"].to_numpy() == pytest.approx(want[f"score:{t}"].to_numpy(), abs=2e-3), t
    assert (got["score:sunset"] < 0.5).all()


def test_an_older_starter_heads_three_view_scores_are_kept_until_forced(tmp_path, backbone):
    """In a library scored from three views the cached centre view cannot redo an older head's scores without
    losing the views: they stay, the pass says so in one line, and ``--force`` redoes them from three views."""
    from conftest import SAMPLE

    from photolab.stages.tagging import UPGRADED_KEY, set_crops

    files = ["kde_Kite.jpg", "chelsea.png"]
    lib = _library(tmp_path, SAMPLE, files)
    set_crops(lib, 3)
    tag_library(lib, model=backbone, progress=False)
    want = decisions(lib).set_index("path")
    with lib.catalog.write() as db:   # as an older head left them
        db.execute("UPDATE scores SET score = 0.99, model = 'starter:0123456789ab' WHERE source = 'starter'")
        older = db.execute("SELECT count(*) FROM scores WHERE source = 'starter'").fetchone()[0]
    lib.catalog.set_meta(UPGRADED_KEY, "starter:0123456789ab|" + backbone.version)
    again = tag_library(lib, model=backbone, progress=False)
    assert again.tagged == 0 and f"{older} scores by an older starter head kept" in again.note
    assert "--force" in again.note and "\n" not in again.note
    assert set(decisions(lib)["score:cat"]) == {0.99}
    assert tag_library(lib, model=backbone, progress=False).note is None   # said once, not on every pass
    forced = tag_library(lib, model=backbone, progress=False, force=True)
    assert forced.tagged == len(files)
    got = decisions(lib).set_index("path")
    for t in ("person", "cat", "landscape"):
        assert got[f"score:{t}"].to_numpy() == pytest.approx(want[f"score:{t}"].to_numpy(), abs=2e-5), t
    # back to one view: the next pass's look redoes what is left from the cached features
    with lib.catalog.write() as db:
        db.execute("UPDATE scores SET model = 'starter:0123456789ab' WHERE source = 'starter'")
    set_crops(lib, 1)
    tag_library(lib, model=backbone, progress=False)
    versions = {m for (m,) in lib.catalog.query("SELECT DISTINCT model FROM scores WHERE source = 'starter'")}
    assert versions == {load_starter().version}
