"""The catalog queries of a watcher pass, each by name or id through an index, so that a pass over a few new
files reads a few rows whatever the size of the library."""

from __future__ import annotations

import sqlite3

from photolab.store import rows_in as _rows

def _ids(ids) -> list[int] | None:
    return None if ids is None else sorted({int(i) for i in ids})


def _marks(values) -> str:
    return ", ".join("?" * len(values))


def rows_by_path(conn: sqlite3.Connection, paths, columns: str) -> list[sqlite3.Row]:
    """``columns`` of the photo rows at ``paths`` (by the unique path index)."""
    return _rows(conn, f"SELECT {columns} FROM photos WHERE path IN {{in}}", paths)


def import_states(conn: sqlite3.Connection, paths) -> dict[str, sqlite3.Row]:
    """The ``import_state`` rows of ``paths`` (import folder paths as the catalog writes them)."""
    return {r["path"]: r for r in _rows(conn, "SELECT * FROM import_state WHERE path IN {in}", paths)}


def latest_copies(conn: sqlite3.Connection, source_id: int, rels) -> dict[str, str]:
    """Where each of ``rels`` (names in a gather source) was copied to last (by the gather log's unique index)."""
    rows = _rows(conn, "SELECT source_rel, dest FROM gather_log WHERE source_id = ? AND source_rel IN {in} "
                       "ORDER BY copied_at, rowid", rels, (source_id,))
    return {rel: dest for rel, dest in rows}   # the latest copy of that name wins


def gathered_copies(conn: sqlite3.Connection, dests) -> list[sqlite3.Row]:
    """The gather log's rows (dest, sha256, size, copied_at) of the copies at ``dests``, oldest first."""
    return _rows(conn, "SELECT dest, sha256, size, copied_at FROM gather_log WHERE dest IN {in} ORDER BY id", dests)


def moves_from(conn: sqlite3.Connection, srcs) -> dict[str, str]:
    """``{src: dst}`` of the completed organize and move steps out of ``srcs`` (the latest per name)."""
    rows = _rows(conn, "SELECT src, dst FROM journal WHERE state = 'done' AND op IN ('organize', 'move') "
                       "AND src IN {in} ORDER BY id", srcs)
    return {src: dst for src, dst in rows}


def follow_moves(conn: sqlite3.Connection, paths, steps: int = 50) -> dict[str, str]:
    """Where each of ``paths`` is now, following the journal's completed moves (at most ``steps`` deep)."""
    now = {p: p for p in paths}
    todo = set(now.values())
    for _ in range(steps):
        if not todo:
            break
        moved = moves_from(conn, sorted(todo))
        todo = set()
        for p, cur in now.items():
            if cur in moved and moved[cur] != cur:
                now[p] = moved[cur]
                todo.add(moved[cur])
    return now


def quarantined(conn: sqlite3.Connection, ids) -> set[int]:
    """Which of ``ids`` are quarantined now."""
    return {r[0] for r in _rows(conn, "SELECT id FROM photos WHERE status = 'quarantined' AND id IN {in}",
                                [int(i) for i in ids])}


def rows_by_id(conn: sqlite3.Connection, ids, columns: str, where: str = "1", params: tuple = ()) -> list[sqlite3.Row]:
    """``columns`` of the photo rows of ``ids`` that meet ``where`` (by the primary key), in id order."""
    return _rows(conn, f"SELECT {columns} FROM photos WHERE ({where}) AND id IN {{in}} ORDER BY id", _ids(ids), params)


def metadata_written(conn: sqlite3.Connection, ids) -> list[sqlite3.Row]:
    """What was written for the photos of ``ids`` (photo_id, target, sha256, digest, path)."""
    return _rows(conn, "SELECT photo_id, target, sha256, digest, path FROM metadata_written WHERE photo_id IN {in}",
                 _ids(ids))


def gps_to_look_up(conn: sqlite3.Connection, ids, usable: tuple) -> list[sqlite3.Row]:
    """Usable photos of ``ids`` (None: every one) with a GPS position and no place looked up for it yet."""
    return _rows(conn, "SELECT p.id, p.gps_lat, p.gps_lon FROM photos p LEFT JOIN places pl ON pl.photo_id = p.id "
                       f"WHERE p.status IN ({_marks(usable)}) AND p.gps_lat IS NOT NULL AND p.gps_lon IS NOT NULL "
                       "AND (pl.photo_id IS NULL OR pl.lat != p.gps_lat OR pl.lon != p.gps_lon) AND p.id IN {in}",
                 _ids(ids), usable)


def not_face_scanned(conn: sqlite3.Connection, ids, usable: tuple, model: str | None) -> list[sqlite3.Row]:
    """Usable photos (and RAW files) of ``ids`` (None: the whole library) not scanned for faces with ``model``
    (None: whatever scanned them)."""
    return _rows(conn, "SELECT p.id, p.path, p.kind FROM photos p LEFT JOIN face_scans s ON s.photo_id = p.id "
                       f"WHERE p.kind IN ('photo', 'raw') AND p.status IN ({_marks(usable)}) "
                       + ("" if model is None else "AND (s.photo_id IS NULL OR s.model != ?) ")
                       + "AND p.id IN {in} ORDER BY p.id",
                 _ids(ids), (*usable, *(() if model is None else (model,))))


TAGGED_KINDS = ("photo", "raw", "video")   # what the labeling pass reads pixels of (a clip: its poster frame)


def to_tag(conn: sqlite3.Connection, ids, usable: tuple, version: str | None) -> tuple[list[sqlite3.Row], int]:
    """(rows the labeling pass has to do, usable photos) among ``ids`` (None: the whole library): usable photos,
    RAW files and clips whose features are missing, from another model (``version``; None: every one), or of
    other content."""
    ids = _ids(ids)
    usable_kinds = (*TAGGED_KINDS, *usable)
    todo = _rows(conn, "SELECT p.id, p.path, p.kind, p.width, p.height, p.sha256 FROM photos p "
                       f"LEFT JOIN features f ON f.photo_id = p.id WHERE p.kind IN ({_marks(TAGGED_KINDS)}) "
                       f"AND p.status IN ({_marks(usable)}) "
                       + ("" if version is None else
                          "AND (f.model IS NULL OR f.model != ? OR f.sha256 IS NOT p.sha256 OR f.phash8 IS NULL) ")
                       + "AND p.id IN {in} ORDER BY p.id",
                 ids, (*usable_kinds, *(() if version is None else (version,))))
    total = sum(r[0] for r in _rows(conn, f"SELECT count(*) FROM photos WHERE kind IN ({_marks(TAGGED_KINDS)}) "
                                          f"AND status IN ({_marks(usable)}) AND id IN {{in}}", ids, usable_kinds))
    return todo, total


def without_features(conn: sqlite3.Connection, usable: tuple) -> list[int]:
    """Usable photos, RAW files and clips with no features at all (a pass that failed on them for a moment), found
    through the narrow feature index rather than the feature rows."""
    return [r[0] for r in conn.execute(
        f"SELECT p.id FROM photos p WHERE p.kind IN ({_marks(TAGGED_KINDS)}) AND p.status IN ({_marks(usable)}) "
        "AND NOT EXISTS (SELECT 1 FROM features f INDEXED BY features_thumb WHERE f.photo_id = p.id)",
        (*TAGGED_KINDS, *usable))]


def in_folders(conn: sqlite3.Connection, folders, columns: str = "path, sha256") -> list[sqlite3.Row]:
    """``columns`` (the first being ``path``) of the catalog rows directly in ``folders`` ("" the top), by path range."""
    out: list = []
    for folder in sorted(set(folders)):
        if folder:
            rows = conn.execute(f"SELECT {columns} FROM photos WHERE path >= ? AND path < ?",
                                (folder + "/", folder + "0")).fetchall()
        else:
            rows = conn.execute(f"SELECT {columns} FROM photos WHERE instr(path, '/') = 0").fetchall()
        out += [r for r in rows if r[0].rpartition("/")[0] == folder]
    return out


__all__ = ["TAGGED_KINDS", "follow_moves", "gathered_copies", "gps_to_look_up", "in_folders", "import_states", "latest_copies", "metadata_written", "moves_from",
           "not_face_scanned", "quarantined", "rows_by_id", "rows_by_path", "to_tag",
           "without_features"]
