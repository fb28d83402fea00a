"""The catalog queries behind the notebooks' charts (:mod:`photolab.ui.plots`): thumbnails, the best-scoring
photos of a tag, capture days and GPS positions."""

from __future__ import annotations

import sqlite3

from photolab.stages.index import USABLE
from photolab.store import rows_in


def _usable() -> str:
    return ", ".join("?" * len(USABLE))


def thumbs(conn: sqlite3.Connection, photo_ids) -> list[tuple]:
    """(photo_id, thumb) of ``photo_ids`` (thumb relative to the features folder, None where there is none)."""
    return rows_in(conn, "SELECT photo_id, thumb FROM features WHERE photo_id IN {in}", [int(i) for i in photo_ids])


def top_scored(conn: sqlite3.Connection, tag: str, at_least: float, limit: int) -> list[tuple]:
    """(photo_id, score) of the ``limit`` best scores for ``tag`` at or above ``at_least``, best first."""
    return conn.execute("SELECT s.photo_id, s.score FROM scores s WHERE s.tag = ? AND s.score >= ? "
                        "ORDER BY s.score DESC LIMIT ?", (tag, at_least, limit)).fetchall()


def capture_times(conn: sqlite3.Connection):
    """The capture time of every usable photo that has one (an iterator of texts)."""
    return (r[0] for r in conn.execute(f"SELECT captured_at FROM photos WHERE captured_at IS NOT NULL AND status IN "
                                       f"({_usable()})", USABLE))


def gps_positions(conn: sqlite3.Connection) -> list[tuple]:
    """(lat, lon, city, confirmed) of every usable photo with GPS coordinates (city None where not placed)."""
    return conn.execute(
        f"SELECT p.gps_lat, p.gps_lon, pl.city, pl.confirmed FROM photos p LEFT JOIN places pl ON pl.photo_id = p.id "
        f"WHERE p.gps_lat IS NOT NULL AND p.gps_lon IS NOT NULL AND p.status IN ({_usable()})", USABLE).fetchall()


def paths(conn: sqlite3.Connection, photo_ids) -> dict[int, str]:
    """photo_id -> path (relative to the library) of ``photo_ids``."""
    return {r[0]: r[1] for r in rows_in(conn, "SELECT id, path FROM photos WHERE id IN {in}",
                                        [int(i) for i in photo_ids])}


__all__ = ["capture_times", "gps_positions", "paths", "thumbs", "top_scored"]
