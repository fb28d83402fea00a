"""Find photos: a query over tags, people, places, dates, ratings, things and likeness.

``find(library, "dog beach date:2019-06..2019-08")`` returns a DataFrame of photo id,
path, why each photo matched and a score; ``photolab find LIBRARY QUERY`` prints the
paths. The language is in :mod:`photolab.stages.query` and the README ("Finding photos").

Every term becomes a mask over the library's photos (and a score where it has one):
tags from the accepted decisions (score at or above the tag's threshold, a
person's labels on top), people from named faces (and confident suggestions),
places at any level, events, camera, capture date, rating, kind, format and
status from the catalog; things from the cached class probabilities
(:mod:`photolab.features.things`); ``like:`` from the cached unit embeddings dedupe keeps
(``.photolab/features/``, named by ``dedupe-features.json``). Results are ranked by the mean of
the matched scores (terms without one count as nothing), then by capture time.

``link_into`` makes an album folder of links to the results (hard links on the same
file system, else symbolic links); the photos themselves never move.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
from dataclasses import dataclass
from functools import reduce
from pathlib import Path

import numpy as np

from photolab.stages import query as Q
from photolab.core.errors import PhotolabError
from photolab.core.library import open_library
from photolab.stages.query import QueryError
from photolab.store import find as store

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 100
LIKE_K = 200               # like: returns at most this many neighbours ...
LIKE_MIN = 0.1             # ... with at least this cosine similarity
LIKE_SHORTLIST = 4000      # above this many photos, exact cosines only for the nearest in the PCA projection
BOUNDED_MAX = 50_000       # a query its terms bound to at most this many photos reads only their rows
RESULT_COLUMNS = ["photo_id", "path", "why", "score", "captured_at"]
ALBUM_MANIFEST = ".photolab-album.json"


class AlbumError(PhotolabError, RuntimeError):
    """An album folder cannot be made or refreshed; the message names the folder and what to do."""


@dataclass
class _Eval:
    mask: np.ndarray           # bool over the universe
    score: np.ndarray | None   # float32 over the universe (NaN: no score), or None: the term has none
    leaves: list               # (label, mask, score) of the positive terms, for "why"


class _Unbounded(Exception):
    """A term that can match photos no catalog query names (a date range, a negation)."""


class _Ctx:
    def __init__(self, lib, query_text: str, tree):
        self.lib, self.conn, self.text = lib, lib.catalog.conn, query_text
        self.ids: np.ndarray | None = None       # the photos the query is evaluated over (see load_universe)
        self.captured: np.ndarray | None = None
        self._seen: list | None = None
        self._tax = None
        self._names: dict[str, dict[str, str]] = {}
        self._tagged: bool | None = None
        self._probs = None

    # -- lookups ------------------------------------------------------------------------------
    @property
    def taxonomy(self):
        if self._tax is None:
            from photolab.core.taxonomy import load_taxonomy

            self._tax = load_taxonomy(self.lib)
        return self._tax

    def names(self, kind: str) -> dict[str, str]:
        """lower-case name -> name, for people, places and events of this library."""
        if kind not in self._names:
            fn = {"person": store.person_names, "place": store.place_names, "event": store.event_names}[kind]
            self._names[kind] = {n.lower(): n for n in fn(self.conn) if n}
        return self._names[kind]

    def require_tagged(self, term: Q.Term) -> None:
        if self._tagged is None:
            self._tagged = store.any_tagged(self.conn)
        if not self._tagged:
            raise QueryError(f'query term "{term.text}" needs the tagging pass, which this library has not had yet; '
                             f"run `photolab tag {self.lib.root}` first")

    def load_universe(self, tree) -> None:
        """The photos ``tree`` is evaluated over: every photo a query can return, or, when each of its
        terms matches only photos its catalog query names (no date range, no negation), those photos
        alone, read by id; a photo outside them cannot match, so the result is the same."""
        any_status = any(t.field == "status" for t, _ in Q.terms(tree))
        try:
            bound = self._bound(tree)
        except _Unbounded:
            bound = None
        if bound is not None and len(bound) <= BOUNDED_MAX:
            ids, captured, usable = _universe(self.lib, bound)
        else:
            ids, captured, usable = _universe(self.lib)
        if any_status:
            self.ids, self.captured = ids, captured
        else:
            self.ids, self.captured = ids[usable], captured[usable]

    def _bound(self, node) -> np.ndarray | None:
        """The ids ``node`` can match at most (None: any photo); its terms are checked in the order
        :meth:`eval` takes them, so an error is the one evaluation would raise."""
        if isinstance(node, Q.Term):
            if node.field == "date":
                _date_range(node)
                return None
            self._seen = []
            try:
                self.term(node)
                return np.unique(np.concatenate(self._seen)) if self._seen else np.zeros(0, np.int64)
            finally:
                self._seen = None
        if isinstance(node, Q.Not):
            self._bound(node.child)
            return None
        parts = [self._bound(c) for c in node.children]
        if isinstance(node, Q.And):
            known = [p for p in parts if p is not None]
            return None if not known else reduce(np.intersect1d, known)
        return None if any(p is None for p in parts) else np.unique(np.concatenate(parts))

    def mask_of(self, pids, scores=None) -> tuple[np.ndarray, np.ndarray | None]:
        pids = np.asarray(pids, dtype=np.int64)
        if self._seen is not None:   # bounding (load_universe): note the ids, match nothing yet
            self._seen.append(pids)
            return np.zeros(0, dtype=bool), (None if scores is None else np.zeros(0, np.float32))
        mask = np.zeros(len(self.ids), dtype=bool)
        score = None if scores is None else np.full(len(self.ids), np.nan, np.float32)
        if len(pids) and len(self.ids):
            pos = np.clip(np.searchsorted(self.ids, pids), 0, len(self.ids) - 1)
            ok = self.ids[pos] == pids
            mask[pos[ok]] = True
            if score is not None:
                score[pos[ok]] = np.asarray(scores, dtype=np.float32)[ok]
        return mask, score

    def known_phrase(self, phrase: str, field: str | None = None) -> bool:
        from photolab.features import things

        low = phrase.lower()
        if field in ("person", "place", "event"):
            return low in self.names(field)
        if field == "tag":
            return self.taxonomy.resolve(phrase) is not None
        if field == "thing":
            return things.known(phrase)
        return (self.taxonomy.resolve(phrase) is not None or low in self.names("person")
                or low in self.names("place") or low in self.names("event") or things.known(phrase))

    # -- evaluation ---------------------------------------------------------------------------
    def eval(self, node) -> _Eval:
        if isinstance(node, Q.Term):
            label, mask, score = self.term(node)
            return _Eval(mask, score, [(label, mask, score)])
        if isinstance(node, Q.Not):
            inner = self.eval(node.child)
            label = "not " + " or ".join(dict.fromkeys(leaf[0] for leaf in inner.leaves))
            return _Eval(~inner.mask, None, [(label, ~inner.mask, None)])
        parts = [self.eval(c) for c in node.children]
        leaves = [leaf for p in parts for leaf in p.leaves]
        scored = [p.score for p in parts if p.score is not None]
        if isinstance(node, Q.And):
            mask = np.logical_and.reduce([p.mask for p in parts])
            score = None
            if scored:
                with np.errstate(invalid="ignore"), _quiet():
                    score = np.nanmean(np.stack(scored), axis=0)
            return _Eval(mask, score, leaves)
        mask = np.logical_or.reduce([p.mask for p in parts])
        score = None
        if scored:
            stack = np.stack([np.where(p.mask, p.score, np.nan) for p in parts if p.score is not None])
            with _quiet():
                score = np.nanmax(stack, axis=0)
        return _Eval(mask, score, leaves)

    def term(self, t: Q.Term):
        f = t.field
        if f is None:
            return self.bare(t)
        handler = getattr(self, f"t_{f}")
        return handler(t)

    def bare(self, t: Q.Term):
        from photolab.features import things

        value = t.value
        if self.taxonomy.resolve(value) is not None:
            return self.t_tag(t)
        low = value.lower()
        for kind, fn in (("person", self.t_person), ("place", self.t_place), ("event", self.t_event)):
            if low in self.names(kind):
                return fn(t)
        if things.resolve(value) is not None:
            return self.t_thing(t)
        near = self.nearest(value)
        hint = f"did you mean: {', '.join(near)}? " if near else ""
        raise QueryError(f'query term "{t.text}" (column {t.col}): no tag, person, place, event or thing '
                         f"photolab knows is called {value!r}; {hint}{Q.HELP}")

    def nearest(self, value: str) -> list[str]:
        import difflib

        from photolab.features import things

        pool = list(self.taxonomy._lookup) + list(self.names("person").values()) + \
            list(self.names("place").values()) + list(self.names("event").values())
        near = difflib.get_close_matches(value.lower(), [p.lower() for p in pool], n=3, cutoff=0.6)
        by_low = {p.lower(): p for p in pool}
        out = [by_low[n] for n in near]
        for w in things.nearest(value, n=5):
            if w not in out:
                out.append(w)
        return out[:5]

    def t_tag(self, t: Q.Term, *, category: str | None = None):
        name = self.taxonomy.resolve(t.value)
        if name is None or (category and self.taxonomy[name].category != category):
            pool = [x.name for x in self.taxonomy.tags if not category or x.category == category]
            import difflib

            near = difflib.get_close_matches(t.value.lower(), pool, n=3, cutoff=0.5)
            what = "quality tag" if category else "tag"
            raise QueryError(f'query term "{t.text}" (column {t.col}): no {what} {t.value!r} in the taxonomy '
                             f"({self.taxonomy.path or 'taxonomy.txt'}); "
                             + (f"did you mean: {', '.join(near)}? " if near else "")
                             + f"known: {', '.join(pool)}")
        self.require_tagged(t)
        from photolab.stages.tagging import thresholds

        thr = thresholds(self.lib, self.taxonomy)[name]
        rows = store.tag_scores(self.conn, name, thr)
        pids = np.array([r[0] for r in rows], dtype=np.int64)
        sc = np.array([r[1] for r in rows], dtype=np.float32)
        mask, score = self.mask_of(pids, sc)
        labeled = store.tag_label_scores(self.conn, name)   # a person's labels come on top
        if labeled:
            yes, _ = self.mask_of([r[0] for r in labeled if r[1]])
            no, _ = self.mask_of([r[0] for r in labeled if not r[1]])
            mask |= yes
            score[yes] = 1.0
            mask &= ~no
        if self.taxonomy[name].source == "head" and not len(rows):
            log.info("%s: no photo has a score for %s yet (train a head on corrections)", self.lib.root, name)
        return f"tag {name}", mask, score

    def t_quality(self, t: Q.Term):
        return self.t_tag(t, category="quality")

    def t_person(self, t: Q.Term):
        from photolab.stages.faces import CONFIDENT

        rows = store.person_photos(self.conn, t.value, CONFIDENT)
        if not rows and t.value.lower() not in self.names("person"):
            import difflib

            near = difflib.get_close_matches(t.value.lower(), list(self.names("person")), n=3, cutoff=0.6)
            names = [self.names("person")[n] for n in near]
            raise QueryError(f'query term "{t.text}" (column {t.col}): nobody called {t.value!r} in this library; '
                             + (f"did you mean: {', '.join(names)}? " if names else "")
                             + "name faces with `photolab faces` or notebook 09")
        mask, score = self.mask_of([r[0] for r in rows], [r[1] for r in rows])
        name = self.names("person").get(t.value.lower(), t.value)
        return f"person {name}", mask, score

    def t_place(self, t: Q.Term):
        rows = store.place_photos(self.conn, t.value)
        if not rows:
            import difflib

            near = difflib.get_close_matches(t.value.lower(), list(self.names("place")), n=3, cutoff=0.6)
            names = [self.names("place")[n] for n in near]
            raise QueryError(f'query term "{t.text}" (column {t.col}): no photo is placed in {t.value!r}; '
                             + (f"did you mean: {', '.join(names)}? " if names else "")
                             + "places come from GPS (`photolab places LIBRARY`)")
        mask, _ = self.mask_of([r[0] for r in rows])
        name = self.names("place").get(t.value.lower(), t.value)
        return f"place {name}", mask, None

    def t_event(self, t: Q.Term):
        exact = t.field is None
        rows = store.event_photos(self.conn, t.value, exact=exact)
        if not rows:
            raise QueryError(f'query term "{t.text}" (column {t.col}): no event named {t.value!r}; '
                             "list them with `photolab events LIBRARY`")
        mask, _ = self.mask_of([r[0] for r in rows])
        names = sorted({r[1] for r in rows})
        return f"event {', '.join(names[:3])}{'…' if len(names) > 3 else ''}", mask, None

    def t_camera(self, t: Q.Term):
        rows = store.camera_photos(self.conn, t.value)
        mask, _ = self.mask_of([r[0] for r in rows])
        return f"camera {t.value}", mask, None

    def t_date(self, t: Q.Term):
        start, end = _date_range(t)
        day = self.captured.astype("U10")     # the local date the photo was taken ("" when unknown)
        mask = day != ""
        if start:
            mask &= day >= start
        if end:
            mask &= day < end
        return f"date {t.value}", mask, None

    def t_rating(self, t: Q.Term):
        m = re.fullmatch(r"(>=|<=|>|<|=)?\s*(-?\d)", t.value.strip())
        r = re.fullmatch(r"(-?\d)\.\.(-?\d)", t.value.strip())
        if r:
            lo, hi = int(r.group(1)), int(r.group(2))
            rows = [x for x in store.rating_photos(self.conn, ">=", lo) if x[1] <= hi]
        elif m and -1 <= int(m.group(2)) <= 5:
            rows = store.rating_photos(self.conn, m.group(1) or "=", int(m.group(2)))
        else:
            raise QueryError(f'query term "{t.text}" (column {t.col}): a rating is -1 (rejected) to 5, written '
                             "rating:4, rating:>=3, rating:<2 or rating:3..5")
        mask, _ = self.mask_of([x[0] for x in rows])
        return f"rating {t.value}", mask, None

    def t_kind(self, t: Q.Term):
        kinds = ("photo", "raw", "video")
        if t.value.lower() not in kinds:
            raise QueryError(f'query term "{t.text}" (column {t.col}): kind is one of {", ".join(kinds)}')
        rows = store.kind_photos(self.conn, t.value.lower())
        mask, _ = self.mask_of([r[0] for r in rows])
        return f"kind {t.value.lower()}", mask, None

    def t_format(self, t: Q.Term):
        rows = store.format_photos(self.conn, t.value)
        mask, _ = self.mask_of([r[0] for r in rows])
        return f"format {t.value.upper()}", mask, None

    def t_status(self, t: Q.Term):
        known = ("ok", "warning", "empty", "corrupt", "unsupported", "too_large", "unreadable", "missing",
                 "quarantined")
        if t.value.lower() not in set(known) | set(store.statuses(self.conn)):
            raise QueryError(f'query term "{t.text}" (column {t.col}): status is one of {", ".join(known)}')
        rows = store.status_photos(self.conn, t.value.lower())
        mask, _ = self.mask_of([r[0] for r in rows])
        return f"status {t.value.lower()}", mask, None

    def t_thing(self, t: Q.Term):
        from photolab.features import things

        hit = things.resolve(t.value)
        if hit is None:
            near = things.nearest(t.value)
            raise QueryError(f'query term "{t.text}" (column {t.col}): photolab does not know the thing '
                             f"{t.value!r} (no ImageNet class or WordNet word over one); "
                             + (f"nearest words it knows: {', '.join(near)}" if near else
                                "try a more common noun (e.g. dog, pizza, guitar, lighthouse)"))
        self.require_tagged(t)
        word, wnids = hit
        if self._probs is None:
            self._probs = things.class_probabilities(self.lib)
        pids, probs = self._probs
        sc = things.scores(probs, things.classes(wnids))
        ok = sc >= things.THING_MIN
        mask, score = self.mask_of(pids[ok], sc[ok])
        return f"thing {word}", mask, score

    def t_like(self, t: Q.Term):
        self.require_tagged(t)
        pid = self.like_target(t)
        ids, sims = like(self.lib, pid, k=LIKE_K)
        ok = sims >= LIKE_MIN
        mask, score = self.mask_of(ids[ok], sims[ok])
        label = f"like {pid}" if t.value.strip().isdigit() else f"like {t.value}"
        return label, mask, score

    def like_target(self, t: Q.Term) -> int:
        v = t.value.strip()
        if v.isdigit() and store.photo_exists(self.conn, int(v)):
            return int(v)
        p = Path(v).expanduser()
        rel = None
        try:
            absolute = p if p.is_absolute() else (Path.cwd() / p)
            rel = self.lib.rel(absolute.resolve())
        except ValueError:
            rel = None
        for cand in (rel, v.replace(os.sep, "/")):
            if cand and (pid := store.photo_by_path(self.conn, cand)) is not None:
                return pid
        raise QueryError(f'query term "{t.text}" (column {t.col}): {v} is neither a photo id nor a photo of '
                         f"{self.lib.root}; give a photo's id or its path in the library (add other photos with "
                         "`photolab gather` and `photolab index` first)")


class _quiet:
    """Silence numpy's all-NaN warnings (a photo no scored term matched has no score: that is expected)."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


_DATE = re.compile(r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?$")


def _period(text: str, t: Q.Term) -> tuple[str, str]:
    """[first day, day after the last) of a year, month or day, as YYYY-MM-DD."""
    m = _DATE.match(text.strip())
    try:
        if not m:
            raise ValueError(text)
        y, mo, d = int(m.group(1)), m.group(2), m.group(3)
        if d:
            a = _dt.date(y, int(mo), int(d))
            b = a + _dt.timedelta(days=1)
        elif mo:
            a = _dt.date(y, int(mo), 1)
            b = _dt.date(y + (a.month == 12), a.month % 12 + 1, 1)
        else:
            a, b = _dt.date(y, 1, 1), _dt.date(y + 1, 1, 1)
    except ValueError:
        raise QueryError(f'query term "{t.text}" (column {t.col}): {text!r} is not a date; write date:2019, '
                         "date:2019-06, date:2019-06-15 or a range date:2019-06..2019-08") from None
    return a.isoformat(), b.isoformat()


def _date_range(t: Q.Term) -> tuple[str | None, str | None]:
    v = t.value.strip()
    if ".." in v:
        a, _, b = v.partition("..")
        start = _period(a, t)[0] if a else None
        end = _period(b, t)[1] if b else None
        if start is None and end is None:
            raise QueryError(f'query term "{t.text}" (column {t.col}): a date range needs at least one end, '
                             "e.g. date:2019-06..2019-08 or date:2019..")
        if start and end and start >= end:
            raise QueryError(f'query term "{t.text}" (column {t.col}): the range ends before it starts; '
                             "write the earlier date first")
        return start, end
    return _period(v, t)


def _universe(lib, only=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, captured_at as text, usable) of every photo a query can return, kept with the open catalog
    between queries until anyone commits to it (a library of 100,000 photos takes a quarter second to
    read, a query on the kept arrays a few milliseconds); ``only``: of those ids only, read by id."""
    cat = lib.catalog
    if only is not None:
        return _universe_arrays(store.universe(cat.conn, [int(i) for i in only]))
    stamp = store.change_stamp(cat.conn)
    hit = getattr(cat, "_find_universe", None)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    out = _universe_arrays(store.universe(cat.conn))
    cat._find_universe = (stamp, out)
    return out


def _universe_arrays(rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    captured = np.array([r[1] or "" for r in rows], dtype="U40") if rows else np.zeros(0, "U40")
    usable = np.fromiter((bool(r[2]) for r in rows), dtype=bool, count=len(rows))
    return ids, captured, usable


def _why(leaves, positions) -> list[str]:
    out = []
    for i in positions:
        parts = []
        for label, mask, score in leaves:
            if mask[i]:
                parts.append(f"{label} {score[i]:.2f}" if score is not None and not np.isnan(score[i]) else label)
        out.append("; ".join(dict.fromkeys(parts)))
    return out


def find(library, query: str, *, limit: int | None = DEFAULT_LIMIT):
    """The photos that match ``query``, best first.

    Args:
        library: a :class:`~photolab.core.library.Library` or its folder.
        query: the query text (see the README's "Finding photos" table), e.g.
            ``"dog beach date:2019-06..2019-08 -blurry"``, ``"person:Anna place:Italy"``, ``"like:123"``.
        limit: at most this many rows (None: every match).

    Returns:
        A DataFrame with columns ``photo_id``, ``path`` (relative to the library), ``why`` (the terms
        it matched, with their scores), ``score`` (the mean of the matched scores; empty when no term
        has one) and ``captured_at``; ranked by score, then capture time.

    Raises:
        QueryError: the query cannot be read, names something unknown (with the nearest known words)
            or needs a tagging pass the library has not had (it says to run ``photolab tag``).
    """
    import pandas as pd

    lib = open_library(library)
    tree0 = Q.parse(query)   # syntax errors first, before anything is read
    ctx = _Ctx(lib, query, tree0)
    tree = Q.parse(query, known_phrase=ctx.known_phrase)
    ctx.load_universe(tree)
    res = ctx.eval(tree)
    pos = np.flatnonzero(res.mask)
    score = res.score[pos] if res.score is not None else np.full(len(pos), np.nan, np.float32)
    cap = ctx.captured[pos]
    cap = np.where(cap == "", "9999", cap)
    # rank: score (high first; no score last), then capture time (earliest first), then id
    order = np.lexsort((ctx.ids[pos], cap, np.where(np.isnan(score), 1.0, -score)))
    if limit is not None:
        order = order[:max(0, int(limit))]
    sel = pos[order]
    ids = [int(x) for x in ctx.ids[sel]]
    rows = store.result_rows(ctx.conn, ids)
    df = pd.DataFrame({
        "photo_id": ids,
        "path": [rows[i][0] for i in ids],
        "why": _why(res.leaves, sel),
        "score": [None if np.isnan(score[k]) else round(float(score[k]), 4) for k in order],
        "captured_at": [rows[i][1] for i in ids],
    }, columns=RESULT_COLUMNS)
    df["score"] = df["score"].astype(float)
    log.info("find %r in %s: %d of %d photos", query, lib.root, int(res.mask.sum()), len(ctx.ids))
    return df


def like(library, photo_id: int, *, k: int = LIKE_K) -> tuple[np.ndarray, np.ndarray]:
    """(photo ids, cosine similarities) of the ``k`` photos whose embeddings are nearest ``photo_id``'s,
    most similar first (the photo itself left out), from the unit embeddings dedupe caches."""
    lib = open_library(library)
    ids, emb, low = unit_embeddings(lib)
    pos = int(np.searchsorted(ids, photo_id))
    if pos >= len(ids) or ids[pos] != photo_id:
        raise QueryError(f"photo {photo_id} ({lib.root}) has no embedding yet; run `photolab tag {lib.root}`")
    k = min(k, len(ids) - 1)
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    q = emb[[pos]][0].astype(np.float32)
    if low is not None and len(ids) > LIKE_SHORTLIST:
        # a large library: a shortlist from dedupe's PCA projection, then exact cosines over it
        rough = low @ low[pos]
        rough[pos] = -np.inf
        cand = np.argpartition(-rough, LIKE_SHORTLIST - 1)[:LIKE_SHORTLIST]
        sims_c = emb[cand].astype(np.float32) @ q
        top = np.argpartition(-sims_c, k - 1)[:k]
        top = top[np.argsort(-sims_c[top], kind="stable")]
        return ids[cand[top]], sims_c[top]
    sims = np.empty(len(ids), np.float32)
    step = 16384
    for a in range(0, len(ids), step):
        sims[a:a + step] = emb[a:a + step].astype(np.float32) @ q
    sims[pos] = -np.inf
    top = np.argpartition(-sims, k - 1)[:k]
    top = top[np.argsort(-sims[top], kind="stable")]
    return ids[top], sims[top]


def unit_embeddings(lib) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(photo ids, unit float16 embeddings, their PCA projection or None) from dedupe's feature cache,
    brought up to date by dedupe when stale (dedupe projects libraries above 5,000 photos; it reads only
    the catalog's feature stamps and the rows newer than its cache). Within one process the arrays are
    kept until anyone commits to the catalog."""
    cat = lib.catalog
    change = store.change_stamp(cat.conn)
    memo = getattr(cat, "_find_like", None)
    if memo is not None and memo[0] == change:
        return memo[1]
    from photolab.store import features

    out = features.unit_embeddings(lib)
    cat._find_like = (change, out)
    return out


# -- albums -----------------------------------------------------------------------------------------
def link_into(library, results, folder: str | os.PathLike) -> dict:
    """Make (or refresh) ``folder`` as an album of links to the photos of ``results`` (a :func:`find`
    DataFrame), named ``0001_<file name>`` in rank order: hard links where the folder is on the
    library's file system, else symbolic links. The photos never move.

    The folder keeps a manifest (``.photolab-album.json``) of the links it holds; a refresh removes
    only links it made that are no longer in the results. It refuses a folder inside the library
    (the next index would catalog the links as photos; ``.photolab/`` included) and a folder holding
    anything but its own links.

    Returns:
        ``{"folder", "linked", "removed", "kept", "hard", "symbolic"}``.
    """
    lib = open_library(library)
    dest = Path(folder).expanduser().resolve()
    state = lib.state.resolve()
    root = lib.root.resolve()
    if dest == state or state in dest.parents:
        raise AlbumError(f"{dest}: inside the library's .photolab/ folder, which only photolab writes; "
                         "choose a folder outside the library for the album")
    if dest == root or root in dest.parents:
        raise AlbumError(f"{dest}: inside the library {root}, where the next index would catalog the links as "
                         "new photos; choose a folder outside the library for the album")
    if dest.exists() and not dest.is_dir():
        raise AlbumError(f"{dest}: exists and is not a folder; choose another album folder")
    manifest_path = dest / ALBUM_MANIFEST
    old: dict[str, dict] = {}
    if manifest_path.is_file():
        try:
            old = json.loads(manifest_path.read_text(encoding="utf-8"))["links"]
        except (ValueError, KeyError, OSError) as exc:
            raise AlbumError(f"{manifest_path}: unreadable album manifest ({exc}); remove the folder's links "
                             "by hand or choose another folder") from exc
    if dest.is_dir():
        strangers = []
        for entry in os.scandir(dest):
            if entry.name == ALBUM_MANIFEST or entry.name.startswith(".photolab-album.tmp"):
                continue
            if not _is_our_link(entry, old.get(entry.name), root):
                strangers.append(entry.name)
        if strangers:
            raise AlbumError(f"{dest}: holds {len(strangers)} file(s) that are not links photolab made "
                             f"(e.g. {strangers[0]}); choose an empty or new folder for the album")
    dest.mkdir(parents=True, exist_ok=True)
    for entry in os.scandir(dest):   # a link being made when an earlier run was killed
        if entry.name.startswith(".photolab-album.tmp") and (
                entry.is_symlink() or (entry.is_file(follow_symlinks=False) and (
                    ".manifest." in entry.name or entry.stat(follow_symlinks=False).st_nlink >= 2))):
            os.unlink(entry.path)
    want: dict[str, str] = {}
    for rank, rel in enumerate(results["path"], start=1):
        want[f"{rank:04d}_{Path(rel).name}"] = rel
    # the manifest lists every link there may be before any is made, so an interrupted refresh
    # never leaves a link the next one does not recognise
    planned = dict(old)
    for name, rel in want.items():
        planned.setdefault(name, {"path": rel})
    _write_manifest(manifest_path, planned)
    report = {"folder": str(dest), "linked": 0, "removed": 0, "kept": 0, "hard": 0, "symbolic": 0}
    final: dict[str, dict] = {}
    for name, rel in want.items():
        src = lib.abs(rel)
        target = dest / name
        if target.is_symlink() or target.exists():
            prev = old.get(name)
            if prev and prev.get("path") == rel and _same_file(target, src):
                final[name] = prev
                report["kept"] += 1
                continue
            target.unlink()
        if not src.exists():
            log.warning("%s: not on disk, left out of the album %s", src, dest)
            continue
        tmp = dest / f".photolab-album.tmp.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
            how = "hard"
        except OSError:
            os.symlink(src, tmp)
            how = "symbolic"
        os.replace(tmp, target)
        st = target.lstat()
        final[name] = {"path": rel, "how": how, "ino": st.st_ino, "dev": st.st_dev}
        report["linked"] += 1
        report[how] += 1
    for name in old:
        if name not in want:
            target = dest / name
            if target.is_symlink() or target.exists():
                entry = next((e for e in os.scandir(dest) if e.name == name), None)
                if entry is not None and _is_our_link(entry, old[name], root):
                    target.unlink()
                    report["removed"] += 1
    for name, info in final.items():
        if "how" not in info:   # kept from before: refresh what it is
            st = (dest / name).lstat()
            info.update({"how": "symbolic" if (dest / name).is_symlink() else "hard", "ino": st.st_ino,
                         "dev": st.st_dev})
    _write_manifest(manifest_path, final)
    return report


def _write_manifest(path: Path, links: dict) -> None:
    tmp = path.with_name(f".photolab-album.tmp.manifest.{os.getpid()}")
    tmp.write_text(json.dumps({"links": links}, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _same_file(link: Path, src: Path) -> bool:
    try:
        if link.is_symlink():
            return Path(os.readlink(link)) == src
        a, b = link.stat(), src.stat()
        return (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev)
    except OSError:
        return False


def _is_our_link(entry, info: dict | None, root: Path) -> bool:
    """A symbolic link into the library, or a hard link the manifest lists (same inode) whose photo is
    still in the library (so removing it loses nothing)."""
    try:
        if entry.is_symlink():
            target = Path(os.readlink(entry.path))
            return target.is_absolute() and (root == target or root in target.parents)
        if info is None or not entry.is_file(follow_symlinks=False):
            return False
        st = entry.stat(follow_symlinks=False)
        if (st.st_ino, st.st_dev) != (info.get("ino"), info.get("dev")) or st.st_nlink < 2:
            return False
        src = root.joinpath(*Path(info["path"]).parts)
        s2 = src.stat()
        return (s2.st_ino, s2.st_dev) == (st.st_ino, st.st_dev)
    except (OSError, KeyError):
        return False


__all__ = ["AlbumError", "DEFAULT_LIMIT", "QueryError", "find", "like", "link_into", "unit_embeddings"]
