"""The trained heads' catalog rows: one per version saved under ``.photolab/models/heads/``, at most one active."""

from __future__ import annotations

import sqlite3


def active(conn: sqlite3.Connection) -> dict | None:
    """The active head's row (version, created, examples, tags, replaces, metrics, active), or None."""
    cur = conn.execute("SELECT * FROM heads WHERE active = 1")
    row = cur.fetchone()
    return None if row is None else dict(zip([d[0] for d in cur.description], row))


def exists(conn: sqlite3.Connection, version: str) -> bool:
    return conn.execute("SELECT 1 FROM heads WHERE version = ?", (version,)).fetchone() is not None


def add(db: sqlite3.Connection, version: str, created: str, examples: int, tags: str, replaces: str,
        metrics: str) -> None:
    """Record a saved head, not active (``tags``, ``replaces``, ``metrics``: JSON text)."""
    db.execute("INSERT INTO heads(version, created, examples, tags, replaces, metrics, active) VALUES (?,?,?,?,?,?,0)",
               (version, created, examples, tags, replaces, metrics))


def activate(db: sqlite3.Connection, version: str | None) -> None:
    """Make ``version`` the only active head (None: none active)."""
    db.execute("UPDATE heads SET active = (version IS ?)", (version,))


def listing(conn: sqlite3.Connection):
    """Every head, newest first, as a DataFrame indexed by version: created, examples, replaces, active."""
    import pandas as pd

    return pd.read_sql_query("SELECT version, created, examples, replaces, active FROM heads ORDER BY created DESC",
                             conn, index_col="version")


__all__ = ["activate", "active", "add", "exists", "listing"]
