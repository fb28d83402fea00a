"""Dedupe: exact and near duplicates from cached features, a keeper per group, quarantine — never delete.

Three tiers, never confused:

- ``exact``: the same bytes (SHA-256), or the same decoded pixels in another
  container or with other metadata (checked by decoding both files in full);
- ``near``: the same capture re-encoded, resized, converted, turned or mirrored,
  lightly cropped or edited. A pair is near when its perceptual hashes agree
  under the best of the 8 rotations/mirrorings (pHash within ``near_phash`` and
  dHash within ``near_dhash`` bits, in the same orientation) and the embeddings
  do not contradict it (cosine at least ``near_min_cosine``), or when the
  embeddings are very close (cosine at least ``near_cosine``) and the pHash is
  still within ``near_phash_loose`` — unless the pHashes line up while the
  dHashes do not, the mark of another viewpoint or moment (stereo pairs);
- ``similar``: the same scene captured more than once (bursts, HDR pairs,
  stereo pairs): cosine at least ``similar_cosine``. Grouped for a person to
  look at, never set aside automatically.

Nothing compares all pairs in Python: hashes go into a faiss multi-index hash
(all 8 orientations of every photo), embeddings into a faiss inverted-file index
over a PCA projection (exact search for small libraries); only the candidate
pairs they return are checked.

The keeper of a group has the highest resolution; ties go to the preferred
format (RAW > HEIC > JPEG > PNG > WebP by default), then an intact file over a
damaged one, then more metadata, then (in a pass over new files, ``only=``) the
copy already in the library over the one just imported, then the earliest
capture time.

``plan`` changes nothing. ``apply`` moves the others, with their sidecars and
companions, into ``.photolab/quarantine/<batch>/`` (journaled, see
:mod:`photolab.fileops`) with a manifest; ``restore`` puts a batch or one file
back byte-identical; ``purge`` deletes only batches older than the retention
(default 7 days) and refuses younger ones.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .catalog import STATE_DIR, utcnow
from .fileops import BatchReport, FileOpError, Move, execute, new_batch, recover, undo, undo_one
from .index import USABLE
from .library import open_library
from .media import companions

log = logging.getLogger(__name__)

PLAN_COLUMNS = ["group", "tier", "path", "keep", "reason"]
DEFAULT_RETENTION_DAYS = 7
FORMAT_PREFERENCE = ("RAW", "HEIF", "JPEG", "PNG", "WEBP")
ORIENTATIONS = ("as is", "turned 90°", "turned 180°", "turned 270°", "mirrored", "flipped", "transposed",
                "transversed")


@dataclass(frozen=True)
class DedupeOptions:
    """Thresholds and keeper preferences (measured precision: README, benchmarks/eval_dedupe.py)."""

    near_phash: int = 7
    near_dhash: int = 8
    near_min_cosine: float = 0.25
    near_cosine: float = 0.85
    near_phash_loose: int = 24
    similar_cosine: float = 0.80
    format_preference: tuple[str, ...] = FORMAT_PREFERENCE
    per_event: bool = False
    neighbours: int = 10


@dataclass
class _Photos:
    ids: np.ndarray
    rows: list
    ph8: np.ndarray          # N x 8 uint64
    dh8: np.ndarray          # N x 8 uint64
    emb: np.ndarray          # N x D float16, unit length
    low: np.ndarray | None   # N x LOW_DIM float32, unit length: PCA projection (libraries > EXACT_SEARCH)


EXACT_SEARCH = 5000      # up to this many photos, embeddings are compared at full size
LOW_DIM = 128


def _hex64(text: str) -> int:
    return int(text, 16)


def _popcount(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64)
    b = x.view(np.uint8).reshape(x.shape + (8,))
    return np.unpackbits(b, axis=-1).sum(axis=-1).astype(np.int64)


CACHE_FILE = "dedupe-features.npz"   # under .photolab/features/: the hash and embedding matrices
CACHE_VERSION = 2


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


def _parse_features(feats) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hashes and unit-length float16 embeddings of feature rows."""
    n = len(feats)
    ph8 = np.array([[_hex64(h) for h in f["phash8"].split(",")] for f in feats], dtype=np.uint64).reshape(n, 8)
    dh8 = np.array([[_hex64(h) for h in f["dhash8"].split(",")] for f in feats], dtype=np.uint64).reshape(n, 8)
    emb = (_unit(np.stack([np.frombuffer(f["embedding"], dtype=np.float16) for f in feats])).astype(np.float16)
           if n else np.zeros((0, 1), np.float16))
    return ph8, dh8, emb


def _train_pca(emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, D x LOW_DIM projection) from up to 20,000 rows."""
    rng = np.random.default_rng(0)
    sample = emb[rng.choice(len(emb), min(len(emb), 20000), replace=False)].astype(np.float32)
    mean = sample.mean(axis=0)
    cov = np.cov(sample - mean, rowvar=False)
    vals, vecs = np.linalg.eigh(cov)
    return mean, np.ascontiguousarray(vecs[:, ::-1][:, :LOW_DIM].astype(np.float32))


def _project(emb: np.ndarray, mean: np.ndarray, proj: np.ndarray) -> np.ndarray:
    out = np.empty((len(emb), proj.shape[1]), np.float32)
    for k in range(0, len(emb), 20000):
        out[k:k + 20000] = _unit((emb[k:k + 20000].astype(np.float32) - mean) @ proj)
    return out


def _feature_matrix(lib, *, save: bool = True) -> dict:
    """ids, ph8, dh8, emb (unit float16) and, above EXACT_SEARCH photos, their PCA projection ``low``,
    for every photo with features.

    Parsing 100,000 feature rows and projecting them takes seconds, so the matrices
    are cached in ``.photolab/features/dedupe-features.npz`` with a stamp per row
    (time, content hash and model of its features); a later call reads only rows
    that are new or were recomputed since, and projects only those, which is what
    lets a watched import be checked against the library in seconds. The
    projection is retrained when the library has doubled since it was made.
    """
    stamps = lib.catalog.query("SELECT photo_id, computed_at || '|' || coalesce(sha256, '') || '|' || model "
                               "FROM features WHERE phash8 IS NOT NULL ORDER BY photo_id")
    ids = np.array([r[0] for r in stamps], dtype=np.int64)
    st = np.array([zlib.crc32(r[1].encode()) for r in stamps], dtype=np.uint32)
    path = lib.state / "features" / CACHE_FILE
    c = None
    if path.is_file():
        try:
            with np.load(path) as z:
                c = {k: z[k] for k in z.files}
            if int(c.get("version", 0)) != CACHE_VERSION:
                c = None
        except Exception as exc:   # a damaged cache is only a cache: rebuilt below
            log.warning("%s: unreadable (%s); rebuilding", path, exc)
    n = len(ids)
    ph8, dh8 = np.zeros((n, 8), np.uint64), np.zeros((n, 8), np.uint64)
    emb, low = None, None
    fresh = np.ones(n, dtype=bool)
    if c is not None and len(c.get("ids", ())):
        pos = np.clip(np.searchsorted(c["ids"], ids), 0, len(c["ids"]) - 1)
        hit = (c["ids"][pos] == ids) & (c["stamps"][pos] == st)
        emb = np.zeros((n, c["emb"].shape[1]), np.float16)
        ph8[hit], dh8[hit], emb[hit] = c["ph8"][pos[hit]], c["dh8"][pos[hit]], c["emb"][pos[hit]]
        if "low" in c and len(c["low"]) == len(c["ids"]):
            low = np.zeros((n, c["low"].shape[1]), np.float32)
            low[hit] = c["low"][pos[hit]]
        fresh = ~hit
    todo = ids[fresh]
    if len(todo):
        if len(todo) > n // 2:
            rows = [r for r in lib.catalog.query("SELECT photo_id, phash8, dhash8, embedding FROM features "
                                                 "WHERE phash8 IS NOT NULL ORDER BY photo_id")]
            keep = set(todo.tolist())
            rows = [r for r in rows if r[0] in keep]
        else:
            rows = []
            for k in range(0, len(todo), 900):
                part = [int(x) for x in todo[k:k + 900]]
                rows += lib.catalog.query("SELECT photo_id, phash8, dhash8, embedding FROM features WHERE photo_id "
                                          f"IN ({', '.join('?' * len(part))}) ORDER BY photo_id", part)
        rows.sort(key=lambda r: r[0])
        if not np.array_equal(np.array([r[0] for r in rows], dtype=np.int64), todo):
            return _feature_matrix(lib, save=save) if path.exists() and _drop(path) else _uncached(lib)
        p, d, e = _parse_features(rows)
        if emb is None or emb.shape[1] != e.shape[1]:
            if emb is not None and not fresh.all():   # embeddings of another size (a new model)
                return _uncached(lib)
            emb = np.zeros((n, e.shape[1]), np.float16)
            low = None
        ph8[fresh], dh8[fresh], emb[fresh] = p, d, e
    if emb is None:
        emb = np.zeros((n, 1), np.float16)
    mean, proj, pca_n = (c["pca_mean"], c["pca_proj"], int(c["pca_n"])) if c is not None and "pca_proj" in c \
        and low is not None and c["pca_proj"].shape[0] == emb.shape[1] else (None, None, 0)
    retrained = False
    if n > EXACT_SEARCH and emb.shape[1] > LOW_DIM:
        if proj is None or n > 2 * pca_n:
            mean, proj = _train_pca(emb)
            pca_n, retrained = n, True
            low = _project(emb, mean, proj)
        elif fresh.any():
            low[fresh] = _project(emb[fresh], mean, proj)
    else:
        low = None
    changed = retrained or c is None or len(c.get("ids", ())) != n or fresh.any()
    if changed and (save or fresh.sum() > 0.05 * n):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        try:
            extra = {"low": low, "pca_mean": mean, "pca_proj": proj, "pca_n": np.array(pca_n)} if low is not None else {}
            np.savez(tmp, version=np.array(CACHE_VERSION), ids=ids, stamps=st, ph8=ph8, dh8=dh8, emb=emb, **extra)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("%s: cannot write the feature cache (%s)", path, exc)
            tmp.unlink(missing_ok=True)
    return {"ids": ids, "ph8": ph8, "dh8": dh8, "emb": emb, "low": low}


def _drop(path: Path) -> bool:
    path.unlink(missing_ok=True)
    return True


def _uncached(lib) -> dict:
    rows = lib.catalog.query("SELECT photo_id, phash8, dhash8, embedding FROM features WHERE phash8 IS NOT NULL "
                             "ORDER BY photo_id")
    p, d, e = _parse_features(rows)
    low = _project(e, *_train_pca(e)) if len(e) > EXACT_SEARCH and e.shape[1] > LOW_DIM else None
    return {"ids": np.array([r[0] for r in rows], dtype=np.int64), "ph8": p, "dh8": d, "emb": e, "low": low}


def _load(lib, *, save: bool = True) -> tuple[_Photos, list]:
    """Photos with features (for near/similar) and every photo row (for exact bytes)."""
    usable = ", ".join("?" * len(USABLE))
    all_rows = [dict(r) for r in lib.catalog.query(
        "SELECT p.id, p.path, p.kind, p.size, p.sha256, p.format, p.width, p.height, p.status, p.captured_at, "
        "p.captured_source, p.camera_make, p.gps_lat, pe.event_id FROM photos p "
        "LEFT JOIN photo_events pe ON pe.photo_id = p.id "
        f"WHERE p.kind IN ('photo', 'raw') AND p.status IN ({usable}) ORDER BY p.id", USABLE)]
    by_id = {r["id"]: r for r in all_rows}
    m = _feature_matrix(lib, save=save)
    keep = np.fromiter((int(i) in by_id for i in m["ids"]), dtype=bool, count=len(m["ids"]))
    sel = (lambda a: a) if keep.all() else (lambda a: a[keep])
    ids = sel(m["ids"])
    rows = [by_id[int(i)] for i in ids]
    low = sel(m["low"]) if m["low"] is not None else None
    return _Photos(ids, rows, sel(m["ph8"]), sel(m["dh8"]), sel(m["emb"]), low), all_rows


# -- candidate pairs ----------------------------------------------------------
def _pairs(qi: np.ndarray, pj: np.ndarray) -> np.ndarray:
    keep = (pj >= 0) & (qi != pj)
    pairs = np.stack([np.minimum(qi, pj), np.maximum(qi, pj)], axis=1)[keep]
    return np.unique(pairs, axis=0) if len(pairs) else pairs


def _hash_candidates(ph8: np.ndarray, radius: int, queries_idx: np.ndarray | None = None) -> np.ndarray:
    """Pairs (i, j), i < j, whose upright pHash is within ``radius`` of any orientation of the other."""
    import faiss

    n = len(ph8)
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    qidx = np.arange(n) if queries_idx is None else queries_idx
    codes = np.ascontiguousarray(ph8.reshape(-1)).view(np.uint8).reshape(n * 8, 8)
    if queries_idx is not None and len(qidx) * 50 < n:
        index = faiss.IndexBinaryFlat(64)   # a few queries: a linear scan beats building hash tables
    else:
        index = faiss.IndexBinaryMultiHash(64, 4, 16)
        index.nflip = max(0, (radius + 1 + 3) // 4 - 1)   # pigeonhole: one of 4 chunks differs in <= nflip bits
    index.add(codes)
    queries = np.ascontiguousarray(ph8[qidx, 0]).view(np.uint8).reshape(len(qidx), 8)
    lims, _, labels = index.range_search(queries, radius + 1)   # faiss: distance < radius
    qi = np.repeat(qidx, np.diff(lims.astype(np.int64)))
    return _pairs(qi, labels.astype(np.int64) // 8)


def _embedding_candidates(P: _Photos, k: int, min_cos: float, queries_idx: np.ndarray | None = None):
    """Pairs (i, j), i < j, among each photo's ``k`` nearest embeddings with cosine >= ``min_cos``
    (in the PCA projection for large libraries, with a margin: re-checked at full size by the caller)."""
    import faiss

    n = len(P.ids)
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    k = min(k + 1, n)
    vecs, margin = (P.low, 0.05) if P.low is not None else (P.emb.astype(np.float32), 0.0)
    qidx = np.arange(n) if queries_idx is None else queries_idx
    if queries_idx is not None or n <= EXACT_SEARCH:
        index = faiss.IndexFlatIP(vecs.shape[1])
        index.add(vecs)
        sims, nbrs = index.search(vecs[qidx], k)
    else:
        nlist = int(min(4096, max(64, 4 * np.sqrt(n))))
        quant = faiss.IndexFlatIP(vecs.shape[1])
        index = faiss.IndexIVFFlat(quant, vecs.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vecs[np.random.default_rng(1).choice(n, min(n, 40 * nlist), replace=False)])
        index.add(vecs)
        index.nprobe = 12
        sims, nbrs = index.search(vecs, k)
    qi = np.repeat(qidx, k)
    pj = nbrs.reshape(-1).astype(np.int64)
    ok = sims.reshape(-1) >= min_cos - margin
    return _pairs(qi[ok], pj[ok])


def _same_pixels(lib, a: dict, b: dict) -> bool:
    """Whether two files decode to exactly the same pixels (stored orientation, full size)."""
    from PIL import Image

    from .media import register_heif

    if (a["width"], a["height"]) != (b["width"], b["height"]) or a["kind"] == "raw" or b["kind"] == "raw":
        return False
    register_heif()
    try:
        with Image.open(lib.abs(a["path"])) as ia, Image.open(lib.abs(b["path"])) as ib:
            if ia.size != ib.size:
                return False
            return bool(np.array_equal(np.asarray(ia.convert("RGB")), np.asarray(ib.convert("RGB"))))
    except Exception:  # noqa: BLE001 - undecodable: not provably the same pixels
        return False


def _distinct_captures(a: dict, b: dict) -> bool:
    """Two camera originals taken at different moments (HDR pairs, bursts): never duplicates of each other.

    A re-encoded, resized or converted copy either keeps the original's capture
    time (to the sub-second where the camera records it) or has none.
    """
    real = ("DateTimeOriginal", "CreateDate")
    return (a["captured_source"] in real and b["captured_source"] in real
            and a["captured_at"] != b["captured_at"])


# -- grouping -----------------------------------------------------------------
class _Union:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _keeper_order(row: dict, opts: DedupeOptions, new: frozenset = frozenset()) -> tuple:
    """Sort key, best copy first: resolution, format preference, intact, more metadata, a copy already in the
    library over one in ``new`` (the files a pass is taking in), earliest capture, path."""
    fmt = "RAW" if row["kind"] == "raw" else (row["format"] or "").upper()
    pref = opts.format_preference
    meta = sum(x is not None for x in (row["captured_at"], row["camera_make"], row["gps_lat"])) + (
        row["captured_source"] == "DateTimeOriginal")
    return (-(row["width"] or 0) * (row["height"] or 0), pref.index(fmt) if fmt in pref else len(pref),
            row["status"] != "ok", -meta, bool(new) and row["id"] in new, (row["captured_at"] or "9999")[:19], row["path"])


def _describe(row: dict) -> str:
    fmt = "RAW" if row["kind"] == "raw" else (row["format"] or "?")
    return f"{row['width']}x{row['height']} {fmt}"


def _group_rows(part: list[int], edges: dict, rows_by_id: dict, opts: DedupeOptions,
               group_no: int, new: frozenset = frozenset()) -> list[dict]:
    """Plan rows of one duplicate group, the keeper first; each copy says which file it duplicates and how."""
    ranked = sorted(part, key=lambda pid: _keeper_order(rows_by_id[pid], opts, new))
    keeper = rows_by_id[ranked[0]]
    # exact clusters inside the group: same bytes or same pixels, linked through edges
    cl = _Union(len(ranked))
    at = {pid: k for k, pid in enumerate(ranked)}
    for x in range(len(ranked)):
        for y in range(x + 1, len(ranked)):
            e = edges.get((min(ranked[x], ranked[y]), max(ranked[x], ranked[y])))
            if e and e[0] == "exact":
                cl.union(x, y)
    rows_out = []
    for pid in ranked[1:]:
        r = rows_by_id[pid]
        root = cl.find(at[pid])
        mates = [q for q in ranked if q != pid and cl.find(at[q]) == root]
        if mates:   # ranked order: the keeper itself when it is one of them
            copy_of = rows_by_id[mates[0]]
            e = edges.get((min(pid, mates[0]), max(pid, mates[0])))
            tier, how = "exact", (e[1] if e and e[0] == "exact" else "same pixels, through the group")
        else:
            copy_of = keeper
            e = edges.get((min(pid, ranked[0]), max(pid, ranked[0])))
            tier, how = "near", (e[1] if e else "through the group")
        why = (f"{tier} duplicate ({how}) of {copy_of['path']}; keeper {keeper['path']}: "
               f"{_describe(r)} vs {_describe(keeper)}")
        rows_out.append({"group": group_no, "tier": tier, "path": r["path"], "keep": False,
                         "reason": why, "photo_id": pid, "copy_of": copy_of["path"]})
    tier = "exact" if all(x["tier"] == "exact" and x["copy_of"] == keeper["path"] for x in rows_out) else "near"
    return [{"group": group_no, "tier": tier, "path": keeper["path"], "keep": True,
             "reason": f"kept: {_describe(keeper)}, the best of {len(part)}", "photo_id": ranked[0],
             "copy_of": None}] + rows_out


def plan(library, *, options: DedupeOptions | None = None, only=None):
    """Find duplicate groups and choose a keeper in each; changes nothing.

    Returns:
        A DataFrame, one row per file in a group: ``group``, ``tier``
        (``exact``, ``near`` or ``similar``), ``path`` (relative to the library),
        ``keep`` (True/False), ``reason``; plus ``photo_id`` and ``copy_of`` (the
        file a set-aside copy duplicates). A copy's tier is ``exact`` when it has
        the same bytes or pixels as another file of the group, else ``near``;
        ``similar`` groups always keep every file.

    Args:
        only: photo ids (e.g. a new import) to check against the whole library;
            default: every photo against every other.
    """
    import pandas as pd

    opts = options or DedupeOptions()
    lib = open_library(library)
    recover(lib)
    P, all_rows = _load(lib, save=only is None)
    n = len(P.rows)
    untagged = len(all_rows) - n

    # exact bytes, over every usable photo (with or without features)
    by_sha: dict[str, list[dict]] = {}
    for r in all_rows:
        if r["sha256"]:
            by_sha.setdefault(r["sha256"], []).append(r)

    edges: dict[tuple[int, int], tuple[str, str]] = {}   # (photo id, photo id) -> (tier, why)
    for rs in by_sha.values():
        for other in rs[1:]:
            edges[(rs[0]["id"], other["id"])] = ("exact", "same bytes")

    qidx = None
    if only is not None:
        wanted = {int(x) for x in only}
        qidx = np.array([k for k, pid in enumerate(P.ids) if int(pid) in wanted], dtype=np.int64)
        sha_of = {r["id"]: r["sha256"] for r in all_rows}
        shas = {sha_of[pid] for pid in wanted if pid in sha_of}
        edges = {k: v for k, v in edges.items() if sha_of.get(k[0]) in shas}
    if n >= 2 and (qidx is None or len(qidx)):
        cand = np.concatenate([_hash_candidates(P.ph8, opts.near_phash, qidx),  # the loose path needs the embedding
                               _embedding_candidates(P, opts.neighbours, min(opts.similar_cosine,
                                                                                 opts.near_cosine), qidx)])
        cand = np.unique(cand, axis=0) if len(cand) else cand
        if len(cand):
            i, j = cand[:, 0], cand[:, 1]
            cos = np.einsum("ij,ij->i", P.emb[i].astype(np.float32), P.emb[j].astype(np.float32))
            pd_all = _popcount(P.ph8[i, :1] ^ P.ph8[j])                # upright i vs each orientation of j
            best = pd_all.argmin(axis=1)
            dph = pd_all[np.arange(len(i)), best]
            ddh = _popcount(P.dh8[i, 0] ^ P.dh8[j, best])
            near_hash = (dph <= opts.near_phash) & (ddh <= opts.near_dhash) & (cos >= opts.near_min_cosine)
            # pHashes that line up while the dHashes do not: another viewpoint or moment (stereo, burst)
            shifted = (dph <= opts.near_phash) & (ddh > opts.near_dhash)
            near_emb = (cos >= opts.near_cosine) & (dph <= opts.near_phash_loose) & ~shifted
            similar = cos >= opts.similar_cosine
            for k in range(len(i)):
                a, b = P.rows[i[k]], P.rows[j[k]]
                key = (min(a["id"], b["id"]), max(a["id"], b["id"]))
                if key in edges:
                    continue
                how = f"pHash {dph[k]} ({ORIENTATIONS[best[k]]}), dHash {ddh[k]}, cosine {cos[k]:.2f}"
                if _distinct_captures(a, b):
                    if near_hash[k] or near_emb[k] or similar[k]:
                        edges[key] = ("similar", how + f"; taken at {a['captured_at']} and {b['captured_at']}")
                elif near_hash[k] or near_emb[k]:
                    if dph[k] == 0 and _same_pixels(lib, a, b):
                        edges[key] = ("exact", "same pixels, other file")
                    else:
                        edges[key] = ("near", how)
                elif similar[k]:
                    edges[key] = ("similar", how)

    ids = sorted({pid for e in edges for pid in e})
    rows_by_id = {r["id"]: r for r in all_rows}
    pos = {pid: k for k, pid in enumerate(ids)}
    dup = _Union(len(ids))
    for (a, b), (tier, _) in edges.items():
        if tier != "similar":
            dup.union(pos[a], pos[b])
    comps: dict[int, list[int]] = {}
    for pid in ids:
        comps.setdefault(dup.find(pos[pid]), []).append(pid)

    parts: list[list[int]] = []
    for members in sorted(comps.values(), key=lambda m: rows_by_id[m[0]]["path"]):
        if not opts.per_event:
            parts.append(members)
            continue
        by_event: dict = {}
        for pid in members:
            by_event.setdefault(rows_by_id[pid]["event_id"], []).append(pid)
        parts.extend(by_event.values())
    out: list[dict] = []
    keeper_of: dict[int, int] = {}
    group_no = 0
    for part in parts:
        if len(part) < 2:
            keeper_of[part[0]] = part[0]
            continue
        group_no += 1
        rows = _group_rows(part, edges, rows_by_id, opts, group_no,
                           frozenset(int(x) for x in only) if only is not None else frozenset())
        keeper_of.update((r["photo_id"], rows[0]["photo_id"]) for r in rows)
        out.extend(rows)

    # similar: groups of keepers joined by similar edges, for a person to look at
    pairs = [(keeper_of.get(a, a), keeper_of.get(b, b)) for (a, b), (tier, _) in edges.items() if tier == "similar"]
    pairs = [(a, b) for a, b in pairs if a != b]
    sim = _Union(len(ids))
    for a, b in pairs:
        sim.union(pos[a], pos[b])
    scomps: dict[int, set[int]] = {}
    for a, b in pairs:
        scomps.setdefault(sim.find(pos[a]), set()).update((a, b))
    for members in sorted(scomps.values(), key=lambda m: min(rows_by_id[p]["path"] for p in m)):
        group_no += 1
        for pid in sorted(members, key=lambda p: rows_by_id[p]["path"]):
            out.append({"group": group_no, "tier": "similar", "path": rows_by_id[pid]["path"], "keep": True,
                        "reason": "similar scene: kept; look at the group and decide", "photo_id": pid,
                        "copy_of": None})
    df = pd.DataFrame(out, columns=PLAN_COLUMNS + ["photo_id", "copy_of"])
    df.attrs["unchecked"] = untagged
    if untagged:
        log.warning("%d photos have no features yet (run `photolab tag`): only exact copies were checked for them",
                    untagged)
    return df


def write_plan_csv(plan_df, out: str | os.PathLike) -> Path:
    """Write ``group, tier, path, keep, reason`` (keep as true/false), atomically."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    df = plan_df[PLAN_COLUMNS].copy()
    df["keep"] = df["keep"].map({True: "true", False: "false"})
    df.to_csv(tmp, index=False, encoding="utf-8")
    os.replace(tmp, out)
    return out


def summary(plan_df) -> str:
    """One line: groups per tier (a group's tier is its keeper's), files, and how many would be set aside."""
    if not len(plan_df):
        return "no duplicates"
    parts = []
    tier_of = plan_df[plan_df["keep"]].set_index("group")["tier"]
    for tier in ("exact", "near", "similar"):
        groups = tier_of[tier_of == tier].index
        sub = plan_df[plan_df["group"].isin(groups)]
        if len(sub):
            extra = f", {int((~sub['keep']).sum())} to set aside" if tier != "similar" else ", all kept"
            parts.append(f"{len(groups)} {tier} groups ({len(sub)} files{extra})")
    return "; ".join(parts)


def review_table(library, plan_df):
    """The plan with what a person needs to judge each group: thumbnail, resolution, size, format, time."""
    lib = open_library(library)
    if not len(plan_df):
        return plan_df.assign(thumb=[], resolution=[], size=[], format=[], captured_at=[])
    ids = [int(x) for x in plan_df["photo_id"]]
    info = {r["id"]: r for r in lib.catalog.query(
        f"SELECT p.id, p.width, p.height, p.size, p.format, p.captured_at, f.thumb FROM photos p "
        f"LEFT JOIN features f ON f.photo_id = p.id WHERE p.id IN ({', '.join('?' * len(ids))})", ids)}
    out = plan_df.copy()
    out["thumb"] = [str(lib.state / "features" / info[i]["thumb"]) if info[i]["thumb"] else None for i in ids]
    out["resolution"] = [f"{info[i]['width']}x{info[i]['height']}" for i in ids]
    out["size"] = [info[i]["size"] for i in ids]
    out["format"] = [info[i]["format"] for i in ids]
    out["captured_at"] = [info[i]["captured_at"] for i in ids]
    return out


def set_keeper(plan_df, path: str):
    """A copy of the plan in which ``path`` is its group's keeper (a person's choice)."""
    df = plan_df.copy()
    if path not in set(df["path"]):
        raise KeyError(f"{path} is in no group of this plan")
    group = df.loc[df["path"] == path, "group"].iloc[0]
    if (df.loc[df["group"] == group, "tier"] == "similar").all():
        raise ValueError(f"group {group} is a similar-scene group: everything in it is kept")
    in_group = df["group"] == group
    df.loc[in_group, "keep"] = df.loc[in_group, "path"] == path
    df.loc[in_group & (df["path"] == path), "reason"] = "kept: chosen by a person"
    return df


def dismiss_group(plan_df, group: int):
    """A copy of the plan without ``group`` (a person says: not duplicates, keep them all)."""
    return plan_df[plan_df["group"] != group].copy()


def split_group(plan_df, paths):
    """A copy of the plan in which ``paths`` leave their group (a person says: these are not copies
    of the rest). They form a group of their own; a part left with one file drops out of the plan
    (nothing to set aside), and a part without its keeper gets its first file as keeper."""
    paths = [paths] if isinstance(paths, str) else list(paths)
    df = plan_df.copy()
    rows = df[df["path"].isin(paths)]
    if len(rows) != len(set(paths)):
        raise KeyError(f"not in this plan: {', '.join(sorted(set(paths) - set(rows['path'])))}")
    groups = set(rows["group"])
    if len(groups) != 1:
        raise ValueError("split takes files of one group")
    group = groups.pop()
    new_group = int(df["group"].max()) + 1
    df.loc[df["path"].isin(paths), "group"] = new_group
    for g in (group, new_group):
        part = df["group"] == g
        if part.sum() < 2:
            df = df[~part]
            continue
        if (df.loc[part, "tier"] == "similar").all():
            continue
        if not df.loc[part, "keep"].any():
            first = df.index[part][0]
            df.loc[part, "keep"] = df.index[part] == first
            df.loc[first, "reason"] = "kept: group split by a person"
            df.loc[part & ~df["keep"].astype(bool), "copy_of"] = df.loc[first, "path"]
    return df.copy()


# -- quarantine ---------------------------------------------------------------
def apply(library, plan_df, *, progress: bool = True) -> BatchReport:
    """Move every ``keep == False`` file of an exact/near group (with its companions) into quarantine."""
    from tqdm.auto import tqdm

    from .backup import guard

    lib = open_library(library)
    guard(lib, "dedupe --apply")
    batch = new_batch("dedupe")
    qdir = f"{STATE_DIR}/quarantine/{batch}"
    todo = plan_df[(~plan_df["keep"].astype(bool)) & (plan_df["tier"] != "similar")]
    rows = {r["path"]: r["sha256"] for r in lib.catalog.query("SELECT path, sha256 FROM photos")}
    names_in: dict[str, set[str]] = {}
    for p in rows:
        folder, _, name = p.rpartition("/")
        names_in.setdefault(folder, set()).add(name)
    keepers = plan_df[plan_df["keep"].astype(bool)].set_index("group")["path"].to_dict()
    moves: list[Move] = []
    for r in todo.itertuples():
        if r.path not in rows:
            continue
        folder, _, name = r.path.rpartition("/")
        for member in [name] + companions(Path(name), names_in[folder]):
            src = f"{folder}/{member}" if folder else member
            moves.append(Move(src=src, dst=f"{qdir}/{src}", sha256=rows[src], status="quarantined",
                              note=f"duplicate of {keepers.get(r.group)} (batch {batch})",
                              detail={"group": int(r.group), "keeper": keepers.get(r.group), "tier": r.tier}))
    bar = tqdm(total=len(moves), desc="quarantine", unit="file", disable=not progress or not moves)
    report = execute(lib, moves, batch=batch, op="quarantine", on_progress=bar.update)
    bar.close()
    with lib.catalog.write() as db:
        done = db.execute("SELECT dst, detail FROM journal WHERE batch = ? AND state = 'done'", (batch,)).fetchall()
        _merge_labels(db, plan_df)
    if done:
        manifest = {"batch": batch, "created_at": utcnow(), "retention_days": retention_days(lib),
                    "files": [{"path": d["dst"][len(qdir) + 1:], **json.loads(d["detail"])} for d in done]}
        mpath = lib.root / qdir / "manifest.json"
        mpath.parent.mkdir(parents=True, exist_ok=True)
        tmp = mpath.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, mpath)
    return report


def _merge_labels(db, plan_df) -> None:
    """A person's positive labels on the set-aside copies carry over to their keeper."""
    for _, grp in plan_df[plan_df["tier"] != "similar"].groupby("group"):
        keep = grp[grp["keep"].astype(bool)]
        if keep.empty:
            continue
        kid = int(keep.iloc[0]["photo_id"])
        for pid in grp.loc[~grp["keep"].astype(bool), "photo_id"]:
            db.execute("INSERT OR IGNORE INTO labels(photo_id, tag, value, who, at) "
                       "SELECT ?, tag, value, who, at FROM labels WHERE photo_id = ? AND value = 1", (kid, int(pid)))


def restore(library, what: str) -> BatchReport:
    """Put a quarantine batch (its id) or one quarantined file (its original or quarantine path) back."""
    lib = open_library(library)
    cat = lib.catalog
    if cat.query("SELECT 1 FROM journal WHERE batch = ? AND op = 'quarantine' LIMIT 1", (what,)):
        report = undo(lib, what)
        _remove_batch_folder(lib, what, only_if_empty=True)
        return report
    rel = lib.rel(what) if os.path.isabs(what) else what
    row = cat.query("SELECT id, batch FROM journal WHERE op = 'quarantine' AND state = 'done' "
                    "AND (src = ? OR dst = ?) ORDER BY id DESC LIMIT 1", (rel, rel))
    if not row:
        raise FileOpError(f"{what}: neither a quarantine batch nor a quarantined file of {lib.root}; give a "
                          "batch id (a folder of .photolab/quarantine/) or the file's original path")
    report = undo_one(lib, row[0]["id"])
    _remove_batch_folder(lib, row[0]["batch"], only_if_empty=True)
    return report


def _remove_batch_folder(lib, batch: str, *, only_if_empty: bool) -> None:
    """Remove a batch's quarantine folder with its manifest (with ``only_if_empty``: only once no file is left)."""
    folder = lib.state / "quarantine" / batch
    if not folder.is_dir():
        return
    if only_if_empty and any(p.is_file() and p.name != "manifest.json" for p in folder.rglob("*")):
        return
    (folder / "manifest.json").unlink(missing_ok=True)
    for d in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        d.rmdir()
    folder.rmdir()


def retention_days(library) -> float:
    lib = open_library(library)
    return float(lib.catalog.get_meta("quarantine_retention_days", str(DEFAULT_RETENTION_DAYS)))


def set_retention(library, days: float) -> None:
    """Change how long quarantined files are kept before :func:`purge` may delete them."""
    if days < 0:
        raise ValueError(f"retention of {days:g} days: it cannot be negative (0 lets purge delete every batch)")
    open_library(library).catalog.set_meta("quarantine_retention_days", str(float(days)))


def quarantine_batches(library):
    """Quarantine batches: id, files still held, when, age in days, and whether purge may delete them."""
    import pandas as pd

    lib = open_library(library)
    days = retention_days(lib)
    now = _dt.datetime.now(_dt.timezone.utc)
    rows = []
    for r in lib.catalog.query("SELECT batch, count(*) AS files, min(created_at) AS at FROM journal "
                               "WHERE op = 'quarantine' AND state = 'done' GROUP BY batch ORDER BY min(id)"):
        age = (now - _dt.datetime.fromisoformat(r["at"])).total_seconds() / 86400
        rows.append({"batch": r["batch"], "files": r["files"], "created_at": r["at"], "age_days": round(age, 2),
                     "purgeable": age >= days})
    return pd.DataFrame(rows, columns=["batch", "files", "created_at", "age_days", "purgeable"]).astype(
        {"files": int, "age_days": float, "purgeable": bool})


def purge(library, *, batch: str | None = None) -> int:
    """Delete quarantined files of batches older than the retention; returns how many were deleted.

    A batch younger than the retention is refused, even when named: change the
    retention (:func:`set_retention`) to purge earlier.
    """
    lib = open_library(library)
    recover(lib)
    table = quarantine_batches(lib)
    if batch is not None:
        table = table[table["batch"] == batch]
        if table.empty:
            raise FileOpError(f"batch {batch}: no quarantined files")
        young = table[~table["purgeable"]]
        if len(young):
            raise FileOpError(f"batch {batch} is {young.iloc[0]['age_days']:.1f} days old; the retention is "
                              f"{retention_days(lib):g} days; it is kept until then")
    if table["purgeable"].any():
        from .backup import guard

        guard(lib, "purge")
    deleted = 0
    if table["purgeable"].any():
        lib.catalog.backup("before-purge")
    for b in table.loc[table["purgeable"], "batch"]:
        entries = lib.catalog.query("SELECT id, dst FROM journal WHERE batch = ? AND op = 'quarantine' "
                                    "AND state = 'done'", (b,))
        for e in entries:
            with lib.catalog.write() as db:
                db.execute("INSERT INTO journal(batch, op, src, dst, sha256, state, created_at) "
                           "VALUES (?, 'purge', ?, NULL, NULL, 'deleted', ?)", (b, e["dst"], utcnow()))
                db.execute("UPDATE journal SET state = 'purged' WHERE id = ?", (e["id"],))
                db.execute("DELETE FROM photos WHERE path = ?", (e["dst"],))
                lib.abs(e["dst"]).unlink(missing_ok=True)
            deleted += 1
        _remove_batch_folder(lib, b, only_if_empty=False)
    return deleted


def dedupe(library, *, do_apply: bool = False, options: DedupeOptions | None = None, progress: bool = True):
    """Plan (and with ``do_apply=True`` apply) deduplication; returns (plan, report or None)."""
    df = plan(library, options=options)
    return df, (apply(library, df, progress=progress) if do_apply else None)


__all__ = ["DedupeOptions", "PLAN_COLUMNS", "apply", "dedupe", "dismiss_group", "plan", "purge",
           "quarantine_batches", "restore", "retention_days", "review_table", "set_keeper", "set_retention", "summary",
           "write_plan_csv"]
