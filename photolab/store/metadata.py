"""The catalog queries of metadata writing and reading: what a person confirmed and rated, the scores, models
and places written into files, the record of what was written, keywords and ratings read back from files, and
the kept versions of rewritten files."""

from __future__ import annotations

import sqlite3

from photolab.store import rows_in


def _marks(values) -> str:
    return ", ".join("?" * len(values))


# -- what to write ------------------------------------------------------------------------------
def confirmed_tags(conn: sqlite3.Connection, ids) -> list[sqlite3.Row]:
    """(photo_id, tag) of the tags a person confirmed on the photos of ``ids`` (None: every photo)."""
    return rows_in(conn, "SELECT photo_id, tag FROM labels WHERE value = 1 AND photo_id IN {in}", ids)


def person_ratings(conn: sqlite3.Connection, ids) -> dict[int, int]:
    """``{photo_id: rating}`` of the ratings a person set on the photos of ``ids`` (None: every photo)."""
    return {r[0]: r[1] for r in rows_in(conn, "SELECT photo_id, rating FROM ratings WHERE source = 'person' "
                                              "AND photo_id IN {in}", ids)}


def feature_models(conn: sqlite3.Connection, ids) -> dict[int, str]:
    """``{photo_id: model}``: the model whose features the photos of ``ids`` (None: every photo) carry."""
    return {r[0]: r[1] for r in rows_in(conn, "SELECT photo_id, model FROM features WHERE photo_id IN {in}", ids)}


def tag_scores(conn: sqlite3.Connection, ids) -> dict[tuple[int, str], float]:
    """``{(photo_id, tag): score}`` of the photos of ``ids`` (None: every photo), NULL scores left out."""
    return {(r[0], r[1]): r[2] for r in rows_in(conn, "SELECT photo_id, tag, score FROM scores "
                                                      "WHERE score IS NOT NULL AND photo_id IN {in}", ids)}


def places(conn: sqlite3.Connection, ids, lowest: int) -> list[sqlite3.Row]:
    """(photo_id, country, region, city) of the places of ``ids`` (None: every photo) confirmed at least ``lowest``."""
    return rows_in(conn, "SELECT photo_id, country, region, city FROM places WHERE confirmed >= ? "
                         "AND photo_id IN {in}", ids, (lowest,))


# -- the writing pass ---------------------------------------------------------------------------
def photo_rows(conn: sqlite3.Connection, ids) -> dict[int, sqlite3.Row]:
    """``{id: row}`` (id, path, kind, format, sha256) of the photos of ``ids`` (None: every catalog row)."""
    ids = None if ids is None else sorted({int(i) for i in ids})
    return {r["id"]: r for r in rows_in(conn, "SELECT id, path, kind, format, sha256 FROM photos WHERE id IN {in}",
                                        ids)}


def record_written(db: sqlite3.Connection, rows) -> None:
    """Record what was written (or found already there): rows of (photo_id, target, path, sha256, digest, at)."""
    db.executemany("INSERT OR REPLACE INTO metadata_written(photo_id, target, path, sha256, digest, at) "
                   "VALUES (?,?,?,?,?,?)", rows)


def forget_written(db: sqlite3.Connection, path: str) -> None:
    """Drop the record of what was written to ``path`` (its bytes were put back)."""
    db.execute("DELETE FROM metadata_written WHERE path = ?", (path,))


# -- reading other apps' keywords and ratings ---------------------------------------------------
def media_rows(conn: sqlite3.Connection, usable: tuple) -> list[sqlite3.Row]:
    """(id, path) of the usable photos, RAW files and clips, in id order."""
    return conn.execute("SELECT id, path FROM photos WHERE kind IN ('photo', 'raw', 'video') "
                        f"AND status IN ({_marks(usable)}) ORDER BY id", usable).fetchall()


def add_file_labels(db: sqlite3.Connection, rows) -> None:
    """Labeled examples read from files: rows of (photo_id, tag, at), value 1, ``who='metadata'``; a label
    already there (a person's) stays."""
    db.executemany("INSERT OR IGNORE INTO labels(photo_id, tag, value, who, at) VALUES (?,?,1,'metadata',?)", rows)


def set_file_ratings(db: sqlite3.Connection, rows) -> None:
    """Ratings read from files: rows of (photo_id, rating, at), source ``file``; a person's rating stays."""
    db.executemany("INSERT INTO ratings(photo_id, rating, source, at) VALUES (?,?,'file',?) "
                   "ON CONFLICT(photo_id) DO UPDATE SET rating = excluded.rating, at = excluded.at "
                   "WHERE ratings.source = 'file'", rows)


def set_person_rating(db: sqlite3.Connection, photo_id: int, rating: int, at: str) -> None:
    """A person's rating of one photo, over any other."""
    db.execute("INSERT OR REPLACE INTO ratings(photo_id, rating, source, at) VALUES (?,?,'person',?)",
               (photo_id, rating, at))


def clear_rating(db: sqlite3.Connection, photo_id: int) -> None:
    """Take one photo's rating away."""
    db.execute("DELETE FROM ratings WHERE photo_id = ?", (photo_id,))


# -- versions -----------------------------------------------------------------------------------
def _versions(conn: sqlite3.Connection, where: str = "1", params: tuple = ()):
    import pandas as pd

    return pd.read_sql_query(f"SELECT * FROM versions WHERE {where} ORDER BY id DESC", conn, params=params,
                             index_col="id")


def all_versions(conn: sqlite3.Connection):
    """Every kept version, newest first (a DataFrame indexed by version id)."""
    return _versions(conn)


def photo_versions(conn: sqlite3.Connection, photo_id: int):
    """The kept versions of one photo wherever it was, newest first (a DataFrame indexed by version id)."""
    return _versions(conn, "photo_id = ?", (photo_id,))


def path_versions(conn: sqlite3.Connection, path: str):
    """The kept versions of a file that is not a catalog photo (a sidecar) at ``path``, newest first."""
    return _versions(conn, "path = ? AND photo_id IS NULL", (path,))


def photo_id_at(conn: sqlite3.Connection, path: str) -> int | None:
    """The id of the photo (not a sidecar) at ``path``, or None."""
    row = conn.execute("SELECT id FROM photos WHERE path = ? AND kind != 'sidecar'", (path,)).fetchone()
    return None if row is None else row[0]


def photo_path(conn: sqlite3.Connection, photo_id: int) -> str | None:
    """Where the photo ``photo_id`` is now, or None."""
    row = conn.execute("SELECT path FROM photos WHERE id = ?", (photo_id,)).fetchone()
    return None if row is None else row[0]


__all__ = ["add_file_labels", "all_versions", "clear_rating", "confirmed_tags", "feature_models", "forget_written",
           "media_rows", "path_versions", "person_ratings", "photo_id_at", "photo_path", "photo_rows", "places",
           "record_written", "set_file_ratings", "set_person_rating", "tag_scores"]
