"""Where the catalog carries a tag name, and the queries that rename or merge one everywhere it is."""

from __future__ import annotations

import sqlite3

# Every catalog table whose rows name a tag, with the column: a rename or merge reaches each of them.
# A table added later that names a tag is declared here.
TAGGED_TABLES: tuple[tuple[str, str], ...] = (("scores", "tag"), ("scores_stash", "tag"), ("labels", "tag"),
                                              ("thresholds", "tag"))


def rename_tag_rows(db: sqlite3.Connection, old: str, new: str) -> None:
    """Rows that name ``old`` in every tagged table now name ``new`` (a row already there for ``new`` wins
    over the moved one: ``UPDATE OR REPLACE``); tables this catalog does not have are passed over."""
    for table, column in TAGGED_TABLES:
        if db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone():
            db.execute(f"UPDATE OR REPLACE {table} SET {column} = ? WHERE {column} = ?", (new, old))


def record_tag_change(db: sqlite3.Connection, old: str, new: str, action: str, at: str) -> None:
    """One ``tag_history`` row: ``old`` became ``new`` by ``action`` (rename or merge) at ``at``."""
    db.execute("INSERT INTO tag_history(old, new, action, at) VALUES (?,?,?,?)", (old, new, action, at))


__all__ = ["TAGGED_TABLES", "record_tag_change", "rename_tag_rows"]
