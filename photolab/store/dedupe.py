"""The catalog queries of :mod:`photolab.stages.dedupe`: the feature rows its cached matrices are built from, the
photo rows a plan judges, and the quarantine batches of the journal (set aside, restored, purged)."""

from __future__ import annotations

import sqlite3

from photolab.store import rows_in
from photolab.store.find import feature_stamps as _all_stamps

_FEATURES = "SELECT photo_id, phash8, dhash8, embedding FROM features WHERE phash8 IS NOT NULL "
_STAMP = "computed_at || '|' || coalesce(sha256, '') || '|' || model"   # what a feature row was made from


def _usable(usable: tuple) -> str:
    """The rows of usable photos and RAW files (``usable``: the statuses that count)."""
    return f"kind IN ('photo', 'raw') AND status IN ({', '.join('?' * len(usable))})"


# -- feature rows ----------------------------------------------------------------------------------------
def features_between(conn: sqlite3.Connection, lo: int, hi: int) -> list[sqlite3.Row]:
    """(photo_id, phash8, dhash8, embedding) of the hashed feature rows of photo ids ``lo`` to ``hi``, in id order."""
    return conn.execute(_FEATURES + "AND photo_id BETWEEN ? AND ? ORDER BY photo_id", (int(lo), int(hi))).fetchall()


def features_of(conn: sqlite3.Connection, ids) -> list[sqlite3.Row]:
    """(photo_id, phash8, dhash8, embedding) of the hashed feature rows of ``ids`` (ascending), in id order."""
    return rows_in(conn, _FEATURES + "AND photo_id IN {in} ORDER BY photo_id", [int(x) for x in ids])


def embedding_bytes(conn: sqlite3.Connection, photo_id: int) -> int | None:
    """The length in bytes of photo ``photo_id``'s embedding."""
    return conn.execute("SELECT length(embedding) FROM features WHERE photo_id = ?", (int(photo_id),)).fetchall()[0][0]


def feature_stamps(conn: sqlite3.Connection, after: int | None = None) -> list[sqlite3.Row]:
    """(photo id, stamp text) of the hashed feature rows (after photo id ``after``; None: all), in id order."""
    if after is None:
        return _all_stamps(conn)
    return conn.execute(f"SELECT photo_id, {_STAMP} FROM features WHERE phash8 IS NOT NULL AND photo_id > ? "
                        "ORDER BY photo_id", (after,)).fetchall()


def features_up_to(conn: sqlite3.Connection, last: int) -> tuple[int, str | None]:
    """(count, latest computed_at) of the hashed feature rows up to photo id ``last``."""
    row = conn.execute("SELECT count(*), max(computed_at) FROM features WHERE phash8 IS NOT NULL "
                       "AND photo_id <= ?", (last,)).fetchall()[0]
    return row[0], row[1]


# -- photo rows ----------------------------------------------------------------------------------------------
def usable_ids(conn: sqlite3.Connection, usable: tuple) -> list[int]:
    """Ids of every usable photo and RAW file, ascending."""
    return [r[0] for r in conn.execute(f"SELECT id FROM photos WHERE {_usable(usable)} ORDER BY id", usable)]


def same_bytes(conn: sqlite3.Connection, usable: tuple) -> list[sqlite3.Row]:
    """(id, sha256) of the usable photos and RAW files whose bytes another one has too, in id order."""
    where = _usable(usable)
    return conn.execute(f"SELECT id, sha256 FROM photos WHERE {where} AND sha256 IN (SELECT sha256 FROM photos "
                        f"WHERE {where} GROUP BY sha256 HAVING count(*) > 1) ORDER BY id",
                        (*usable, *usable)).fetchall()


def photo_rows(conn: sqlite3.Connection, ids) -> list[sqlite3.Row]:
    """The rows a plan judges a photo by (path, kind, size, sha256, format, pixel size, status, capture time and
    source, camera make, GPS latitude, duration, codec, event id) of ``ids``."""
    return rows_in(conn, "SELECT p.id, p.path, p.kind, p.size, p.sha256, p.format, p.width, p.height, p.status, "
                         "p.captured_at, p.captured_source, p.camera_make, p.gps_lat, p.duration, p.codec, "
                         "pe.event_id FROM photos p LEFT JOIN photo_events pe ON pe.photo_id = p.id "
                         "WHERE p.id IN {in}", ids)


def clips(conn: sqlite3.Connection, usable: tuple) -> list[sqlite3.Row]:
    """(id, sha256, duration, captured_at, captured_source, phash8, dhash8) of the usable clips, the hashes of
    their poster frame where the features were made from their current bytes, in id order."""
    return conn.execute(
        "SELECT p.id, p.sha256, p.duration, p.captured_at, p.captured_source, f.phash8, f.dhash8 FROM photos p "
        "LEFT JOIN features f ON f.photo_id = p.id AND f.sha256 IS p.sha256 "
        f"WHERE p.kind = 'video' AND p.status IN ({', '.join('?' * len(usable))}) ORDER BY p.id", usable).fetchall()


def review_rows(conn: sqlite3.Connection, ids) -> list[sqlite3.Row]:
    """(id, width, height, size, format, captured_at, thumb) of ``ids``: what a person judges a group by."""
    return rows_in(conn, "SELECT p.id, p.width, p.height, p.size, p.format, p.captured_at, f.thumb FROM photos p "
                         "LEFT JOIN features f ON f.photo_id = p.id WHERE p.id IN {in}", [int(i) for i in ids])


def carry_labels(db: sqlite3.Connection, keeper: int, copy: int) -> None:
    """A person's positive labels on photo ``copy`` become the labels of ``keeper`` too (where it lacks them)."""
    db.execute("INSERT OR IGNORE INTO labels(photo_id, tag, value, who, at) "
               "SELECT ?, tag, value, who, at FROM labels WHERE photo_id = ? AND value = 1", (keeper, copy))


# -- quarantine batches (journal entries of op 'quarantine') ---------------------------------------------
def done_steps(conn: sqlite3.Connection, batch: str) -> list[sqlite3.Row]:
    """(dst, detail) of the completed entries of ``batch``."""
    return conn.execute("SELECT dst, detail FROM journal WHERE batch = ? AND state = 'done'", (batch,)).fetchall()


def is_quarantine_batch(conn: sqlite3.Connection, batch: str) -> bool:
    """Whether ``batch`` is a quarantine batch."""
    return conn.execute("SELECT 1 FROM journal WHERE batch = ? AND op = 'quarantine' LIMIT 1",
                        (batch,)).fetchone() is not None


def last_quarantined(conn: sqlite3.Connection, rel: str) -> list[sqlite3.Row]:
    """(id, batch) of the newest completed quarantine step from or to ``rel``: one row or none."""
    return conn.execute("SELECT id, batch FROM journal WHERE op = 'quarantine' AND state = 'done' "
                        "AND (src = ? OR dst = ?) ORDER BY id DESC LIMIT 1", (rel, rel)).fetchall()


def quarantine_batches(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """(batch, files, at): each quarantine batch with the files it still holds and when it began, oldest first."""
    return conn.execute("SELECT batch, count(*) AS files, min(created_at) AS at FROM journal "
                        "WHERE op = 'quarantine' AND state = 'done' GROUP BY batch ORDER BY min(id)").fetchall()


def held(conn: sqlite3.Connection, batch: str) -> list[sqlite3.Row]:
    """(id, dst) of the files quarantine batch ``batch`` still holds."""
    return conn.execute("SELECT id, dst FROM journal WHERE batch = ? AND op = 'quarantine' AND state = 'done'",
                        (batch,)).fetchall()


def purged(db: sqlite3.Connection, batch: str, entry_id: int, dst: str, at: str) -> None:
    """Journal the deletion of ``dst`` (held by ``batch``'s entry ``entry_id``) at ``at``; that entry is ``purged``."""
    db.execute("INSERT INTO journal(batch, op, src, dst, sha256, state, created_at) "
               "VALUES (?, 'purge', ?, NULL, NULL, 'deleted', ?)", (batch, dst, at))
    db.execute("UPDATE journal SET state = 'purged' WHERE id = ?", (entry_id,))


__all__ = ["carry_labels", "clips", "done_steps", "embedding_bytes", "feature_stamps", "features_between",
           "features_of", "features_up_to", "held", "is_quarantine_batch", "last_quarantined", "photo_rows",
           "purged", "quarantine_batches", "review_rows", "same_bytes", "usable_ids"]
