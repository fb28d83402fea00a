"""The storage layer: named queries over the catalog, one module per table group."""

from __future__ import annotations

import sqlite3

CHUNK = 900   # parameters per statement, under SQLite's limit


def rows_in(conn: sqlite3.Connection, sql: str, values, params: tuple = ()) -> list:
    """``sql`` with ``{in}`` where the ``IN (...)`` list of ``values`` goes (after ``params``), run in chunks
    under SQLite's parameter limit; ``values`` None: ``IN {in}`` matches every row (``IS NOT NULL``)."""
    if values is None:
        return conn.execute(sql.replace("IN {in}", "IS NOT NULL"), params).fetchall()
    values = list(values)
    out: list = []
    for k in range(0, len(values), CHUNK):
        part = values[k:k + CHUNK]
        out += conn.execute(sql.replace("{in}", f"({', '.join('?' * len(part))})"), (*params, *part)).fetchall()
    return out


__all__ = ["CHUNK", "rows_in"]
