"""Events: photos grouped by when (and where) they were taken.

Photos are sorted by capture time; a new event starts where the gap to the
previous photo exceeds ``gap_hours`` (default 6: a day out stays one event, the
next morning starts another), or where two consecutive photos that both have
GPS lie more than ``max_km`` apart (default 50) with at least ``min_travel_hours``
(default 1) between them. Standalone videos take part by their own capture time,
so a clip joins the event of the photos taken around it. Only real capture dates count (EXIF, GPS time or a
date in the file name; a file's modification time is not a capture date unless
``use_file_dates=True``); photos without one belong to no event.

An event's name is its date (``2025-06-14`` for one day, ``2024-08`` for
several) followed by its dominant tag — the most common accepted events or
places tag, if at least a third of its photos carry it — e.g.
``2025-06-14 Birthday``, ``2024-08 Beach``.

A person's edits are kept by photo id in ``event_edits`` and re-applied on
every run: :func:`rename_event`, :func:`merge_events` and :func:`split_event`.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections import Counter
from dataclasses import dataclass

from .catalog import utcnow
from .index import USABLE
from .library import open_library
from .places import event_city

REAL_DATE_SOURCES = ("DateTimeOriginal", "CreationDate", "CreateDate", "GPSDateTime", "FileName")


@dataclass(frozen=True)
class EventOptions:
    """How photos are grouped into events (see the module text)."""

    gap_hours: float = 6.0
    max_km: float = 50.0
    min_travel_hours: float = 1.0
    use_file_dates: bool = False
    dominant_share: float = 1 / 3


def date_sources(options: EventOptions) -> tuple[str, ...]:
    """The capture-time sources that count as a real date under ``options``."""
    return REAL_DATE_SOURCES + (("FileModifyDate",) if options.use_file_dates else ())


def capture_time(row, options: EventOptions) -> _dt.datetime | None:
    """A photo row's capture time (wall clock) if it comes from a real date source, else None."""
    return parse_time(row["captured_at"]) if row["captured_source"] in date_sources(options) else None


def parse_time(value: str | None) -> _dt.datetime | None:
    """The wall-clock time of an ISO 8601 capture time (its offset dropped: local time is what groups)."""
    if not value:
        return None
    try:
        t = _dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return t.replace(tzinfo=None)


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 6371.0 * 2 * math.asin(min(1.0, math.sqrt(h)))


def _title(tag: str) -> str:
    return tag.replace("_", " ").title()


_DATED = ("SELECT id, captured_at, captured_source, gps_lat, gps_lon FROM photos "
          "WHERE kind IN ('photo', 'raw', 'video') AND status IN ({usable}) "
          "AND captured_at IS NOT NULL AND captured_source IN ({sources})")


def _merged(spans: list) -> list:
    """Overlapping or touching (start, end) spans joined, in time order."""
    out: list = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _scope(lib, photo_ids, opts: EventOptions) -> tuple[list, set[int]]:
    """The dated photos whose events new photos can change, and the stored events they are in.

    Starting from each new photo's time widened by the gap, each window grows to the
    whole of every stored event it reaches (and of events a person merged with
    them) until nothing is added: beyond them, every neighbour is separated from the
    windows as it was before, so grouping the windows alone gives what grouping the
    library would. New photos years apart (a scanned album) make windows of their own,
    not one window over the years between them.
    """
    cat = lib.catalog
    sources = date_sources(opts)
    sql = _DATED.format(usable=", ".join("?" * len(USABLE)), sources=", ".join("?" * len(sources)))
    args = (*USABLE, *sources)
    new = [r for r in cat.query_ids(sql + " AND {ids}", photo_ids, args, column="id")
           if parse_time(r["captured_at"]) is not None]
    if not new:
        return [], set()
    gap = _dt.timedelta(hours=opts.gap_hours, minutes=1)
    spans = _merged([(t - gap, t + gap) for t in (parse_time(r["captured_at"]) for r in new)])
    rows = {r["id"]: r for r in new}
    merges = [(r[0], r[1]) for r in cat.query("SELECT photo_id, other_id FROM event_edits WHERE action = 'merge'")]
    touched: set[int] = set()
    looked: list = []          # the spans already read
    while True:
        for lo, hi in spans:
            if any(a <= lo and hi <= b for a, b in looked):
                continue
            for r in cat.query(sql + " AND captured_at >= ? AND captured_at < ?",
                               (*args, (lo - _dt.timedelta(days=1)).date().isoformat(),
                                (hi + _dt.timedelta(days=2)).date().isoformat())):
                t = parse_time(r["captured_at"])
                if t is not None and lo <= t <= hi:
                    rows[r["id"]] = r
        looked = list(spans)
        events_of = {r["event_id"] for r in cat.query_ids("SELECT event_id FROM photo_events WHERE {ids}", rows)}
        others = {b for a, b in merges if a in rows} | {a for a, b in merges if b in rows}
        linked = {r["event_id"] for r in cat.query_ids("SELECT event_id FROM photo_events WHERE {ids}", others)}
        grown = (events_of | linked) - touched
        if not grown:
            break
        touched |= grown
        members = cat.query_ids(sql + " AND id IN (SELECT photo_id FROM photo_events WHERE {ids})", grown, args,
                                column="event_id")
        by_event: dict = {}
        for r in members:
            rows[r["id"]] = r
        for r in cat.query_ids("SELECT photo_id, event_id FROM photo_events WHERE {ids}", [r["id"] for r in members]):
            by_event.setdefault(r[1], []).append(r[0])
        for ids_ in by_event.values():
            ts = [t for t in (parse_time(rows[i]["captured_at"]) for i in ids_ if i in rows) if t is not None]
            if ts:
                spans.append((min(ts), max(ts)))
        spans = _merged(spans)
    return list(rows.values()), touched


def detect_events(library, *, options: EventOptions | None = None, photo_ids=None):
    """Group the library's photos into events and store them; returns the events as a DataFrame.

    Args:
        photo_ids: new photos (a watched import): only the events they can change are
            grouped again (see :func:`_scope`); the others stay as stored.

    Returns:
        A DataFrame indexed by event id with columns ``name``, ``auto_name``,
        ``start``, ``end``, ``photos``, ``lat``, ``lon``, ``dominant``.
    """
    from .taxonomy import load_taxonomy
    from .tagging import accepted_tags

    opts = options or EventOptions()
    lib = open_library(library)
    cat = lib.catalog
    sources = date_sources(opts)
    touched: set[int] = set()
    if photo_ids is not None:
        rows, touched = _scope(lib, [int(i) for i in photo_ids], opts)
        if not rows:
            return events(lib)
    else:
        rows = cat.query(_DATED.format(usable=", ".join("?" * len(USABLE)), sources=", ".join("?" * len(sources))),
                         (*USABLE, *sources))
    items = [(t, r["id"], (r["gps_lat"], r["gps_lon"]) if r["gps_lat"] is not None else None)
             for r in rows if (t := parse_time(r["captured_at"])) is not None]
    items.sort(key=lambda x: (x[0], x[1]))
    edits = cat.query("SELECT action, photo_id, other_id, value FROM event_edits ORDER BY id")
    splits = {e["photo_id"] for e in edits if e["action"] == "split"}

    groups: list[list] = []
    for i, item in enumerate(items):
        if i == 0:
            groups.append([item])
            continue
        prev = items[i - 1]
        gap_h = (item[0] - prev[0]).total_seconds() / 3600
        far = (item[2] is not None and prev[2] is not None and gap_h >= opts.min_travel_hours
               and _km(item[2], prev[2]) > opts.max_km)
        if gap_h > opts.gap_hours or far or item[1] in splits:
            groups.append([item])
        else:
            groups[-1].append(item)

    # a person's merges: union the events that hold the two photos
    where = {pid: gi for gi, g in enumerate(groups) for _, pid, _ in g}
    parent = list(range(len(groups)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for e in edits:
        if e["action"] == "merge" and e["photo_id"] in where and e["other_id"] in where:
            a, b = find(where[e["photo_id"]]), find(where[e["other_id"]])
            if a != b:
                parent[max(a, b)] = min(a, b)
    merged: dict[int, list] = {}
    for gi, g in enumerate(groups):
        merged.setdefault(find(gi), []).extend(g)
    groups = [sorted(g, key=lambda x: (x[0], x[1])) for _, g in sorted(merged.items())]

    tags = accepted_tags(lib) if photo_ids is None else accepted_tags(lib, photo_ids=[pid for _, pid, _ in items])
    tax = load_taxonomy(lib)
    named_categories = set(tax.by_category("events")) | set(tax.by_category("places"))
    renames = {}
    for e in edits:
        if e["action"] == "rename":
            renames[e["photo_id"]] = e["value"]

    now_rows, member_rows = [], []
    for g in groups:
        start, end = g[0][0], g[-1][0]
        date = start.strftime("%Y-%m-%d") if start.date() == end.date() else start.strftime("%Y-%m")
        counts = Counter(t for _, pid, _ in g for t in tags.get(pid, ()) if t in named_categories)
        dominant = None
        if counts:
            tag, n = max(counts.items(), key=lambda kv: (tax[kv[0]].category == "events", kv[1], kv[0]))
            if n >= opts.dominant_share * len(g):
                dominant = tag
        auto = f"{date} {_title(dominant)}" if dominant else date
        city = event_city(lib, [pid for _, pid, _ in g])   # from the places photolab looked up (if any)
        if city:
            auto = f"{auto} {city}"
        name = auto
        for _, pid, _ in g:  # the latest rename of any photo in the event wins
            if pid in renames:
                name = renames[pid]
        gps = [p for _, _, p in g if p is not None]
        lat = sum(p[0] for p in gps) / len(gps) if gps else None
        lon = sum(p[1] for p in gps) / len(gps) if gps else None
        event_id = g[0][1]   # the event's earliest photo: stable across re-runs, what edits refer to
        now_rows.append((event_id, name, auto, start.isoformat(), end.isoformat(), len(g), lat, lon, dominant))
        member_rows.extend((pid, event_id) for _, pid, _ in g)

    with cat.write() as db:
        if photo_ids is None:
            db.execute("DELETE FROM photo_events")
            db.execute("DELETE FROM events")
        else:   # the window's photos and the events they were in, replaced
            ids = [pid for _, pid, _ in items]
            for k in range(0, len(ids), 900):
                db.execute(f"DELETE FROM photo_events WHERE photo_id IN ({', '.join('?' * len(ids[k:k + 900]))})",
                           ids[k:k + 900])
            old = sorted(touched)
            for k in range(0, len(old), 900):
                db.execute(f"DELETE FROM photo_events WHERE event_id IN ({', '.join('?' * len(old[k:k + 900]))})",
                           old[k:k + 900])
                db.execute(f"DELETE FROM events WHERE id IN ({', '.join('?' * len(old[k:k + 900]))})", old[k:k + 900])
        db.executemany("INSERT INTO events(id, name, auto_name, start, end, photos, lat, lon, dominant) "
                       "VALUES (?,?,?,?,?,?,?,?,?)", now_rows)
        db.executemany("INSERT INTO photo_events(photo_id, event_id) VALUES (?,?)", member_rows)
    return events(lib)


def events(library):
    """The stored events (from the last :func:`detect_events`) as a DataFrame indexed by event id."""
    lib = open_library(library)
    return lib.catalog.dataframe(
        "SELECT id, name, auto_name, start, end, photos, lat, lon, dominant FROM events ORDER BY start",
        index_col="id")


def event_photos(library, event_id: int):
    """The photos of one event: id, path, captured_at."""
    lib = open_library(library)
    return lib.catalog.dataframe(
        "SELECT p.id, p.path, p.captured_at FROM photo_events e JOIN photos p ON p.id = e.photo_id "
        "WHERE e.event_id = ? ORDER BY p.captured_at, p.id", (int(event_id),), index_col="id")


def _edit(lib, action: str, photo_id: int, other_id: int | None = None, value: str | None = None) -> None:
    with lib.catalog.write() as db:
        db.execute("INSERT INTO event_edits(action, photo_id, other_id, value, at) VALUES (?,?,?,?,?)",
                   (action, int(photo_id), other_id, value, utcnow()))


def _require_event(lib, event_id: int) -> None:
    if not lib.catalog.query("SELECT 1 FROM events WHERE id = ?", (int(event_id),)):
        raise KeyError(f"no event {event_id}; run detect_events first")


def rename_event(library, event_id: int, name: str) -> None:
    """Give an event a name of the user's; kept across re-runs."""
    lib = open_library(library)
    _require_event(lib, event_id)
    name = " ".join(str(name).split())
    if not name:
        raise ValueError("an event name cannot be empty")
    _edit(lib, "rename", event_id, value=name)
    with lib.catalog.write() as db:
        db.execute("UPDATE events SET name = ? WHERE id = ?", (name, int(event_id)))


def merge_events(library, event_id: int, other_id: int):
    """Make two events one; kept across re-runs. Returns the events afterwards."""
    lib = open_library(library)
    _require_event(lib, event_id)
    _require_event(lib, other_id)
    _edit(lib, "merge", event_id, other_id=int(other_id))
    return detect_events(lib)


def split_event(library, photo_id: int):
    """Start a new event at ``photo_id`` (it and the later photos of its event); kept across re-runs."""
    lib = open_library(library)
    row = lib.catalog.query("SELECT event_id FROM photo_events WHERE photo_id = ?", (int(photo_id),))
    if not row:
        raise KeyError(f"photo {photo_id} is in no event")
    ids = list(event_photos(lib, row[0][0]).index)
    cut = ids.index(int(photo_id))
    before, after = set(ids[:cut]), set(ids[cut:])
    with lib.catalog.write() as db:  # earlier merges across the cut no longer hold
        for e in db.execute("SELECT id, photo_id, other_id FROM event_edits WHERE action = 'merge'").fetchall():
            a, b = e["photo_id"], e["other_id"]
            if (a in before and b in after) or (a in after and b in before):
                db.execute("DELETE FROM event_edits WHERE id = ?", (e["id"],))
    _edit(lib, "split", photo_id)
    return detect_events(lib)


__all__ = ["EventOptions", "capture_time", "date_sources", "detect_events", "event_photos", "events", "merge_events", "parse_time", "rename_event",
           "split_event"]
