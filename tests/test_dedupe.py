"""Dedupe: tiers, keeper, plan CSV, quarantine, restore and purge — on real photos and made copies."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from PIL import Image, ImageOps

import photolab
from photolab.stages import dedupe

from conftest import SAMPLE
from test_organize import catalog_matches_disk, tree


@pytest.fixture(scope="module")
def tagged_template(tmp_path_factory):
    """A tagged library: the sample photos plus copies made the way people make them."""
    root = tmp_path_factory.mktemp("dedupe") / "Photos"
    shutil.copytree(SAMPLE, root / "camera")
    (root / "camera" / "ATTRIBUTION.md").unlink()
    made = root / "exports"
    made.mkdir()
    shutil.copy2(SAMPLE / "kde_Kite.jpg", made / "kite copy.jpg")                      # same bytes
    with Image.open(SAMPLE / "kde_Path.jpg") as im:
        im = im.convert("RGB")
        im.resize((im.width // 3, im.height // 3)).save(made / "path-small.jpg", quality=75)   # resized
        im.save(made / "path.png")                                                      # same pixels as decoded
        im.transpose(Image.Transpose.ROTATE_90).save(made / "path-turned.jpg", quality=90)
        ImageOps.mirror(im).save(made / "path-mirror.webp", quality=85)
        ImageOps.grayscale(im).save(made / "path-gray.jpg", quality=90)
    lib = photolab.init_library(root)
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


def test_plan_groups_tiers_and_keeper(lib):
    before = tree(lib.root)
    plan = dedupe.plan(lib)
    assert tree(lib.root) == before                                  # a plan moves nothing
    groups = {g: set(sub["path"]) for g, sub in plan.groupby("group")}
    kite = {"camera/kde_Kite.jpg", "exports/kite copy.jpg"}
    path = {"camera/kde_Path.jpg", "exports/path-small.jpg", "exports/path.png", "exports/path-turned.jpg",
            "exports/path-mirror.webp", "exports/path-gray.jpg"}
    assert kite in groups.values() and path in groups.values()
    rows = plan.set_index("path")
    assert rows.loc["exports/kite copy.jpg", "tier"] == "exact"
    assert rows.loc["exports/path-small.jpg", "tier"] == "near"
    assert rows.loc["exports/path-turned.jpg", "tier"] == "near"      # turned 90 degrees
    # the PNG holds the decoded pixels of the JPEG: exact, though another container
    assert rows.loc["exports/path.png", "tier"] == "exact"
    # keeper: highest resolution, then JPEG over PNG/WebP, then the one with camera metadata
    assert rows.loc["camera/kde_Path.jpg", "keep"]
    assert rows["keep"].sum() == 2
    assert not (plan["tier"] == "similar").any() or plan[plan["tier"] == "similar"]["keep"].all()
    # nothing else in the sample is a duplicate of anything
    assert set(plan["path"]) == kite | path


def test_plan_csv_interface(lib, tmp_path):
    out = dedupe.write_plan_csv(dedupe.plan(lib), tmp_path / "dups.csv")
    df = pd.read_csv(out, keep_default_na=False)
    assert list(df.columns) == ["group", "tier", "path", "keep", "reason"]
    assert set(df["keep"].astype(str).str.lower()) == {"true", "false"}
    assert set(df["tier"]) <= {"exact", "near", "similar"}


def test_apply_restore_round_trip_is_byte_identical(lib):
    (lib.root / "exports" / "path-small.jpg.xmp").write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"/>\n')
    photolab.index_library(lib, progress=False)
    before = tree(lib.root)
    plan = dedupe.plan(lib)
    report = dedupe.apply(lib, plan, progress=False)
    aside = set(plan.loc[~plan["keep"], "path"])
    assert report.done == len(aside) + 1                             # with the sidecar
    after = tree(lib.root)
    assert not aside & set(after)
    qdir = lib.state / "quarantine" / report.batch
    assert (qdir / "exports" / "path-small.jpg.xmp").is_file()       # companions travel along
    assert (qdir / "manifest.json").is_file()
    statuses = {r["status"] for r in lib.catalog.query("SELECT status FROM photos WHERE path LIKE '.photolab/%'")}
    assert statuses == {"quarantined"}
    assert len(dedupe.plan(lib)) == 0                                # set-aside copies are out of the library
    photolab.index_library(lib, progress=False)                      # and index does not call them missing
    assert not lib.catalog.query("SELECT 1 FROM photos WHERE status = 'missing'")

    dedupe.restore(lib, report.batch)
    assert tree(lib.root) == before
    assert not (lib.state / "quarantine" / report.batch).exists()
    catalog_matches_disk(lib)
    assert not lib.catalog.query("SELECT 1 FROM photos WHERE status = 'quarantined'")


def test_undo_of_a_quarantine_batch_puts_statuses_back(lib):
    """`photolab undo` reverses a quarantine like any batch: the catalog status comes back with the file."""
    before = {r["path"]: r["status"] for r in lib.catalog.query("SELECT path, status FROM photos")}
    report = dedupe.apply(lib, dedupe.plan(lib), progress=False)
    assert lib.catalog.query("SELECT count(*) FROM photos WHERE status = 'quarantined'")[0][0] == report.done
    photolab.core.fileops.undo(lib)                                      # the newest batch: the quarantine
    after = {r["path"]: r["status"] for r in lib.catalog.query("SELECT path, status FROM photos")}
    assert after == before


def test_labels_of_set_aside_copies_move_to_the_keeper(lib):
    from photolab.store.catalog import utcnow

    copy = lib.catalog.query("SELECT id FROM photos WHERE path = 'exports/path-gray.jpg'")[0][0]
    keeper = lib.catalog.query("SELECT id FROM photos WHERE path = 'camera/kde_Path.jpg'")[0][0]
    with lib.catalog.write() as db:
        db.execute("INSERT INTO labels(photo_id, tag, value, who, at) VALUES (?, 'landscape', 1, 'me', ?)",
                   (copy, utcnow()))
    dedupe.apply(lib, dedupe.plan(lib), progress=False)
    assert lib.catalog.query("SELECT value FROM labels WHERE photo_id = ? AND tag = 'landscape'", (keeper,))[0][0] == 1


def test_one_copy_per_event_when_asked(lib):
    """The same photo filed in two events keeps a copy in each with per_event=True."""
    rows = {r["path"]: r["id"] for r in lib.catalog.query("SELECT id, path FROM photos")}
    with lib.catalog.write() as db:
        db.execute("DELETE FROM photo_events")
        for path, event in (("camera/kde_Kite.jpg", 1), ("exports/kite copy.jpg", 2)):
            db.execute("INSERT INTO photo_events(photo_id, event_id) VALUES (?, ?)", (rows[path], event))
    kite = {"camera/kde_Kite.jpg", "exports/kite copy.jpg"}
    default = dedupe.plan(lib)
    assert kite <= set(default["path"]) and not default[default["path"].isin(kite)]["keep"].all()
    per_event = dedupe.plan(lib, options=dedupe.DedupeOptions(per_event=True))
    assert not kite & set(per_event["path"])                       # each event keeps its own copy


def test_restore_one_file(lib):
    plan = dedupe.plan(lib)
    report = dedupe.apply(lib, plan, progress=False)
    dedupe.restore(lib, "exports/path-gray.jpg")
    assert (lib.root / "exports" / "path-gray.jpg").is_file()
    assert not (lib.root / "exports" / "path-small.jpg").exists()
    assert lib.catalog.query("SELECT status FROM photos WHERE path = 'exports/path-gray.jpg'")[0][0] == "ok"
    assert dedupe.quarantine_batches(lib).iloc[0]["batch"] == report.batch


def test_purge_respects_the_retention(lib):
    plan = dedupe.plan(lib)
    report = dedupe.apply(lib, plan, progress=False)
    with pytest.raises(photolab.core.fileops.FileOpError, match="retention is 7 days"):
        dedupe.purge(lib, batch=report.batch)                        # refused even when named
    assert dedupe.purge(lib) == 0                                   # nothing old enough
    assert (lib.state / "quarantine" / report.batch).is_dir()
    old = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=8)).replace(microsecond=0).isoformat()
    with lib.catalog.write() as db:                                  # the batch ages past the retention
        db.execute("UPDATE journal SET created_at = ? WHERE batch = ?", (old, report.batch))
    deleted = dedupe.purge(lib)
    assert deleted == report.done
    assert not (lib.state / "quarantine" / report.batch).exists()
    catalog_matches_disk(lib)


def test_cli_dedupe_apply_restore(lib, tmp_path):
    def cli(*args, ok=True):
        proc = subprocess.run([sys.executable, "-m", "photolab.cli", "-q", *map(str, args)],
                              capture_output=True, text=True, timeout=300)
        if ok:
            assert proc.returncode == 0, proc.stderr
        return proc

    before = tree(lib.root)
    out = cli("dedupe", lib.root, "--plan-csv", tmp_path / "p.csv").stdout
    assert "dry run" in out and tree(lib.root) == before
    out = cli("dedupe", lib.root, "--apply").stdout
    batch = out.split("restore-duplicates ")[1].split()[1].rstrip("`")
    assert tree(lib.root) != before
    proc = cli("purge", lib.root, "--batch", batch, ok=False)
    assert proc.returncode == 2 and "retention" in proc.stderr
    cli("restore-duplicates", lib.root, batch)
    assert tree(lib.root) == before


@pytest.mark.shared
def test_natural_duplicates_and_similar_scenes(shared_data):
    """The evaluation script on real duplicate ground truth: the tiers hold their targets."""
    proc = subprocess.run([sys.executable, "benchmarks/eval_dedupe.py", str(shared_data / "neardup" / "natural")],
                          capture_output=True, text=True, timeout=600, cwd=SAMPLE.parent)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "exact tier        : precision 1.000  recall 1.000" in out
    near = out.split("exact + near tiers: precision ")[1]
    precision = float(near.split()[0])
    readable_recall = float(near.split("readable files: ")[1].split(";")[0])
    assert precision >= 0.99 and readable_recall >= 0.95, out
    assert "similar scenes in exact/near: 0" in out
    assert "kept ['ukb09268__ukbench09268.jpg']" in out or "kept all (not grouped)" in out


def test_split_group_takes_files_out_and_keeps_a_keeper(lib):
    plan = dedupe.plan(lib)
    path_group = plan.loc[plan["path"] == "camera/kde_Path.jpg", "group"].item()
    out = dedupe.split_group(plan, ["exports/path-gray.jpg", "exports/path-mirror.webp"])
    moved = out[out["path"].isin(["exports/path-gray.jpg", "exports/path-mirror.webp"])]
    assert moved["group"].nunique() == 1 and moved["group"].iloc[0] != path_group
    assert moved["keep"].sum() == 1                                  # a part of its own, with a keeper
    rest = out[out["group"] == path_group]
    assert rest.loc[rest["path"] == "camera/kde_Path.jpg", "keep"].item() and rest["keep"].sum() == 1
    single = dedupe.split_group(plan, ["exports/kite copy.jpg"])     # a pair split: nothing left to do
    assert "exports/kite copy.jpg" not in set(single["path"]) and "camera/kde_Kite.jpg" not in set(single["path"])
    with pytest.raises(KeyError):
        dedupe.split_group(plan, ["nowhere.jpg"])


def test_review_widget_changes_keeper_splits_and_dismisses(lib):
    from photolab.ui.widgets import DedupeReview

    plan = dedupe.plan(lib)
    review = DedupeReview(lib, plan)
    assert review.groups and review.current == review.groups[0]
    cards = review._cards.children
    assert len(cards) == (plan["group"] == review.current).sum()
    assert "MB" in cards[0].children[1].value and cards[0].children[0].value[:2] == b"\xff\xd8"
    dup = review.plan[(review.plan["group"] == review.current)]
    other = dup.loc[~dup["keep"].astype(bool), "path"].iloc[0]
    review.keep(other)
    assert review.plan.loc[review.plan["path"] == other, "keep"].item()
    assert (review.plan[review.plan["group"] == review.current]["keep"]).sum() == 1
    n = len(review.groups)
    review.split([other])          # the chosen file is not a copy after all
    assert other not in set(review.plan["path"]) or len(review.groups) == n + 1
    g = review.current
    review.dismiss()
    assert g not in review.groups
    review.next(), review.previous()
    report = dedupe.apply(lib, review.plan, progress=False)
    assert report.done == int((~review.plan["keep"].astype(bool)).sum())


def test_feature_cache_follows_recomputed_and_removed_features(lib):
    dedupe.plan(lib)
    cache = lib.state / "features" / dedupe.CACHE_FILE
    assert cache.is_file()
    ids = {r["path"]: r["id"] for r in lib.catalog.query("SELECT id, path FROM photos")}
    kite = lib.catalog.query("SELECT embedding, phash8, dhash8 FROM features WHERE photo_id = ?",
                             (ids["camera/kde_Kite.jpg"],))[0]
    with lib.catalog.write() as db:   # as if the gray copy had been recomputed into a copy of the kite
        db.execute("UPDATE features SET embedding = ?, phash8 = ?, dhash8 = ?, computed_at = '2099-01-01T00:00:00+00:00' "
                   "WHERE photo_id = ?", (kite["embedding"], kite["phash8"], kite["dhash8"], ids["exports/path-gray.jpg"]))
        db.execute("DELETE FROM features WHERE photo_id = ?", (ids["exports/path-mirror.webp"],))
    plan = dedupe.plan(lib)
    groups = {g: set(sub["path"]) for g, sub in plan.groupby("group")}
    assert any({"camera/kde_Kite.jpg", "exports/path-gray.jpg"} <= g for g in groups.values())
    assert "exports/path-mirror.webp" not in set(plan["path"])
    cache.write_bytes(b"damaged")                                    # only a cache: rebuilt
    assert dedupe.plan(lib).rows.equals(plan.rows)


def test_keeper_ties_break_by_format_then_intact_then_metadata_then_earliest():
    opts = dedupe.DedupeOptions()
    base = {"kind": "photo", "format": "JPEG", "width": 4000, "height": 3000, "status": "ok",
            "captured_at": "2024-05-01T10:00:00", "camera_make": "Canon", "gps_lat": None,
            "captured_source": "DateTimeOriginal", "path": "b.jpg"}

    def best(*rows):
        return min(rows, key=lambda r: dedupe._keeper_order(r, opts))["path"]

    assert best({**base, "path": "small.jpg", "width": 2000}, {**base, "path": "big.png", "format": "PNG"}) == "big.png"
    assert best({**base, "path": "a.jpg"}, {**base, "path": "a.heic", "format": "HEIF"},
                {**base, "path": "a.cr2", "kind": "raw", "format": "CR2"}) == "a.cr2"
    assert best({**base, "path": "a.png", "format": "PNG"}, {**base, "path": "a.webp", "format": "WEBP"}) == "a.png"
    assert best({**base, "path": "damaged.jpg", "status": "warning"}, {**base, "path": "intact.jpg"}) == "intact.jpg"
    assert best({**base, "path": "bare.jpg", "camera_make": None, "captured_source": "FileModifyDate"},
                {**base, "path": "rich.jpg", "gps_lat": 48.1}) == "rich.jpg"
    assert best({**base, "path": "later.jpg", "captured_at": "2024-05-02T10:00:00"}, {**base, "path": "first.jpg"}) \
        == "first.jpg"
    custom = dedupe.DedupeOptions(format_preference=("PNG", "JPEG"))
    assert min([{**base, "path": "x.jpg"}, {**base, "path": "x.png", "format": "PNG"}],
               key=lambda r: dedupe._keeper_order(r, custom))["path"] == "x.png"


def test_hash_keys_find_every_pair_within_eleven_bits_and_nothing_outside_the_limits():
    import numpy as np

    rng = np.random.default_rng(3)
    n = 3000
    ph = rng.integers(0, 2**63, (n, 8), dtype=np.int64).astype(np.uint64)
    dh = rng.integers(0, 2**63, (n, 8), dtype=np.int64).astype(np.uint64)
    planted = {}
    for k in range(0, 600, 2):   # k+1 copies k's orientation o with a + b flipped bits, a + b <= 11
        o, a = int(rng.integers(0, 8)), int(rng.integers(0, 8))
        b = int(rng.integers(0, min(8, 11 - a) + 1))
        flip = lambda bits: np.uint64(sum(1 << int(x) for x in rng.choice(64, bits, replace=False)))  # noqa: E731
        ph[k + 1, 0], dh[k + 1, 0] = ph[k, o] ^ flip(a), dh[k, o] ^ flip(b)
        planted[(k, k + 1)] = (a, b)
    qi, d = dedupe._code_pairs(ph[:, 0], dh[:, 0], ph.reshape(-1), dh.reshape(-1), 7, 8)
    found = {(min(x, y), max(x, y)) for x, y in zip(qi.tolist(), (d // 8).tolist()) if x != y}
    want = {p for p, (a, b) in planted.items() if a <= 7 and b <= 8}
    assert want <= found
    j = d // 8
    assert (np.bitwise_count(ph[qi, 0] ^ ph[j, d % 8]) <= 7).all() and (np.bitwise_count(dh[qi, 0] ^ dh[j, d % 8]) <= 8).all()
    # few queries against many codes (a watched import), and many against few: the same pairs
    q = np.arange(0, 600, 2)
    qi2, d2 = dedupe._code_pairs(ph[q, 0], dh[q, 0], ph.reshape(-1), dh.reshape(-1), 7, 8)
    a2, b2 = dedupe._code_pairs(ph[:, 0], dh[:, 0], ph[q].reshape(-1), dh[q].reshape(-1), 7, 8)
    got = {(min(q[x], y), max(q[x], y)) for x, y in zip(qi2.tolist(), (d2 // 8).tolist())} | \
          {(min(x, q[y]), max(x, q[y])) for x, y in zip(a2.tolist(), (b2 // 8).tolist())}
    assert want <= got


def test_a_large_library_uses_cached_lists_and_finds_planted_copies(tmp_path, monkeypatch):
    """Above EXACT_SEARCH (lowered here): hash keys, embedding lists, memory-mapped cache; new photos checked
    against the cached lists find their copies; a damaged cache is rebuilt."""
    import numpy as np

    sys.path.insert(0, str(SAMPLE.parent / "benchmarks"))
    import bench_dedupe

    monkeypatch.setattr(dedupe, "EXACT_SEARCH", 300)
    monkeypatch.setattr(dedupe, "_LIST", 40)
    lib = photolab.init_library(tmp_path / "Photos")
    planted = bench_dedupe.synthetic(lib, 3000, np.random.default_rng(0))
    plan = dedupe.plan(lib)
    found = set()
    for _, sub in plan[plan["tier"] != "similar"].groupby("group"):
        ids = sorted(sub["photo_id"])
        found.update((a, b) for a in ids for b in ids if a < b)
    assert planted <= found
    folder = lib.state / "features"
    manifest = folder / dedupe.CACHE_FILE
    assert manifest.is_file() and list(folder.glob("dedupe-*.lists.npz"))
    new, planted_new = bench_dedupe.arrivals(lib, 50, 20, np.random.default_rng(1))
    sub = dedupe.plan(lib, only=new)
    got = set()
    for _, g in sub[sub["tier"] != "similar"].groupby("group"):
        ids = sorted(g["photo_id"])
        got.update((a, b) for a in ids for b in ids if a < b)
    assert planted_new <= got
    assert set(sub["photo_id"]) & set(new)
    manifest.write_text("{damaged")
    again = dedupe.plan(lib, only=new)
    assert set(map(tuple, again[["path", "tier", "keep"]].values)) == set(map(tuple, sub[["path", "tier", "keep"]].values))
    lib.close()
