"""Every photo's score for every tag as one matrix, kept current without reading every score again.

The catalog logs the photos whose scores changed (``score_changes``: one row per photo, its latest
change, filled by triggers on ``scores``). :func:`score_matrix` keeps the matrix in
``.photolab/features/scores.npz`` with the log position it holds, and on the next call reads only the
score rows of photos logged since: a watched import of ten photos patches ten rows of a 500,000-photo
matrix. The log and the score rows are read in one snapshot, so a writer working meanwhile is seen
either wholly or on the next call. Reading queries for the review queue and the CSV export are here
too, so the stages that use them hold no SQL of their own.

Every score is written through :func:`write`, which owns the precedence between the stages that score
(:data:`PRECEDENCE`: a trained head, then the starter head, then the face counts, then the prior) and the
scores a head sets aside for a rollback (``scores_stash``, put back by :func:`restore`). A person's labels
and the thresholds are read and written here as well.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

import numpy as np

from photolab.stages.index import USABLE
from photolab.store import rows_in

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



# -- the one score writer --------------------------------------------------------------------------------
# Where two stages score the same photo and tag, the score of the stage ranked higher stands: a trained head,
# then the starter head, then the face counts, then the prior (the image measures and "none", a tag nothing
# scores yet, rank with the prior). The labeling pass writes prior, starter, measure and none scores; a pass
# replaces any of those, since it made them from the photo's features it has just made again.
PRECEDENCE = ("head", "starter", "faces", "prior")
PASS_SOURCES = ("prior", "starter", "measure", "none")
_RANK = {"head": 3, "starter": 2, "faces": 1}


def _kept_over(source: str) -> tuple[str, ...]:
    """Stored sources a score from ``source`` leaves in place: another stage's, ranked above it."""
    own = PASS_SOURCES if source in PASS_SOURCES else (source,)
    return tuple(s for s in PRECEDENCE if _RANK.get(s, 0) > _RANK.get(source, 0) and s not in own)


def _listed(sources) -> str:
    return ", ".join(f"'{s}'" for s in sources)


def _score_rows(rows, model: str | None) -> list[tuple]:
    """(photo_id, tag, score, model) tuples from (photo_id, tag, score[, model]) rows or a DataFrame."""
    if hasattr(rows, "columns"):
        cols = ["photo_id", "tag", "score"] + (["model"] if "model" in rows.columns else [])
        rows = rows[cols].itertuples(index=False)
    out = []
    for r in rows:
        m = r[3] if len(r) > 3 else model
        if m is None:
            raise ValueError("a score row needs the model that made it (a fourth value, or model=)")
        out.append((int(r[0]), r[1], None if r[2] is None or r[2] != r[2] else float(r[2]), str(m)))
    return out


def write(db: sqlite3.Connection, rows, *, source: str, model: str | None = None) -> int:
    """Write scores from ``source`` (rows of (photo_id, tag, score[, model]), or a DataFrame with those
    columns; a NaN or None score: the tag has no score yet), as :data:`PRECEDENCE` says: a photo's stored
    score from a stage ranked above ``source`` stands. A head sets the scores it replaces aside
    (``scores_stash``, once: rollback puts them back, :func:`restore`); a lower-ranked score for a row a head
    holds goes to the stash in place of the one set aside, so a rollback finds the newer score.
    Returns the number of rows given."""
    rows = _score_rows(rows, model)
    if not rows:
        return 0
    cols = "photo_id, tag, score, source, model"
    if source == "head":
        for tag in dict.fromkeys(r[1] for r in rows):
            rows_in(db, "INSERT OR IGNORE INTO scores_stash SELECT * FROM scores WHERE tag = ? AND source != 'head' "
                        "AND photo_id IN {in}", sorted({r[0] for r in rows if r[1] == tag}), (tag,))
        db.executemany(f"INSERT OR REPLACE INTO scores({cols}) VALUES (?,?,?,?,?)",
                       [(p, t, s, source, m) for p, t, s, m in rows])
        return len(rows)
    kept = _kept_over(source)
    update = "DO UPDATE SET score = excluded.score, source = excluded.source, model = excluded.model"
    under = [k for k in kept if k != "head"]   # a stash never holds a head's score
    stash_where = f" WHERE scores_stash.source NOT IN ({_listed(under)})" if under else ""
    db.executemany(f"INSERT INTO scores_stash({cols}) SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM scores "
                   "WHERE photo_id = ?1 AND tag = ?2 AND source = 'head') "
                   f"ON CONFLICT(photo_id, tag) {update}{stash_where}",
                   [(p, t, s, source, m) for p, t, s, m in rows])
    db.executemany(f"INSERT INTO scores({cols}) VALUES (?,?,?,?,?) ON CONFLICT(photo_id, tag) {update} "
                   f"WHERE scores.source NOT IN ({_listed(kept)})",
                   [(p, t, s, source, m) for p, t, s, m in rows])
    return len(rows)


def stashed_tags(conn: sqlite3.Connection) -> list[str]:
    """The tags some head has set scores of aside."""
    return [r[0] for r in conn.execute("SELECT DISTINCT tag FROM scores_stash")]


def restore(db: sqlite3.Connection, tags) -> None:
    """Put the scores a head set aside for ``tags`` back (rollback) and empty their stash."""
    for t in tags:
        db.execute("INSERT OR REPLACE INTO scores SELECT * FROM scores_stash WHERE tag = ?", (t,))
        db.execute("DELETE FROM scores_stash WHERE tag = ?", (t,))


def score_rows(conn: sqlite3.Connection, ids=None) -> list[tuple]:
    """(photo_id, tag, score) of the photos of ``ids`` (None: every score row)."""
    return rows_in(conn, "SELECT photo_id, tag, score FROM scores WHERE photo_id IN {in}",
                   None if ids is None else [int(i) for i in ids])


def at_or_above(conn: sqlite3.Connection, tag: str, threshold: float) -> list[int]:
    """The photos scoring ``tag`` at or above ``threshold`` (by the (tag, score) index)."""
    return [r[0] for r in conn.execute("SELECT photo_id FROM scores WHERE tag = ? AND score >= ?", (tag, threshold))]


def top_thumbnails(conn: sqlite3.Connection, tag: str, threshold: float, limit: int) -> list[str]:
    """Thumbnails (relative to the feature folder) of the ``limit`` highest scores of ``tag`` at or above
    ``threshold``, highest first."""
    return [r[0] for r in conn.execute(
        "SELECT f.thumb FROM scores s JOIN features f ON f.photo_id = s.photo_id "
        "WHERE s.tag = ? AND s.score >= ? ORDER BY s.score DESC LIMIT ?", (tag, threshold, limit))]


def accepted_counts(conn: sqlite3.Connection, tag: str, threshold: float, usable: tuple) -> tuple[int, int, int]:
    """Usable photos (scoring ``tag`` at or above ``threshold``, of those a person said lack it, that a person
    gave it below ``threshold``), by indexed counts."""
    marks = ", ".join("?" * len(usable))
    return tuple(conn.execute(
        "SELECT (SELECT count(*) FROM scores s JOIN photos p ON p.id = s.photo_id "
        f"        WHERE s.tag = ?1 AND s.score >= ?2 AND p.status IN ({marks})), "
        "       (SELECT count(*) FROM labels l JOIN scores s ON s.photo_id = l.photo_id AND s.tag = l.tag "
        f"        JOIN photos p ON p.id = l.photo_id WHERE l.tag = ?1 AND l.value = 0 AND s.score >= ?2 "
        f"        AND p.status IN ({marks})), "
        "       (SELECT count(*) FROM labels l LEFT JOIN scores s ON s.photo_id = l.photo_id AND s.tag = l.tag "
        f"        JOIN photos p ON p.id = l.photo_id WHERE l.tag = ?1 AND l.value = 1 "
        f"        AND (s.score IS NULL OR s.score < ?2) AND p.status IN ({marks}))",
        (tag, threshold, *usable, *usable, *usable)).fetchone())


def tagged_photos(conn: sqlite3.Connection, usable: tuple, ids=None) -> list[tuple]:
    """(id, path, captured_at) of the usable photos with features (of ``ids``; None: all, in path order)."""
    sql = ("SELECT p.id, p.path, p.captured_at FROM photos p JOIN features f ON f.photo_id = p.id "
           f"WHERE p.status IN ({', '.join('?' * len(usable))})")
    if ids is None:
        return [tuple(r) for r in conn.execute(sql + " ORDER BY p.path", usable)]
    return [tuple(r) for r in rows_in(conn, sql + " AND p.id IN {in}", [int(i) for i in ids], tuple(usable))]


def baseline_rows(conn: sqlite3.Connection) -> list[tuple]:
    """(photo_id, tag, score) of the scores a head would replace: the stored ones not from a head, then the
    ones a head set aside (which stand where both are)."""
    return (conn.execute("SELECT photo_id, tag, score FROM scores WHERE source != 'head'").fetchall()
            + conn.execute("SELECT photo_id, tag, score FROM scores_stash").fetchall())


def starter_scored_tags(conn: sqlite3.Connection) -> set[str]:
    """The tags the starter head scores in this library (stored or set aside by a head)."""
    return {r[0] for r in conn.execute("SELECT DISTINCT tag FROM scores WHERE source = 'starter' UNION "
                                       "SELECT DISTINCT tag FROM scores_stash WHERE source = 'starter'")}


# -- the starter head's upgrade of scores made without it (or by an older one) ---------------------------
_STASH_TABLES = ("scores", "scores_stash")
_STALE = {   # which rows a starter head redoes: made without a starter head, by another one, or both
    "all": "(s.source IN ('prior', 'none') OR (s.source = 'starter' AND s.model != ?))",
    "prior": "s.source IN ('prior', 'none')",
    "older": "(s.source = 'starter' AND s.model != ?)",
}


def _stale(table: str, tags: list[str], starter: str, backbone: str, which: str) -> tuple[str, tuple]:
    """(FROM ... WHERE clause, its parameters) of the stale rows ``which`` (a key of :data:`_STALE`)."""
    if table not in _STASH_TABLES:
        raise ValueError(table)
    sql = (f"FROM {table} s JOIN features f ON f.photo_id = s.photo_id WHERE {_STALE[which]} "
           f"AND f.model = ? AND s.tag IN ({', '.join('?' * len(tags))})")
    return sql, ((starter,) if which != "prior" else ()) + (backbone, *tags)


def stale_starter_photos(conn: sqlite3.Connection, table: str, tags: list[str], starter: str,
                         backbone: str, which: str = "all") -> list[int]:
    """Photos (with features of ``backbone``) whose ``table`` rows for ``tags`` were scored without the
    starter head ``starter`` (the prior, 'none') or by another starter head (``which``: 'prior' or 'older'
    for one of the two), in id order."""
    sql, args = _stale(table, tags, starter, backbone, which)
    return [r[0] for r in conn.execute(f"SELECT DISTINCT s.photo_id {sql} ORDER BY s.photo_id", args)]


def count_stale_starter(conn: sqlite3.Connection, table: str, tags: list[str], starter: str, backbone: str,
                        which: str = "all") -> int:
    """How many of those rows there are."""
    sql, args = _stale(table, tags, starter, backbone, which)
    return conn.execute(f"SELECT count(*) {sql}", args).fetchone()[0]


def stale_starter_rows(conn: sqlite3.Connection, table: str, ids, tags: list[str], starter: str,
                       backbone: str, which: str = "all") -> list[tuple]:
    """(photo_id, tag, score, source) of those rows for the photos of ``ids``."""
    sql, args = _stale(table, tags, starter, backbone, which)
    return rows_in(conn, f"SELECT s.photo_id, s.tag, s.score, s.source {sql} AND s.photo_id IN {{in}}",
                   [int(i) for i in ids], args)


def upgrade_to_starter(db: sqlite3.Connection, table: str, rows, starter: str) -> None:
    """Rows of ``table`` ((score, photo_id, tag)) get the starter head ``starter``'s score, where they are
    still the prior's, 'none' or another starter head's (the starter ranks above those, :data:`PRECEDENCE`;
    a row changed meanwhile by a stage ranked above keeps its score)."""
    if table not in _STASH_TABLES:
        raise ValueError(table)
    db.executemany(f"UPDATE {table} SET score = ?, source = 'starter', model = ? "
                   "WHERE photo_id = ? AND tag = ? AND (source IN ('prior', 'none') "
                   "OR (source = 'starter' AND model != ?))", [(s, starter, p, t, starter) for s, p, t in rows])


# -- thresholds and a person's labels --------------------------------------------------------------------
def stored_thresholds(conn: sqlite3.Connection) -> dict[str, float]:
    """The thresholds set per tag (tags without one use the default)."""
    return {r[0]: r[1] for r in conn.execute("SELECT tag, threshold FROM thresholds")}


def set_threshold(db: sqlite3.Connection, tag: str, value: float, at: str) -> None:
    db.execute("INSERT OR REPLACE INTO thresholds(tag, threshold, updated_at) VALUES (?,?,?)", (tag, float(value), at))


def set_labels(db: sqlite3.Connection, rows) -> None:
    """Store labels: (photo_id, tag, value, who, at) rows; a later label replaces an earlier one."""
    db.executemany("INSERT OR REPLACE INTO labels(photo_id, tag, value, who, at) VALUES (?,?,?,?,?)", rows)


def labels_of(conn: sqlite3.Connection, ids) -> list[tuple]:
    """(photo_id, tag, value) of the labels of the photos of ``ids``."""
    return rows_in(conn, "SELECT photo_id, tag, value FROM labels WHERE photo_id IN {in}", [int(i) for i in ids])


def labeled_examples(conn: sqlite3.Connection) -> list[tuple]:
    """(photo_id, tag, value, who) of every label of a photo with features, in photo order."""
    return conn.execute("SELECT l.photo_id, l.tag, l.value, l.who FROM labels l "
                        "JOIN features f ON f.photo_id = l.photo_id ORDER BY l.photo_id").fetchall()


def labels_since(conn: sqlite3.Connection, at: str) -> set[tuple]:
    """(photo_id, tag) of the labels made after ``at``."""
    return set(map(tuple, conn.execute("SELECT photo_id, tag FROM labels WHERE at > ?", (at,))))


# -- what the review queue and the CSV export read beside the scores --------------------------------------
def usable_photos(conn: sqlite3.Connection) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(ids, paths, capture times, thumbnails) of every usable photo with features, in id order, as arrays
    (int64, then object arrays of str / None): one pass over the photo rows and one over the narrow feature
    index (not the feature rows), joined here by position."""
    usable = ", ".join("?" * len(USABLE))
    photos = _plain(conn).execute(f"SELECT id, path, captured_at FROM photos NOT INDEXED WHERE status IN ({usable}) "
                                  "ORDER BY id", USABLE).fetchall()
    feats = _plain(conn).execute("SELECT photo_id, thumb FROM features INDEXED BY features_thumb "
                                 "ORDER BY photo_id").fetchall()
    if not photos or not feats:
        return np.zeros(0, dtype=np.int64), *(np.zeros(0, dtype=object) for _ in range(3))
    first, second, third = itemgetter(0), itemgetter(1), itemgetter(2)   # columns by map: no tuple per row
    pid = np.fromiter(map(first, photos), dtype=np.int64, count=len(photos))
    fid = np.fromiter(map(first, feats), dtype=np.int64, count=len(feats))
    paths, captured = _objects(map(second, photos), len(photos)), _objects(map(third, photos), len(photos))
    thumbs = _objects(map(second, feats), len(feats))
    del photos, feats
    pos = np.clip(np.searchsorted(fid, pid), 0, len(fid) - 1)
    have = fid[pos] == pid
    if not have.all():
        pid, paths, captured, pos = pid[have], paths[have], captured[have], pos[have]
    return pid, paths, captured, thumbs[pos]


def _objects(values, n: int) -> np.ndarray:
    """A 1-d object array of the ``n`` ``values`` (str / None)."""
    out = np.empty(n, dtype=object)
    out[:] = list(values)
    return out


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


__all__ = ["PASS_SOURCES", "PRECEDENCE", "ScoreMatrix", "accepted_counts", "all_labels", "at_or_above",
           "baseline_rows", "forget", "labeled_examples", "labels_of", "labels_since", "restore", "reviewed",
           "sample_members", "score_matrix", "score_rows", "set_labels", "set_threshold", "stale_starter_photos",
           "stale_starter_rows", "starter_scored_tags", "stashed_tags", "stored_thresholds", "tagged_photos",
           "top_thumbnails", "upgrade_to_starter", "usable_photos", "usable_photos_by_path", "write"]
