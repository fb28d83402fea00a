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

:func:`plan` groups the events in memory and writes nothing (organize's plan
uses it); :func:`apply` stores a plan; :func:`detect_events` does both. A plan records a stamp of what it
read (the dated photos, the stored events it replaces, a person's edits): when that changed before the plan
is applied (the watcher filed a photo, a person renamed, split or merged an event), :func:`apply` groups the
events again from the catalog as it is then and stores those, so nothing stored since is lost.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import math
from collections import Counter
from dataclasses import dataclass

from photolab.store.catalog import utcnow
from photolab.stages.index import USABLE
from photolab.core.library import open_library
from photolab.stages.places import event_city
from photolab.plans import Plan, library_and_plan
from photolab.store import events as store

log = logging.getLogger(__name__)

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
    conn = lib.catalog.conn
    sources = date_sources(opts)
    new = [r for r in store.dated_photos(conn, USABLE, sources, photo_ids) if parse_time(r["captured_at"]) is not None]
    if not new:
        return [], set()
    gap = _dt.timedelta(hours=opts.gap_hours, minutes=1)
    spans = _merged([(t - gap, t + gap) for t in (parse_time(r["captured_at"]) for r in new)])
    rows = {r["id"]: r for r in new}
    merges = store.merges(conn)
    touched: set[int] = set()
    looked: list = []          # the spans already read
    while True:
        for lo, hi in spans:
            if any(a <= lo and hi <= b for a, b in looked):
                continue
            for r in store.dated_photos_between(conn, USABLE, sources, (lo - _dt.timedelta(days=1)).date().isoformat(),
                                                (hi + _dt.timedelta(days=2)).date().isoformat()):
                t = parse_time(r["captured_at"])
                if t is not None and lo <= t <= hi:
                    rows[r["id"]] = r
        looked = list(spans)
        events_of = store.events_of(conn, rows)
        others = {b for a, b in merges if a in rows} | {a for a, b in merges if b in rows}
        linked = store.events_of(conn, others)
        grown = (events_of | linked) - touched
        if not grown:
            break
        touched |= grown
        members = store.dated_members(conn, USABLE, sources, grown)
        by_event: dict = {}
        for r in members:
            rows[r["id"]] = r
        for pid, eid in store.memberships(conn, [r["id"] for r in members]):
            by_event.setdefault(eid, []).append(pid)
        for ids_ in by_event.values():
            ts = [t for t in (parse_time(rows[i]["captured_at"]) for i in ids_ if i in rows) if t is not None]
            if ts:
                spans.append((min(ts), max(ts)))
        spans = _merged(spans)
    return list(rows.values()), touched


EVENT_COLUMNS = ["id", "name", "auto_name", "start", "end", "photos", "lat", "lon", "dominant"]


def plan(library, *, options: EventOptions | None = None, photo_ids=None) -> Plan:
    """Group the library's photos into events, in memory; changes nothing (:func:`apply` stores the result).

    Args:
        photo_ids: new photos (a watched import): only the events they can change are
            grouped again (see :func:`_scope`); the others stay as stored.

    Returns:
        A :class:`~photolab.plans.Plan` whose ``rows`` are the events grouped (all of them, or with
        ``photo_ids`` those of the window grouped again) as a DataFrame indexed by event id with columns
        ``name``, ``auto_name``, ``start``, ``end``, ``photos``, ``lat``, ``lon``, ``dominant``, in start
        order; ``detail["members"]``: (photo id, event id) of each grouped photo; ``detail["photos"]`` and
        ``detail["events"]``: with ``photo_ids``, the photos and the stored events the plan replaces
        (None: every event is replaced).
    """
    import pandas as pd

    opts = options or EventOptions()
    lib = open_library(library)
    asked = None if photo_ids is None else sorted({int(i) for i in photo_ids})
    rows, touched, edits = _read(lib, asked, opts)
    items = [(t, r["id"], (r["gps_lat"], r["gps_lon"]) if r["gps_lat"] is not None else None)
             for r in rows if (t := parse_time(r["captured_at"])) is not None]
    items.sort(key=lambda x: (x[0], x[1]))
    now_rows, member_rows = _group(lib, items, opts, whole=asked is None, edits=edits) if items else ([], [])
    df = pd.DataFrame(now_rows, columns=EVENT_COLUMNS).set_index("id").sort_values("start", kind="stable")
    scoped = asked is not None
    return Plan("events", df, why=("the events of the photos grouped again replace the stored ones" if scoped else
                                   "the events grouped replace every stored event"),
                library=lib, detail={"members": member_rows,
                                     "photos": [pid for _, pid, _ in items] if scoped else None,
                                     "events": sorted(touched) if scoped else None,
                                     "asked": asked, "options": opts, "stamp": _stamp(rows, touched, edits)})


def _read(lib, asked, opts: EventOptions) -> tuple[list, set[int], list]:
    """What a plan groups: (the dated photo rows, the stored events they replace, a person's edits)."""
    conn = lib.catalog.conn
    if asked is None:
        rows, touched = store.dated_photos(conn, USABLE, date_sources(opts)), set()
    else:
        rows, touched = _scope(lib, asked, opts)
    return rows, touched, store.edits(conn)


def _stamp(rows, touched, edits) -> str:
    """A digest of what a plan read (:func:`_read`): another digest at apply means the catalog changed."""
    h = hashlib.sha1()
    for r in sorted(rows, key=lambda r: r["id"]):
        h.update(f"{r['id']}|{r['captured_at']}|{r['captured_source']}|{r['gps_lat']}|{r['gps_lon']}\n".encode())
    h.update(f"events {sorted(touched)}\n".encode())
    for e in edits:
        h.update(f"{e['action']}|{e['photo_id']}|{e['other_id']}|{e['value']}\n".encode())
    return h.hexdigest()


def _current(lib, made: Plan) -> Plan:
    """``made`` if the catalog still holds what it read, else the events grouped again from the catalog now."""
    detail = made.detail
    if "stamp" not in detail or _stamp(*_read(lib, detail["asked"], detail["options"])) == detail["stamp"]:
        return made
    log.warning("the catalog changed since the events plan was made (a photo filed, an event renamed, split or "
                "merged): the events are grouped again from the catalog as it is now")
    return plan(lib, options=detail["options"], photo_ids=detail["asked"])


def _group(lib, items: list, opts: EventOptions, *, whole: bool, edits=None) -> tuple[list, list]:
    """(event rows, (photo id, event id) rows) of dated ``items`` (time, id, gps), sorted by time."""
    from photolab.core.taxonomy import load_taxonomy
    from photolab.stages.tagging import accepted_tags

    edits = store.edits(lib.catalog.conn) if edits is None else edits
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

    tags = accepted_tags(lib) if whole else accepted_tags(lib, photo_ids=[pid for _, pid, _ in items])
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
    return now_rows, member_rows


def apply(library, plan: Plan | None = None, **_) -> int:
    """Store the events of a :func:`plan` (replacing the ones it replaces); returns the events stored.

    Called as ``apply(plan)`` or ``apply(library, plan)`` (the library the plan was made for). When the
    catalog changed since the plan was made (its stamp differs), the events are grouped again from the
    catalog as it is now and those are stored."""
    library, plan = library_and_plan(library, plan)
    if plan.stage != "events":
        raise ValueError(f"events.apply takes an events plan, not a {plan.stage} plan")
    lib = open_library(library)
    plan = _current(lib, plan)
    rows = [(int(eid), name, auto, start, end, int(n), _number(lat), _number(lon), dom if isinstance(dom, str) else None)
            for eid, (name, auto, start, end, n, lat, lon, dom)
            in zip(plan.rows.index, plan.rows[EVENT_COLUMNS[1:]].itertuples(index=False, name=None))]
    members = plan.detail["members"]
    if plan.detail["photos"] is None:
        with lib.catalog.write() as db:
            store.replace_all(db, rows, members)
    elif plan.detail["photos"] or plan.detail["events"]:   # the window's photos and the events they were in
        with lib.catalog.write() as db:
            store.replace_some(db, plan.detail["photos"], plan.detail["events"], rows, members)
    return len(rows)


def _number(v) -> float | None:
    return None if v is None or v != v else float(v)


def detect_events(library, *, options: EventOptions | None = None, photo_ids=None):
    """Group the library's photos into events and store them (:func:`plan`, then :func:`apply`); returns the
    stored events as a DataFrame (as :func:`events`)."""
    lib = open_library(library)
    apply(lib, plan(lib, options=options, photo_ids=photo_ids))
    return events(lib)


def events(library):
    """The stored events (from the last :func:`detect_events`) as a DataFrame indexed by event id."""
    return store.events_table(open_library(library).catalog.conn)


def event_photos(library, event_id: int):
    """The photos of one event: id, path, captured_at."""
    return store.event_photos(open_library(library).catalog.conn, event_id)


def _edit(lib, action: str, photo_id: int, other_id: int | None = None, value: str | None = None) -> None:
    with lib.catalog.write() as db:
        store.add_edit(db, action, photo_id, other_id, value, utcnow())


def _require_event(lib, event_id: int) -> None:
    if not store.event_exists(lib.catalog.conn, event_id):
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
        store.rename(db, event_id, name)


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
    event_id = store.event_of(lib.catalog.conn, photo_id)
    if event_id is None:
        raise KeyError(f"photo {photo_id} is in no event")
    ids = list(event_photos(lib, event_id).index)
    cut = ids.index(int(photo_id))
    before, after = set(ids[:cut]), set(ids[cut:])
    with lib.catalog.write() as db:  # earlier merges across the cut no longer hold
        for e in store.merge_edits(db):
            a, b = e["photo_id"], e["other_id"]
            if (a in before and b in after) or (a in after and b in before):
                store.drop_edit(db, e["id"])
    _edit(lib, "split", photo_id)
    return detect_events(lib)


__all__ = ["EventOptions", "apply", "capture_time", "date_sources", "detect_events", "event_photos", "events",
           "merge_events", "parse_time", "plan", "rename_event", "split_event"]
