"""The catalog queries of a watcher pass, each by name or id through an index, so that a pass over a few new
files reads a few rows whatever the size of the library."""

from __future__ import annotations

import sqlite3

CHUNK = 900   # parameters per statement, under SQLite's limit


def _chunks(values: list):
    for k in range(0, len(values), CHUNK):
        yield values[k:k + CHUNK]


def rows_by_path(conn: sqlite3.Connection, paths, columns: str) -> list[sqlite3.Row]:
    """``columns`` of the photo rows at ``paths`` (by the unique path index)."""
    out: list = []
    for part in _chunks(list(paths)):
        out += conn.execute(f"SELECT {columns} FROM photos WHERE path IN ({', '.join('?' * len(part))})",
                            part).fetchall()
    return out


def import_states(conn: sqlite3.Connection, paths) -> dict[str, sqlite3.Row]:
    """The ``import_state`` rows of ``paths`` (import folder paths as the catalog writes them)."""
    out: dict = {}
    for part in _chunks(list(paths)):
        for r in conn.execute(f"SELECT * FROM import_state WHERE path IN ({', '.join('?' * len(part))})", part):
            out[r["path"]] = r
    return out


def latest_copies(conn: sqlite3.Connection, source_id: int, rels) -> dict[str, str]:
    """Where each of ``rels`` (names in a gather source) was copied to last (by the gather log's unique index)."""
    out: dict = {}
    for part in _chunks(list(rels)):
        for rel, dest in conn.execute(
                "SELECT source_rel, dest FROM gather_log WHERE source_id = ? AND source_rel IN "
                f"({', '.join('?' * len(part))}) ORDER BY copied_at, rowid", (source_id, *part)):
            out[rel] = dest   # the latest copy of that name
    return out


def moves_from(conn: sqlite3.Connection, srcs) -> dict[str, str]:
    """``{src: dst}`` of the completed organize and move steps out of ``srcs`` (the latest per name)."""
    out: dict = {}
    for part in _chunks(list(srcs)):
        for src, dst in conn.execute(
                "SELECT src, dst FROM journal WHERE state = 'done' AND op IN ('organize', 'move') "
                f"AND src IN ({', '.join('?' * len(part))}) ORDER BY id", part):
            out[src] = dst
    return out


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
    out: set = set()
    for part in _chunks([int(i) for i in ids]):
        out.update(r[0] for r in conn.execute(
            f"SELECT id FROM photos WHERE status = 'quarantined' AND id IN ({', '.join('?' * len(part))})", part))
    return out




def rows_by_id(conn: sqlite3.Connection, ids, columns: str, where: str = "1", params: tuple = ()) -> list[sqlite3.Row]:
    """``columns`` of the photo rows of ``ids`` that meet ``where`` (by the primary key), in id order."""
    out: list = []
    for part in _chunks(sorted({int(i) for i in ids})):
        out += conn.execute(f"SELECT {columns} FROM photos WHERE ({where}) AND id IN ({', '.join('?' * len(part))}) "
                            "ORDER BY id", (*params, *part)).fetchall()
    return out


def metadata_written(conn: sqlite3.Connection, ids) -> list[sqlite3.Row]:
    """What was written for the photos of ``ids`` (photo_id, target, sha256, digest, path)."""
    out: list = []
    for part in _chunks(sorted({int(i) for i in ids})):
        out += conn.execute("SELECT photo_id, target, sha256, digest, path FROM metadata_written "
                            f"WHERE photo_id IN ({', '.join('?' * len(part))})", part).fetchall()
    return out


def gps_to_look_up(conn: sqlite3.Connection, ids, usable: tuple) -> list[sqlite3.Row]:
    """Usable photos of ``ids`` with a GPS position and no place looked up for it yet."""
    out: list = []
    marks = ", ".join("?" * len(usable))
    for part in _chunks(sorted({int(i) for i in ids})):
        out += conn.execute(
            "SELECT p.id, p.gps_lat, p.gps_lon FROM photos p LEFT JOIN places pl ON pl.photo_id = p.id "
            f"WHERE p.status IN ({marks}) AND p.gps_lat IS NOT NULL AND p.gps_lon IS NOT NULL "
            "AND (pl.photo_id IS NULL OR pl.lat != p.gps_lat OR pl.lon != p.gps_lon) "
            f"AND p.id IN ({', '.join('?' * len(part))})", (*usable, *part)).fetchall()
    return out


def not_face_scanned(conn: sqlite3.Connection, ids, usable: tuple, model: str | None) -> list[sqlite3.Row]:
    """Usable photos (and RAW files) of ``ids`` not scanned for faces with ``model`` (None: every one)."""
    out: list = []
    marks = ", ".join("?" * len(usable))
    for part in _chunks(sorted({int(i) for i in ids})):
        out += conn.execute(
            "SELECT p.id, p.path, p.kind FROM photos p LEFT JOIN face_scans s ON s.photo_id = p.id "
            f"WHERE p.kind IN ('photo', 'raw') AND p.status IN ({marks}) "
            + ("" if model is None else "AND (s.photo_id IS NULL OR s.model != ?) ")
            + f"AND p.id IN ({', '.join('?' * len(part))}) ORDER BY p.id",
            (*usable, *(() if model is None else (model,)), *part)).fetchall()
    return out



def to_tag(conn: sqlite3.Connection, ids, usable: tuple, version: str | None) -> tuple[list[sqlite3.Row], int]:
    """(rows the labeling pass has to do, usable photos) among ``ids``: usable photos, RAW files and clips whose
    features are missing, from another model (``version``; None: every one), or of other content."""
    todo: list = []
    total = 0
    marks = ", ".join("?" * len(usable))
    for part in _chunks(sorted({int(i) for i in ids})):
        these = ", ".join("?" * len(part))
        todo += conn.execute(
            "SELECT p.id, p.path, p.kind, p.width, p.height, p.sha256 FROM photos p "
            f"LEFT JOIN features f ON f.photo_id = p.id WHERE p.kind IN ('photo', 'raw', 'video') AND p.status IN ({marks}) "
            + ("" if version is None else
               "AND (f.model IS NULL OR f.model != ? OR f.sha256 IS NOT p.sha256 OR f.phash8 IS NULL) ")
            + f"AND p.id IN ({these}) ORDER BY p.id", (*usable, *(() if version is None else (version,)), *part)
        ).fetchall()
        total += conn.execute(f"SELECT count(*) FROM photos WHERE kind IN ('photo', 'raw', 'video') AND status IN ({marks}) "
                              f"AND id IN ({these})", (*usable, *part)).fetchone()[0]
    return todo, total



def without_features(conn: sqlite3.Connection, usable: tuple) -> list[int]:
    """Usable photos, RAW files and clips with no features at all (a pass that failed on them for a moment), found
    through the narrow feature index rather than the feature rows."""
    marks = ", ".join("?" * len(usable))
    return [r[0] for r in conn.execute(
        f"SELECT p.id FROM photos p WHERE p.kind IN ('photo', 'raw', 'video') AND p.status IN ({marks}) AND NOT EXISTS "
        "(SELECT 1 FROM features f INDEXED BY features_thumb WHERE f.photo_id = p.id)", usable)]



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


__all__ = ["follow_moves", "gps_to_look_up", "in_folders", "import_states", "latest_copies", "metadata_written", "moves_from",
           "not_face_scanned", "quarantined", "rows_by_id", "rows_by_path", "to_tag",
           "without_features"]
