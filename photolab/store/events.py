"""The catalog queries of events (``events``, ``photo_events``, ``event_edits``) and of the photo rows that
event grouping and organize read: dated photos, photos with their stored event, a person's edits."""

from __future__ import annotations

import sqlite3

from photolab.store import rows_in

KINDS = ("photo", "raw", "video")   # what belongs to an event (companions follow their photo)


def _marks(values) -> str:
    return ", ".join("?" * len(values))


def _dated(usable: tuple, sources: tuple) -> tuple[str, tuple]:
    return ("SELECT id, captured_at, captured_source, gps_lat, gps_lon FROM photos "
            f"WHERE kind IN ({_marks(KINDS)}) AND status IN ({_marks(usable)}) "
            f"AND captured_at IS NOT NULL AND captured_source IN ({_marks(sources)})", (*KINDS, *usable, *sources))


# -- reading ------------------------------------------------------------------------------------------------
def dated_photos(conn: sqlite3.Connection, usable: tuple, sources: tuple, ids=None) -> list[sqlite3.Row]:
    """(id, captured_at, captured_source, gps_lat, gps_lon) of the usable photos and clips of ``ids`` (None:
    every one) whose capture time comes from one of ``sources``."""
    sql, args = _dated(usable, sources)
    return rows_in(conn, sql + " AND id IN {in}", None if ids is None else [int(i) for i in ids], args)


def dated_photos_between(conn: sqlite3.Connection, usable: tuple, sources: tuple, lo: str, hi: str) -> list:
    """:func:`dated_photos` captured from ``lo`` (inclusive) to ``hi`` (exclusive), ISO text compared."""
    sql, args = _dated(usable, sources)
    return conn.execute(sql + " AND captured_at >= ? AND captured_at < ?", (*args, lo, hi)).fetchall()


def dated_members(conn: sqlite3.Connection, usable: tuple, sources: tuple, event_ids) -> list[sqlite3.Row]:
    """:func:`dated_photos` among the stored members of ``event_ids``."""
    sql, args = _dated(usable, sources)
    return rows_in(conn, sql + " AND id IN (SELECT photo_id FROM photo_events WHERE event_id IN {in})",
                   [int(i) for i in event_ids], args)


def memberships(conn: sqlite3.Connection, photo_ids) -> list[tuple[int, int]]:
    """(photo_id, event_id) of the stored memberships of ``photo_ids``."""
    return [(r[0], r[1]) for r in rows_in(conn, "SELECT photo_id, event_id FROM photo_events WHERE photo_id IN {in}",
                                          [int(i) for i in photo_ids])]


def events_of(conn: sqlite3.Connection, photo_ids) -> set[int]:
    """The stored events ``photo_ids`` belong to."""
    return {r[0] for r in rows_in(conn, "SELECT event_id FROM photo_events WHERE photo_id IN {in}",
                                  [int(i) for i in photo_ids])}


def event_of(conn: sqlite3.Connection, photo_id: int) -> int | None:
    """The stored event of one photo (None: in no event)."""
    row = conn.execute("SELECT event_id FROM photo_events WHERE photo_id = ?", (int(photo_id),)).fetchone()
    return None if row is None else row[0]


def members(conn: sqlite3.Connection, event_id: int) -> list[int]:
    """The photo ids of one stored event."""
    return [r[0] for r in conn.execute("SELECT photo_id FROM photo_events WHERE event_id = ?", (int(event_id),))]


def edits(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """A person's event edits (action, photo_id, other_id, value), oldest first."""
    return conn.execute("SELECT action, photo_id, other_id, value FROM event_edits ORDER BY id").fetchall()


def merges(conn: sqlite3.Connection) -> list[tuple[int, int]]:
    """(photo_id, other_id) of every merge a person made."""
    return [(r[0], r[1]) for r in conn.execute("SELECT photo_id, other_id FROM event_edits WHERE action = 'merge'")]


def merge_edits(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """(id, photo_id, other_id) of every merge edit, to drop the ones a split undoes."""
    return conn.execute("SELECT id, photo_id, other_id FROM event_edits WHERE action = 'merge'").fetchall()


def event_exists(conn: sqlite3.Connection, event_id: int) -> bool:
    """Whether ``event_id`` is a stored event."""
    return conn.execute("SELECT 1 FROM events WHERE id = ?", (int(event_id),)).fetchone() is not None


def events_table(conn: sqlite3.Connection):
    """The stored events as a DataFrame indexed by event id, in start order."""
    import pandas as pd

    return pd.read_sql_query("SELECT id, name, auto_name, start, end, photos, lat, lon, dominant FROM events "
                             "ORDER BY start", conn, index_col="id")


def event_photos(conn: sqlite3.Connection, event_id: int):
    """The photos of one event (id, path, captured_at) as a DataFrame indexed by id, in capture order."""
    import pandas as pd

    return pd.read_sql_query("SELECT p.id, p.path, p.captured_at FROM photo_events e JOIN photos p ON p.id = "
                             "e.photo_id WHERE e.event_id = ? ORDER BY p.captured_at, p.id", conn,
                             params=(int(event_id),), index_col="id")


# -- writing (inside the caller's write transaction) ------------------------------------------------------
def replace_all(db: sqlite3.Connection, events: list[tuple], members: list[tuple]) -> None:
    """Every stored event replaced by ``events`` (id, name, auto_name, start, end, photos, lat, lon, dominant)
    and ``members`` (photo_id, event_id)."""
    db.execute("DELETE FROM photo_events")
    db.execute("DELETE FROM events")
    insert(db, events, members)


def replace_some(db: sqlite3.Connection, photo_ids, event_ids, events: list[tuple], members: list[tuple]) -> None:
    """The memberships of ``photo_ids`` and the events ``event_ids`` (with their memberships) replaced by
    ``events`` and ``members`` (as :func:`replace_all` takes them)."""
    rows_in(db, "DELETE FROM photo_events WHERE photo_id IN {in}", [int(i) for i in photo_ids])
    old = sorted(int(i) for i in event_ids)
    rows_in(db, "DELETE FROM photo_events WHERE event_id IN {in}", old)
    rows_in(db, "DELETE FROM events WHERE id IN {in}", old)
    insert(db, events, members)


def insert(db: sqlite3.Connection, events: list[tuple], members: list[tuple]) -> None:
    """Add ``events`` and ``members`` (as :func:`replace_all` takes them)."""
    db.executemany("INSERT INTO events(id, name, auto_name, start, end, photos, lat, lon, dominant) "
                   "VALUES (?,?,?,?,?,?,?,?,?)", events)
    db.executemany("INSERT INTO photo_events(photo_id, event_id) VALUES (?,?)", members)


def add_edit(db: sqlite3.Connection, action: str, photo_id: int, other_id: int | None, value: str | None,
             at: str) -> None:
    """Record a person's edit (rename, merge, split) by photo id."""
    db.execute("INSERT INTO event_edits(action, photo_id, other_id, value, at) VALUES (?,?,?,?,?)",
               (action, int(photo_id), other_id, value, at))


def drop_edit(db: sqlite3.Connection, edit_id: int) -> None:
    """Forget one edit."""
    db.execute("DELETE FROM event_edits WHERE id = ?", (int(edit_id),))


def rename(db: sqlite3.Connection, event_id: int, name: str) -> None:
    """Set a stored event's name."""
    db.execute("UPDATE events SET name = ? WHERE id = ?", (name, int(event_id)))


# -- what organize reads: photo rows with their stored event ----------------------------------------------
_FILED = ("SELECT p.id, p.path, p.kind, p.status, p.sha256, p.captured_at, p.captured_source, "
          "p.camera_make, p.camera_model, p.gps_lat, pe.event_id, e.name AS event, e.dominant "
          "FROM photos p LEFT JOIN photo_events pe ON pe.photo_id = p.id "
          "LEFT JOIN events e ON e.id = pe.event_id ")


def filed_rows(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Every catalog row as organize reads it (with its stored event's id, name and dominant tag), by path."""
    return conn.execute(_FILED + "ORDER BY p.path").fetchall()


def filed_rows_in(conn: sqlite3.Connection, folders) -> list[sqlite3.Row]:
    """:func:`filed_rows` of the files directly in ``folders`` ("" the top), read by path range."""
    out: list = []
    for folder in sorted(set(folders)):
        if folder:   # the path index: everything under folder/, then only what is directly in it
            got = conn.execute(_FILED + "WHERE p.path >= ? AND p.path < ?", (folder + "/", folder + "0")).fetchall()
            out += [r for r in got if r["path"].rpartition("/")[0] == folder]
        else:
            out += conn.execute(_FILED + "WHERE instr(p.path, '/') = 0").fetchall()
    return out


def paths_below(conn: sqlite3.Connection, folder: str) -> list[sqlite3.Row]:
    """(path, sha256) of every catalog row under ``folder`` (at any depth; matched case-insensitively)."""
    esc = folder.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return conn.execute("SELECT path, sha256 FROM photos WHERE path LIKE ? ESCAPE '\\'", (esc + "/%",)).fetchall()


def paths_of(conn: sqlite3.Connection, photo_ids) -> list[str]:
    """The paths of ``photo_ids``."""
    return [r[0] for r in rows_in(conn, "SELECT path FROM photos WHERE id IN {in}", [int(i) for i in photo_ids])]


__all__ = ["add_edit", "dated_members", "dated_photos", "dated_photos_between", "drop_edit", "edits", "event_exists",
           "event_of", "event_photos", "events_of", "events_table", "filed_rows", "filed_rows_in", "insert",
           "members", "memberships", "merge_edits", "merges", "paths_below", "paths_of", "rename", "replace_all",
           "replace_some"]
