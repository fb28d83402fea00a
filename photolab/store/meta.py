"""The catalog queries of the library itself, its health check, the notebooks' set-up and the chain's
conditions: counts, integrity, and whether a head is active or a face named."""

from __future__ import annotations

import sqlite3


def _marks(values) -> str:
    return ", ".join("?" * len(values))


def count_photos(conn: sqlite3.Connection) -> int:
    """How many files the catalog holds (every kind and status)."""
    return conn.execute("SELECT count(*) FROM photos").fetchone()[0]


def count_usable(conn: sqlite3.Connection, usable: tuple) -> int:
    """How many photos have a status in ``usable``."""
    return conn.execute(f"SELECT count(*) FROM photos WHERE status IN ({_marks(usable)})", tuple(usable)).fetchone()[0]


def quick_check(conn: sqlite3.Connection) -> list[str]:
    """SQLite's ``quick_check``: ``["ok"]`` for an intact catalog file, else what it found."""
    return [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]


def has_no_schema(conn: sqlite3.Connection) -> bool:
    """Whether the database has no schema at all (version 0 and not one table)."""
    return conn.execute("PRAGMA user_version").fetchone()[0] == 0 and not conn.execute(
        "SELECT 1 FROM sqlite_master LIMIT 1").fetchone()


def active_head(conn: sqlite3.Connection) -> bool:
    """Whether a trained head is active."""
    return conn.execute("SELECT 1 FROM heads WHERE active = 1 LIMIT 1").fetchone() is not None


def any_named_face(conn: sqlite3.Connection) -> bool:
    """Whether a person has named any face."""
    return conn.execute("SELECT 1 FROM faces WHERE person IS NOT NULL LIMIT 1").fetchone() is not None


def missing_paths(conn: sqlite3.Connection) -> list[str]:
    """The paths of the cataloged files no longer on disk (status ``missing``)."""
    return [r[0] for r in conn.execute("SELECT path FROM photos WHERE status = 'missing'").fetchall()]


def present_photos(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """What a summary shows of every file not missing: id, path, kind, status, capture time and source, GPS
    latitude, duration, codec, width and height."""
    return conn.execute("SELECT id, path, kind, status, captured_at, captured_source, gps_lat, duration, codec, "
                        "width, height FROM photos WHERE status != 'missing'").fetchall()


def sample_ids(conn: sqlite3.Connection, name: str) -> list[int]:
    """The photo ids of the review sample ``name``."""
    return [r[0] for r in conn.execute("SELECT photo_id FROM samples WHERE name = ?", (name,)).fetchall()]


__all__ = ["active_head", "any_named_face", "count_photos", "count_usable", "has_no_schema", "missing_paths",
           "present_photos", "quick_check", "sample_ids"]
