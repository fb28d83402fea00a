"""Every photo's score for every tag as one matrix, kept current without reading every score again.

The catalog logs the photos whose scores changed (``score_changes``: one row per photo, its latest
change, filled by triggers on ``scores``). :func:`score_matrix` keeps the matrix in
``.photolab/features/scores.npz`` with the log position it holds, and on the next call reads only the
score rows of photos logged since: a watched import of ten photos patches ten rows of a 500,000-photo
matrix. The log and the score rows are read in one snapshot, so a writer working meanwhile is seen
either wholly or on the next call. Reading queries for the review queue and the CSV export are here
too, so the stages that use them hold no SQL of their own.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..index import USABLE
from . import rows_in

log = logging.getLogger(__name__)

CACHE = "scores.npz"
PATCH_MAX = 0.3    # more of the library changed than this: read it whole instead of patching


@dataclass
class ScoreMatrix:
    """``S[i, j]``: the score of photo ``ids[i]`` for ``tags[j]`` (NaN: no score row, or a NULL score)."""

    ids: np.ndarray          # int64, ascending
    tags: list[str]
    S: np.ndarray            # float64, len(ids) x len(tags)
    seq: int                 # the change log position it holds

    def rows(self, photo_ids: np.ndarray) -> np.ndarray:
        """Positions of ``photo_ids`` in the matrix (-1 where a photo has no score row)."""
        photo_ids = np.asarray(photo_ids, dtype=np.int64)
        if not len(self.ids):
            return np.full(len(photo_ids), -1, dtype=np.int64)
        pos = np.clip(np.searchsorted(self.ids, photo_ids), 0, len(self.ids) - 1)
        return np.where(self.ids[pos] == photo_ids, pos, -1)

    def columns(self, photo_ids, tags: list[str]) -> np.ndarray:
        """The scores of ``photo_ids`` (rows) for ``tags`` (columns), NaN where none."""
        pos = self.rows(photo_ids)
        col = {t: j for j, t in enumerate(self.tags)}
        out = np.full((len(pos), len(tags)), np.nan)
        have = pos >= 0
        for k, t in enumerate(tags):
            if t in col:
                out[have, k] = self.S[pos[have], col[t]]
        return out


def _plain(conn: sqlite3.Connection) -> sqlite3.Cursor:
    """A cursor that returns plain tuples (building a ``sqlite3.Row`` for each of 500,000 rows costs seconds)."""
    cur = conn.cursor()
    cur.row_factory = None
    return cur


def _read_cache(path: Path) -> ScoreMatrix | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return ScoreMatrix(ids=z["ids"].astype(np.int64), tags=[str(t) for t in z["tags"]],
                               S=np.asarray(z["S"], dtype=np.float64), seq=int(z["seq"]))
    except (OSError, KeyError, ValueError, EOFError) as exc:
        if path.exists():
            log.info("%s: score matrix unreadable (%s); read from the catalog again", path, exc)
        return None


def _write_cache(path: Path, m: ScoreMatrix) -> None:
    tmp = path.with_name(f".{path.stem}-{os.getpid()}.tmp.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            np.savez(fh, ids=m.ids, tags=np.array(m.tags, dtype=str), S=m.S, seq=np.int64(m.seq))
        os.replace(tmp, path)
    except OSError as exc:   # a read-only library or a full disk: only speed is lost
        tmp.unlink(missing_ok=True)
        log.info("%s: score matrix not saved (%s)", path, exc)


def _rows_to_matrix(rows, tags: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(ids, S, tags) from (photo_id, tag, score) rows; tags not in ``tags`` yet are added as columns."""
    col = {t: j for j, t in enumerate(tags)}
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, len(tags))), tags
    pid, tag, score = zip(*rows)
    for t in dict.fromkeys(tag):
        if t not in col:
            col[t] = len(tags)
            tags = tags + [t]
    pid = np.fromiter(pid, dtype=np.int64, count=len(rows))
    j = np.fromiter((col[t] for t in tag), dtype=np.int64, count=len(rows))
    s = np.array(score, dtype=np.float64)   # None: NaN
    ids, i = np.unique(pid, return_inverse=True)
    S = np.full((len(ids), len(tags)), np.nan)
    S[i, j] = s
    return ids, S, tags


def _read_all(conn: sqlite3.Connection) -> tuple[np.ndarray, np.ndarray, list[str]]:
    cur = _plain(conn).execute("SELECT photo_id, tag, score FROM scores")
    ids_parts, S_parts, tags = [], [], []
    while True:
        rows = cur.fetchmany(1_000_000)
        if not rows:
            break
        ids, S, tags = _rows_to_matrix(rows, tags)
        ids_parts.append(ids)
        S_parts.append(S)
    if not ids_parts:
        return np.zeros(0, np.int64), np.zeros((0, 0)), []
    # chunks may split a photo's rows: merge them (a later chunk's value wins where both have one)
    S_parts = [np.hstack([S, np.full((len(S), len(tags) - S.shape[1]), np.nan)]) for S in S_parts]
    ids = np.concatenate(ids_parts)
    S = np.vstack(S_parts)
    order = np.argsort(ids, kind="stable")
    ids, S = ids[order], S[order]
    uniq, first = np.unique(ids, return_index=True)
    if len(uniq) == len(ids):
        return ids, S, tags
    out = S[first].copy()
    for k in np.flatnonzero(np.diff(ids) == 0) + 1:   # the few photos split across chunks
        r = np.searchsorted(uniq, ids[k])
        have = ~np.isnan(S[k])
        out[r, have] = S[k, have]
    return uniq, out, tags


def _changed(conn: sqlite3.Connection, since: int) -> list[int]:
    return [r[0] for r in conn.execute("SELECT photo_id FROM score_changes WHERE seq > ? ORDER BY photo_id",
                                       (since,))]


def _scores_of(conn: sqlite3.Connection, ids: list[int]) -> list[tuple]:
    return rows_in(conn, "SELECT photo_id, tag, score FROM scores WHERE photo_id IN {in}", ids)


def score_matrix(lib, *, save: bool = True) -> ScoreMatrix:
    """The library's score matrix, current as of this call (see the module text).

    ``save``: keep the patched matrix for the next call (a read-only library keeps nothing and
    patches in memory each time)."""
    conn = lib.catalog.conn
    path = lib.state / "features" / CACHE
    c = _read_cache(path)
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")    # one snapshot: the change log and the score rows agree
    try:
        seq = conn.execute("SELECT coalesce(max(seq), 0) FROM score_changes").fetchone()[0]
        if c is not None and c.seq == seq:
            return c
        changed = _changed(conn, c.seq) if c is not None and c.seq < seq else None
        if changed is None or len(changed) > PATCH_MAX * max(len(c.ids), 1):
            ids, S, tags = _read_all(conn)
            m = ScoreMatrix(ids, tags, S, seq)
        else:
            nids, nS, tags = _rows_to_matrix(_scores_of(conn, changed), list(c.tags))
            keep = ~np.isin(c.ids, np.asarray(changed, dtype=np.int64))
            old = c.S[keep]
            if len(tags) > old.shape[1]:
                old = np.hstack([old, np.full((len(old), len(tags) - old.shape[1]), np.nan)])
            ids = np.concatenate([c.ids[keep], nids])
            S = np.vstack([old, nS]) if len(nS) else old
            order = np.argsort(ids, kind="stable")
            m = ScoreMatrix(ids[order], tags, S[order], seq)
    finally:
        if own:
            conn.execute("COMMIT")
    if save and not lib.catalog.read_only:
        _write_cache(path, m)
    return m


def forget(state: Path) -> None:
    """Remove the cached matrix (a catalog put back from a backup has another change history)."""
    (Path(state) / "features" / CACHE).unlink(missing_ok=True)


# -- what the review queue and the CSV export read beside the scores --------------------------------------
def usable_photos(conn: sqlite3.Connection) -> tuple[np.ndarray, list, list, list]:
    """(ids, paths, capture times, thumbnails) of every usable photo with features, in id order: one pass
    over the photo rows and one over the narrow feature index (not the feature rows), joined here."""
    usable = ", ".join("?" * len(USABLE))
    photos = _plain(conn).execute(f"SELECT id, path, captured_at FROM photos NOT INDEXED WHERE status IN ({usable}) "
                                  "ORDER BY id", USABLE).fetchall()
    feats = _plain(conn).execute("SELECT photo_id, thumb FROM features INDEXED BY features_thumb "
                                 "ORDER BY photo_id").fetchall()
    pid = np.fromiter((r[0] for r in photos), dtype=np.int64, count=len(photos))
    fid = np.fromiter((r[0] for r in feats), dtype=np.int64, count=len(feats))
    pos = np.clip(np.searchsorted(fid, pid), 0, max(len(fid) - 1, 0))
    have = np.flatnonzero(fid[pos] == pid) if len(fid) else np.zeros(0, dtype=np.int64)
    if len(have) < len(photos):
        photos = [photos[i] for i in have.tolist()]
    _, paths, captured = zip(*photos) if photos else ((), (), ())
    thumbs = [feats[i][1] for i in pos[have].tolist()]
    return pid[have], list(paths), list(captured), thumbs


def usable_photos_by_path(conn: sqlite3.Connection, chunk: int = 20000):
    """:func:`usable_photos` in path order, ``chunk`` rows at a time (id, path, captured_at)."""
    usable = ", ".join("?" * len(USABLE))
    cur = _plain(conn).execute(
        "SELECT p.id, p.path, p.captured_at FROM photos p JOIN features f INDEXED BY features_thumb "
        f"ON f.photo_id = p.id WHERE p.status IN ({usable}) ORDER BY p.path", USABLE)
    while True:
        rows = cur.fetchmany(chunk)
        if not rows:
            return
        yield rows


def all_labels(conn: sqlite3.Connection) -> list[tuple]:
    """(photo_id, tag, value) of every label a person gave."""
    return _plain(conn).execute("SELECT photo_id, tag, value FROM labels").fetchall()


def reviewed(conn: sqlite3.Connection) -> list[int]:
    return [r[0] for r in conn.execute("SELECT photo_id FROM reviews")]


def sample_members(conn: sqlite3.Connection, name: str) -> list[int]:
    return [r[0] for r in conn.execute("SELECT photo_id FROM samples WHERE name = ?", (name,))]


__all__ = ["ScoreMatrix", "all_labels", "forget", "reviewed", "sample_members", "score_matrix", "usable_photos",
           "usable_photos_by_path"]
