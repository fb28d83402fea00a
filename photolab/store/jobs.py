"""The catalog queries of automation: each import folder file's state, and the import log."""

from __future__ import annotations

import sqlite3


def record_imports(db: sqlite3.Connection, rows) -> None:
    """Write ``import_state`` rows: (path, size, mtime_ns, state, attempts, next_try, photo_id, reason, at)."""
    db.executemany("INSERT OR REPLACE INTO import_state(path, size, mtime_ns, state, attempts, next_try, photo_id, "
                   "reason, at) VALUES (?,?,?,?,?,?,?,?,?)", rows)


def source_id(conn: sqlite3.Connection, path: str) -> int | None:
    """The id of the gather source at ``path`` (as the catalog writes it), or None."""
    row = conn.execute("SELECT id FROM sources WHERE path = ?", (path,)).fetchone()
    return row[0] if row else None


def import_log(conn: sqlite3.Connection):
    """Every import folder file's outcome as a DataFrame: path, state, attempts, reason, library_path, at."""
    import pandas as pd

    return pd.read_sql_query("SELECT i.path, i.state, i.attempts, i.reason, p.path AS library_path, i.at "
                             "FROM import_state i LEFT JOIN photos p ON p.id = i.photo_id ORDER BY i.at, i.path", conn)


__all__ = ["import_log", "record_imports", "source_id"]
