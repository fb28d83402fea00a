"""The one score writer: head > starter > faces > prior, the pass replacing its own scores, the stash a head keeps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import photolab
from photolab.store import features, heads, scores


@pytest.fixture()
def lib(tmp_path):
    lib = photolab.init_library(tmp_path / "lib")
    with lib.catalog.write() as db:
        db.executemany("INSERT INTO photos(id, path, kind, size, mtime_ns, status, indexed_at) "
                       "VALUES (?, ?, 'photo', 1, 1, 'ok', 'x')", [(i, f"p{i}.jpg") for i in range(1, 6)])
    yield lib
    lib.close()


def _rows(lib, table="scores") -> dict:
    return {(p, t): (s, src, m) for p, t, s, src, m in lib.catalog.query(f"SELECT * FROM {table}")}


def test_precedence_head_starter_faces_prior(lib):
    with lib.catalog.write() as db:
        scores.write(db, [(1, "portrait", 0.1), (2, "portrait", 0.2), (3, "portrait", 0.3)], source="prior", model="p")
        scores.write(db, [(2, "portrait", 0.6)], source="starter", model="s")
        scores.write(db, [(3, "portrait", 0.7)], source="head", model="h")
        scores.write(db, [(1, "portrait", 0.9), (2, "portrait", 0.9), (3, "portrait", 0.9), (4, "portrait", 0.9)],
                     source="faces", model="f")
    got = _rows(lib)
    assert got[(1, "portrait")] == (0.9, "faces", "f")        # faces over the prior
    assert got[(2, "portrait")] == (0.6, "starter", "s")      # the starter stands
    assert got[(3, "portrait")] == (0.7, "head", "h")         # the head stands ...
    assert got[(4, "portrait")] == (0.9, "faces", "f")
    stash = _rows(lib, "scores_stash")
    assert stash[(3, "portrait")] == (0.9, "faces", "f")      # ... and the newer score waits under it
    with lib.catalog.write() as db:                           # a prior score does not replace a face count
        scores.write(db, pd.DataFrame({"photo_id": [1], "tag": ["portrait"], "score": [0.2]}), source="prior",
                     model="p")
    assert _rows(lib)[(1, "portrait")] == (0.9, "faces", "f")


def test_a_pass_replaces_its_own_scores_of_any_pass_source(lib):
    with lib.catalog.write() as db:
        scores.write(db, [(1, "cat", 0.8)], source="starter", model="s1")
        scores.write(db, [(1, "cat", 0.3)], source="prior", model="b")           # a pass without the starter
        scores.write(db, [(1, "dark", 0.5, "quality-v1")], source="measure")
        scores.write(db, [(1, "party", None), (1, "sunset", float("nan"))], source="none", model="b")
    got = _rows(lib)
    assert got[(1, "cat")] == (0.3, "prior", "b") and got[(1, "dark")] == (0.5, "measure", "quality-v1")
    assert got[(1, "party")] == (None, "none", "b") and got[(1, "sunset")][0] is None
    with pytest.raises(ValueError):
        scores.write(lib.catalog.conn, [(1, "cat", 0.3)], source="prior")


def test_a_head_sets_aside_what_it_replaces_once_and_a_rollback_puts_it_back(lib):
    with lib.catalog.write() as db:
        scores.write(db, [(p, "party", None) for p in (1, 2, 3)], source="none", model="b")
        scores.write(db, [(p, "dog", 0.1 * p) for p in (1, 2, 3)], source="prior", model="b")
        scores.write(db, [(1, "party", 0.9), (2, "party", 0.8)], source="head", model="h1")
        scores.write(db, [(1, "party", 0.7)], source="head", model="h2")        # the prior's stays set aside
        scores.write(db, [(2, "party", 0.5)], source="starter", model="s")      # a pass under the head
    got, stash = _rows(lib), _rows(lib, "scores_stash")
    assert got[(1, "party")] == (0.7, "head", "h2") and got[(2, "party")] == (0.8, "head", "h1")
    assert got[(3, "party")] == (None, "none", "b")
    assert stash == {(1, "party"): (None, "none", "b"), (2, "party"): (0.5, "starter", "s")}
    assert scores.stashed_tags(lib.catalog.conn) == ["party"]
    with lib.catalog.write() as db:
        scores.restore(db, ["party"])
    got = _rows(lib)
    assert got[(1, "party")] == (None, "none", "b") and got[(2, "party")] == (0.5, "starter", "s")
    assert not _rows(lib, "scores_stash") and got[(1, "dog")] == (0.1, "prior", "b")


def test_heads_rows_and_features_reader(lib):
    conn = lib.catalog.conn
    assert heads.active(conn) is None and not heads.exists(conn, "head-a")
    with lib.catalog.write() as db:
        heads.add(db, "head-a", "2026-01-01", 12, '["party"]', '["party"]', "[]")
        heads.add(db, "head-b", "2026-01-02", 14, '["party"]', '[]', "[]")
        heads.activate(db, "head-a")
    assert heads.active(conn)["version"] == "head-a" and heads.exists(conn, "head-b")
    assert list(heads.listing(conn).index) == ["head-b", "head-a"]
    with lib.catalog.write() as db:
        heads.activate(db, None)
    assert heads.active(conn) is None
    emb = np.arange(8, dtype=np.float16).reshape(2, 4)
    h8 = ",".join(["00000000000000ff"] * 8)
    rows = [(p, "m", None, emb[p - 1].tobytes(), "[]", "0", "0", h8, h8, 0.1, 0.2, 0.3, 0.4, None,
             *([None] * 6), f"thumbs/{p}.jpg", "t") for p in (1, 2)]
    with lib.catalog.write() as db:
        features.write(db, rows)
    assert features.embeddings(conn, [2, 1]).tolist() == [emb[1].tolist(), emb[0].tolist()]
    assert features.any_model(conn) == "m" and features.photo_ids(conn) == [1, 2]
    got = features.measures(conn, [1], ["sharpness", "colorfulness"])
    assert got == [(1, 0.1, None, "thumbs/1.jpg")]
    with pytest.raises(KeyError):
        features.embeddings(conn, [3])
    # the unit embeddings and hashes from dedupe's cached matrices, all or some
    ids, unit, low = features.unit_embeddings(lib)
    assert ids.tolist() == [1, 2] and low is None
    want = emb.astype(np.float32) / np.linalg.norm(emb.astype(np.float32), axis=1, keepdims=True)
    assert np.allclose(np.asarray(unit[[0, 1]], dtype=np.float32), want, atol=1e-3)
    ids, ph8, dh8 = features.hashes(lib, [2, 5])
    assert ids.tolist() == [2] and ph8.shape == (1, 8) and int(ph8[0, 0]) == 255 and int(dh8[0, 7]) == 255
