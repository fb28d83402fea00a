"""Review: a representative sample, per-tag thresholds from reviewed photos, the review queue,
and a person's corrections stored as labeled examples.

- :func:`sample` draws photos spread over years, top folders, cameras and the
  prior's predicted tags (stratified, reproducible with a seed, stored by name).
- :func:`tag_metrics`, :func:`pr_curve` and :func:`suggest_thresholds` measure
  each tag on the photos a person labeled and choose a threshold for a target
  precision or the best F1; :func:`set_thresholds` stores them (every later
  stage reads them through :func:`photolab.stages.tagging.thresholds`).
- :func:`review_queue` orders photos for review: least confident decisions first
  (below ``cut``, default 0.6), people and place tags always (they are written
  into files only once a person confirmed them), spread over the embedding space
  so a page is not twenty shots of one scene.
- :func:`confirm` stores a reviewed photo's full set of tags at once (1 for the
  tags it has, 0 for the others) with who and when; it returns what it replaced,
  which :func:`restore_labels` puts back (undo).
"""

from __future__ import annotations

import logging

import numpy as np

from photolab.store.catalog import utcnow
from photolab.core.library import open_library
from photolab.store import review as store
from photolab.core.taxonomy import load_taxonomy

log = logging.getLogger(__name__)

REVIEW_CUT = 0.6
ALWAYS_REVIEW = ("people", "places")
DIVERSE_HEAD = 2000   # the front of the queue (several sittings) is spread over clusters of the embeddings


# -- sample ---------------------------------------------------------------------------------
def _strata(lib):
    """Usable photos with features and their stratum: year | top folder | camera | first-pass top tag."""
    import pandas as pd

    df = store.strata_photos(lib.catalog.conn)
    top = store.first_pass_top_tags(lib.catalog.conn)
    best = dict(zip(top["photo_id"], np.where(top["score"] >= 0.5, top["tag"], "none"))) if len(top) else {}
    year = df["captured_at"].fillna("").str[:4].replace("", "undated")
    folder = df["path"].str.split("/").str[0].where(df["path"].str.contains("/"), ".")
    camera = df["camera_make"].fillna("-").str.strip().str.split().str[0].fillna("-")
    df["stratum"] = year + "|" + folder + "|" + camera + "|" + df["photo_id"].map(best).fillna("none")
    return df if len(df) else pd.DataFrame(columns=["photo_id", "path", "captured_at", "camera_make", "stratum"])


def _quotas(sizes: np.ndarray, n: int) -> np.ndarray:
    """Proportional allocation (largest remainder), at least one per stratum while n allows."""
    total = sizes.sum()
    if n >= total:
        return sizes.copy()
    raw = sizes * n / total
    q = np.floor(raw).astype(int)
    if n >= len(sizes):
        q = np.maximum(q, 1)
    while q.sum() > n:   # the minimum of one took too many: trim the largest
        q[np.argmax(q - raw)] -= 1
    order = np.argsort(-(raw - q))
    k = 0
    while q.sum() < n:
        i = order[k % len(order)]
        if q[i] < sizes[i]:
            q[i] += 1
        k += 1
    return q


def sample(library, n: int = 1000, *, seed: int = 0, name: str = "default", refresh: bool = False):
    """A sample of ``n`` photos that represents the library, stored under ``name``.

    Photos are grouped by year, top folder, camera maker and the prior's most
    likely tag; each group gets its share of ``n`` (at least one photo while
    ``n`` allows), drawn with ``seed``. The same name returns the same photos in a
    later session (``refresh`` draws again).

    Returns:
        A DataFrame with ``photo_id``, ``path``, ``stratum``.
    """
    import pandas as pd

    lib = open_library(library)
    cat = lib.catalog
    if not refresh:
        stored = store.stored_sample(cat.conn, name)
        if len(stored) and (len(stored) == n or stored["seed"].iloc[0] == seed and len(stored) <= n):
            return stored.drop(columns="seed")
    df = _strata(lib)
    rng = np.random.default_rng(seed)
    groups = {k: g for k, g in df.groupby("stratum", sort=True)}
    keys = list(groups)
    sizes = np.array([len(groups[k]) for k in keys])
    picked = []
    for k, q in zip(keys, _quotas(sizes, n) if len(keys) else []):
        g = groups[k]
        picked.append(g.iloc[rng.permutation(len(g))[:q]])
    out = (pd.concat(picked) if picked else df.iloc[:0]).sort_values("photo_id")[["photo_id", "path", "stratum"]]
    now = utcnow()
    with cat.write() as db:
        store.replace_sample(db, name, [(int(r.photo_id), r.stratum, seed, now) for r in out.itertuples()])
    return out.reset_index(drop=True)


# -- labels and metrics ----------------------------------------------------------------------
def labels(library, *, photo_ids=None):
    """A person's labels as a wide DataFrame: photo id x tag, 1 / 0, NaN where not labeled."""
    lib = open_library(library)
    tax = load_taxonomy(lib)
    long = store.label_rows(lib.catalog.conn)
    wide = long.pivot(index="photo_id", columns="tag", values="value") if len(long) else None
    import pandas as pd

    wide = (wide if wide is not None else pd.DataFrame()).reindex(columns=tax.names).astype(float)
    if photo_ids is not None:
        wide = wide[wide.index.isin([int(i) for i in photo_ids])]
    return wide


def _scored_labels(lib, tag: str, photo_ids=None):
    """(labels, scores) arrays for photos with both a label and a score for ``tag``."""
    rows = store.scored_labels(lib.catalog.conn, tag)
    if photo_ids is not None:
        keep = {int(i) for i in photo_ids}
        rows = [r for r in rows if r[0] in keep]
    y = np.array([r[1] for r in rows], dtype=int)
    s = np.array([r[2] for r in rows], dtype=float)
    return y, s


def _scored_labels_by_tag(lib, photo_ids=None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """:func:`_scored_labels` of every tag at once, from one pass over the labels (tags without any: absent)."""
    keep = None if photo_ids is None else {int(i) for i in photo_ids}
    by_tag: dict[str, list] = {}
    for tag, pid, value, score in store.scored_labels_all(lib.catalog.conn):
        if keep is None or pid in keep:
            by_tag.setdefault(tag, []).append((value, score))
    return {t: (np.array([r[0] for r in rows], dtype=int), np.array([r[1] for r in rows], dtype=float))
            for t, rows in by_tag.items()}


_NO_LABELS = (np.zeros(0, dtype=int), np.zeros(0, dtype=float))


def _curve(y: np.ndarray, s: np.ndarray):
    """Precision and recall at every threshold of scores ``s`` for labels ``y``."""
    import pandas as pd
    from sklearn.metrics import precision_recall_curve

    if not y.sum():
        return pd.DataFrame(columns=["threshold", "precision", "recall"])
    p, r, t = precision_recall_curve(y, s)
    return pd.DataFrame({"threshold": t, "precision": p[:-1], "recall": r[:-1]})


def tag_metrics(library, *, photo_ids=None):
    """Per tag, measured on the labeled photos: positives, negatives, average precision, and
    precision / recall / F1 at the current threshold (NaN where a tag has no labels or no scores)."""
    import pandas as pd
    from sklearn.metrics import average_precision_score

    tax, thr, labeled = _labeled_scores(library, photo_ids)
    out = []
    for tag in tax.names:
        y, s = labeled.get(tag, _NO_LABELS)
        row = {"tag": tag, "category": tax[tag].category, "threshold": thr[tag], "positives": int(y.sum()),
               "negatives": int(len(y) - y.sum()), "ap": np.nan, "precision": np.nan, "recall": np.nan, "f1": np.nan}
        if y.sum() and (1 - y).sum():
            row["ap"] = float(average_precision_score(y, s))
        if y.sum():
            pred = s >= thr[tag]
            tp = int((pred & (y == 1)).sum())
            row["precision"] = tp / pred.sum() if pred.sum() else np.nan
            row["recall"] = tp / y.sum()
            p, r = row["precision"], row["recall"]
            row["f1"] = 2 * p * r / (p + r) if p == p and (p + r) else np.nan
        out.append(row)
    return pd.DataFrame(out).set_index("tag")


def _labeled_scores(library, photo_ids):
    """(taxonomy, thresholds, {tag: (labels, scores)}) of the labeled photos, read once."""
    from photolab.stages.tagging import thresholds

    lib = open_library(library)
    tax = load_taxonomy(lib)
    return tax, thresholds(lib, tax), _scored_labels_by_tag(lib, photo_ids)


def pr_curve(library, tag: str, *, photo_ids=None):
    """Precision and recall at every threshold for ``tag`` on the labeled photos."""
    lib = open_library(library)
    tag = load_taxonomy(lib).resolve(tag) or tag
    return _curve(*_scored_labels(lib, tag, photo_ids))


def suggest_thresholds(library, *, target_precision: float | None = None, photo_ids=None, min_positives: int = 3):
    """A threshold per tag: the lowest reaching ``target_precision`` (the most recall at that precision),
    or the best F1 when no target is given. Tags with fewer than ``min_positives`` labeled positives keep
    their current threshold.

    Returns:
        A DataFrame indexed by tag: ``current``, ``suggested``, ``precision``, ``recall``, ``f1``, ``positives``.
    """
    import pandas as pd

    tax, thr, labeled = _labeled_scores(library, photo_ids)
    out = []
    for tag in tax.names:
        y, s = labeled.get(tag, _NO_LABELS)
        curve = _curve(y, s)
        row = {"tag": tag, "current": thr[tag], "suggested": thr[tag], "precision": np.nan, "recall": np.nan,
               "f1": np.nan, "positives": int(y.sum())}
        if y.sum() >= min_positives and len(curve):
            p, r, t = curve["precision"].to_numpy(), curve["recall"].to_numpy(), curve["threshold"].to_numpy()
            f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0)
            if target_precision is not None:
                ok = np.flatnonzero(p >= target_precision)
                k = ok[0] if len(ok) else int(np.argmax(p))
            else:
                k = int(np.argmax(f1))
            row.update(suggested=float(np.clip(t[k], 0.01, 0.99)), precision=float(p[k]), recall=float(r[k]),
                       f1=float(f1[k]))
        out.append(row)
    return pd.DataFrame(out).set_index("tag")


def set_thresholds(library, values) -> None:
    """Store thresholds: a dict tag -> value, or :func:`suggest_thresholds`' frame (its ``suggested``)."""
    from photolab.stages.tagging import set_threshold

    if hasattr(values, "columns"):
        values = values["suggested"].to_dict()
    for tag, v in values.items():
        set_threshold(library, tag, float(np.clip(v, 0.01, 0.99)))


# -- the queue -------------------------------------------------------------------------------
def review_queue(library, *, cut: float = REVIEW_CUT, limit: int | None = None, sample_name: str | None = None,
                 diversity: bool = True, include_reviewed: bool = False, seed: int = 0, order: str = "typical"):
    """Photos to review, in the order a person should see them.

    A photo is queued when its least confident decision is below ``cut``, or when it
    has a people or place tag no person confirmed yet, least confident first. With
    ``order="typical"`` (the default) the first :data:`TYPICAL_FRONT` are the most typical
    photo of each of the largest groups of similar photos that no review covers yet
    (TypiClust): a head learns faster from those than from the least confident ones, which
    are atypical boundary cases (``benchmarks/simulate_review.py`` measures both). Once
    :data:`TYPICAL_MAX_CLUSTERS` photos are reviewed, uncertainty leads. With
    ``diversity`` the rest of the front of the queue is interleaved over clusters of the
    embeddings, so a page spans many scenes.

    The decisions come from the library's score matrix (patched from the catalog's change log,
    not a pivot of every score) and the clustering looks at a bounded share of the queue, so a
    queue of 500,000 photos takes seconds.

    Returns:
        A DataFrame indexed by photo id: ``path``, ``thumb``, ``confidence``, ``tags`` (accepted),
        ``reason``, and ``score:<tag>`` for every tag.
    """
    import pandas as pd

    from photolab.store import scores as store
    from photolab.stages.tagging import decision_arrays, joined_tags

    if order not in ("typical", "confidence"):
        raise ValueError(f"order must be 'typical' or 'confidence', got {order!r}")
    lib = open_library(library)
    tax = load_taxonomy(lib)
    names = tax.names
    conn = lib.catalog.conn
    ids, paths, captured, thumbs = store.usable_photos(conn)
    sel = np.ones(len(ids), dtype=bool)
    if sample_name is not None:
        sel &= np.isin(ids, np.asarray(store.sample_members(conn, sample_name), dtype=np.int64))
    if not include_reviewed:
        sel &= ~np.isin(ids, np.asarray(store.reviewed(conn), dtype=np.int64))
    if not sel.all():
        ids, paths, captured, thumbs = ids[sel], paths[sel], captured[sel], thumbs[sel]
    labels = store.all_labels(conn)
    raw = _queue_scores(store.score_matrix(lib), ids, names)
    d = decision_arrays(lib, tax, ids, labels=labels, matrix=_Gathered(raw))
    C, conf = d["confidences"], d["confidence"]
    has_any = ~np.isnan(conf) if len(names) else np.zeros(len(ids), dtype=bool)   # conf: the NaN-ignoring minimum
    # the first tag at the least confidence (as argmin with NaN as infinity; a photo with no score: 0)
    weakest = np.argmax(C == conf[:, None], axis=1) if len(names) else np.zeros(len(ids), int)
    with np.errstate(invalid="ignore"):
        low = has_any & (conf < cut)
    # people and place tags no person confirmed: always queued
    sens = [j for j, t in enumerate(names) if tax[t].category in ALWAYS_REVIEW]
    open_ = d["accepted"][:, sens].copy()
    if sens and len(labels):
        scol = {names[j]: k for k, j in enumerate(sens)}
        lab = [(p, scol[t]) for p, t, _ in labels if t in scol]
        if lab:
            lp = np.array([r[0] for r in lab], dtype=np.int64)
            order_ = np.argsort(ids)
            pos = np.clip(np.searchsorted(ids[order_], lp), 0, max(len(ids) - 1, 0))
            hit = ids[order_][pos] == lp if len(ids) else np.zeros(len(lp), dtype=bool)
            open_[order_[pos[hit]], np.array([r[1] for r in lab], dtype=np.int64)[hit]] = False
    by_person = ~low & open_.any(axis=1)
    keep = low | by_person
    k_low, k_person = np.flatnonzero(low), np.flatnonzero(by_person)
    reasons = np.full(len(ids), "", dtype=object)
    if len(k_low):   # one text per (tag, confidence as shown) pair, not per photo
        shown, at = np.unique(conf[k_low], return_inverse=True)
        shown = np.array([f"{c:.2f}" for c in shown])          # each distinct confidence formatted once
        labels2, group = np.unique(shown, return_inverse=True)
        key = weakest[k_low] * len(labels2) + group[at.ravel()]
        uniq, inv = np.unique(key, return_inverse=True)
        text = np.array([f"least sure about {names[u // len(labels2)]} (confidence {labels2[u % len(labels2)]})"
                         for u in uniq.tolist()], dtype=object)
        reasons[k_low] = text[inv.ravel()]
    if len(k_person):
        open_tags = joined_tags(open_[k_person], [names[j] for j in sens])
        uniq, inv = np.unique(open_tags.astype(str), return_inverse=True)   # one text per set of open tags
        text = np.array([f"{t.replace(';', ', ')}: people and place tags need a person" for t in uniq], dtype=object)
        reasons[k_person] = text[inv.ravel()]
    kept = np.flatnonzero(keep)
    conf0 = np.nan_to_num(conf[kept], nan=0.0)
    by_path = np.argsort(paths[kept], kind="stable")      # the tie-break of equal confidence
    path_rank = np.empty(len(kept), dtype=np.int64)
    path_rank[by_path] = np.arange(len(kept))
    take = kept[np.lexsort((path_rank, conf0))]           # least confident first, then by path
    front: list[int] = []
    if diversity and len(take) > 8 or order == "typical" and len(take) > 8:
        order_ids = np.argsort(ids)

        def positions(some: list[int]) -> np.ndarray:
            return order_ids[np.searchsorted(ids, np.asarray(some, dtype=np.int64), sorter=order_ids)]

        if diversity and len(take) > 8:
            head = _interleave_by_cluster(lib, [int(i) for i in ids[take[:DIVERSE_HEAD]]], seed)
            take = np.concatenate([positions(head), take[DIVERSE_HEAD:]])
        if order == "typical" and len(take) > 8:
            front = _typical_picks(lib, ids[take].tolist(), TYPICAL_FRONT, seed)
            if front:
                fp = positions(front)
                take = np.concatenate([fp, take[~np.isin(take, fp)]])
    if limit:
        take = take[:limit]
    qids = ids[take]
    state = str(lib.state / "features") + "/"
    th = thumbs[take]
    has = np.array([bool(t) for t in th], dtype=bool)
    th[has] = state + th[has]
    th[~has] = None
    index = pd.Index(qids, name="id")
    # the score and confidence columns (score:<tag>, confidence:<tag>, tag by tag) as one float block, built
    # in place: a frame from one column array each copies every column again
    F = np.empty((len(take), len(names), 2))
    np.take(d["scores"], take, axis=0, out=F[:, :, 0], mode="clip")   # gathered in place: no copy between
    np.take(C, take, axis=0, out=F[:, :, 1], mode="clip")
    F = F.reshape(len(take), 2 * len(names))
    df = pd.concat([
        pd.DataFrame({"path": paths[take], "thumb": th, "captured_at": captured[take]}, index=index),
        pd.DataFrame(F, columns=[c for t in names for c in (f"score:{t}", f"confidence:{t}")], index=index,
                     copy=False),   # F is this frame's own: no second copy of it
        pd.DataFrame({"tags": joined_tags(d["accepted"][take], names),
                      "confidence": np.nan_to_num(conf[take], nan=0.0), "reason": reasons[take]}, index=index),
    ], axis=1)
    if front:
        n = min(len(front), len(df))
        df.iloc[:n, df.columns.get_loc("reason")] = [f"typical of a group of similar photos; {r}"
                                                     for r in df["reason"].iloc[:n]]
    return df


class _Gathered:
    """Scores already gathered for :func:`photolab.stages.tagging.decision_arrays` (what it reads through ``columns``)."""

    def __init__(self, raw: np.ndarray):
        self.raw = raw

    def columns(self, photo_ids, tags) -> np.ndarray:
        assert self.raw.shape == (len(photo_ids), len(tags))
        return self.raw


def _queue_scores(m, ids: np.ndarray, names: list[str]) -> np.ndarray:
    """``m.columns(ids, names)`` of a score matrix ``m`` (NaN where a photo or tag has no score): the rows
    gathered straight into place, a run of neighbouring columns at a time, not one strided pass per tag. When
    the queue's photos and tags are the matrix' own, its array itself (the caller only reads it)."""
    if list(m.tags) == list(names) and np.array_equal(m.ids, ids):
        return m.S
    col = {t: j for j, t in enumerate(m.tags)}
    src = [col.get(t, -1) for t in names]
    out = np.empty((len(ids), len(names)))
    if not len(ids):
        return out
    if not len(m.ids) or max(src, default=-1) < 0:
        out.fill(np.nan)
        return out
    pos = m.rows(ids)
    ok = pos >= 0
    rows = np.where(ok, pos, 0)
    k = 0
    while k < len(src):
        if src[k] < 0:
            out[:, k] = np.nan
            k += 1
            continue
        e = k
        while e + 1 < len(src) and src[e + 1] == src[e] + 1:
            e += 1
        # straight into place (mode="clip": unbuffered; the positions are in range)
        np.take(m.S[:, src[k]:src[e] + 1], rows, axis=0, out=out[:, k:e + 1], mode="clip")
        k = e + 1
    if not ok.all():
        out[~ok] = np.nan
    return out


TYPICAL_FRONT = 48
TYPICAL_FIT_MAX = 4_000       # queued photos the clustering looks at (a random share of more)
TYPICAL_MAX_CLUSTERS = 500    # after this many reviews the queue is least confident first
TYPICAL_MEMBERS_MAX = 2_000   # members of one cluster its typicality is measured over


def _typical_picks(lib, candidates: list[int], n: int, seed: int) -> list[int]:
    """The most typical photo of each of the largest clusters no reviewed photo covers yet
    (TypiClust, Hacohen et al. 2022: in the low-budget regime typical examples teach a head more
    than uncertain ones)."""
    done = store.reviewed_with_features(lib.catalog.conn)
    if len(done) >= TYPICAL_MAX_CLUSTERS:   # past the first few hundred reviews: uncertainty leads
        return []
    if len(candidates) > TYPICAL_FIT_MAX:    # a large library: a random share stands for the rest
        rng = np.random.default_rng(seed)
        candidates = [candidates[i] for i in np.sort(rng.choice(len(candidates), TYPICAL_FIT_MAX, replace=False))]
    ids = candidates + done
    emb = _embeddings(lib, ids)
    emb = emb / (np.linalg.norm(emb, axis=1, keepdims=True) + 1e-9)
    k = int(min(len(ids), len(done) + n, TYPICAL_MAX_CLUSTERS))
    if k < 2:
        return []
    labels = _kmeans(emb, k, seed, n_init=3 if len(ids) <= 1000 else 1)
    covered = set(labels[len(candidates):])
    sizes = np.bincount(labels, minlength=k)
    picks = []
    for c in sorted(set(labels[:len(candidates)]) - covered, key=lambda c: -sizes[c]):
        members = np.flatnonzero(labels[:len(candidates)] == c)
        if len(members) > TYPICAL_MEMBERS_MAX:
            members = np.random.default_rng(seed).choice(members, TYPICAL_MEMBERS_MAX, replace=False)
        if len(members) == 1:
            picks.append(candidates[members[0]])
        else:
            e = emb[members]
            d = np.sqrt(np.maximum(0.0, 2 - 2 * e @ e.T))
            kk = min(20, len(members) - 1)
            typ = 1.0 / (np.sort(d, axis=1)[:, 1:kk + 1].mean(axis=1) + 1e-9)
            picks.append(candidates[members[int(np.argmax(typ))]])
        if len(picks) >= n:
            break
    return picks


def _interleave_by_cluster(lib, ids: list[int], seed: int) -> list[int]:
    """Round-robin over k-means clusters of the embeddings, each cluster in its own (confidence) order."""
    emb = _embeddings(lib, ids)
    k = int(min(len(ids) // 4, max(2, np.sqrt(len(ids)))))
    labels = _kmeans(emb, k, seed, n_init=3 if len(ids) <= 500 else 1)
    queues: dict[int, list[int]] = {}
    for pid, c in zip(ids, labels):   # ids arrive least confident first
        queues.setdefault(int(c), []).append(pid)
    order, rounds = [], list(queues.values())
    while rounds:
        for q in rounds:
            order.append(q.pop(0))
        rounds = [q for q in rounds if q]
    return order


KMEANS_STEPS = 30   # Lloyd steps at most (a few thousand photos settle in fewer)


def _kmeans(X: np.ndarray, k: int, seed: int, *, n_init: int = 1, steps: int = KMEANS_STEPS) -> np.ndarray:
    """Cluster labels of the rows of ``X`` by k-means: greedy k-means++ seeding (2 + log k candidates a
    step, the one that lowers the potential most), then Lloyd steps until no label changes; the best of
    ``n_init`` seedings (least inertia). Plain numpy on the few thousand rows the queue clusters: no
    estimator library to import, reproducible with ``seed``."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    n = len(X)
    k = int(max(1, min(k, n)))
    rng = np.random.default_rng(seed)
    sq = np.einsum("ij,ij->i", X, X)
    best, best_inertia = np.zeros(n, dtype=np.int64), np.inf
    with _one_thread():
        for _ in range(max(1, n_init)):
            centers = X[_plusplus(X, sq, k, rng)].astype(np.float32)
            labels = np.full(n, -1, dtype=np.int64)
            for _ in range(max(1, steps)):
                d = _sq_dist(X, sq, centers)
                new = np.argmin(d, axis=1)
                if np.array_equal(new, labels):
                    break
                labels = new
                counts = np.bincount(labels, minlength=k)
                onehot = np.zeros((n, k), dtype=np.float32)
                onehot[np.arange(n), labels] = 1.0
                sums = onehot.T @ X
                full = counts > 0
                centers[full] = sums[full] / counts[full, None]
                if not full.all():   # an empty cluster takes the points farthest from their centre
                    far = np.argsort(-d[np.arange(n), labels])[:int((~full).sum())]
                    centers[~full] = X[far]
            d = _sq_dist(X, sq, centers)
            labels = np.argmin(d, axis=1)
            inertia = float(d[np.arange(n), labels].sum())
            if inertia < best_inertia:
                best, best_inertia = labels, inertia
    return best


def _sq_dist(X: np.ndarray, sq: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances of the rows of ``X`` (``sq``: their squared norms) to ``centers``."""
    d = X @ centers.T
    d *= -2
    d += sq[:, None]
    d += np.einsum("ij,ij->i", centers, centers)[None, :]
    return np.maximum(d, 0, out=d)


def _plusplus(X: np.ndarray, sq: np.ndarray, k: int, rng) -> np.ndarray:
    """Row positions of ``k`` k-means++ seeds (Arthur & Vassilvitskii 2007, greedy)."""
    n = len(X)
    trials = 2 + int(np.log(k))
    seeds = [int(rng.integers(n))]
    closest = _sq_dist(X, sq, X[seeds])[:, 0]
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:   # fewer distinct rows than clusters: any row not taken yet
            rest = np.setdiff1d(np.arange(n), seeds)
            seeds.append(int(rest[0]) if len(rest) else seeds[-1])
            continue
        cand = np.searchsorted(np.cumsum(closest), rng.random(trials) * total)
        cand = np.minimum(cand, n - 1)
        d = np.minimum(closest[:, None], _sq_dist(X, sq, X[cand]))
        pick = int(np.argmin(d.sum(axis=0)))
        seeds.append(int(cand[pick]))
        closest = d[:, pick]
    return np.array(seeds, dtype=np.int64)


def _one_thread():
    """BLAS on one thread for the small clusterings here: on a busy two-core machine its threads
    wait on each other and a second's work takes half a minute."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


def _embeddings(lib, ids: list[int]) -> np.ndarray:
    """Unit-length float32 embeddings of ``ids`` in that order."""
    from photolab.stages.train import _raw_embeddings

    emb = _raw_embeddings(lib, ids)
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-9)


# -- corrections -----------------------------------------------------------------------------
def confirm(library, photo_id: int, tags, *, rating: int | None = None, who: str = "me", scope=None) -> dict:
    """A person reviewed ``photo_id``: it has exactly ``tags`` (names or aliases) of the taxonomy
    (or, with ``scope``, of those tags only: the others are left as they were).

    Every tag in scope gets a label at once (1 for ``tags``, 0 for the rest) with who and when,
    the photo is marked reviewed, and ``rating`` (0-5) is stored if given. Returns the
    state it replaced, for :func:`restore_labels` (undo).
    """
    from photolab.stages.metadata import set_rating

    lib = open_library(library)
    tax = load_taxonomy(lib)
    want = set()
    for t in tags:
        name = tax.resolve(str(t))
        if name is None:
            raise KeyError(f"unknown tag {t!r} (not in the taxonomy or its aliases)")
        want.add(name)
    pid = int(photo_id)
    names = tax.names if scope is None else [tax.resolve(t) or t for t in scope]
    prev = snapshot(lib, pid)
    now = utcnow()
    with lib.catalog.write() as db:
        store.put_labels(db, [(pid, t, int(t in want), who, now) for t in names])
        store.mark_reviewed(db, pid, who, now)
    if rating is not None:
        set_rating(lib, pid, rating)
    return prev


def snapshot(library, photo_id: int) -> dict:
    """A photo's labels, review mark and rating as they are now (what :func:`restore_labels` takes)."""
    lib = open_library(library)
    pid = int(photo_id)
    return {"photo_id": pid, **store.photo_state(lib.catalog.conn, pid)}


def restore_labels(library, previous: dict) -> None:
    """Put back a photo's labels, review mark and rating as :func:`confirm` found them."""
    lib = open_library(library)
    pid = int(previous["photo_id"])
    with lib.catalog.write() as db:
        store.restore_photo_state(db, pid, previous["labels"], previous["review"], previous["rating"])


def progress(library, *, sample_name: str | None = None) -> tuple[int, int]:
    """(photos reviewed, photos in the sample or library)."""
    lib = open_library(library)
    return store.progress_counts(lib.catalog.conn, sample_name)


def disputed(library, *, margin: float = 0.85):
    """Labels the current scores strongly disagree with (likely mistakes): a label 1 scored
    below ``1 - margin`` or a label 0 scored above ``margin``."""
    lib = open_library(library)
    return store.disputed_labels(lib.catalog.conn, 1 - margin, margin)


__all__ = ["confirm", "disputed", "labels", "pr_curve", "progress", "restore_labels", "review_queue", "sample", "snapshot",
           "set_thresholds", "suggest_thresholds", "tag_metrics"]
