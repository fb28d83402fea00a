"""What to write per photo: the options, each photo's :class:`Decision` from the catalog, and the values
a file should end up with once merged with what it already holds."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from photolab.stages.index import USABLE
from photolab.core.library import open_library
from photolab.store import metadata as q
from photolab.store.watch import rows_by_id as by_id
from photolab.core.taxonomy import load_taxonomy
from photolab.stages.metadata.fields import (AUTO_RATING_TAGS, IPTC_MAX_BYTES, IPTC_UTF8, K_AUTORATING, K_CONF, K_HIER, K_IPTC_CS,
                     K_IPTC_KW, K_MODEL, K_MSRATING, K_RATING, K_REGIONS_DIGEST, K_REVIEWED, K_SUBJECT, K_TAGS,
                     K_TAGSLIST, MS_RATING, NAMING, REVIEW_FIRST, WHERE, Embedded, region_values, regions_digest)


@dataclass
class WriteOptions:
    """Where and what :func:`write_metadata` writes.

    Attributes:
        where: ``in-file``, ``sidecar`` or ``both``. Photos that cannot be written
            in place get a sidecar whatever this says.
        sidecar_naming: ``ext`` (``IMG_1.jpg.xmp``) or ``stem`` (``IMG_1.xmp``) for new sidecars.
        write_unreviewed: categories among ``people``/``places`` whose tags are written
            without a person's confirmation (default none).
        auto_rating: suggest a rating from quality where a file has none.
        iptc: write IPTC keywords too (in-file only; sidecars are XMP).
    """

    where: str = "in-file"
    sidecar_naming: str = "ext"
    write_unreviewed: tuple[str, ...] = ()
    auto_rating: bool = True
    iptc: bool = True

    def __post_init__(self):
        if self.where not in WHERE:
            raise ValueError(f"where must be one of {', '.join(WHERE)}, got {self.where!r}")
        if self.sidecar_naming not in NAMING:
            raise ValueError(f"sidecar_naming must be 'ext' or 'stem', got {self.sidecar_naming!r}")
        bad = set(self.write_unreviewed) - set(REVIEW_FIRST)
        if bad:
            raise ValueError(f"write_unreviewed takes {', '.join(REVIEW_FIRST)}; not {', '.join(sorted(bad))}")
        self.write_unreviewed = tuple(self.write_unreviewed)


@dataclass
class Decision:
    """What photolab has decided about one photo, as it goes into the file."""

    tags: list[str]                      # 'category|tag', taxonomy order
    confidence: dict[str, float]
    reviewed: list[str]                  # tags a person confirmed
    rating: int | None                   # a person's rating (photolab's catalog), written as is
    auto_rating: int | None              # the quality suggestion, only where a file has no rating
    model: str | None
    places: list[str] = field(default_factory=list)   # 'Places|Country|Region|City', confirmed
    people: list[str] = field(default_factory=list)   # 'People|Name', named by a person
    faces: list[dict] = field(default_factory=list)   # named faces: name, area, size (see region_values)

    def digest(self, opts: WriteOptions) -> str:
        blob = json.dumps([self.tags, sorted(self.confidence.items()), self.reviewed, self.rating,
                           self.auto_rating, self.model, self.places, self.people, self.faces, asdict(opts)],
                          sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def decisions_for_writing(library, options: WriteOptions | None = None, photo_ids=None) -> dict[int, Decision]:
    """Per usable photo (or per photo of ``photo_ids``), the :class:`Decision` that
    :func:`write_metadata` would write."""
    from photolab.stages.faces import named_faces, person_path
    from photolab.stages.places import path as place_path
    from photolab.stages.tagging import accepted_tags, thresholds

    opts = options or WriteOptions()
    lib = open_library(library)
    tax = load_taxonomy(lib)
    usable = ", ".join("?" * len(USABLE))
    # photo_ids: those photos' rows only, by id
    ids = [r[0] for r in by_id(lib.catalog.conn, photo_ids, "id",
                               f"kind IN ('photo', 'raw', 'video') AND status IN ({usable})", USABLE)]
    subset = None if photo_ids is None else ids
    accepted = accepted_tags(lib, photo_ids=subset)
    conn = lib.catalog.conn
    confirmed: dict[int, set[str]] = {}
    for pid, tag in q.confirmed_tags(conn, subset):
        confirmed.setdefault(pid, set()).add(tag)
    ratings = q.person_ratings(conn, subset)
    models = q.feature_models(conn, subset)
    score = q.tag_scores(conn, subset)
    lowest = 1 if "places" not in opts.write_unreviewed else 0
    place_of = {r["photo_id"]: place_path(dict(r)) for r in q.places(conn, subset, lowest)}
    named = named_faces(lib, subset, include_suggestions="people" in opts.write_unreviewed)
    thr = thresholds(lib, tax)
    out = {}
    for pid in ids:
        tags, conf = [], {}
        have = accepted.get(pid, set())
        mine = confirmed.get(pid, set())
        for name in tax.names:
            if name not in have:
                continue
            cat = tax[name].category
            if cat in REVIEW_FIRST and cat not in opts.write_unreviewed and name not in mine:
                continue
            tags.append(f"{cat}|{name}")
            if (pid, name) in score and thr.get(name) is not None:
                conf[name] = round(float(score[(pid, name)]), 2)
        auto = None
        if opts.auto_rating:
            hits = [AUTO_RATING_TAGS[t] for t in have if t in AUTO_RATING_TAGS]
            auto = min(hits) if hits else None
        out[pid] = Decision(tags=tags, confidence=conf, reviewed=sorted(t for t in mine if t in tax),
                            rating=ratings.get(pid), auto_rating=auto, model=models.get(pid),
                            places=[place_of[pid]] if pid in place_of else [],
                            people=sorted({person_path(f["name"]) for f in named.get(pid, [])}),
                            faces=named.get(pid, []))
    return out


def _iptc_safe(keyword: str) -> str:
    """A keyword cut to IPTC's 64 bytes of UTF-8, on a character boundary."""
    b = keyword.encode("utf-8")[:IPTC_MAX_BYTES]
    return b.decode("utf-8", errors="ignore")


def _keywords_of(paths) -> list[str]:
    """Flat keywords for photolab's hierarchical paths: a tag's name; every level of a place."""
    out = []
    for p in paths:
        levels = p.split("|")[1:] if p.startswith("Places|") else [p.split("|", 1)[-1]]
        out.extend(x for x in levels if x not in out)
    return out


def _merge(existing: list[str], ours: list[str], dropped: set[str]) -> list[str]:
    """``existing`` less what photolab wrote before and no longer gives, then ``ours`` not yet there."""
    keep = [x for x in existing if x not in dropped or x in ours]
    return keep + [x for x in ours if x not in keep]


def target_values(cur: Embedded, d: Decision, *, sidecar: bool, iptc: bool) -> tuple[dict, dict]:
    """(xmp, iptc) key -> value that the file should end up with (``None``: remove the key)."""
    prev = set(cur.photolab_tags)
    ours = list(d.tags) + list(d.places) + list(d.people)
    dropped = prev - set(ours)
    names = _keywords_of(ours)
    xmp: dict = {
        K_SUBJECT: _merge(cur.keywords, names, set(_keywords_of(sorted(dropped)))),
        K_HIER: _merge(cur.hierarchical, ours, dropped),
        K_TAGSLIST: _merge(cur.tags_list, [t.replace("|", "/") for t in ours], {t.replace("|", "/") for t in dropped}),
        K_TAGS: list(ours),
        K_CONF: ";".join(f"{k}={v:.2f}" for k, v in sorted(d.confidence.items()) if k in names) or None,
        K_MODEL: d.model if ours else None,
        K_REVIEWED: [t for t in d.reviewed if any(o.endswith("|" + t) for o in ours)],
    }
    # ratings: a person's (photolab's catalog) > one already in the file > the automatic suggestion
    ours_before = cur.auto_rating is not None and cur.rating == cur.auto_rating
    if d.rating is not None:
        rating, auto = d.rating, None
    elif cur.rating is not None and not ours_before:
        rating, auto = cur.rating, None   # the user's: untouched
    else:
        rating = auto = d.auto_rating
    if rating is not None and (d.rating is not None or auto is not None):
        xmp[K_RATING] = str(rating)
        xmp[K_MSRATING] = str(MS_RATING.get(rating, 0))
    elif ours_before:   # photolab's own earlier suggestion, no longer given
        xmp[K_RATING] = xmp[K_MSRATING] = None
    xmp[K_AUTORATING] = None if auto is None else str(auto)
    for k in (K_SUBJECT, K_HIER, K_TAGSLIST, K_TAGS, K_REVIEWED):
        if not xmp[k]:
            xmp[k] = None
    # face regions: only where the file has none or holds exactly what photolab wrote
    if not cur.regions or (cur.regions_digest and cur.regions_digest == regions_digest(cur.regions)):
        want = region_values(d.faces)
        if want != cur.regions:
            xmp.update({k: None for k in cur.regions if k not in want})
            xmp.update(want)
        xmp[K_REGIONS_DIGEST] = regions_digest(want)
    ipt: dict = {}
    if iptc and not sidecar:
        kw = _merge(cur.iptc_keywords, [_iptc_safe(n) for n in names], {_iptc_safe(t) for t in _keywords_of(dropped)})
        if kw != cur.iptc_keywords:
            ipt = {K_IPTC_KW: kw or None, K_IPTC_CS: IPTC_UTF8}
    return xmp, ipt
