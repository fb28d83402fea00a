"""The catalog queries of places (table ``places``): the suggestions looked up from GPS, what a person
confirmed or rejected, and the names rules and events take from them."""

from __future__ import annotations

import sqlite3

from photolab.store import rows_in


def places_table(conn: sqlite3.Connection):
    """Every photo's place (photo_id, path, country, region, city, km, confirmed, event_id) as a DataFrame
    indexed by photo id, in path order."""
    import pandas as pd

    return pd.read_sql_query(
        "SELECT pl.photo_id, p.path, pl.country, pl.region, pl.city, pl.km, pl.confirmed, pe.event_id "
        "FROM places pl JOIN photos p ON p.id = pl.photo_id LEFT JOIN photo_events pe ON pe.photo_id = pl.photo_id "
        "ORDER BY p.path", conn, index_col="photo_id")


def places_of(conn: sqlite3.Connection, photo_ids) -> list[sqlite3.Row]:
    """(photo_id, path, country, region, city, km, confirmed) of the places of ``photo_ids``, in path order."""
    rows = rows_in(conn, "SELECT pl.photo_id, p.path, pl.country, pl.region, pl.city, pl.km, pl.confirmed "
                         "FROM places pl JOIN photos p ON p.id = pl.photo_id WHERE pl.photo_id IN {in}",
                   sorted({int(i) for i in photo_ids}))
    return sorted(rows, key=lambda r: r["path"])


def names(conn: sqlite3.Connection, photo_ids, *, suggested: bool) -> list[sqlite3.Row]:
    """(photo_id, country, region, city) of the confirmed places of ``photo_ids`` (None: every photo);
    ``suggested``: the suggestions too (never a place a person rejected)."""
    return rows_in(conn, f"SELECT photo_id, country, region, city FROM places WHERE confirmed "
                         f"{'>= 0' if suggested else '= 1'} AND photo_id IN {{in}}",
                   None if photo_ids is None else [int(i) for i in photo_ids])


def cities(conn: sqlite3.Connection, photo_ids) -> list[str]:
    """The city of each of ``photo_ids`` that has one (rejected places left out)."""
    return [r[0] for r in rows_in(conn, "SELECT city FROM places WHERE confirmed >= 0 AND city IS NOT NULL "
                                        "AND photo_id IN {in}", [int(i) for i in photo_ids])]


def replace(db: sqlite3.Connection, photo_id: int, found: dict | None, lat: float, lon: float, at: str) -> None:
    """One photo's suggested place replaced by ``found`` (country, region, city, km; None: no place)."""
    db.execute("DELETE FROM places WHERE photo_id = ?", (int(photo_id),))
    if found:
        db.execute("INSERT INTO places(photo_id, lat, lon, country, region, city, km, confirmed, at) "
                   "VALUES (?,?,?,?,?,?,?,0,?)", (int(photo_id), lat, lon, found["country"], found["region"],
                                                 found["city"], found["km"], at))


def set_confirmed(db: sqlite3.Connection, planned: list[tuple], value: int) -> set[int]:
    """Mark confirmed (1) or rejected (-1) the places of ``planned`` (photo_id, country, region, city,
    confirmed) that still hold those values; returns the photo ids it set."""
    done = set()
    for pid, country, region, city, was in planned:
        if db.execute("UPDATE places SET confirmed = ? WHERE photo_id = ? AND country IS ? AND region IS ? "
                      "AND city IS ? AND confirmed = ?", (int(value), int(pid), country, region, city,
                                                          int(was))).rowcount:
            done.add(int(pid))
    return done


__all__ = ["cities", "names", "places_of", "places_table", "replace", "set_confirmed"]
