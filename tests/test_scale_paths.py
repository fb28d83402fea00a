"""The paths that keep library-wide steps small: the score matrix patched from the catalog's change log,
the review queue decided from it, an index of named files only, and one catalog backup for a watcher pass."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import photolab
from photolab.stages import review
from photolab.store.catalog import SCHEMA_VERSION, utcnow
from photolab.store import scores as store
from photolab.stages.tagging import decisions, set_labels, set_threshold


def _library(root, n: int = 60, seed: int = 0):
    """A catalog of ``n`` photos with features and a score for most tags (some missing, some NULL)."""
    rng = np.random.default_rng(seed)
    lib = photolab.init_library(root)
    tags = photolab.load_taxonomy(lib).names
    now = utcnow()
    with lib.catalog.write() as db:
        for pid in range(1, n + 1):
            db.execute("INSERT INTO photos(id, path, kind, size, mtime_ns, status, indexed_at, captured_at) "
                       "VALUES (?,?,?,?,?,?,?,?)", (pid, f"d{pid % 3}/IMG_{(pid * 37) % 101:03d}_{pid}.jpg", "photo",
                                                    1, 0, "ok" if pid % 11 else "corrupt", now,
                                                    None if pid % 7 == 0 else f"2020-01-{pid % 28 + 1:02d}T10:00:00"))
            emb = rng.standard_normal(16).astype(np.float16).tobytes()
            db.execute("INSERT INTO features(photo_id, model, embedding, top5, computed_at, thumb) VALUES (?,?,?,?,?,?)",
                       (pid, "m", emb, "[]", now, f"thumbs/0000/{pid}.jpg" if pid % 5 else None))
            for j, t in enumerate(tags):
                if (pid + j) % 13 == 0:
                    continue                    # no score row
                score = None if (pid * j) % 17 == 0 else round(float(rng.beta(0.5, 1.5)), 6)
                db.execute("INSERT INTO scores(photo_id, tag, score, source, model) VALUES (?,?,?,?,?)",
                           (pid, t, score, "prior", "m"))
    return lib


def _pivot(lib) -> tuple[np.ndarray, list[str], np.ndarray]:
    long = lib.catalog.dataframe("SELECT photo_id, tag, score FROM scores")
    wide = long.pivot(index="photo_id", columns="tag", values="score").sort_index()
    return wide.index.to_numpy(), list(wide.columns), wide.to_numpy(dtype=float)


def _same(m: store.ScoreMatrix, lib) -> None:
    ids, tags, S = _pivot(lib)
    assert m.ids.tolist() == ids.tolist()
    np.testing.assert_array_equal(m.columns(ids, tags), S)


def test_score_matrix_follows_every_change_through_the_log(tmp_path):
    lib = _library(tmp_path / "lib")
    assert lib.catalog.version == SCHEMA_VERSION
    m = store.score_matrix(lib)
    _same(m, lib)
    assert (lib.state / "features" / store.CACHE).is_file()
    assert store.score_matrix(lib).seq == m.seq            # nothing changed: the kept matrix as it is
    with lib.catalog.write() as db:
        db.execute("UPDATE scores SET score = 0.123 WHERE photo_id = 4 AND tag = 'dog'")
        db.execute("INSERT OR REPLACE INTO scores VALUES (5, 'a new tag', 0.9, 'head', 'h')")   # a new column
        db.execute("DELETE FROM photos WHERE id = 6")                                            # cascades
        db.execute("DELETE FROM scores WHERE photo_id = 7 AND tag = 'cat'")
        db.execute("DELETE FROM scores WHERE photo_id = 10")
        db.execute("UPDATE scores SET photo_id = 10 WHERE photo_id = 8")    # (the log has both ids)
        # an upsert and an insert that ignores conflicts (their conflict clause governs the trigger's too)
        db.execute("INSERT INTO scores VALUES (11, 'portrait', 0.7, 'faces', 'f') ON CONFLICT(photo_id, tag) "
                   "DO UPDATE SET score = excluded.score")
        db.execute("INSERT INTO scores VALUES (12, 'group', 0.2, 'faces', 'f') ON CONFLICT(photo_id, tag) "
                   "DO UPDATE SET score = excluded.score")
        db.execute("INSERT OR IGNORE INTO scores VALUES (13, 'a new tag', 0.4, 'head', 'h')")
    changed = {r[0] for r in lib.catalog.query("SELECT photo_id FROM score_changes WHERE seq > ?", (m.seq,))}
    assert changed == {4, 5, 6, 7, 8, 10, 11, 12, 13}
    patched = store.score_matrix(lib)
    assert patched.seq > m.seq and "a new tag" in patched.tags and 6 not in patched.ids and 8 not in patched.ids
    _same(patched, lib)
    # another process's view: the file it left is read and brought up to date in turn
    other = photolab.open_library(lib.root)
    with other.catalog.write() as db:
        db.execute("UPDATE scores SET score = NULL WHERE photo_id = 9")
    _same(store.score_matrix(lib), lib)
    # a damaged file is read again from the catalog, a restored catalog's older log too
    (lib.state / "features" / store.CACHE).write_bytes(b"not a matrix")
    _same(store.score_matrix(lib), lib)
    store.forget(lib.state)
    assert not (lib.state / "features" / store.CACHE).exists()
    _same(store.score_matrix(lib, save=False), lib)
    assert not (lib.state / "features" / store.CACHE).exists()


def _queue_by_pivot(lib, cut: float) -> pd.DataFrame:
    """The review queue's rule on the pivot of every score (what review_queue decided from before)."""
    tax = photolab.load_taxonomy(lib)
    df = decisions(lib)
    done = {r[0] for r in lib.catalog.query("SELECT photo_id FROM reviews")}
    df = df[~df.index.isin(done)]
    sensitive = [t for c in review.ALWAYS_REVIEW for t in tax.by_category(c)]
    C = df[[f"confidence:{t}" for t in tax.names]].to_numpy(dtype=float)
    has_any = ~np.isnan(C).all(axis=1)
    weakest = np.where(has_any, np.nanargmin(np.where(np.isnan(C), np.inf, C), axis=1), 0)
    conf = df["confidence"].to_numpy(dtype=float)
    low = has_any & (conf < cut)
    labeled = {(r[0], r[1]) for r in lib.catalog.query("SELECT photo_id, tag FROM labels")}
    reasons = []
    for k, pid in enumerate(df.index):
        if low[k]:
            reasons.append(f"least sure about {tax.names[weakest[k]]} (confidence {conf[k]:.2f})")
            continue
        open_ = [t for t in df["tags"].iloc[k].split(";") if t in sensitive and (pid, t) not in labeled]
        reasons.append(f"{', '.join(open_)}: people and place tags need a person" if open_ else "")
    df = df.assign(reason=reasons)[np.array(reasons) != ""]
    df["confidence"] = df["confidence"].fillna(0.0)
    return df.sort_values(["confidence", "path"])


@pytest.mark.parametrize("cut", [0.6, 0.0, 1.01])
def test_queue_from_the_matrix_is_the_queue_of_the_pivot(tmp_path, cut):
    lib = _library(tmp_path / "lib", n=80)
    ids = [r[0] for r in lib.catalog.query("SELECT id FROM photos WHERE status = 'ok' ORDER BY id")]
    set_labels(lib, [(ids[0], "beach", 1), (ids[1], "dog", 0), (ids[2], "person", 0), (ids[3], "city", 1)])
    set_threshold(lib, "beach", 0.3)
    review.confirm(lib, ids[4], ["dog"])
    want = _queue_by_pivot(lib, cut)
    got = review.review_queue(lib, cut=cut, order="confidence", diversity=False)
    assert list(got.index) == list(want.index) and len(got)
    cols = [c for c in want.columns if c != "captured_at"]
    pd.testing.assert_frame_equal(got[cols], want[cols], check_dtype=False, check_index_type=False)
    assert got["captured_at"].tolist() == want["captured_at"].tolist()
    assert [t if isinstance(t, str) else None for t in got["thumb"]] == [str(lib.state / "features" / f"thumbs/0000/{p}.jpg") if p % 5 else None
                                     for p in got.index]
    assert review.review_queue(lib, cut=cut, order="confidence", diversity=False, limit=5).index.tolist() == \
        list(want.index[:5])


def test_index_of_named_files_reads_only_those(tmp_path):
    from conftest import SAMPLE

    import shutil

    lib = photolab.init_library(tmp_path / "lib")
    for name in ("kde_Kite.jpg", "kde_Path.jpg", "mate_Dune.jpg"):
        shutil.copy(SAMPLE / name, lib.root / name)
    rep = photolab.index_library(lib, progress=False, paths=["kde_Kite.jpg", "kde_Path.jpg", "gone.jpg"])
    assert rep.read == 2 and rep.scanned == 2
    assert sorted(r[0] for r in lib.catalog.query("SELECT path FROM photos")) == ["kde_Kite.jpg", "kde_Path.jpg"]
    (lib.root / "kde_Path.jpg").unlink()
    rep = photolab.index_library(lib, progress=False, paths=["kde_Path.jpg", "mate_Dune.jpg"])
    assert rep.missing == 1 and rep.read == 1
    status = {r[0]: r[1] for r in lib.catalog.query("SELECT path, status FROM photos")}
    assert status == {"kde_Kite.jpg": "ok", "kde_Path.jpg": "missing", "mate_Dune.jpg": "ok"}
    assert set(rep.by_status) <= {"ok", "missing"} and sum(rep.by_status.values()) == 2


def test_a_pass_of_several_batches_copies_the_catalog_once_after(tmp_path):
    from photolab.store.catalog import list_backups

    lib = _library(tmp_path / "lib", n=5)
    cat = lib.catalog
    before = len(list_backups(lib.root))
    with cat.one_backup_for("pass"):
        with cat.write() as db:
            db.execute("INSERT INTO runs(stage, started_at) VALUES ('x', ?)", (utcnow(),))
        first = cat.backup("before-index", files=0)     # the state before the pass: as backup() decides
        for op in ("quarantine", "organize", "rewrite"):
            assert cat.backup(f"before-{op}", files=3) is None
            with cat.write() as db:
                db.execute("INSERT INTO runs(stage, started_at) VALUES (?, ?)", (op, utcnow()))
            assert cat.backup(f"after-{op}") is None
    made = list_backups(lib.root)
    assert made[0].name.endswith("-after-pass.sqlite")
    assert len(made) == before + 1 + (first is not None)
