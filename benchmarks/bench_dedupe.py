"""Dedupe at library scale: 100,000 photos grouped from cached features, and 1,000 new against them.

Real features for real files (the sample photos and copies made of them, tagged
by the labeling pass), synthetic features for the rest: random embeddings and
hashes with planted duplicates (re-encodes: a few hash bits and a little
embedding noise; turned copies: the hash of another orientation). Prints the
grouping time for the whole library (target <= 60 s), the time to check 1,000
new photos against it (target <= 5 s), the planted duplicates found, peak RSS.

    python benchmarks/bench_dedupe.py [N]
"""

from __future__ import annotations

import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import photolab
from photolab.stages import dedupe
from photolab.store.catalog import utcnow

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
DIM = 1280


def insert(lib, photos: list[tuple], feats: list[tuple]) -> None:
    """Catalog rows for synthetic photos and their features."""
    with lib.catalog.write() as db:
        db.executemany("INSERT INTO photos(id, path, kind, size, mtime_ns, sha256, format, width, height, status, "
                       "indexed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)", photos)
        db.executemany("INSERT INTO features(photo_id, model, sha256, embedding, top5, phash, dhash, phash8, dhash8, "
                       "computed_at) VALUES (?,?,?,?,?,?,?,?,?,?)", feats)


def feature_row(pid: int, emb: np.ndarray, p8, d8, now: str) -> tuple:
    return (pid, "synthetic", f"{pid:064x}", emb.astype(np.float16).tobytes(), "[]", format(int(p8[0]), "016x"),
            format(int(d8[0]), "016x"), ",".join(format(int(x), "016x") for x in p8),
            ",".join(format(int(x), "016x") for x in d8), now)


def synthetic(lib, n: int, rng) -> set[tuple[int, int]]:
    """Insert n synthetic photos (10% planted duplicates of others); return the planted pairs by id."""
    n_orig = int(n * 0.9)
    base = rng.standard_normal((n_orig, DIM)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    ph = rng.integers(0, 2**63, (n_orig, 8), dtype=np.int64).astype(np.uint64)
    dh = rng.integers(0, 2**63, (n_orig, 8), dtype=np.int64).astype(np.uint64)
    start = lib.catalog.query("SELECT coalesce(max(id), 0) FROM photos")[0][0] + 1
    photos, feats, planted = [], [], set()
    now = utcnow()
    for k in range(n):
        pid = start + k
        if k < n_orig:
            e, p8, d8, w = base[k], ph[k], dh[k], 4032
        else:
            src = int(rng.integers(0, n_orig))
            e = base[src] + rng.standard_normal(DIM).astype(np.float32) * 0.012
            turn = int(rng.integers(0, 8)) if rng.random() < 0.2 else 0
            flips = np.uint64(sum(1 << int(b) for b in rng.choice(64, int(rng.integers(0, 4)), replace=False)))
            p8 = np.roll(ph[src], -turn) ^ flips
            d8 = np.roll(dh[src], -turn)
            w = 2016
            planted.add((start + src, pid))
        photos.append((pid, f"synthetic/{pid // 1000:03d}/IMG_{pid:06d}.jpg", "photo", 1, 0, f"{pid:064x}", "JPEG",
                       w, 3024, "ok", now))
        feats.append(feature_row(pid, e, p8, d8, now))
    insert(lib, photos, feats)
    return planted


def arrivals(lib, n: int, copies: int, rng) -> tuple[list[int], set[tuple[int, int]]]:
    """Insert n new synthetic photos, ``copies`` of them re-encodes of photos already in the library."""
    olds = lib.catalog.query("SELECT photo_id, embedding, phash8, dhash8 FROM features WHERE model = 'synthetic' "
                             "ORDER BY random() LIMIT ?", (copies,))
    start = lib.catalog.query("SELECT coalesce(max(id), 0) FROM photos")[0][0] + 1
    now = utcnow()
    photos, feats, planted = [], [], set()
    for k in range(n):
        pid = start + k
        if k < len(olds):
            o = olds[k]
            e = np.frombuffer(o["embedding"], np.float16).astype(np.float32)
            e = e + rng.standard_normal(DIM).astype(np.float32) * 0.012
            p8 = np.array([int(h, 16) for h in o["phash8"].split(",")], np.uint64) ^ np.uint64(1 << int(rng.integers(0, 64)))
            d8 = np.array([int(h, 16) for h in o["dhash8"].split(",")], np.uint64)
            planted.add((o["photo_id"], pid))
        else:
            e = rng.standard_normal(DIM).astype(np.float32)
            p8 = rng.integers(0, 2**63, 8, dtype=np.int64).astype(np.uint64)
            d8 = rng.integers(0, 2**63, 8, dtype=np.int64).astype(np.uint64)
        e /= np.linalg.norm(e)
        photos.append((pid, f"import/IMG_{pid:06d}.jpg", "photo", 1, 0, f"{pid:064x}", "JPEG", 2016, 1512, "ok", now))
        feats.append(feature_row(pid, e, p8, d8, now))
    insert(lib, photos, feats)
    return [p[0] for p in photos], planted


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="photolab-bench-") as tmp:
        root = Path(tmp) / "Photos"
        shutil.copytree(SAMPLE, root / "camera", ignore=shutil.ignore_patterns("*.md"))
        with Image.open(SAMPLE / "kde_Path.jpg") as im:
            im.convert("RGB").resize((im.width // 2, im.height // 2)).save(root / "camera" / "small.jpg", quality=80)
            im.convert("RGB").transpose(Image.Transpose.ROTATE_90).save(root / "camera" / "turned.jpg", quality=90)
        lib = photolab.init_library(root)
        photolab.index_library(lib, progress=False)
        photolab.tag_library(lib, progress=False)
        real = lib.catalog.query("SELECT count(*) FROM features")[0][0]
        t = time.perf_counter()
        planted = synthetic(lib, n - real, rng)
        print(f"library: {real} real photos + {n - real} synthetic ({len(planted)} planted duplicates), "
              f"built in {time.perf_counter() - t:.0f} s")

        t, c = time.perf_counter(), time.process_time()
        plan = dedupe.plan(lib)
        whole, whole_cpu = time.perf_counter() - t, time.process_time() - c
        found = set()
        for _, sub in plan[plan["tier"] != "similar"].groupby("group"):
            ids = sorted(sub["photo_id"])
            found.update((a, b) for a in ids for b in ids if a < b)
        recall = len(planted & found) / len(planted)
        print(f"whole library    : {whole:6.1f} s (cpu {whole_cpu:.1f} s) for {n} photos (target <= 60 s); "
              f"{dedupe.summary(plan)}")
        print(f"planted found    : {recall:.3f} of {len(planted)} pairs")

        # a watched import arrives: 1,000 new photos, 100 of them copies of photos already there
        t = time.perf_counter()
        new, planted_new = arrivals(lib, 1000, 100, rng)
        print(f"import           : 1,000 new photos cataloged in {time.perf_counter() - t:.1f} s")
        t, c = time.perf_counter(), time.process_time()
        sub = dedupe.plan(lib, only=new)
        part, part_cpu = time.perf_counter() - t, time.process_time() - c
        found = set()
        for _, g in sub[sub["tier"] != "similar"].groupby("group"):
            ids = sorted(g["photo_id"])
            found.update((a, b) for a in ids for b in ids if a < b)
        print(f"1,000 new photos : {part:6.1f} s (cpu {part_cpu:.1f} s) against {n} (target <= 5 s); {dedupe.summary(sub)}; "
              f"{len(planted_new & found)} of {len(planted_new)} planted copies found")
        print(f"peak RSS         : {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:6.0f} MB")
        lib.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
