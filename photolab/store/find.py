"""The catalog queries behind :func:`photolab.find`, in one place: each term's query returns photo ids
(and a score where the term has one) from an index or a small table; only :func:`universe` reads every
photo row, and :mod:`photolab.stages.search` keeps its result in memory until the catalog changes."""

from __future__ import annotations

import sqlite3

from photolab.stages.index import USABLE
from photolab.store import rows_in

KINDS = ("photo", "raw", "video")


def universe(conn: sqlite3.Connection, ids: list[int] | None = None) -> list[tuple]:
    """(id, captured_at, usable) of every photo a query can return (photos, RAW files, videos), in id order;
    ``ids``: of those photos only (by the primary key)."""
    kinds = ", ".join("?" * len(KINDS))
    usable = ", ".join("?" * len(USABLE))
    sql = f"SELECT id, captured_at, status IN ({usable}) FROM photos WHERE kind IN ({kinds})"
    if ids is not None:
        rows = rows_in(conn, sql + " AND id IN {in}", sorted(ids), (*USABLE, *KINDS))
        return sorted((tuple(r) for r in rows), key=lambda r: r[0])
    cur = conn.cursor()
    cur.row_factory = None   # plain tuples: a sqlite3.Row for each of 500,000 photos costs a second
    return cur.execute(sql + " ORDER BY id", (*USABLE, *KINDS)).fetchall()


def change_stamp(conn: sqlite3.Connection) -> tuple[int, int]:
    """Changes whenever anyone commits to the catalog: another connection's commits move SQLite's
    data_version, this connection's its total_changes."""
    return conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes


def any_tagged(conn: sqlite3.Connection) -> bool:
    """Whether the tagging pass has done any photo (features stored)."""
    return conn.execute("SELECT 1 FROM features LIMIT 1").fetchone() is not None


def tag_scores(conn: sqlite3.Connection, tag: str, at_least: float) -> list[tuple]:
    """(photo id, score) of the photos scoring ``tag`` at or above ``at_least`` (by the (tag, score) index)."""
    return conn.execute("SELECT photo_id, score FROM scores WHERE tag = ? AND score >= ?", (tag, at_least)).fetchall()


def tag_label_scores(conn: sqlite3.Connection, tag: str) -> list[tuple]:
    """(photo id, value, score) of a person's labels for ``tag`` with the photo's score (None: unscored)."""
    return conn.execute("SELECT l.photo_id, l.value, s.score FROM labels l LEFT JOIN scores s ON s.photo_id = "
                        "l.photo_id AND s.tag = l.tag WHERE l.tag = ?", (tag,)).fetchall()


def person_names(conn: sqlite3.Connection) -> list[str]:
    """Every name a person gave a face (or that photolab suggests), distinct."""
    return [r[0] for r in conn.execute(
        "SELECT DISTINCT person FROM faces WHERE person IS NOT NULL AND rejected = 0 UNION "
        "SELECT DISTINCT suggestion FROM faces WHERE suggestion IS NOT NULL AND person IS NULL AND rejected = 0")]


def person_photos(conn: sqlite3.Connection, name: str, confident: float) -> list[tuple]:
    """(photo id, score, named) for faces named ``name`` (score 1) or confidently suggested (1 - distance)."""
    return conn.execute(
        "SELECT photo_id, max(CASE WHEN person IS NOT NULL THEN 1.0 ELSE 1.0 - distance END), max(person IS NOT NULL) "
        "FROM faces WHERE rejected = 0 AND (lower(person) = lower(?1) OR (person IS NULL AND "
        "lower(suggestion) = lower(?1) AND distance < ?2)) GROUP BY photo_id", (name, confident)).fetchall()


def place_names(conn: sqlite3.Connection) -> list[str]:
    """Every country, region and city of the library's places (rejected ones left out)."""
    return [r[0] for r in conn.execute(
        "SELECT country FROM places WHERE confirmed >= 0 UNION SELECT region FROM places WHERE confirmed >= 0 "
        "AND region IS NOT NULL UNION SELECT city FROM places WHERE confirmed >= 0 AND city IS NOT NULL")]


def place_photos(conn: sqlite3.Connection, name: str) -> list[tuple]:
    """(photo id, level matched, confirmed) for photos whose country, region or city is ``name``."""
    return conn.execute(
        "SELECT photo_id, CASE WHEN lower(city) = lower(?1) THEN 'city' WHEN lower(region) = lower(?1) "
        "THEN 'region' ELSE 'country' END, confirmed FROM places WHERE confirmed >= 0 AND "
        "(lower(country) = lower(?1) OR lower(region) = lower(?1) OR lower(city) = lower(?1))", (name,)).fetchall()


def event_names(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT DISTINCT name FROM events")]


def event_photos(conn: sqlite3.Connection, name: str, *, exact: bool) -> list[tuple]:
    """(photo id, event name) for events named ``name`` (``exact``) or whose name contains it."""
    if exact:
        return conn.execute("SELECT pe.photo_id, e.name FROM events e JOIN photo_events pe ON pe.event_id = e.id "
                            "WHERE lower(e.name) = lower(?)", (name,)).fetchall()
    return conn.execute("SELECT pe.photo_id, e.name FROM events e JOIN photo_events pe ON pe.event_id = e.id "
                        "WHERE instr(lower(e.name), lower(?)) > 0", (name,)).fetchall()


def camera_photos(conn: sqlite3.Connection, text: str) -> list[tuple]:
    """(photo id, camera) for photos whose camera make or model contains ``text``."""
    return conn.execute(
        "SELECT id, trim(coalesce(camera_make, '') || ' ' || coalesce(camera_model, '')) FROM photos "
        "WHERE instr(lower(coalesce(camera_make, '') || ' ' || coalesce(camera_model, '')), lower(?)) > 0",
        (text,)).fetchall()


def rating_photos(conn: sqlite3.Connection, op: str, value: int) -> list[tuple]:
    """(photo id, rating) for ratings ``op value`` (op one of = < <= > >=)."""
    if op not in ("=", "<", "<=", ">", ">="):
        raise ValueError(op)
    return conn.execute(f"SELECT photo_id, rating FROM ratings WHERE rating {op} ?", (int(value),)).fetchall()


def kind_photos(conn: sqlite3.Connection, kind: str) -> list[tuple]:
    return conn.execute("SELECT id, kind FROM photos WHERE kind = ?", (kind,)).fetchall()


def format_photos(conn: sqlite3.Connection, fmt: str) -> list[tuple]:
    return conn.execute("SELECT id, format FROM photos WHERE upper(format) = upper(?)", (fmt,)).fetchall()


def status_photos(conn: sqlite3.Connection, status: str) -> list[tuple]:
    return conn.execute("SELECT id, status FROM photos WHERE status = ?", (status,)).fetchall()


def statuses(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT DISTINCT status FROM photos")]


def photo_by_path(conn: sqlite3.Connection, rel: str):
    row = conn.execute("SELECT id FROM photos WHERE path = ?", (rel,)).fetchone()
    return row[0] if row else None


def photo_exists(conn: sqlite3.Connection, photo_id: int) -> bool:
    return conn.execute("SELECT 1 FROM photos WHERE id = ?", (int(photo_id),)).fetchone() is not None


def last_tag_run(conn: sqlite3.Connection) -> tuple[int, bool] | None:
    """(id, finished) of the latest tagging pass (the only writer of embeddings), or None."""
    row = conn.execute("SELECT id, finished_at IS NOT NULL FROM runs WHERE stage = 'tag' ORDER BY id DESC "
                       "LIMIT 1").fetchone()
    return None if row is None else (int(row[0]), bool(row[1]))


def feature_stamps(conn: sqlite3.Connection) -> list[tuple]:
    """(photo id, stamp text) of every feature row: what its embedding was made from (as dedupe stamps them)."""
    return conn.execute("SELECT photo_id, computed_at || '|' || coalesce(sha256, '') || '|' || model "
                        "FROM features WHERE phash8 IS NOT NULL ORDER BY photo_id").fetchall()


def embeddings(conn: sqlite3.Connection, ids: list[int] | None) -> list[tuple]:
    """(photo id, model, embedding blob) of ``ids`` (None: every feature row), in id order."""
    if ids is None:
        return conn.execute("SELECT photo_id, model, embedding FROM features WHERE phash8 IS NOT NULL "
                            "ORDER BY photo_id").fetchall()
    out: list[tuple] = []
    for k in range(0, len(ids), 900):
        part = [int(i) for i in ids[k:k + 900]]
        out += conn.execute("SELECT photo_id, model, embedding FROM features WHERE photo_id IN "
                            f"({', '.join('?' * len(part))}) ORDER BY photo_id", part).fetchall()
    out.sort(key=lambda r: r[0])
    return out


def iter_embeddings(conn: sqlite3.Connection, chunk: int):
    """Every feature row's (photo id, model, embedding blob), in id order, ``chunk`` rows at a time."""
    cur = conn.execute("SELECT photo_id, model, embedding FROM features WHERE phash8 IS NOT NULL ORDER BY photo_id")
    while rows := cur.fetchmany(chunk):
        yield rows


def result_rows(conn: sqlite3.Connection, ids: list[int]) -> dict[int, tuple]:
    """photo id -> (path, captured_at, thumb) for the photos a query returns."""
    out: dict[int, tuple] = {}
    for k in range(0, len(ids), 900):
        part = [int(i) for i in ids[k:k + 900]]
        for r in conn.execute("SELECT p.id, p.path, p.captured_at, f.thumb FROM photos p LEFT JOIN features f "
                              f"ON f.photo_id = p.id WHERE p.id IN ({', '.join('?' * len(part))})", part):
            out[r[0]] = (r[1], r[2], r[3])
    return out


def photo_details(conn: sqlite3.Connection, photo_id: int) -> dict:
    """What the find widget shows for one photo: path, date, camera, rating, people, place, event, thumb."""
    pid = int(photo_id)
    row = conn.execute("SELECT p.path, p.captured_at, p.camera_make, p.camera_model, p.kind, p.status, f.thumb "
                       "FROM photos p LEFT JOIN features f ON f.photo_id = p.id WHERE p.id = ?", (pid,)).fetchone()
    if row is None:
        return {}
    rating = conn.execute("SELECT rating FROM ratings WHERE photo_id = ?", (pid,)).fetchone()
    people = [r[0] for r in conn.execute(
        "SELECT DISTINCT coalesce(person, suggestion || ' (suggested)') FROM faces WHERE photo_id = ? AND "
        "rejected = 0 AND coalesce(person, suggestion) IS NOT NULL ORDER BY 1", (pid,))]
    place = conn.execute("SELECT country, region, city, confirmed FROM places WHERE photo_id = ? AND confirmed >= 0",
                         (pid,)).fetchone()
    event = conn.execute("SELECT e.name FROM photo_events pe JOIN events e ON e.id = pe.event_id "
                         "WHERE pe.photo_id = ?", (pid,)).fetchone()
    return {"path": row[0], "captured_at": row[1],
            "camera": " ".join(x for x in (row[2], row[3]) if x) or None, "kind": row[4], "status": row[5],
            "thumb": row[6], "rating": rating[0] if rating else None, "people": people,
            "place": None if place is None else {"country": place[0], "region": place[1], "city": place[2],
                                                 "confirmed": bool(place[3])},
            "event": event[0] if event else None}
