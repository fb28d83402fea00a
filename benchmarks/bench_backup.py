"""Backup speed and size: first and second snapshot of a 5,000-photo library (BorgBackup).

Builds N (default 5,000) small real JPEGs: re-encodes of the bundled sample photos (each a different
crop, scale and quality, so every file is unique content, 640 px on the long side), indexes them,
then prints, for an encrypted repository on local disk:

- the first snapshot: seconds, photos/s, bytes added;
- the second snapshot of the unchanged library: seconds, bytes added (deduplication);
- a third after 1 % of the photos had their metadata rewritten (a rating) by photolab;
- ``--list`` (borg info over all snapshots) and a restore of one photo: seconds.

    python benchmarks/bench_backup.py [N]

Needs ``borg`` (``sudo apt install borgbackup``).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import photolab
from photolab.core import backup as bk

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def build(folder: Path, n: int) -> int:
    rng = np.random.default_rng(0)
    sources = []
    for p in sorted(SAMPLE.glob("*.jpg")):
        with Image.open(p) as im:
            im.draft("RGB", (1280, 1280))
            sources.append(im.convert("RGB"))
    size = 0
    for i in range(n):
        im = sources[i % len(sources)]
        w, h = im.size
        cw, ch = int(w * rng.uniform(0.55, 1.0)), int(h * rng.uniform(0.55, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = im.crop((x, y, x + cw, y + ch))
        crop.thumbnail((640, 640))
        sub = folder / f"{2015 + i % 10}" / f"{1 + i % 12:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        p = sub / f"IMG_{i:05d}.jpg"
        crop.save(p, quality=int(rng.integers(70, 93)))
        size += p.stat().st_size
    return size


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000
    bk.borg_binary()
    with tempfile.TemporaryDirectory(prefix="photolab-bench-") as tmp:
        tmp = Path(tmp)
        os.environ["BORG_BASE_DIR"] = str(tmp / "borg-home")      # borg's own cache, fresh
        os.environ.setdefault(bk.PASS_ENV, "benchmark passphrase")
        root = tmp / "Photos"
        t = time.perf_counter()
        size = build(root, n)
        print(f"built {n} photos, {size / 1e6:.0f} MB, in {time.perf_counter() - t:.0f} s")
        lib = photolab.init_library(root)
        t = time.perf_counter()
        photolab.index_library(lib, progress=False)
        print(f"index           : {time.perf_counter() - t:6.1f} s")
        repo = tmp / "drive" / "photolab-backup"
        repo.parent.mkdir()

        first = bk.backup(lib, to=str(repo))
        print(f"first snapshot  : {first.seconds:6.1f} s  {n / first.seconds:6.0f} photos/s  "
              f"added {first.added / 1e6:8.1f} MB of {first.size / 1e6:.1f} MB")
        second = bk.backup(lib)
        print(f"second snapshot : {second.seconds:6.1f} s  (unchanged library)      "
              f"added {second.added / 1e6:8.3f} MB  ({second.added} bytes)")

        from photolab.stages.metadata import WriteOptions, set_rating, write_metadata

        ids = [r[0] for r in lib.catalog.query("SELECT id FROM photos ORDER BY id")][:: 100]
        for pid in ids:
            set_rating(lib, pid, 3)
        with bk.checked():   # the benchmark measures the snapshot after the change, not the guard
            write_metadata(lib, photo_ids=ids, options=WriteOptions(auto_rating=False), progress=False)
        third = bk.backup(lib)
        print(f"third snapshot  : {third.seconds:6.1f} s  ({len(ids)} photos rewritten)     "
              f"added {third.added / 1e6:8.3f} MB")

        t = time.perf_counter()
        df = bk.snapshots(lib)
        print(f"--list          : {time.perf_counter() - t:6.1f} s  ({len(df)} snapshots)")
        one = lib.catalog.query("SELECT path FROM photos ORDER BY id LIMIT 1")[0][0]
        t = time.perf_counter()
        bk.restore(lib, "latest", [one], into=tmp / "restored")
        print(f"restore 1 photo : {time.perf_counter() - t:6.1f} s")
        repo_mb = sum(p.stat().st_size for p in repo.rglob("*") if p.is_file()) / 1e6
        print(f"repository      : {repo_mb:8.1f} MB on disk for 3 snapshots of {size / 1e6:.1f} MB of photos")
        lib.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
