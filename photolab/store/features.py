"""What the labeling pass keeps of each photo (``features``: embedding, hashes, image measures, thumbnail), read
and written in one place.

Two readers, by what the caller needs:

- :func:`matrices` (and :func:`unit_embeddings`, :func:`hashes`): unit-length float16 embeddings, their PCA
  projection and the hashes of all 8 rotations and mirrorings, for every photo or a set of ids, from the
  matrices dedupe caches in ``.photolab/features/`` (memory-mapped; each row carries a stamp of the features
  it was made from, so only rows newer than the cache are read from the catalog, and the cache is brought
  up to date when they are many). Search by likeness and dedupe read these.
- :func:`embeddings` and :func:`measures`: the embeddings as the pass stored them (a head and the starter
  take them at their own scale, which the cache's unit vectors have lost) and the image measures, of a set
  of ids, read by primary key in chunks.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import numpy as np

from photolab.features.starter import COLOR_MEASURES
from photolab.store import rows_in


@dataclass
class Matrices:
    """Row ``i`` of each matrix is photo ``ids[i]``'s (ids ascending)."""

    ids: np.ndarray          # int64
    emb: object              # N x D unit float16 rows (indexable like an array: ``emb[rows]``)
    low: object | None       # N x 128 PCA projection of ``emb`` (libraries above 5,000 photos), else None
    ph8: np.ndarray          # N x 8 uint64: pHash of each rotation and mirroring
    dh8: np.ndarray          # N x 8 uint64: dHash of the same


def matrices(lib, ids=None) -> Matrices:
    """The cached feature matrices, current as of this call, of every photo with features or of ``ids``
    (those with features, in id order)."""
    from photolab.stages import dedupe

    m = dedupe._feature_matrix(lib, save=True)
    out = Matrices(np.asarray(m["ids"]), m["emb"], m["low"], m["ph8"], m["dh8"])
    if ids is None:
        return out
    want = np.unique(np.asarray(list(ids), dtype=np.int64))
    pos = np.searchsorted(out.ids, want)
    pos = pos[(pos < len(out.ids)) & (out.ids[np.minimum(pos, len(out.ids) - 1)] == want)] if len(out.ids) else pos[:0]
    return Matrices(out.ids[pos], out.emb[pos], None if out.low is None else out.low[pos], out.ph8[pos], out.dh8[pos])


def unit_embeddings(lib, ids=None) -> tuple[np.ndarray, object, np.ndarray | None]:
    """(photo ids, unit float16 embeddings, their PCA projection or None) from the cached matrices."""
    m = matrices(lib, ids)
    return m.ids, m.emb, (None if m.low is None else m.low[:])


def hashes(lib, ids=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(photo ids, N x 8 pHashes, N x 8 dHashes) from the cached matrices."""
    m = matrices(lib, ids)
    return m.ids, m.ph8, m.dh8


def embeddings(conn: sqlite3.Connection, ids) -> np.ndarray:
    """The stored embeddings of ``ids`` as float32, N x D in the order of ``ids`` (KeyError: one has none)."""
    ids = [int(i) for i in ids]
    got = {pid: np.frombuffer(blob, dtype=np.float16)
           for pid, blob in rows_in(conn, "SELECT photo_id, embedding FROM features WHERE photo_id IN {in}", ids)}
    return np.stack([got[i] for i in ids]).astype(np.float32) if ids else np.zeros((0, 1), np.float32)


def measures(conn: sqlite3.Connection, ids, names) -> list[tuple]:
    """(photo_id, the measures ``names``..., thumb) of the photos of ``ids`` that have features (a measure
    made before it was measured is None)."""
    cols = ", ".join(names)
    return [tuple(r) for r in rows_in(conn, f"SELECT photo_id, {cols}, thumb FROM features WHERE photo_id IN {{in}}",
                                      [int(i) for i in ids])]


def fill_colour_measures(db: sqlite3.Connection, rows) -> None:
    """Store colorfulness and the colour measures taken since (rows: colorfulness, the colour measures...,
    photo_id), only in rows still without them: a pass that wrote fresh features meanwhile keeps its own."""
    db.executemany(f"UPDATE features SET colorfulness = COALESCE(colorfulness, ?), "
                   f"{', '.join(c + ' = ?' for c in COLOR_MEASURES)} "
                   f"WHERE photo_id = ? AND {COLOR_MEASURES[0]} IS NULL", rows)


def any_model(conn: sqlite3.Connection) -> str | None:
    """The backbone version of a feature row (the library's, as the pass makes them all with one), or None."""
    row = conn.execute("SELECT model FROM features LIMIT 1").fetchone()
    return row[0] if row else None


def photo_ids(conn: sqlite3.Connection, ids=None) -> list[int]:
    """Every photo with features (``ids``: those of them that have features), in id order."""
    if ids is None:
        return [r[0] for r in conn.execute("SELECT photo_id FROM features ORDER BY photo_id")]
    return sorted(r[0] for r in rows_in(conn, "SELECT photo_id FROM features WHERE photo_id IN {in}",
                                         [int(i) for i in ids]))


# -- what the labeling pass writes -------------------------------------------------------------------------
COLUMNS = ("photo_id", "model", "sha256", "embedding", "top5", "phash", "dhash", "phash8", "dhash8", "sharpness",
           "brightness", "dark_frac", "clipped_frac", "colorfulness", *COLOR_MEASURES, "thumb", "computed_at")


def write(db: sqlite3.Connection, rows) -> None:
    """Store the pass's features: rows of the values of :data:`COLUMNS`, replacing a photo's earlier ones."""
    db.executemany(f"INSERT OR REPLACE INTO features({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                   rows)


def mark_corrupt(db: sqlite3.Connection, photo_id: int, error: str) -> None:
    """A photo whose very bytes the index read do not decode."""
    db.execute("UPDATE photos SET status = 'corrupt', error = ? WHERE id = ?", (error, int(photo_id)))


__all__ = ["COLUMNS", "Matrices", "any_model", "embeddings", "fill_colour_measures", "hashes", "mark_corrupt",
           "matrices", "measures", "photo_ids", "unit_embeddings", "write"]
