"""Head training and re-scoring speed: 1,000 labeled examples, 100,000 cached embeddings.

Builds a catalog of N (default 100,000) photos with synthetic 1280-d embeddings and
image measures, where each of 8 tags is a direction in embedding space, labels
1,000 of them (every taxonomy tag known, as a review gives), then prints:

- the time to train (5-fold cross-validation and the final fit; target <= 30 s);
- the time to re-score all N cached embeddings with the new head (target <= 10 s);
- cross-validated AP of the learned tags; the review grid's queue and page render
  time over the whole catalog; peak RSS.

    python benchmarks/bench_train.py [N] [LABELED]
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import photolab
from photolab.stages import train
from photolab.store.catalog import utcnow

DIM = 1280
TAGS = ["birthday", "wedding", "party", "portrait", "group", "dog", "beach", "food"]


def build(lib, n: int, labeled: int, rng) -> None:
    directions = rng.standard_normal((len(TAGS), DIM)).astype(np.float32)
    now = utcnow()
    photos, feats, labels = [], [], []
    tax = photolab.load_taxonomy(lib).names
    for k in range(n):
        pid = k + 1
        e = np.abs(rng.standard_normal(DIM).astype(np.float32)) * 0.3
        has = rng.random(len(TAGS)) < 0.12
        e += (directions[has].sum(axis=0) * 0.02) if has.any() else 0
        photos.append((pid, f"p/{pid // 1000:03d}/IMG_{pid:06d}.jpg", "photo", 1, 0, f"{pid:064x}", "JPEG", 4000, 3000,
                       "ok", now))
        feats.append((pid, "tf_efficientnet_lite0:synthetic", f"{pid:064x}", e.astype(np.float16).tobytes(), "[]",
                      float(rng.random() * 0.01), float(rng.random()), 0.01, 0.01, float(rng.random() * 80),
                      *(float(v) for v in rng.random(6) * 0.5), now))
        if k < labeled:
            truth = {t for t, h in zip(TAGS, has) if h}
            labels += [(pid, t, int(t in truth), "bench", now) for t in tax]
    with lib.catalog.write() as db:
        db.executemany("INSERT INTO photos(id, path, kind, size, mtime_ns, sha256, format, width, height, status, "
                       "indexed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)", photos)
        db.executemany("INSERT INTO features(photo_id, model, sha256, embedding, top5, sharpness, brightness, dark_frac, "
                       "clipped_frac, colorfulness, warm_frac, warm_top_frac, blue_frac, blue_top_frac, saturation, "
                       "top_lift, computed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", feats)
        db.executemany("INSERT INTO labels(photo_id, tag, value, who, at) VALUES (?,?,?,?,?)", labels)


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    labeled = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="photolab-bench-") as tmp:
        lib = photolab.init_library(Path(tmp) / "lib")
        t = time.perf_counter()
        build(lib, n, labeled, rng)
        print(f"catalog: {n} photos with cached embeddings, {labeled} labeled, built in {time.perf_counter() - t:.0f} s")
        t = time.perf_counter()
        report = train.train(lib, activate=False)
        fit = time.perf_counter() - t
        m = report.metrics.loc[TAGS]
        print(f"train            : {fit:6.1f} s for {labeled} examples x {len(report.metrics)} tags, 5-fold CV + final fit "
              f"(target <= 30 s); cross-validated AP {m['cv_ap'].min():.2f}-{m['cv_ap'].max():.2f} on {len(TAGS)} tags")
        t = time.perf_counter()
        written = train.use_head(lib, report.version)
        rescore = time.perf_counter() - t
        print(f"re-score         : {rescore:6.1f} s for {n} embeddings ({written} scores written; target <= 10 s)")
        from photolab.ui.widgets import ReviewGrid

        t = time.perf_counter()
        grid = ReviewGrid(lib, page_size=48)
        opened = time.perf_counter() - t
        t = time.perf_counter()
        grid.next_page()
        page = time.perf_counter() - t
        print(f"review grid      : queue of {len(grid.queue)} built in {opened:.1f} s; a 48-photo page renders in "
              f"{page:.2f} s (target <= 1 s)")
        from photolab.stages import review

        with lib.catalog.write() as db:   # the cold start: 100 photos reviewed so far
            db.execute("DELETE FROM reviews")
            db.execute("INSERT INTO reviews(photo_id, who, at) SELECT DISTINCT photo_id, 'bench', '2026-01-01' "
                       "FROM labels LIMIT 100")
        for order in ("typical", "confidence"):
            t = time.perf_counter()
            q = review.review_queue(lib, order=order)
            print(f"queue ({order:10s}): {len(q)} photos in {time.perf_counter() - t:.1f} s with 100 reviewed")
        print(f"peak RSS         : {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:6.0f} MB")
        lib.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
