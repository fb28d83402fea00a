"""The ``photos`` table (one row per file of the library) and what fills it: the index's reads and writes,
gather's sources and copy log, and the row changes a journaled move or rewrite makes. Writes take the
connection of the caller's transaction (``with catalog.write() as db``)."""

from __future__ import annotations

import sqlite3

from photolab.store import rows_in


def _marks(values) -> str:
    return ", ".join("?" * len(values))


# -- reading photo rows ------------------------------------------------------------------------------
def file_stamps(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """(path, size, mtime_ns, status) of every row: what tells the index a file is unchanged."""
    return conn.execute("SELECT path, size, mtime_ns, status FROM photos").fetchall()


def statuses(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """(path, status, error) of every row."""
    return conn.execute("SELECT path, status, error FROM photos").fetchall()


def passing_failures(conn: sqlite3.Connection) -> set[str]:
    """Paths found ``corrupt`` because a read failed for a moment (the file moved or was unreadable while the
    labeling pass ran), not because of their bytes."""
    return {r[0] for r in conn.execute(
        "SELECT path FROM photos WHERE status = 'corrupt' AND (error LIKE 'cannot decode: FileNotFoundError%' "
        "OR error LIKE 'cannot decode: %[Errno %')")}


def missing_with_hash(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """(path, sha256) of the ``missing`` rows whose content is known (a file moved without photolab)."""
    return conn.execute("SELECT path, sha256 FROM photos WHERE status = 'missing' AND sha256 IS NOT NULL").fetchall()


def clips(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """(path, kind, id) of every video and live-photo motion half on disk (not ``missing``)."""
    return conn.execute("SELECT path, kind, id FROM photos WHERE kind IN ('video', 'live') "
                        "AND status != 'missing'").fetchall()


def photo_table(conn: sqlite3.Connection, kinds: tuple, status_in: tuple | None = None):
    """The rows of ``kinds`` (with a status of ``status_in`` only; None: any) as a DataFrame indexed by id, in
    path order."""
    import pandas as pd

    where = f"kind IN ({_marks(kinds)})"
    params: list = list(kinds)
    if status_in is not None:
        where += f" AND status IN ({_marks(status_in)})"
        params += list(status_in)
    return pd.read_sql_query(f"SELECT * FROM photos WHERE {where} ORDER BY path", conn, params=params, index_col="id")


def status_of(conn: sqlite3.Connection, path: str) -> sqlite3.Row | None:
    """(status, error) of the row at ``path``, or None."""
    return conn.execute("SELECT status, error FROM photos WHERE path = ?", (path,)).fetchone()


def has_path(conn: sqlite3.Connection, path: str) -> bool:
    """Whether a row is at ``path`` (whatever its status)."""
    return conn.execute("SELECT 1 FROM photos WHERE path = ?", (path,)).fetchone() is not None


def present_at(conn: sqlite3.Connection, path: str) -> bool:
    """Whether a row of a file on disk (status not ``missing``) is at ``path``."""
    return conn.execute("SELECT 1 FROM photos WHERE path = ? AND status != 'missing'", (path,)).fetchone() is not None


def present_rows(conn: sqlite3.Connection, paths) -> list[sqlite3.Row]:
    """(id, path) of the rows at ``paths`` whose file is on disk (status not ``missing``)."""
    return rows_in(conn, "SELECT id, path FROM photos WHERE status != 'missing' AND path IN {in}", paths)


def duplicate_paths(conn: sqlite3.Connection) -> list[str]:
    """Paths cataloged more than once (only a damaged unique index allows it)."""
    return [r[0] for r in conn.execute("SELECT path FROM photos GROUP BY path HAVING count(*) > 1")]


# -- writing photo rows ------------------------------------------------------------------------------
def upsert(db: sqlite3.Connection, columns: tuple, rows: list[tuple]) -> None:
    """Insert ``rows`` (values of ``columns``, the first being ``path``, then ``indexed_at``), or update the row
    already at that path."""
    db.executemany(f"INSERT INTO photos ({', '.join(columns)}, indexed_at) VALUES ({_marks(columns)}, ?) "
                   f"ON CONFLICT(path) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in columns[1:])}, "
                   "indexed_at = excluded.indexed_at", rows)


def follow_renames(db: sqlite3.Connection, renames: list[tuple[str, str]]) -> None:
    """``(new path, old path)``: a ``missing`` row at the old path moves to the new one (unless it is taken)."""
    db.executemany("UPDATE OR IGNORE photos SET path = ? WHERE path = ? AND status = 'missing'", renames)


def mark_missing(db: sqlite3.Connection, paths, at: str) -> None:
    """The rows at ``paths`` are ``missing`` (indexed at ``at``)."""
    db.executemany("UPDATE photos SET status = 'missing', error = 'file no longer on disk', "
                   "indexed_at = ? WHERE path = ?", [(at, p) for p in paths])


def set_kinds(db: sqlite3.Connection, changes: list[tuple[str, str]]) -> None:
    """``(kind, path)``: give the rows at those paths their kind."""
    db.executemany("UPDATE photos SET kind = ? WHERE path = ?", changes)


def drop_clip_data(db: sqlite3.Connection, ids) -> None:
    """Remove the poster-frame features and tag scores of ``ids`` (live-photo motion halves, not clips)."""
    gone = [(i,) for i in ids]
    for table in ("scores", "scores_stash", "features"):
        db.executemany(f"DELETE FROM {table} WHERE photo_id = ?", gone)


def delete_path(db: sqlite3.Connection, path: str) -> None:
    """Remove the row at ``path``."""
    db.execute("DELETE FROM photos WHERE path = ?", (path,))


def delete_sidecar(db: sqlite3.Connection, path: str) -> None:
    """Remove the row at ``path`` if it is a sidecar's."""
    db.execute("DELETE FROM photos WHERE path = ? AND kind = 'sidecar'", (path,))


def rename(db: sqlite3.Connection, src: str, dst: str) -> None:
    """The row at ``src`` moves to ``dst``."""
    db.execute("UPDATE photos SET path = ? WHERE path = ?", (dst, src))


def set_status(db: sqlite3.Connection, path: str, status: str, note: str | None) -> None:
    """Give the row at ``path`` its status and the reason that goes with it."""
    db.execute("UPDATE photos SET status = ?, error = ? WHERE path = ?", (status, note, path))


def set_content(db: sqlite3.Connection, path: str, sha256: str, size: int, mtime_ns: int) -> None:
    """The file at ``path`` got new bytes: their SHA-256, size and modification time."""
    db.execute("UPDATE photos SET sha256 = ?, size = ?, mtime_ns = ? WHERE path = ?", (sha256, size, mtime_ns, path))


def rehash_features(db: sqlite3.Connection, path: str, old_sha256: str, new_sha256: str) -> None:
    """The features of the photo at ``path`` made from ``old_sha256`` stand for its new bytes too."""
    db.execute("UPDATE features SET sha256 = ? WHERE sha256 = ? AND photo_id IN "
               "(SELECT id FROM photos WHERE path = ?)", (new_sha256, old_sha256, path))


# -- gather: sources and the copy log -----------------------------------------------------------------
def source_at(conn: sqlite3.Connection, path: str) -> sqlite3.Row | None:
    """(id, label) of the gather source at ``path`` (as photolab shows it), or None."""
    return conn.execute("SELECT id, label FROM sources WHERE path = ?", (path,)).fetchone()


def touch_source(db: sqlite3.Connection, source_id: int, seen: str, removable: bool, read_only: bool) -> None:
    """Source ``source_id`` was seen at ``seen``, removable and read-only as given."""
    db.execute("UPDATE sources SET last_seen = ?, removable = ?, read_only = ? WHERE id = ?",
               (seen, int(removable), int(read_only), source_id))


def label_taken(conn: sqlite3.Connection, label: str) -> bool:
    """Whether a gather source already has the library folder ``label``."""
    return conn.execute("SELECT 1 FROM sources WHERE label = ?", (label,)).fetchone() is not None


def add_source(db: sqlite3.Connection, label: str, path: str, removable: bool, read_only: bool, seen: str) -> int:
    """Register a gather source first seen at ``seen``; returns its id."""
    cur = db.execute(
        "INSERT INTO sources(label, path, removable, read_only, first_seen, last_seen) VALUES (?,?,?,?,?,?)",
        (label, path, int(removable), int(read_only), seen, seen))
    return int(cur.lastrowid)


def copies_from(conn: sqlite3.Connection, source_id: int) -> list[sqlite3.Row]:
    """(source_rel, sha256, dest) of every copy gather logged from source ``source_id``."""
    return conn.execute("SELECT source_rel, sha256, dest FROM gather_log WHERE source_id = ?",
                        (source_id,)).fetchall()


def log_copy(db: sqlite3.Connection, source_id: int, source_rel: str, sha256: str, size: int, dest: str,
             copied_at: str) -> None:
    """Log a verified copy of ``source_rel`` (in source ``source_id``) at ``dest`` (replacing the same entry)."""
    db.execute("INSERT OR REPLACE INTO gather_log(source_id, source_rel, sha256, size, dest, copied_at) "
               "VALUES (?,?,?,?,?,?)", (source_id, source_rel, sha256, size, dest, copied_at))


__all__ = ["add_source", "clips", "copies_from", "delete_path", "delete_sidecar", "drop_clip_data",
           "duplicate_paths", "file_stamps", "follow_renames", "has_path", "label_taken", "log_copy", "mark_missing",
           "missing_with_hash", "passing_failures", "photo_table", "present_at", "present_rows", "rehash_features",
           "rename", "set_content", "set_kinds", "set_status", "source_at", "status_of", "statuses", "touch_source",
           "upsert"]
