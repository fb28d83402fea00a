"""The catalog queries of backups: when the library last changed, and what a snapshot's copy holds."""

from __future__ import annotations

import contextlib
import sqlite3

# each table's newest recorded change: files gathered, indexed, moved, quarantined, purged or rewritten, and
# a person's labels, reviews, ratings, names and event edits
CHANGE_TIMES = (("journal", "created_at"), ("gather_log", "copied_at"), ("photos", "indexed_at"), ("labels", "at"),
                ("reviews", "at"), ("ratings", "at"), ("versions", "saved_at"), ("faces", "named_at"),
                ("event_edits", "at"))


def change_times(conn: sqlite3.Connection) -> list[str]:
    """The newest change time of each table of :data:`CHANGE_TIMES` that has one (ISO text)."""
    out = []
    for table, column in CHANGE_TIMES:
        with contextlib.suppress(sqlite3.Error):
            t = conn.execute(f"SELECT max({column}) FROM {table}").fetchone()[0]
            if t:
                out.append(t)
    return out


def seal_copy(dst: sqlite3.Connection) -> int:
    """Make a backup copy one self-contained file (no WAL); returns how many usable photos and raws it holds."""
    dst.execute("PRAGMA journal_mode=DELETE")
    return dst.execute("SELECT count(*) FROM photos WHERE kind IN ('photo', 'raw') "
                       "AND status NOT IN ('missing', 'quarantined')").fetchone()[0]


def total_size(conn: sqlite3.Connection) -> int:
    """The bytes of every cataloged file."""
    return conn.execute("SELECT coalesce(sum(size), 0) FROM photos").fetchone()[0]


def paths_by_sha(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """Each content hash with the paths of the cataloged files that have it."""
    out: dict[str, list[str]] = {}
    for path, sha in conn.execute("SELECT path, sha256 FROM photos WHERE sha256 IS NOT NULL"):
        out.setdefault(sha, []).append(path)
    return out


__all__ = ["CHANGE_TIMES", "change_times", "paths_by_sha", "seal_copy", "total_size"]
