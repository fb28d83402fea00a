"""Dedupe: exact and near duplicates from cached features, a keeper per group, quarantine — never delete.

Three tiers, never confused (videos, below, are only ever compared with videos):

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

Nothing compares all pairs: up to 5,000 photos, hashes go into a faiss
multi-index hash (all 8 orientations of every photo) and embeddings are searched
exactly; above, pHash and dHash of each orientation are cut into six 21-22-bit
keys, each looked up within one bit in a table the key addresses directly (every
pair within 11 bits over both hashes is found), and embeddings are compared
within lists of about 96 photos that a two-level k-means over a PCA projection
routes each photo to. The work per photo stays about constant as the library
grows; only the candidate pairs are checked, at full size. The matrices are
memory-mapped from ``.photolab/features/`` (float16 embeddings, held once), and
the lists are kept with them, so a few new photos are checked against the
library without reading the rest.

Videos: exact copies by content; near copies (a re-encode, a trimmed export) by
their poster frames' hashes (the frame at 10 % of the duration) plus durations
within 2 %. A clip is never compared with a photo.

The keeper of a group has the highest resolution (a clip: then the longest); ties go to the preferred
format (RAW > HEIC > JPEG > PNG > WebP by default), then an intact file over a
damaged one, then more metadata, then (in a pass over new files, ``only=``) the
copy already in the library over the one just imported, then the earliest
capture time.

``plan`` changes nothing. ``apply`` moves the others, with their sidecars and
companions, into ``.photolab/quarantine/<batch>/`` (journaled, see
:mod:`photolab.core.fileops`) with a manifest; ``restore`` puts a batch or one file
back byte-identical; ``purge`` deletes only batches older than the retention
(default 7 days) and refuses younger ones.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import mmap
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from photolab.store.catalog import STATE_DIR, utcnow
from photolab.core.fileops import BatchReport, FileOpError, Move, execute, new_batch, recover, sha256_file, undo, undo_one
from photolab.stages.index import USABLE
from photolab.core.library import open_library
from photolab.features.media import companions
from photolab.store import dedupe as store
from photolab.store.photos import delete_path
from photolab.store.watch import in_folders

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
    rows: _PhotoRows         # catalog rows by photo id
    ph8: np.ndarray          # N x 8 uint64
    dh8: np.ndarray          # N x 8 uint64
    emb: _Rows               # N x D float16, unit length (memory-mapped from the feature cache)
    low: _Rows | None        # N x LOW_DIM float16, unit length: PCA projection (libraries > EXACT_SEARCH)
    cache_pos: np.ndarray | None = None   # position in ``ids`` of each row of the cached matrices (-1: gone)
    gen: str | None = None               # which cached matrices (their embedding lists are cached beside them)
    folder: Path | None = None


EXACT_SEARCH = 5000      # up to this many photos, embeddings are compared at full size
LOW_DIM = 128
BLOCK = 20000            # rows per step when reading, writing or projecting the matrices


def _hex64(text: str) -> int:
    return int(text, 16)


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(np.asarray(x, dtype=np.uint64)).astype(np.int64)


def _hex_matrix(texts: list[str]) -> np.ndarray:
    """N x 8 uint64 from rows of 8 comma-separated hexadecimal hashes."""
    n = len(texts)
    if not n:
        return np.zeros((0, 8), np.uint64)
    joined = "".join(texts).replace(",", "")
    if len(joined) == 128 * n:   # the usual 16 digits each: one C-level conversion
        try:
            return np.frombuffer(bytes.fromhex(joined), dtype=">u8").astype(np.uint64).reshape(n, 8)
        except ValueError:
            pass
    return np.array([[_hex64(h) for h in t.split(",")] for t in texts], dtype=np.uint64).reshape(n, 8)


def _drop_pages(*arrays) -> None:
    """Let go of the pages of memory maps read or written so far (they stay in the page cache, not in
    this process's resident set): a pass over a cache of a million rows does not hold it all."""
    for a in arrays:
        while a is not None and not isinstance(a, np.memmap) and isinstance(getattr(a, "base", None), np.ndarray):
            a = a.base
        mm = getattr(a, "_mmap", None)
        if mm is not None and hasattr(mmap, "MADV_DONTNEED"):
            try:
                mm.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError):
                pass


class _Rows:
    """The rows of one or more matrices (a memory-mapped cache, rows read since), picked without copying:
    ``rows[idx]`` gathers just the rows asked for."""

    def __init__(self, sources: list, which: np.ndarray | None = None, row: np.ndarray | None = None):
        self.sources = sources
        n = len(sources[0]) if row is None else len(row)
        self.which = np.zeros(n, np.int8) if which is None else which
        self.row = np.arange(n) if row is None else row
        self.shape = (n,) + tuple(sources[0].shape[1:])
        self.dtype = sources[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx) -> np.ndarray:
        if isinstance(idx, slice):
            idx = np.arange(len(self))[idx]
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty((len(idx),) + self.shape[1:], self.dtype)
        which, row = self.which[idx], self.row[idx]
        for s, src in enumerate(self.sources):
            m = which == s
            if m.any():
                r = row[m]
                order = np.argsort(r, kind="stable")   # in file order: sequential reads of a memory map
                got = np.empty((len(r),) + self.shape[1:], self.dtype)
                got[order] = src[r[order]]
                out[m] = got
        return out

    def take(self, sel: np.ndarray) -> _Rows:
        return _Rows(self.sources, self.which[sel], self.row[sel])

    def drop_pages(self) -> None:
        _drop_pages(*self.sources)


CACHE_FILE = "dedupe-features.json"   # under .photolab/features/: names the matrices (.npy files beside it)
CACHE_VERSION = 3
_OLD_CACHES = ("dedupe-features.npz",)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


def _parse_features(feats) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hashes and unit-length float16 embeddings of feature rows."""
    n = len(feats)
    ph8 = _hex_matrix([f["phash8"] for f in feats])
    dh8 = _hex_matrix([f["dhash8"] for f in feats])
    emb = (_unit(np.stack([np.frombuffer(f["embedding"], dtype=np.float16) for f in feats])).astype(np.float16)
           if n else np.zeros((0, 1), np.float16))
    return ph8, dh8, emb


def _train_pca(emb) -> tuple[np.ndarray, np.ndarray]:
    """(mean, D x LOW_DIM projection) from up to 20,000 rows."""
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(emb), min(len(emb), 20000), replace=False))
    sample = np.asarray(emb[pick], dtype=np.float32)
    _drop_pages(emb)
    mean = sample.mean(axis=0)
    cov = np.cov(sample - mean, rowvar=False)
    vals, vecs = np.linalg.eigh(cov)
    return mean, np.ascontiguousarray(vecs[:, ::-1][:, :LOW_DIM].astype(np.float32))


def _project(emb, mean: np.ndarray, proj: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    out = np.empty((len(emb), proj.shape[1]), np.float16) if out is None else out
    for k in range(0, len(emb), BLOCK):
        out[k:k + BLOCK] = _unit((np.asarray(emb[k:k + BLOCK], dtype=np.float32) - mean) @ proj)
        _drop_pages(emb, out)
    return out


def _store_path(folder: Path, gen: str, name: str) -> Path:
    return folder / f"dedupe-{gen}.{name}"


def _read_store(folder: Path) -> dict | None:
    """The cached matrices, memory-mapped (None when absent, of another version or damaged)."""
    path = folder / CACHE_FILE
    if not path.is_file():
        return None
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
        if m.get("version") != CACHE_VERSION:
            return None
        c = {"gen": str(m["gen"]), "pca_n": int(m.get("pca_n", 0)), "max_at": m.get("max_at")}
        for name in m["arrays"]:
            c[name] = np.load(_store_path(folder, c["gen"], name + ".npy"), mmap_mode="r", allow_pickle=False)
        n = len(c["ids"])
        if any(len(c[k]) != n for k in ("stamps", "ph8", "dh8", "emb")) or ("low" in c and len(c["low"]) != n):
            raise ValueError("matrices of different lengths")
        return c
    except Exception as exc:   # a damaged cache is only a cache: rebuilt
        log.warning("%s: unreadable (%s); rebuilding", path, exc)
        return None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _commit_store(folder: Path, gen: str, names: list[str], pca_n: int, max_at: str) -> None:
    """Name the new matrices in the manifest (atomically), then remove older ones."""
    for name in names:
        _fsync(_store_path(folder, gen, name + ".npy"))
    path = folder / CACHE_FILE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"version": CACHE_VERSION, "gen": gen, "arrays": names, "pca_n": pca_n,
                               "max_at": max_at}),
                   encoding="utf-8")
    _fsync(tmp)
    os.replace(tmp, path)
    _remove_old_stores(folder, keep=gen)


def _remove_old_stores(folder: Path, keep: str) -> None:
    for name in _OLD_CACHES:
        (folder / name).unlink(missing_ok=True)
    for p in folder.glob("dedupe-*.*"):
        if p.name != CACHE_FILE and not p.name.startswith(f"dedupe-{keep}."):
            p.unlink(missing_ok=True)


def _fetch_range(lib, lo: int, hi: int) -> list:
    return store.features_between(lib.catalog.conn, lo, hi)


def _fetch_ids(lib, todo: np.ndarray) -> list:
    return store.features_of(lib.catalog.conn, todo)


class _Changed(Exception):
    """Features changed while they were read: read again."""


def _feature_matrix(lib, *, save: bool = True, _again: bool = True) -> dict:
    """ids, ph8, dh8, emb (unit float16) and, above EXACT_SEARCH photos, their PCA projection ``low``,
    for every photo with features.

    The matrices are cached as ``.npy`` files in ``.photolab/features/`` (named by
    ``dedupe-features.json``) with a stamp per row (time, content hash and model of
    its features) and used memory-mapped, never held twice. A later call reads
    from the catalog only rows that are new or were recomputed since, and projects
    only those, which is what lets a watched import be checked against the library
    in seconds. A whole-library call writes a new cache when anything changed; a
    call for new photos only writes one when more than 5% of the rows are new.
    The projection is retrained when the library has doubled since it was made.
    """
    folder = lib.state / "features"
    folder.mkdir(parents=True, exist_ok=True)
    c = _read_store(folder)
    ids, st, max_at = _stamps(lib, c if not save else None)
    n = len(ids)
    hit = np.zeros(n, dtype=bool)
    pos = np.zeros(n, dtype=np.int64)
    if c is not None and len(c["ids"]):
        cids = np.asarray(c["ids"])
        pos = np.clip(np.searchsorted(cids, ids), 0, len(cids) - 1)
        hit = (cids[pos] == ids) & (np.asarray(c["stamps"])[pos] == st)
    fresh = ~hit
    nf = int(fresh.sum())
    dim = None
    if nf:
        first = store.embedding_bytes(lib.catalog.conn, ids[fresh][0])
        dim = (first or 2) // 2
    if c is not None and hit.any() and dim is not None and dim != c["emb"].shape[1]:
        c, hit, fresh, nf = None, np.zeros(n, dtype=bool), np.ones(n, dtype=bool), n   # another model: all anew
    if dim is None:
        dim = c["emb"].shape[1] if c is not None else 1
    want_low = n > EXACT_SEARCH and dim > LOW_DIM
    have_pca = c is not None and "pca_proj" in c and "low" in c and c["pca_proj"].shape[0] == dim
    retrain = want_low and (not have_pca or n > 2 * c["pca_n"])
    changed = c is None or len(c["ids"]) != n or nf > 0 or retrain
    try:
        if changed and (c is None or retrain or save or nf > 0.05 * n):
            return _write_matrices(lib, folder, ids, st, c, hit, pos, dim, want_low, retrain, max_at)
        return _patched_matrices(lib, ids, c, hit, pos, want_low)
    except _Changed:
        if not _again:
            raise
        return _feature_matrix(lib, save=save, _again=False)


def _stamps(lib, c: dict | None) -> tuple[np.ndarray, np.ndarray, str]:
    """Ids and stamps of every feature row, and the latest computed_at among them.

    With the cache ``c`` (for a check of new photos only): when no row up to the
    cache's last id was removed or recomputed since (same count, nothing computed
    later), the cached stamps stand for those rows and only later rows are read.
    """
    if c is not None and c.get("max_at") is not None and len(c["ids"]):
        last = int(c["ids"][-1])
        count, latest = store.features_up_to(lib.catalog.conn, last)
        if count == len(c["ids"]) and latest is not None and latest <= c["max_at"]:
            rows = store.feature_stamps(lib.catalog.conn, after=last)
            ids = np.concatenate([np.asarray(c["ids"]), np.fromiter((r[0] for r in rows), np.int64, len(rows))])
            st = np.concatenate([np.asarray(c["stamps"]),
                                 np.fromiter((zlib.crc32(r[1].encode()) for r in rows), np.uint32, len(rows))])
            return ids, st, max([c["max_at"]] + [r[1].split("|", 1)[0] for r in rows])
    rows = store.feature_stamps(lib.catalog.conn)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    st = np.fromiter((zlib.crc32(r[1].encode()) for r in rows), dtype=np.uint32, count=len(rows))
    return ids, st, max((r[1].split("|", 1)[0] for r in rows), default="")


def _checked(rows: list, expect: np.ndarray) -> list:
    if not np.array_equal(np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)), expect):
        raise _Changed()
    return rows


def _write_matrices(lib, folder: Path, ids, st, c, hit, pos, dim: int, want_low: bool, retrain: bool,
                    max_at: str) -> dict:
    """Write a new cache, block by block: cached rows copied, the others read from the catalog."""
    n = len(ids)
    gen = f"{int(time.time() * 1000):x}-{os.getpid()}"
    _remove_old_stores(folder, keep=c["gen"] if c is not None else gen)   # what an interrupted write left
    fmt = np.lib.format
    arr = {"ids": ids, "stamps": st}
    for name in arr:
        np.save(_store_path(folder, gen, name + ".npy"), arr[name])
    ph8 = fmt.open_memmap(_store_path(folder, gen, "ph8.npy"), mode="w+", dtype=np.uint64, shape=(n, 8))
    dh8 = fmt.open_memmap(_store_path(folder, gen, "dh8.npy"), mode="w+", dtype=np.uint64, shape=(n, 8))
    emb = fmt.open_memmap(_store_path(folder, gen, "emb.npy"), mode="w+", dtype=np.float16, shape=(n, dim))
    low = (fmt.open_memmap(_store_path(folder, gen, "low.npy"), mode="w+", dtype=np.float16, shape=(n, LOW_DIM))
           if want_low else None)
    mean, proj, pca_n = (None, None, 0)
    if want_low and not retrain:
        mean, proj, pca_n = np.asarray(c["pca_mean"]), np.asarray(c["pca_proj"]), c["pca_n"]
    for k in range(0, n, BLOCK):
        sl = slice(k, min(n, k + BLOCK))
        h = hit[sl]
        if h.any():
            src = pos[sl][h]
            ph8[sl][h], dh8[sl][h], emb[sl][h] = c["ph8"][src], c["dh8"][src], c["emb"][src]
            if low is not None and not retrain:
                low[sl][h] = c["low"][src]
        if not h.all():
            want = ids[sl][~h]
            rows = _fetch_range(lib, want[0], want[-1])
            if len(rows) != len(want):
                wanted = set(want.tolist())
                rows = [r for r in rows if r[0] in wanted]
            p, d, e = _parse_features(_checked(rows, want))
            if e.shape[1] != dim:
                raise _Changed()
            ph8[sl][~h], dh8[sl][~h], emb[sl][~h] = p, d, e
            if low is not None and not retrain:
                low[sl][~h] = _project(e, mean, proj)
        _drop_pages(ph8, dh8, emb, low, *(c[k] for k in ("ph8", "dh8", "emb", "low") if c is not None and k in c))
    if want_low and retrain:
        mean, proj = _train_pca(emb)
        pca_n = n
        _project(emb, mean, proj, out=low)
    names = ["ids", "stamps", "ph8", "dh8", "emb"]
    for m in (ph8, dh8, emb, low):
        if m is not None:
            m.flush()
    if want_low:
        np.save(_store_path(folder, gen, "pca_mean.npy"), mean)
        np.save(_store_path(folder, gen, "pca_proj.npy"), proj)
        names += ["low", "pca_mean", "pca_proj"]
    del ph8, dh8, emb, low
    try:
        _commit_store(folder, gen, names, pca_n, max_at)
    except OSError as exc:
        log.warning("%s: cannot write the feature cache (%s)", folder / CACHE_FILE, exc)
    w = {name: np.load(_store_path(folder, gen, name + ".npy"), mmap_mode="r") for name in names}
    return {"ids": ids, "ph8": np.asarray(w["ph8"]), "dh8": np.asarray(w["dh8"]), "emb": _Rows([w["emb"]]),
            "low": _Rows([w["low"]]) if want_low else None, "gen": gen, "cache_pos": np.arange(n),
            "folder": folder}


def _patched_matrices(lib, ids, c, hit, pos, want_low: bool) -> dict:
    """The cached matrices with the few rows read since on top (nothing written)."""
    n = len(ids)
    fresh = ~hit
    ph8, dh8 = np.zeros((n, 8), np.uint64), np.zeros((n, 8), np.uint64)
    ph8[hit], dh8[hit] = c["ph8"][pos[hit]], c["dh8"][pos[hit]]
    which = np.where(hit, 0, 1).astype(np.int8)
    row = np.where(hit, pos, 0)
    row[fresh] = np.arange(int(fresh.sum()))
    e = np.zeros((0, c["emb"].shape[1]), np.float16)
    lo = np.zeros((0, LOW_DIM), np.float16)
    if fresh.any():
        want = ids[fresh]
        p, d, e = _parse_features(_checked(_fetch_ids(lib, want), want))
        ph8[fresh], dh8[fresh] = p, d
        if want_low:
            lo = _project(e, np.asarray(c["pca_mean"]), np.asarray(c["pca_proj"]))
    cache_pos = np.full(len(c["ids"]), -1, dtype=np.int64)
    cache_pos[pos[hit]] = np.flatnonzero(hit)
    return {"ids": ids, "ph8": ph8, "dh8": dh8, "emb": _Rows([c["emb"], e], which, row),
            "low": _Rows([c["low"], lo], which, row) if want_low else None, "gen": c["gen"],
            "cache_pos": cache_pos, "folder": lib.state / "features"}


class _PhotoRows(dict):
    """Catalog rows of usable photos by id, read when first asked for (a plan needs those of its pairs)."""

    def __init__(self, lib):
        super().__init__()
        self.lib = lib

    def fetch(self, ids) -> None:
        todo = sorted({int(i) for i in ids} - self.keys())
        for r in store.photo_rows(self.lib.catalog.conn, todo):
            self[r["id"]] = dict(r)

    def __missing__(self, pid):
        self.fetch([pid])
        return dict.__getitem__(self, pid)


def _load(lib, *, save: bool = True) -> tuple[_Photos, np.ndarray]:
    """Photos with features (for near/similar) and the ids of every usable photo (exact bytes: with or
    without features)."""
    usable = np.fromiter(store.usable_ids(lib.catalog.conn, tuple(USABLE)), dtype=np.int64)
    m = _feature_matrix(lib, save=save)
    keep = np.isin(m["ids"], usable)
    ids = m["ids"][keep]
    new_pos = np.where(keep, np.cumsum(keep) - 1, -1)
    cache_pos = np.where(m["cache_pos"] >= 0, new_pos[np.maximum(m["cache_pos"], 0)], -1)
    sel = np.flatnonzero(keep)
    low = m["low"].take(sel) if m["low"] is not None else None
    return _Photos(ids, _PhotoRows(lib), m["ph8"][keep], m["dh8"][keep], m["emb"].take(sel), low, cache_pos,
                   m["gen"], m["folder"]), usable


# -- candidate pairs ----------------------------------------------------------
def _pairs(qi: np.ndarray, pj: np.ndarray) -> np.ndarray:
    keep = (pj >= 0) & (qi != pj)
    pairs = np.stack([np.minimum(qi, pj), np.maximum(qi, pj)], axis=1)[keep]
    return np.unique(pairs, axis=0) if len(pairs) else pairs


# six keys of 21-22 bits: three of the pHash, three of the dHash (of one orientation)
_KEYS = ((0, 0, 21), (0, 21, 21), (0, 42, 22), (1, 0, 21), (1, 21, 21), (1, 42, 22))
_MAX_EXPAND = 1 << 22     # candidate codes checked at once (memory bound)


def _code_pairs(q_ph, q_dh, d_ph, d_dh, max_ph: int, max_dh: int) -> tuple[np.ndarray, np.ndarray]:
    """(query, code) index pairs whose pHashes differ in at most ``max_ph`` bits and dHashes in at most
    ``max_dh``, among the pairs that agree within one bit on one of six 21-22-bit keys (three of
    each hash).

    Multi-index hashing: every pair whose two hashes differ in 11 bits or fewer
    together, or whose pHashes (or dHashes) differ in 5 or fewer, agrees so on some
    key (pigeonhole), so it is found; wider pairs are found when their differences
    fall unevenly, as they mostly do. Each key looks up 22-23 buckets of a table
    addressed by the key itself (no hashing, no sorting of the queries), so the
    work per photo stays about constant as the library grows.
    """
    out_q, out_d = [], []

    def check(qi, di):
        ok = (np.bitwise_count(q_ph[qi] ^ d_ph[di]) <= max_ph) & (np.bitwise_count(q_dh[qi] ^ d_dh[di]) <= max_dh)
        out_q.append(qi[ok])
        out_d.append(di[ok])

    for h, lo, bits in _KEYS:
        mask = np.uint64((1 << bits) - 1)
        qk = (((q_ph if h == 0 else q_dh) >> np.uint64(lo)) & mask).astype(np.int64)
        dk = (((d_ph if h == 0 else d_dh) >> np.uint64(lo)) & mask).astype(np.int64)
        flips = np.array([0] + [1 << b for b in range(bits)], dtype=np.int64)
        small_q = len(qk) * len(flips) < len(dk)
        if small_q or len(dk) * len(flips) < len(qk):
            # one side is small: its keys with every one-bit flip, sorted; the other side scans them
            sk, lk = (qk, dk) if small_q else (dk, qk)
            fk = (sk[:, None] ^ flips[None, :]).reshape(-1)
            owner = np.repeat(np.arange(len(sk)), len(flips))
            o = np.argsort(fk, kind="stable")
            fk, owner = fk[o], owner[o]
            seen = np.zeros(1 << bits, dtype=bool)
            seen[fk] = True
            li = np.flatnonzero(seen[lk])
            a, b = np.searchsorted(fk, lk[li], side="left"), np.searchsorted(fk, lk[li], side="right")
            c = b - a
            tot = int(c.sum())
            if tot:
                first = np.repeat(np.cumsum(c) - c, c)
                si = owner[np.repeat(a, c) + (np.arange(tot) - first)]
                lrep = np.repeat(li, c)
                check(*((si, lrep) if small_q else (lrep, si)))
            continue
        counts = np.bincount(dk, minlength=1 << bits)
        start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        order = np.argsort(dk, kind="stable")
        for flip in flips:
            key = qk ^ flip
            cnt = counts[key]
            qs = np.flatnonzero(cnt)
            if not len(qs):
                continue
            cnt, st0 = cnt[qs], start[key[qs]]
            ends = np.cumsum(cnt)
            cut = np.searchsorted(ends, np.arange(_MAX_EXPAND, int(ends[-1]) + _MAX_EXPAND, _MAX_EXPAND), side="right")
            a = 0
            for b in cut:
                if b <= a:
                    continue
                c, s0 = cnt[a:b], st0[a:b]
                tot = int(c.sum())
                first = np.repeat(np.cumsum(c) - c, c)
                check(np.repeat(qs[a:b], c), order[np.repeat(s0, c) + (np.arange(tot) - first)])
                a = b
    if not out_q:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_q), np.concatenate(out_d)


def _hash_candidates(ph8: np.ndarray, radius: int, queries_idx: np.ndarray | None = None, *,
                     dh8: np.ndarray | None = None, dradius: int | None = None) -> np.ndarray:
    """Pairs (i, j), i < j, whose upright pHash is within ``radius`` of any orientation of the other.

    Up to EXACT_SEARCH photos (or with few queries) every such pair is found (a
    faiss multi-index hash, or a linear scan); above, the pairs whose dHashes are
    also within ``dradius`` in the same orientation (what a near duplicate needs)
    come from :func:`_code_pairs`, both ways round: the queries' upright hashes
    against every orientation, and every upright hash against the queries'
    orientations.
    """
    import faiss

    n = len(ph8)
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    if n > EXACT_SEARCH and dh8 is not None:
        ph8, dh8 = np.ascontiguousarray(ph8), np.ascontiguousarray(dh8)
        if queries_idx is None:
            qi, d = _code_pairs(ph8[:, 0], dh8[:, 0], ph8.reshape(-1), dh8.reshape(-1), radius, dradius)
            return _pairs(qi, d // 8)
        q = np.asarray(queries_idx, dtype=np.int64)
        qi, d = _code_pairs(ph8[q, 0], dh8[q, 0], ph8.reshape(-1), dh8.reshape(-1), radius, dradius)
        a, b = _code_pairs(ph8[:, 0], dh8[:, 0], ph8[q].reshape(-1), dh8[q].reshape(-1), radius, dradius)
        return _pairs(np.concatenate([q[qi], a]), np.concatenate([d // 8, q[b // 8]]))
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


_COARSE = 32     # leading PCA dimensions that route a photo to its lists
_LIST = 96       # photos per list, about


def _kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    if k <= 1 or len(x) <= k:
        return x.mean(axis=0, keepdims=True) if k <= 1 or not len(x) else x.copy()
    km = faiss.Kmeans(x.shape[1], k, niter=10, seed=seed, max_points_per_centroid=64, min_points_per_centroid=1)
    km.train(x)
    return km.centroids


def _nearest(x: np.ndarray, cents: np.ndarray, m: int) -> np.ndarray:
    """Indices of the ``m`` nearest centroids of each row (squared L2), a block at a time."""
    cents = np.asarray(cents, dtype=np.float32)
    m = min(m, len(cents))
    c2 = (cents * cents).sum(axis=1)
    out = np.empty((len(x), m), np.int64)
    for k in range(0, len(x), BLOCK):
        d = c2[None, :] - 2 * (np.asarray(x[k:k + BLOCK], dtype=np.float32) @ cents.T)
        if m < len(cents):
            part = np.argpartition(d, m - 1, axis=1)[:, :m]
            d = np.take_along_axis(d, part, axis=1)
            out[k:k + BLOCK] = np.take_along_axis(part, np.argsort(d, axis=1, kind="stable"), axis=1)
        else:
            out[k:k + BLOCK] = np.argsort(d, axis=1, kind="stable")
    return out


def _build_lists(low: np.ndarray) -> dict:
    """Two-level k-means over the leading PCA dimensions: about sqrt(n/96) cells, each split into lists of
    about 96 photos; ``list_of`` gives each photo's list (its nearest cell, then its nearest list there)."""
    n = len(low)
    C = np.asarray(low[:, :_COARSE], dtype=np.float32)
    k1 = max(1, int(round(np.sqrt(max(1, n // _LIST)))))
    rng = np.random.default_rng(1)
    c1 = _kmeans(C[np.sort(rng.choice(n, min(n, 64 * k1), replace=False))], k1, 1)
    cell = _nearest(C, c1, 1)[:, 0]
    order = np.argsort(cell, kind="stable")
    bounds = np.searchsorted(cell[order], np.arange(len(c1) + 1))
    list_of = np.zeros(n, np.int64)
    cents, starts = [], [0]
    for c in range(len(c1)):
        mem = order[bounds[c]:bounds[c + 1]]
        k2 = max(1, int(round(len(mem) / _LIST)))
        pick = mem if len(mem) <= 64 * k2 else np.sort(rng.choice(mem, 64 * k2, replace=False))
        c2 = _kmeans(C[pick], k2, c + 2) if len(mem) else C[:1]
        if len(mem):
            list_of[mem] = starts[-1] + _nearest(C[mem], c2, 1)[:, 0]
        cents.append(c2)
        starts.append(starts[-1] + len(c2))
    return {"c1": c1, "c2": np.concatenate(cents), "c2_start": np.array(starts, np.int64), "list_of": list_of}


def _probes(Cq: np.ndarray, lists: dict) -> np.ndarray:
    """The 4 lists each query looks in: the 2 nearest lists in each of its 2 nearest cells (-1: fewer)."""
    c1, c2, start = lists["c1"], lists["c2"], lists["c2_start"]
    out = np.full((len(Cq), 4), -1, np.int64)
    cells = _nearest(Cq, c1, 2)
    for slot in range(cells.shape[1]):
        for c in np.unique(cells[:, slot]):
            qs = np.flatnonzero(cells[:, slot] == c)
            near = _nearest(Cq[qs], c2[start[c]:start[c + 1]], 2) + start[c]
            out[qs[:, None], 2 * slot + np.arange(near.shape[1])] = near
    return out


def _join(X: np.ndarray, q: np.ndarray, probes: np.ndarray, list_of: np.ndarray, k: int, min_sim: float):
    """(query position, photo position) pairs: each query's ``k`` most similar photos among the lists it
    probes (and the photos of list -1, which every query sees) with similarity >= ``min_sim``."""
    n_lists = int(max(list_of.max(initial=-1), probes.max(initial=-1))) + 2
    lid = np.where(list_of < 0, n_lists - 1, list_of)
    m_order = np.argsort(lid, kind="stable")
    m_bounds = np.searchsorted(lid[m_order], np.arange(n_lists + 1))
    pl = probes.reshape(-1)
    pq = np.repeat(np.arange(len(q)), probes.shape[1])
    ok = pl >= 0
    pl, pq = pl[ok], pq[ok]
    if m_bounds[-1] - m_bounds[-2]:   # photos in no list: seen by every query
        pl = np.concatenate([pl, np.full(len(q), n_lists - 1)])
        pq = np.concatenate([pq, np.arange(len(q))])
    q_order = np.argsort(pl, kind="stable")
    pl, pq = pl[q_order], pq[q_order]
    q_bounds = np.searchsorted(pl, np.arange(n_lists + 1))
    out_q, out_p, out_s = [], [], []
    for lst in np.flatnonzero(np.diff(q_bounds)):
        mem = m_order[m_bounds[lst]:m_bounds[lst + 1]]
        if not len(mem):
            continue
        qs = pq[q_bounds[lst]:q_bounds[lst + 1]]
        S = X[q[qs]].astype(np.float32) @ X[mem].astype(np.float32).T
        if S.shape[1] > k:
            top = np.argpartition(-S, k - 1, axis=1)[:, :k]
            S = np.take_along_axis(S, top, axis=1)
            cols = mem[top]
        else:
            cols = np.broadcast_to(mem, S.shape)
        hit = S >= min_sim
        out_q.append(np.broadcast_to(qs[:, None], S.shape)[hit])
        out_p.append(cols[hit])
        out_s.append(S[hit])
    if not out_q:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    qq, pp, ss = np.concatenate(out_q), np.concatenate(out_p), np.concatenate(out_s)
    o = np.lexsort((-ss, qq))   # per query, most similar first; keep k
    qq, pp = qq[o], pp[o]
    first = np.searchsorted(qq, qq)
    keep = (np.arange(len(qq)) - first) < k
    return q[qq[keep]], pp[keep]


def _lists_for(P: _Photos, X: np.ndarray) -> tuple[dict, np.ndarray]:
    """Each photo's list (-1: read since the lists were made), from the cache or built now (and cached
    when the rows are the cache's own)."""
    n = len(X)
    path = _store_path(P.folder, P.gen, "lists.npz") if P.gen else None
    lists = None
    if path is not None and path.is_file():
        try:
            with np.load(path) as z:
                lists = {key: z[key] for key in z.files}
            if len(lists["list_of"]) != len(P.cache_pos) or lists["c1"].shape[1] != _COARSE:
                lists = None
        except Exception as exc:   # only a cache
            log.warning("%s: unreadable (%s); rebuilding", path, exc)
            lists = None
    if lists is not None:
        list_of = np.full(n, -1, np.int64)
        ok = P.cache_pos >= 0
        list_of[P.cache_pos[ok]] = lists["list_of"][ok]
        return lists, list_of
    lists = _build_lists(X[:])
    if path is not None and len(P.cache_pos) == n and np.array_equal(P.cache_pos, np.arange(n)):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        try:
            np.savez(tmp, **lists)
            _fsync(tmp)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("%s: cannot write the embedding lists (%s)", path, exc)
            tmp.unlink(missing_ok=True)
    return lists, lists["list_of"]


class _OneThread:
    """BLAS and faiss on one thread: the many small products of the lists gain nothing from more, and
    on a busy machine their threads only wait for each other."""

    def __enter__(self):
        import faiss
        from threadpoolctl import threadpool_limits

        self.faiss, self.before = faiss, faiss.omp_get_max_threads()
        self.limits = threadpool_limits(1)
        faiss.omp_set_num_threads(1)
        return self

    def __exit__(self, *exc):
        self.faiss.omp_set_num_threads(self.before)
        self.limits.restore_original_limits()
        return False


def _embedding_candidates(P: _Photos, k: int, min_cos: float, queries_idx: np.ndarray | None = None):
    """Pairs (i, j), i < j, among each photo's ``k`` nearest embeddings with cosine >= ``min_cos``.

    Up to EXACT_SEARCH photos, exact at full size. Above, in the PCA projection with
    a margin (re-checked at full size by the caller), among the photos of the 4
    lists of about 96 photos a two-level k-means routes each photo to: the work per
    photo stays constant as the library grows. The lists are cached with the
    matrices, so new photos are routed and compared without touching the rest.
    """
    import faiss

    n = len(P.ids)
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    k = min(k + 1, n)
    qidx = np.arange(n) if queries_idx is None else np.asarray(queries_idx, dtype=np.int64)
    if P.low is None:
        vecs = np.asarray(P.emb[:], dtype=np.float32)
        index = faiss.IndexFlatIP(vecs.shape[1])
        index.add(vecs)
        sims, nbrs = index.search(vecs[qidx], k)
        qi = np.repeat(qidx, k)
        pj = nbrs.reshape(-1).astype(np.int64)
        ok = sims.reshape(-1) >= min_cos
        return _pairs(qi[ok], pj[ok])
    X = P.low[:] if queries_idx is None else P.low   # for a few queries: only the rows they meet
    with _OneThread():
        lists, list_of = _lists_for(P, X)
        probes = _probes(np.asarray(X[qidx][:, :_COARSE], dtype=np.float32), lists)
        qi, pj = _join(X, qidx, probes, list_of, k, min_cos - 0.05)
    P.low.drop_pages()
    return _pairs(qi, pj)


def _same_pixels(lib, a: dict, b: dict) -> bool:
    """Whether two files decode to exactly the same pixels (stored orientation, full size)."""
    from PIL import Image

    from photolab.features.media import register_heif

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
    real = ("DateTimeOriginal", "CreationDate", "CreateDate")
    return (a["captured_source"] in real and b["captured_source"] in real
            and a["captured_at"] != b["captured_at"])


# -- videos -------------------------------------------------------------------
VIDEO_DURATION_TOLERANCE = 0.02   # near copies of a clip: durations within 2 % of the longer


def _video_edges(lib, opts: DedupeOptions, only=None) -> tuple[dict, int]:
    """Duplicate edges among the library's clips (never with photos) and how many clips have no poster features.

    Exact: the same bytes. Near: a re-encode or a trimmed export, whose poster frames (at 10 % of
    the duration) agree in pHash within ``near_phash`` and dHash within ``near_dhash`` bits and whose
    durations differ by at most 2 %. Clips sorted by duration are compared only with those inside
    that window, so the work stays about linear in the number of clips."""
    rows = store.clips(lib.catalog.conn, tuple(USABLE))
    wanted = None if only is None else {int(x) for x in only}
    edges: dict[tuple[int, int], tuple[str, str]] = {}
    by_sha: dict[str, list[int]] = {}
    for r in rows:
        if r["sha256"]:
            by_sha.setdefault(r["sha256"], []).append(r["id"])
    feat = [r for r in rows if r["phash8"] and r["dhash8"] and r["duration"]]
    untagged = len(rows) - len(feat)
    if len(feat) >= 2:
        _near_video_edges(feat, opts, wanted, edges)
    # same bytes: exact (over a near edge between them); with ``only``, for the clips the new ones reach
    reached = {x for key in edges for x in key} | (wanted or set())
    for same in by_sha.values():
        if len(same) > 1 and (wanted is None or reached & set(same)):
            for other in same[1:]:
                edges[(same[0], other)] = ("exact", "same bytes")
    return edges, untagged


def _near_video_edges(feat: list, opts: DedupeOptions, wanted: set | None, edges: dict) -> None:
    """Add near (or similar) edges among clips with poster features: hashes close, durations within 2 %."""
    feat.sort(key=lambda r: r["duration"])
    ids = np.array([r["id"] for r in feat], dtype=np.int64)
    dur = np.array([r["duration"] for r in feat], dtype=np.float64)
    ph = _hex_matrix([r["phash8"] for r in feat])[:, 0]
    dh = _hex_matrix([r["dhash8"] for r in feat])[:, 0]
    meta = {r["id"]: r for r in feat}
    hi = np.searchsorted(dur, dur / (1 - VIDEO_DURATION_TOLERANCE), side="right")
    for i in range(len(feat) - 1):
        j = np.arange(i + 1, hi[i])
        if not len(j):
            continue
        if wanted is not None and int(ids[i]) not in wanted:
            j = j[np.isin(ids[j], list(wanted))]
        dph, ddh = _popcount(ph[i] ^ ph[j]), _popcount(dh[i] ^ dh[j])
        for k in np.flatnonzero((dph <= opts.near_phash) & (ddh <= opts.near_dhash)):
            a, b = int(ids[i]), int(ids[j[k]])
            key = (min(a, b), max(a, b))
            how = (f"poster pHash {dph[k]}, dHash {ddh[k]}, "
                   f"{meta[a]['duration']:.2f} s vs {meta[b]['duration']:.2f} s")
            if _distinct_captures(meta[a], meta[b]):
                edges[key] = ("similar", how + f"; taken at {meta[a]['captured_at']} and {meta[b]['captured_at']}")
            else:
                edges[key] = ("near", how)


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
    """Sort key, best copy first: resolution, (videos) the longer clip, format preference, intact, more metadata,
    a copy already in the library over one in ``new`` (the files a pass is taking in), earliest capture, path."""
    fmt = "RAW" if row["kind"] == "raw" else (row["format"] or "").upper()
    pref = opts.format_preference
    meta = sum(x is not None for x in (row["captured_at"], row["camera_make"], row["gps_lat"])) + (
        row["captured_source"] == "DateTimeOriginal")
    return (-(row["width"] or 0) * (row["height"] or 0), -(row.get("duration") or 0),
            pref.index(fmt) if fmt in pref else len(pref),
            row["status"] != "ok", -meta, bool(new) and row["id"] in new, (row["captured_at"] or "9999")[:19], row["path"])


def _describe(row: dict) -> str:
    if row["kind"] == "video":
        length = f" {row['duration']:.1f} s" if row.get("duration") else ""
        return f"{row['width']}x{row['height']} {row['format'] or '?'} {(row.get('codec') or '?').upper()}{length}"
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
                         "reason": why, "photo_id": pid, "copy_of": copy_of["path"], "sha256": r["sha256"]})
    tier = "exact" if all(x["tier"] == "exact" and x["copy_of"] == keeper["path"] for x in rows_out) else "near"
    return [{"group": group_no, "tier": tier, "path": keeper["path"], "keep": True,
             "reason": f"kept: {_describe(keeper)}, the best of {len(part)}", "photo_id": ranked[0],
             "copy_of": None, "sha256": keeper["sha256"]}] + rows_out


def plan(library, *, options: DedupeOptions | None = None, only=None):
    """Find duplicate groups and choose a keeper in each; changes nothing.

    Returns:
        A :class:`~photolab.plans.Plan` whose ``rows`` hold one row per file in a group: ``group``, ``tier``
        (``exact``, ``near`` or ``similar``), ``path`` (relative to the library),
        ``keep`` (True/False), ``reason``; plus ``photo_id``, ``copy_of`` (the
        file a set-aside copy duplicates) and ``sha256`` (the bytes the plan saw). A copy's tier is ``exact`` when it has
        the same bytes or pixels as another file of the group, else ``near``;
        ``similar`` groups always keep every file. ``plan.unchecked``: the photos without features
        yet (only exact copies were checked for them).

    Args:
        only: photo ids (e.g. a new import) to check against the whole library;
            default: every photo against every other.
    """
    import pandas as pd

    from photolab.plans import Plan

    opts = options or DedupeOptions()
    lib = open_library(library)
    recover(lib)
    P, usable = _load(lib, save=only is None)
    n = len(P.ids)
    untagged = len(usable) - n
    rows_by_id = P.rows

    # exact bytes, over every usable photo (with or without features)
    by_sha: dict[str, list[int]] = {}
    for r in store.same_bytes(lib.catalog.conn, tuple(USABLE)):
        by_sha.setdefault(r["sha256"], []).append(r["id"])

    edges: dict[tuple[int, int], tuple[str, str]] = {}   # (photo id, photo id) -> (tier, why)
    for rs in by_sha.values():
        for other in rs[1:]:
            edges[(rs[0], other)] = ("exact", "same bytes")

    qidx = None
    if only is not None:
        wanted = {int(x) for x in only}
        qidx = np.flatnonzero(np.isin(P.ids, np.fromiter(wanted, dtype=np.int64, count=len(wanted))))
        sha_of = {pid: sha for sha, pids in by_sha.items() for pid in pids}
        shas = {sha_of[pid] for pid in wanted if pid in sha_of}
        edges = {k: v for k, v in edges.items() if sha_of.get(k[0]) in shas}
    if n >= 2 and (qidx is None or len(qidx)):
        cand = np.concatenate([_hash_candidates(P.ph8, opts.near_phash, qidx, dh8=P.dh8, dradius=opts.near_dhash),
                               # (the loose path needs the embedding)
                               _embedding_candidates(P, opts.neighbours, min(opts.similar_cosine,
                                                                                 opts.near_cosine), qidx)])
        cand = np.unique(cand, axis=0) if len(cand) else cand
        if len(cand):
            i, j = cand[:, 0], cand[:, 1]
            cos = np.empty(len(i), np.float32)
            for s in range(0, len(i), BLOCK * 5):   # a block at a time: candidates can be many
                cos[s:s + BLOCK * 5] = np.einsum("ij,ij->i", P.emb[i[s:s + BLOCK * 5]].astype(np.float32),
                                                 P.emb[j[s:s + BLOCK * 5]].astype(np.float32))
                P.emb.drop_pages()
            pd_all = _popcount(P.ph8[i, :1] ^ P.ph8[j])                # upright i vs each orientation of j
            best = pd_all.argmin(axis=1)
            dph = pd_all[np.arange(len(i)), best]
            ddh = _popcount(P.dh8[i, 0] ^ P.dh8[j, best])
            near_hash = (dph <= opts.near_phash) & (ddh <= opts.near_dhash) & (cos >= opts.near_min_cosine)
            # pHashes that line up while the dHashes do not: another viewpoint or moment (stereo, burst)
            shifted = (dph <= opts.near_phash) & (ddh > opts.near_dhash)
            near_emb = (cos >= opts.near_cosine) & (dph <= opts.near_phash_loose) & ~shifted
            similar = cos >= opts.similar_cosine
            todo = np.flatnonzero(near_hash | near_emb | similar)
            rows_by_id.fetch(np.concatenate([P.ids[i[todo]], P.ids[j[todo]]]))
            for k in todo:
                a, b = rows_by_id[int(P.ids[i[k]])], rows_by_id[int(P.ids[j[k]])]
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

    video_edges, video_untagged = _video_edges(lib, opts, only)
    edges.update(video_edges)
    untagged += video_untagged

    ids = sorted({pid for e in edges for pid in e})
    rows_by_id.fetch(ids)
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
                        "copy_of": None, "sha256": rows_by_id[pid]["sha256"]})
    df = pd.DataFrame(out, columns=PLAN_COLUMNS + ["photo_id", "copy_of", "sha256"])
    if untagged:
        log.warning("%d photos have no features yet (run `photolab tag`): only exact copies were checked for them",
                    untagged)
    return Plan("dedupe", df, unchecked=untagged, library=lib,
                why="move the copies (keep false) of exact and near groups into quarantine (journaled; "
                    "`restore` puts them back)")


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
    info = {r["id"]: r for r in store.review_rows(lib.catalog.conn, ids)}
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
def apply(library, plan_df=None, *, progress: bool = True) -> BatchReport:
    """Move every ``keep == False`` file of an exact/near group (with its companions) into quarantine.

    Called as ``apply(plan)`` or ``apply(library, plan)`` (the library the plan was made for); the plan may be
    its rows alone (as a person edited them with :func:`set_keeper`, :func:`dismiss_group` or
    :func:`split_group`). A copy stays where it is, listed in ``report.skipped``, when its group's keeper is
    no longer in the library as a usable file (e.g. set aside by another plan applied since) or its bytes are
    not the ones the plan saw: a group never loses its last file."""
    from tqdm.auto import tqdm

    from photolab.core.backup import guard
    from photolab.plans import library_and_plan, rows_of

    library, plan_df = library_and_plan(library, plan_df)
    plan_df = rows_of(plan_df)
    lib = open_library(library)
    guard(lib, "dedupe --apply")
    batch = new_batch("dedupe")
    qdir = f"{STATE_DIR}/quarantine/{batch}"
    todo = plan_df[(~plan_df["keep"].astype(bool)) & (plan_df["tier"] != "similar")]
    keep_rows = plan_df[plan_df["keep"].astype(bool) & plan_df["group"].isin(set(todo["group"]))]
    # the rows of the folders the copies and their keepers are in (companions are beside them), by path range
    folders = {p.rpartition("/")[0] for p in list(todo["path"]) + list(keep_rows["path"])}
    rows = {r["path"]: r for r in in_folders(lib.catalog.conn, folders, "path, sha256, status, size, mtime_ns")}
    names_in: dict[str, set[str]] = {}
    for p in rows:
        folder, _, name = p.rpartition("/")
        names_in.setdefault(folder, set()).add(name)
    keepers = keep_rows.set_index("group")["path"].to_dict()
    leaving = set(todo["path"])
    moves: list[Move] = []
    skipped: list[tuple[str, str]] = []
    for r in todo.itertuples():
        if r.path not in rows:
            continue
        why = _stale(lib, r, keepers.get(r.group), rows, leaving)
        if why:
            skipped.append((r.path, why))
            continue
        folder, _, name = r.path.rpartition("/")
        for member in [name] + companions(Path(name), names_in[folder]):
            src = f"{folder}/{member}" if folder else member
            moves.append(Move(src=src, dst=f"{qdir}/{src}", sha256=rows[src]["sha256"], status="quarantined",
                              note=f"duplicate of {keepers.get(r.group)} (batch {batch})",
                              detail={"group": int(r.group), "keeper": keepers.get(r.group), "tier": r.tier}))
    for path, why in skipped:
        log.warning("%s: %s", path, why)
    bar = tqdm(total=len(moves), desc="quarantine", unit="file", disable=not progress or not moves)
    report = execute(lib, moves, batch=batch, op="quarantine", on_progress=bar.update)
    bar.close()
    report.skipped[:0] = skipped
    left = {p for p, _ in skipped}
    with lib.catalog.write() as db:
        done = store.done_steps(db, batch)
        _merge_labels(db, plan_df[~plan_df["path"].isin(left)])
    if done:
        manifest = {"batch": batch, "created_at": utcnow(), "retention_days": retention_days(lib),
                    "files": [{"path": d["dst"][len(qdir) + 1:], **json.loads(d["detail"])} for d in done]}
        mpath = lib.root / qdir / "manifest.json"
        mpath.parent.mkdir(parents=True, exist_ok=True)
        tmp = mpath.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, mpath)
    return report


def _stale(lib, r, keeper: str | None, rows: dict, leaving: set) -> str | None:
    """Why copy ``r`` (a plan row) must stay: its group's keeper is not in the library, usable, any more (set
    aside since, or moving now), or the copy's bytes are not the ones the plan saw; None: it may go."""
    if keeper is None:
        return "its group has no keeper in the plan; left in place so the group keeps a file"
    k = rows.get(keeper)
    if keeper in leaving or k is None or k["status"] not in USABLE or not lib.abs(keeper).is_file():
        return f"its keeper {keeper} is no longer in the library; left in place so the group keeps a file"
    planned = getattr(r, "sha256", None)
    if isinstance(planned, str):
        row = rows[r.path]
        same = row["sha256"] == planned
        if same:
            try:
                st = lib.abs(r.path).stat()
            except OSError:
                return None   # gone: the move reports it
            if (st.st_size, st.st_mtime_ns) != (row["size"], row["mtime_ns"]):
                same = sha256_file(lib.abs(r.path)) == planned
        if not same:
            return "its bytes changed since the plan was made; left in place (make the plan again)"
    return None


def _merge_labels(db, plan_df) -> None:
    """A person's positive labels on the set-aside copies carry over to their keeper."""
    for _, grp in plan_df[plan_df["tier"] != "similar"].groupby("group"):
        keep = grp[grp["keep"].astype(bool)]
        if keep.empty:
            continue
        kid = int(keep.iloc[0]["photo_id"])
        for pid in grp.loc[~grp["keep"].astype(bool), "photo_id"]:
            store.carry_labels(db, kid, int(pid))


def restore(library, what: str) -> BatchReport:
    """Put a quarantine batch (its id) or one quarantined file (its original or quarantine path) back."""
    lib = open_library(library)
    cat = lib.catalog
    if store.is_quarantine_batch(cat.conn, what):
        report = undo(lib, what)
        _remove_batch_folder(lib, what, only_if_empty=True)
        return report
    rel = lib.rel(what) if os.path.isabs(what) else what
    row = store.last_quarantined(cat.conn, rel)
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
    for r in store.quarantine_batches(lib.catalog.conn):
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
        from photolab.core.backup import guard

        guard(lib, "purge")
    deleted = 0
    if table["purgeable"].any():
        lib.catalog.backup("before-purge")
    for b in table.loc[table["purgeable"], "batch"]:
        entries = store.held(lib.catalog.conn, b)
        for e in entries:
            with lib.catalog.write() as db:
                store.purged(db, b, e["id"], e["dst"], utcnow())
                delete_path(db, e["dst"])
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
