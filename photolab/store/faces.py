"""The catalog queries of faces (tables ``faces`` and ``face_scans``): what a scan found, the names a
person gave, the suggestions made from them, and the face boxes files and scores are made from."""

from __future__ import annotations

import sqlite3

from photolab.store import rows_in


# -- reading ------------------------------------------------------------------------------------------------
def faces_table(conn: sqlite3.Connection):
    """Every face (id, photo_id, path, x, y, w, h, score, cluster, person, suggestion, distance, rejected, crop)
    as a DataFrame indexed by face id."""
    import pandas as pd

    return pd.read_sql_query(
        "SELECT f.id, f.photo_id, p.path, f.x, f.y, f.w, f.h, f.score, f.cluster, f.person, f.suggestion, "
        "f.distance, f.rejected, f.crop FROM faces f JOIN photos p ON p.id = f.photo_id ORDER BY f.id", conn,
        index_col="id")


def scanned_count(conn: sqlite3.Connection, model: str) -> int:
    """How many photos were scanned with ``model``."""
    return conn.execute("SELECT count(*) FROM face_scans WHERE model = ?", (model,)).fetchone()[0]


def faces_of(conn: sqlite3.Connection, photo_id: int) -> list[sqlite3.Row]:
    """The stored faces of one photo (id, box, what a person said of it, crop)."""
    return conn.execute("SELECT id, x, y, w, h, person, named_by, named_at, rejected, crop FROM faces "
                        "WHERE photo_id = ?", (int(photo_id),)).fetchall()


def unnamed(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """(id, embedding) of every face neither named nor rejected, in id order."""
    return conn.execute("SELECT id, embedding FROM faces WHERE person IS NULL AND rejected = 0 ORDER BY id").fetchall()


def named(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """(id, person, embedding) of every named face not rejected."""
    return conn.execute("SELECT id, person, embedding FROM faces WHERE person IS NOT NULL AND rejected = 0").fetchall()


def unnamed_in_cluster(conn: sqlite3.Connection, cluster: int) -> list[int]:
    """The ids of the faces of ``cluster`` neither named nor rejected."""
    return [r[0] for r in conn.execute("SELECT id FROM faces WHERE cluster = ? AND person IS NULL AND rejected = 0",
                                       (int(cluster),))]


def top_cluster(conn: sqlite3.Connection) -> int:
    """The highest cluster number in use (-1: none)."""
    return int(conn.execute("SELECT coalesce(max(cluster), -1) FROM faces").fetchone()[0])


def status_counts(conn: sqlite3.Connection, confident: float) -> dict[str, int]:
    """How many faces are rejected, named, confident (suggestion closer than ``confident``), tentative, unknown."""
    rows = conn.execute(
        "SELECT CASE WHEN rejected THEN 'rejected' WHEN person IS NOT NULL THEN 'named' "
        "WHEN suggestion IS NOT NULL AND distance < ? THEN 'confident' "
        "WHEN suggestion IS NOT NULL THEN 'tentative' ELSE 'unknown' END, count(*) FROM faces GROUP BY 1",
        (confident,)).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def boxes(conn: sqlite3.Connection) -> list[tuple]:
    """(photo_id, x, y, w, h) of every face not rejected of every scanned photo; (photo_id, None, ...) for a
    scanned photo without one."""
    return conn.execute("SELECT s.photo_id, f.x, f.y, f.w, f.h FROM face_scans s "
                        "LEFT JOIN faces f ON f.photo_id = s.photo_id AND f.rejected = 0").fetchall()


def named_with_photos(conn: sqlite3.Connection, photo_ids, *, confident: float | None = None) -> list[sqlite3.Row]:
    """(photo_id, name, x, y, w, h, orientation, width, height) of the named faces of ``photo_ids`` (None: every
    photo), by photo and left to right; ``confident``: suggestions closer than that too."""
    cond = "f.person IS NOT NULL" if confident is None else \
        "(f.person IS NOT NULL OR (f.suggestion IS NOT NULL AND f.distance < ?))"
    return rows_in(conn, "SELECT f.photo_id, coalesce(f.person, f.suggestion) AS name, f.x, f.y, f.w, f.h, "
                         f"p.orientation, p.width, p.height FROM faces f JOIN photos p ON p.id = f.photo_id "
                         f"WHERE f.rejected = 0 AND {cond} AND f.photo_id IN {{in}} ORDER BY f.photo_id, f.x",
                   None if photo_ids is None else sorted({int(i) for i in photo_ids}),
                   () if confident is None else (confident,))


# -- writing (inside the caller's write transaction) ------------------------------------------------------
def replace_faces(db: sqlite3.Connection, photo_id: int, rows: list[tuple], model: str, at: str) -> None:
    """One photo's faces replaced by ``rows`` (x, y, w, h, score, landmarks, embedding, crop, person, named_by,
    named_at, rejected), and the photo marked scanned with ``model``."""
    db.execute("DELETE FROM faces WHERE photo_id = ?", (int(photo_id),))
    db.executemany("INSERT INTO faces(photo_id, x, y, w, h, score, landmarks, embedding, crop, person, named_by, "
                   "named_at, rejected, model, at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   [(int(photo_id), *r, model, at) for r in rows])
    db.execute("INSERT OR REPLACE INTO face_scans(photo_id, model, faces, at) VALUES (?,?,?,?)",
               (int(photo_id), model, len(rows), at))


def set_clusters(db: sqlite3.Connection, clusters: list[tuple[int, int]]) -> None:
    """Every face's cluster cleared, then (cluster, face id) of ``clusters`` set."""
    db.execute("UPDATE faces SET cluster = NULL")
    db.executemany("UPDATE faces SET cluster = ? WHERE id = ?", clusters)


def _update(db: sqlite3.Connection, sql: str, ids, params: tuple = ()) -> int:
    n = db.total_changes
    rows_in(db, sql, [int(i) for i in ids], params)
    return db.total_changes - n


def name(db: sqlite3.Connection, face_ids, person: str, who: str, at: str) -> int:
    """Name these faces ``person`` (their suggestion and rejection cleared); returns how many."""
    return _update(db, "UPDATE faces SET person = ?, named_by = ?, named_at = ?, rejected = 0, suggestion = NULL, "
                       "distance = NULL WHERE id IN {in}", face_ids, (person, who, at))


def unname(db: sqlite3.Connection, face_ids) -> int:
    """Take the name (or rejection) off these faces; returns how many."""
    return _update(db, "UPDATE faces SET person = NULL, named_by = NULL, named_at = NULL, rejected = 0 "
                       "WHERE id IN {in}", face_ids)


def reject(db: sqlite3.Connection, face_ids) -> int:
    """Reject these faces (no name, no suggestion, no cluster); returns how many."""
    return _update(db, "UPDATE faces SET rejected = 1, person = NULL, suggestion = NULL, distance = NULL, "
                       "cluster = NULL WHERE id IN {in}", face_ids)


def move_clusters(db: sqlite3.Connection, clusters, to: int) -> int:
    """Put the faces of ``clusters`` into cluster ``to``; returns how many moved."""
    return _update(db, "UPDATE faces SET cluster = ? WHERE cluster IN {in}", clusters, (int(to),))


def move_faces(db: sqlite3.Connection, face_ids, to: int) -> int:
    """Put these faces into cluster ``to``; returns how many."""
    return _update(db, "UPDATE faces SET cluster = ? WHERE id IN {in}", face_ids, (int(to),))


def accept_suggestions(db: sqlite3.Connection, planned, who: str, at: str, *,
                       confident: float | None = None) -> set[int]:
    """A person accepts the suggested name of each of ``planned`` (face id, suggestion) whose suggestion is still
    that one (and, with ``confident``, still closer than it); returns the face ids named."""
    done = set()
    for face_id, suggestion in planned:
        sql = ("UPDATE faces SET person = suggestion, named_by = ?, named_at = ?, suggestion = NULL, distance = NULL "
               "WHERE id = ? AND suggestion = ?")
        args: tuple = (who, at, int(face_id), suggestion)
        if confident is not None:
            sql += " AND distance < ?"
            args += (float(confident),)
        if db.execute(sql, args).rowcount:
            done.add(int(face_id))
    return done


def set_suggestions(db: sqlite3.Connection, updates: list[tuple]) -> None:
    """(suggestion, distance, face id) of each face suggested again."""
    db.executemany("UPDATE faces SET suggestion = ?, distance = ? WHERE id = ?", updates)


__all__ = ["accept_suggestions", "boxes", "faces_of", "faces_table", "move_clusters", "move_faces", "name",
           "named", "named_with_photos", "reject", "replace_faces", "scanned_count", "set_clusters",
           "set_suggestions", "status_counts", "top_cluster", "unname", "unnamed", "unnamed_in_cluster"]
