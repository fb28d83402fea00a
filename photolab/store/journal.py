"""The journal of file operations (moves, rewrites, their batches and undo) and the kept versions of
rewritten files: the queries :mod:`photolab.core.fileops` and :mod:`photolab.core.repair` run. Each write takes the
connection of the caller's transaction (``with catalog.write() as db``), so what commits together stays
together."""

from __future__ import annotations

import sqlite3

from photolab.store import rows_in

SYNC_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")


def set_synchronous(conn: sqlite3.Connection, level: str) -> None:
    """Set how hard SQLite syncs each commit (``FULL`` while a plan is written, ``NORMAL`` otherwise)."""
    if level not in SYNC_LEVELS:
        raise ValueError(f"synchronous level {level!r}: one of {', '.join(SYNC_LEVELS)}")
    conn.execute(f"PRAGMA synchronous={level}")


def quick_check(conn: sqlite3.Connection) -> str:
    """SQLite's quick integrity check of a catalog file: ``ok``, or the first problem found."""
    return conn.execute("PRAGMA quick_check").fetchone()[0]


# -- writing the journal ---------------------------------------------------------------------------
def add_planned(db: sqlite3.Connection, batch: str, op: str, src: str, dst: str, sha256: str | None,
                created_at: str, detail: str) -> int:
    """Journal one step of ``batch`` as ``planned`` (``detail``: its JSON text); returns the entry's id."""
    cur = db.execute("INSERT INTO journal(batch, op, src, dst, sha256, state, created_at, detail) "
                     "VALUES (?,?,?,?,?,'planned',?,?)", (batch, op, src, dst, sha256, created_at, detail))
    return cur.lastrowid


def set_state(db: sqlite3.Connection, entry_id: int, state: str, detail: str | None = None) -> None:
    """Give journal entry ``entry_id`` its state (and, with ``detail``, new detail JSON text)."""
    if detail is None:
        db.execute("UPDATE journal SET state = ? WHERE id = ?", (state, entry_id))
    else:
        db.execute("UPDATE journal SET state = ?, detail = ? WHERE id = ?", (state, detail, entry_id))


def mark_undone(db: sqlite3.Connection, undo_batch: str) -> None:
    """Entries that the completed steps of ``undo_batch`` reversed (their ``undoes``) become ``undone``."""
    db.execute("UPDATE journal SET state = 'undone' WHERE id IN (SELECT json_extract(detail, '$.undoes') "
               "FROM journal WHERE batch = ? AND state = 'done')", (undo_batch,))


# -- reading it --------------------------------------------------------------------------------------
def planned_batches(conn: sqlite3.Connection) -> list[str]:
    """The batches with ``planned`` (not yet settled) entries."""
    return [r[0] for r in conn.execute("SELECT DISTINCT batch FROM journal WHERE state = 'planned'")]


def planned_counts(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """(batch, n): the number of ``planned`` entries of each batch that has some."""
    return conn.execute("SELECT batch, count(*) AS n FROM journal WHERE state = 'planned' GROUP BY batch").fetchall()


def planned_entries(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Every ``planned`` entry (id, batch, op, src, dst, sha256, detail), oldest first."""
    return conn.execute("SELECT id, batch, op, src, dst, sha256, detail FROM journal WHERE state = 'planned' "
                        "ORDER BY id").fetchall()


def planned_moves(conn: sqlite3.Connection, except_op: str) -> list[sqlite3.Row]:
    """(batch, src, dst) of the ``planned`` entries whose op is not ``except_op``."""
    return conn.execute("SELECT batch, src, dst FROM journal WHERE state = 'planned' AND op != ?",
                        (except_op,)).fetchall()


def batch_table(conn: sqlite3.Connection, op: str | None = None):
    """Journaled batches (of ``op``; None: every op) as a DataFrame: batch, op, done, undone, started, last."""
    import pandas as pd

    where, params = ("WHERE op = ?", (op,)) if op else ("", ())
    return pd.read_sql_query(
        "SELECT batch, op, sum(state = 'done') AS done, sum(state = 'undone') AS undone, "
        f"min(created_at) AS started, max(created_at) AS last FROM journal {where} "
        "GROUP BY batch ORDER BY min(id)", conn, params=params)


def last_undoable_batch(conn: sqlite3.Connection) -> str | None:
    """The batch of the newest completed step that is not itself an undo (None: there is none)."""
    row = conn.execute("SELECT batch FROM journal WHERE state = 'done' AND op != 'undo' "
                       "AND batch NOT LIKE 'undo-%' ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else row["batch"]


def done_entries(conn: sqlite3.Connection, batch: str) -> list[sqlite3.Row]:
    """The completed entries (id, op, src, dst, sha256, detail) of ``batch``, newest first."""
    return conn.execute("SELECT id, op, src, dst, sha256, detail FROM journal WHERE batch = ? AND state = 'done' "
                        "ORDER BY id DESC", (batch,)).fetchall()


def done_entry(conn: sqlite3.Connection, entry_id: int) -> list[sqlite3.Row]:
    """Journal entry ``entry_id`` (id, batch, src, dst, sha256, detail) if it is completed: one row or none."""
    return conn.execute("SELECT id, batch, src, dst, sha256, detail FROM journal WHERE id = ? AND state = 'done'",
                        (int(entry_id),)).fetchall()


def batch_known(conn: sqlite3.Connection, batch: str) -> bool:
    """Whether the journal has any entry of ``batch``."""
    return conn.execute("SELECT 1 FROM journal WHERE batch = ? LIMIT 1", (batch,)).fetchone() is not None


def moved_paths(conn: sqlite3.Connection) -> set[str]:
    """Every name a journaled move (any op but ``rewrite``) went from or to."""
    return {p for r in conn.execute("SELECT src, dst FROM journal WHERE op != 'rewrite'") for p in r if p}


def last_done_dst(conn: sqlite3.Connection, paths) -> str | None:
    """Which of ``paths`` the newest completed journal step went to (None: no step went to any of them)."""
    rows = rows_in(conn, "SELECT id, dst FROM journal WHERE state = 'done' AND dst IN {in}", paths)
    return max(rows, key=lambda r: r[0])[1] if rows else None


# -- kept versions of rewritten files -----------------------------------------------------------------
def add_versions(db: sqlite3.Connection, rows: list[tuple]) -> None:
    """Record kept versions: ``(photo_id, path, sha256, batch, saved_at)`` each."""
    db.executemany("INSERT INTO versions(photo_id, path, sha256, batch, saved_at) VALUES (?,?,?,?,?)", rows)


def versions(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Every kept version (id, who: its photo id or else path, saved_at), by file, newest first."""
    return conn.execute("SELECT id, coalesce(photo_id, path) AS who, saved_at FROM versions "
                        "ORDER BY who, id DESC").fetchall()


def drop_versions(db: sqlite3.Connection, ids) -> None:
    """Forget the kept versions of ``ids``."""
    db.executemany("DELETE FROM versions WHERE id = ?", [(i,) for i in ids])


def version_hashes(conn: sqlite3.Connection) -> set[str]:
    """The SHA-256 of every version still recorded (the kept files they need)."""
    return {r[0] for r in conn.execute("SELECT DISTINCT sha256 FROM versions WHERE sha256 IS NOT NULL")}


__all__ = ["SYNC_LEVELS", "add_planned", "add_versions", "batch_known", "batch_table", "done_entries", "done_entry",
           "drop_versions", "last_done_dst", "last_undoable_batch", "mark_undone", "moved_paths", "planned_batches",
           "planned_counts", "planned_entries", "planned_moves", "quick_check", "set_state", "set_synchronous",
           "version_hashes", "versions"]
