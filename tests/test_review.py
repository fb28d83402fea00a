"""Sample, thresholds, review queue and grid, training and rollback — on the tagged sample photos."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

import photolab
from photolab.stages import review, train
from photolab.stages.tagging import accepted_tags, set_labels, thresholds

from conftest import SAMPLE


@pytest.fixture(scope="module")
def tagged_template(tmp_path_factory):
    root = tmp_path_factory.mktemp("review") / "Photos"
    shutil.copytree(SAMPLE, root / "camera", ignore=shutil.ignore_patterns("*.md"))
    lib = photolab.init_library(root)
    # a library made before low_resolution left the default taxonomy keeps its own tag list, and it works
    tax = photolab.load_taxonomy(lib).path
    tax.write_text(tax.read_text() + "quality  low_resolution  measure  small, low res, thumbnail\n")
    photolab.index_library(lib, progress=False)
    photolab.tag_library(lib, progress=False)
    lib.close()
    return root


@pytest.fixture
def lib(tagged_template, tmp_path):
    root = tmp_path / "Photos"
    shutil.copytree(tagged_template, root)
    with photolab.open_library(root) as library:
        yield library


def ids(lib) -> dict[str, int]:
    return {r["path"].split("/")[-1]: r["id"] for r in lib.catalog.query("SELECT id, path FROM photos")}


def test_sample_is_spread_reproducible_and_stored(lib):
    a = review.sample(lib, 8, seed=3)
    assert len(a) == 8 and a["stratum"].nunique() >= 4
    assert review.sample(lib, 8, seed=3)["photo_id"].tolist() == a["photo_id"].tolist()      # reused
    stored = lib.catalog.query("SELECT count(*) FROM samples WHERE name = 'default'")[0][0]
    assert stored == 8
    b = review.sample(lib, 8, seed=4, refresh=True)
    assert b["photo_id"].tolist() != a["photo_id"].tolist()
    everything = review.sample(lib, 1000, name="all")
    assert len(everything) == lib.catalog.query("SELECT count(*) FROM features")[0][0]


def test_quotas_are_proportional_with_one_each():
    q = review._quotas(np.array([100, 10, 1, 1]), 20)
    assert q.sum() == 20 and (q >= 1).all() and q[0] > q[1] > 0


def test_queue_confirm_undo_and_progress(lib):
    q = review.review_queue(lib, cut=1.01)
    assert len(q) == lib.catalog.query("SELECT count(*) FROM features")[0][0]
    assert q["reason"].str.len().gt(0).all() and q["thumb"].notna().all()
    pid = int(q.index[0])
    before = review.snapshot(lib, pid)
    prev = review.confirm(lib, pid, ["bday", "dog"], rating=4)
    assert prev == before
    got = {r["tag"]: r["value"] for r in lib.catalog.query("SELECT tag, value FROM labels WHERE photo_id = ?", (pid,))}
    assert got["birthday"] == 1 and got["dog"] == 1 and sum(got.values()) == 2
    assert len(got) == len(photolab.load_taxonomy(lib).names)
    assert accepted_tags(lib)[pid] == {"birthday", "dog"}
    assert pid not in review.review_queue(lib, cut=1.01).index
    assert review.progress(lib)[0] == 1
    review.restore_labels(lib, prev)
    assert review.snapshot(lib, pid) == before
    with pytest.raises(KeyError):
        review.confirm(lib, pid, ["no such tag"])


def test_queue_front_is_typical_photos_then_least_confident(lib):
    typical = review.review_queue(lib, cut=1.01)
    plain = review.review_queue(lib, cut=1.01, order="confidence", diversity=False)
    assert set(typical.index) == set(plain.index)
    assert plain["confidence"].is_monotonic_increasing
    front = typical[typical["reason"].str.startswith("typical of a group")]
    assert 2 <= len(front) <= review.TYPICAL_FRONT and list(typical.index[:len(front)]) == list(front.index)
    # the front spreads over the library: no two of its photos are near-copies of each other
    emb = review._embeddings(lib, [int(i) for i in front.index])   # unit length
    sim = emb @ emb.T - np.eye(len(emb))
    assert sim.max() < 0.99
    # a reviewed photo's group is covered: the next front takes other groups
    review.confirm(lib, int(front.index[0]), [])
    again = review.review_queue(lib, cut=1.01)
    assert int(front.index[0]) not in again.index
    with pytest.raises(ValueError, match="order"):
        review.review_queue(lib, order="fastest")


def test_people_and_places_always_queued(lib):
    pid = ids(lib)["mate_Dune.jpg"]
    with lib.catalog.write() as db:
        db.execute("UPDATE scores SET score = 0.999 WHERE photo_id = ? AND tag = 'beach'", (pid,))
        db.execute("UPDATE scores SET score = 0.0 WHERE photo_id = ? AND tag != 'beach'", (pid,))
    q = review.review_queue(lib, cut=0.0)
    assert pid in q.index and "people and place tags need a person" in q.loc[pid, "reason"]


def test_threshold_suggestions_and_metrics(lib):
    i = ids(lib)
    names = list(i)
    # a person labels 'low_resolution' on every photo: the small PNGs have it
    truth = {n for n in names if n.endswith(".png")}
    set_labels(lib, [(i[n], "low_resolution", int(n in truth)) for n in names])
    m = review.tag_metrics(lib)
    assert m.at["low_resolution", "positives"] == len(truth) and m.at["low_resolution", "ap"] > 0.5
    best = review.suggest_thresholds(lib)
    strict = review.suggest_thresholds(lib, target_precision=1.0)
    assert 0 < best.at["low_resolution", "suggested"] < 1
    assert strict.at["low_resolution", "precision"] == 1.0
    review.set_thresholds(lib, strict)
    assert thresholds(lib)["low_resolution"] == pytest.approx(strict.at["low_resolution", "suggested"], abs=1e-6)
    curve = review.pr_curve(lib, "low res")
    assert list(curve.columns) == ["threshold", "precision", "recall"] and len(curve)


def _label_party(lib):
    i = ids(lib)
    party = ["kde_Kite.jpg", "kde_Path.jpg", "kde_DarkestHour.jpg", "kde_ColdRipple.jpg", "kde_FallenLeaf.jpg"]
    for name, pid in i.items():
        if lib.catalog.query("SELECT 1 FROM features WHERE photo_id = ?", (pid,)):
            review.confirm(lib, pid, ["party"] if name in party else [], scope=["party", "dog"])
    return i, party


def test_train_learns_a_head_tag_and_rolls_back(lib):
    i, party = _label_party(lib)
    rep = train.train(lib)
    assert rep.activated and rep.replaces == ["party"], rep.summary()
    assert rep.metrics.at["party", "positives"] == len(party)
    assert rep.metrics.at["party", "cv_ap"] > 0.3
    assert not rep.metrics.at["dog", "replaces"]          # the prior keeps tags the head has too few examples of
    scores = {r[0]: r[1] for r in lib.catalog.query("SELECT photo_id, score FROM scores WHERE tag = 'party' "
                                                     "AND source = 'head'")}
    assert len(scores) == lib.catalog.query("SELECT count(*) FROM features")[0][0]
    assert np.mean([scores[i[n]] for n in party]) > np.mean([s for p, s in scores.items()
                                                            if p not in {i[n] for n in party}])
    assert (lib.state / "models" / "heads" / f"{rep.version}.safetensors").is_file()
    # roll back to the prior alone: the scores the head replaced come back (party: unscored)
    train.use_head(lib, None)
    assert lib.catalog.query("SELECT count(*) FROM scores WHERE tag = 'party' AND score IS NOT NULL")[0][0] == 0
    assert not lib.catalog.query("SELECT 1 FROM scores WHERE source = 'head'")
    train.use_head(lib, rep.version)
    assert lib.catalog.query("SELECT count(*) FROM scores WHERE source = 'head'")[0][0] == len(scores)
    # a second run with nothing new is compared on cross-validation
    again = train.train(lib)
    assert "per tag against the active head" in again.why and len(train.heads(lib)) == 2
    with pytest.raises(KeyError):
        train.use_head(lib, "head-nope")


def test_a_new_head_is_judged_tag_by_tag(lib):
    from safetensors.numpy import load_file

    i, party = _label_party(lib)
    first = train.train(lib)
    assert first.activated and first.replaces == ["party"]
    time.sleep(1.1)                                  # labels are stamped to the second
    bday = ["kde_ColorfulCups.jpg", "coffee.png", "chelsea.png", "mate_Wood.jpg"]
    for name, pid in i.items():                      # party said again, and a tag the active head lacks
        if lib.catalog.query("SELECT 1 FROM features WHERE photo_id = ?", (pid,)):
            review.confirm(lib, pid, (["party"] if name in party else []) + (["birthday"] if name in bday else []),
                           scope=["party", "birthday"])
    rep = train.train(lib)
    assert rep.activated and set(rep.replaces) == {"party", "birthday"}, rep.summary()
    assert "birthday new" in rep.why and rep.metrics.at["birthday", "weights"] == "new"
    heads_dir = lib.state / "models" / "heads"
    saved, old = (load_file(str(heads_dir / f"{v}.safetensors")) for v in (rep.version, first.version))
    tags = list(rep.metrics.index)
    p = tags.index("party")
    if rep.metrics.at["party", "weights"] == first.version:       # kept: the active head's row, unchanged
        assert np.array_equal(saved["weight"][p], old["weight"][p]) and "party kept" in rep.why
    else:
        assert rep.metrics.at["party", "weights"] == "new"
    assert lib.catalog.query("SELECT count(*) FROM scores WHERE tag = 'birthday' AND source = 'head'")[0][0] > 0

    # new weights that do worse on a tag's fresh labels do not get in; the active head's stay
    active = train._active(lib)
    W, Wm, b, _ = train._load_head(lib, active["version"])
    time.sleep(1.1)
    review.confirm(lib, i["kde_Kite.jpg"], ["party"], scope=["party"])
    review.confirm(lib, i["mate_Storm.jpg"], [], scope=["party"])
    ids_, X, M, Y, tags = train.training_data(lib)
    W2, Wm2, b2 = W.copy(), Wm.copy(), b.copy()
    p = tags.index("party")
    W2[p], Wm2[p], b2[p] = 0, 0, 0                   # a constant: no better than chance
    oof = train._predict(X, M, W2, Wm2, b2)
    metrics = rep.metrics.copy()
    (nW, _, nb, kept), better, why = train._against_active(lib, active, ids_, X, M, Y, tags, oof, metrics,
                                                          ["party"], (W2, Wm2, b2))
    assert kept == {"party": active["version"]} and not better and "party kept" in why
    assert np.array_equal(nW[p], W[p]) and nb[p] == b[p]


def test_too_few_labels_says_so(lib):
    rep = train.train(lib)
    assert rep.version is None and "not enough labeled photos" in rep.summary()


def test_metadata_keywords_are_examples_unless_turned_off(lib):
    i = ids(lib)
    pid = i["kde_Kite.jpg"]
    with lib.catalog.write() as db:
        db.execute("INSERT INTO labels(photo_id, tag, value, who, at) VALUES (?, 'party', 1, 'metadata', 'x')", (pid,))
    got_ids, X, M, Y, tags = train.training_data(lib)
    row = Y[list(got_ids).index(pid)]
    assert row[tags.index("party")] == 1 and np.nansum(row) == 1 and not np.isnan(row).any()
    assert X.shape == (1, 1280) and M.shape == (1, len(train.MEASURES))
    assert len(train.training_data(lib, use_metadata=False)[0]) == 0


def test_new_photos_get_the_active_heads_scores(lib, tmp_path):
    _label_party(lib)
    rep = train.train(lib)
    assert rep.activated
    shutil.copyfile(SAMPLE / "mate_Dune.jpg", lib.root / "camera" / "dune-again.jpg")
    photolab.index_library(lib, progress=False)
    photolab.tag_library(lib, progress=False)
    pid = ids(lib)["dune-again.jpg"]
    row = lib.catalog.query("SELECT score, source FROM scores WHERE photo_id = ? AND tag = 'party'", (pid,))[0]
    assert row["source"] == "head" and row["score"] is not None


def test_a_chain_rescores_its_photos_once_and_skips_those_without_features(lib, monkeypatch):
    """In a chain with the rescore stage the tag stage leaves rescoring to it (once, not twice), and a photo
    in scope that the pass could not tag (no features) is passed over rather than stopping the stage."""
    from photolab.stages import run_chain

    _label_party(lib)
    assert train.train(lib).activated
    shutil.copyfile(SAMPLE / "mate_Dune.jpg", lib.root / "camera" / "dune-again.jpg")
    (lib.root / "camera" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a photo")
    photolab.index_library(lib, progress=False)
    new = [ids(lib)["dune-again.jpg"], ids(lib)["broken.jpg"]]
    calls, real = [], train.rescore
    monkeypatch.setattr(train, "rescore", lambda *a, **k: calls.append(k.get("photo_ids")) or real(*a, **k))
    run = run_chain(lib, ["tag", "rescore"], ids=new)
    assert len(calls) == 1 and set(calls[0]) >= set(new)
    assert run.results["rescore"] > 0
    row = lib.catalog.query("SELECT score, source FROM scores WHERE photo_id = ? AND tag = 'party'", (new[0],))[0]
    assert row["source"] == "head" and row["score"] is not None
    # a pass of its own (no rescore stage after it) still rescores what it tagged
    shutil.copyfile(SAMPLE / "kde_Path.jpg", lib.root / "camera" / "path-again.jpg")
    photolab.index_library(lib, progress=False)
    photolab.tag_library(lib, progress=False)
    assert len(calls) == 2
    pid = ids(lib)["path-again.jpg"]
    assert lib.catalog.query("SELECT source FROM scores WHERE photo_id = ? AND tag = 'party'", (pid,))[0][0] == "head"


def test_review_grid_clicks_are_stored_at_once_and_undo(lib):
    from photolab.ui.widgets import ReviewGrid

    grid = ReviewGrid(lib, page_size=4, cut=1.01)
    assert len(grid.page_ids) == 4 and len(grid._grid.children) == 4
    pid = grid.page_ids[0]
    had = grid.tags_of(pid)
    grid.add_tag(pid, "bday")                       # alias
    assert "birthday" in grid.tags_of(pid)
    pid2 = grid.page_ids[1]                         # typed into a card's box and entered
    box = next(w for w in grid._grid.children[1].children if type(w).__name__ == "Combobox")
    box.value = "celebration"
    assert "party" in grid.tags_of(pid2)
    tag = next(iter(had)) if had else "dog"
    grid.toggle(pid, tag)
    assert (tag in grid.tags_of(pid)) != (tag in had)
    grid.rate(pid, 5)
    assert lib.catalog.query("SELECT rating FROM ratings WHERE photo_id = ?", (pid,))[0][0] == 5
    grid.undo()
    assert not lib.catalog.query("SELECT 1 FROM ratings WHERE photo_id = ?", (pid,))
    page = list(grid.page_ids)
    assert grid.accept_page() == 4
    assert review.progress(lib)[0] == 4 and not set(page) & set(grid.queue)
    assert lib.catalog.query("SELECT count(DISTINCT photo_id) FROM labels")[0][0] >= 4
    # a restart (a new widget) sees what the catalog holds
    again = ReviewGrid(lib, page_size=4, cut=1.01)
    assert not set(page) & set(again.queue) and "birthday" in again.tags_of(pid)
    grid.undo()                                     # the whole page back
    assert review.progress(lib)[0] == 0 and grid.queue[:4] == page
    grid._on_key({"key": "n"})
    assert grid.page == 1
    grid.show_large(pid)
    assert grid._large.value[:2] == b"\xff\xd8"
    with pytest.raises(KeyError):
        grid.add_tag(pid, "zzz")


def test_threshold_tuner_sliders_store_and_count(lib):
    from photolab.ui.widgets import ThresholdTuner

    tuner = ThresholdTuner(lib)
    assert "dog" in tuner.tags and "party" not in tuner.tags      # unscored head tags have no slider
    above, below = tuner.counts("dog")
    tuner._sliders["dog"].value = 0.02                            # as a person drags it
    assert thresholds(lib)["dog"] == pytest.approx(0.02)
    assert tuner.counts("dog")[0] >= above and sum(tuner.counts("dog")) == above + below
    assert tuner.tag == "dog" and "no reviewed photo" in tuner.figure.axes[0].get_title()
    i = ids(lib)
    set_labels(lib, [(pid, "dog", int(n.startswith("pug"))) for n, pid in i.items()])
    tuner.set("dog", 0.5)
    assert tuner.figure.axes[0].get_xlabel().startswith("recall") and len(tuner.figure.axes[0].lines) == 2
    assert tuner._curve.value[:8] == b"\x89PNG\r\n\x1a\n"           # the curve and the threshold's marker
    restarted = ThresholdTuner(lib)
    assert restarted.thresholds["dog"] == pytest.approx(0.5)


def test_cli_sample_thresholds_train(lib, capsys):
    from photolab.cli import main

    assert main(["sample", str(lib.root), "--n", "6"]) == 0
    assert "6 photos" in capsys.readouterr().out
    assert main(["thresholds", str(lib.root)]) == 0
    assert "add --apply" in capsys.readouterr().out
    assert main(["train", str(lib.root)]) == 0
    assert "not enough labeled photos" in capsys.readouterr().out
    _label_party(lib)
    assert main(["train", str(lib.root)]) == 0
    assert "active" in capsys.readouterr().out
    assert main(["train", str(lib.root), "--list"]) == 0
    assert main(["train", str(lib.root), "--use", "prior"]) == 0
    assert main(["train", str(lib.root), "--use", "head-missing"]) == 2
