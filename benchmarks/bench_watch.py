"""Watched import folder: latency for one photo and throughput for a drop of N (default 1,000).

Runs ``photolab watch`` as a real process on a temporary library and import folder
with the default stability wait (3 s), then:

- copies one real photo into the import folder and measures the time from the copy
  finishing to the photo being filed (organized) and tagged (target <= 10 s); the
  first photo includes loading the model, the second shows the steady state;
- drops N distinct photos (crops of the sample photos, 1-2 MP JPEGs with capture
  dates) and measures the time until every one is filed or set aside.

    python benchmarks/bench_watch.py [N]
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import photolab

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"


def filed(root: Path, n: int) -> bool:
    try:
        with photolab.open_library(root) as lib:
            done = lib.catalog.query("SELECT count(*) FROM import_state WHERE state IN ('done', 'failed')")[0][0]
            busy = lib.catalog.query("SELECT count(*) FROM journal WHERE state = 'planned'")[0][0]
            tagged = lib.catalog.query("SELECT count(*) FROM import_state i JOIN features f ON f.photo_id = i.photo_id "
                                       "WHERE i.state = 'done'")[0][0]
        return done >= n and not busy and tagged >= n - 0
    except Exception:
        return False


def wait(root: Path, n: int, timeout: float) -> float:
    t = time.perf_counter()
    while time.perf_counter() - t < timeout:
        if filed(root, n):
            return time.perf_counter() - t
        time.sleep(0.1)
    raise SystemExit(f"not done within {timeout} s")


def make_photos(folder: Path, n: int, rng) -> None:
    sources = [p for p in sorted(SAMPLE.glob("*.jpg"))]
    folder.mkdir(parents=True)
    for i in range(n):
        with Image.open(sources[i % len(sources)]) as im:
            im = im.convert("RGB")
            w, h = im.size
            s = rng.uniform(0.35, 0.6)
            cw, ch = int(w * s), int(h * s)
            x, y = int(rng.integers(0, w - cw)), int(rng.integers(0, h - ch))
            crop = im.crop((x, y, x + cw, y + ch)).resize((1600, int(1600 * ch / cw)))
            exif = Image.Exif()
            exif[0x8769] = {0x9003: f"2024:{1 + i % 12:02d}:{1 + i % 28:02d} {i % 24:02d}:00:00"}
            crop.save(folder / f"IMG_{i:05d}.jpg", quality=88, exif=exif)


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="photolab-bench-") as tmp:
        tmp = Path(tmp)
        root, imp = tmp / "lib", tmp / "import"
        photolab.init_library(root).close()
        imp.mkdir()
        t = time.perf_counter()
        make_photos(tmp / "drop", n, rng)
        print(f"made {n} photos in {time.perf_counter() - t:.0f} s")
        proc = subprocess.Popen([sys.executable, "-m", "photolab.cli", "-q", "watch", str(root), "--import", str(imp)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            proc.stdout.readline()
            for k, name in enumerate(["kde_Kite.jpg", "mate_Dune.jpg"], 1):
                tmpcopy = tmp / name
                shutil.copyfile(SAMPLE / name, tmpcopy)
                shutil.move(tmpcopy, imp / name)            # the copy finishes now
                secs = wait(root, k, 120)
                print(f"single photo {k}    : filed and tagged {secs:5.1f} s after its copy finished "
                      f"({'includes loading the model' if k == 1 else 'model loaded'}; target <= 10 s)")
            t = time.perf_counter()
            for p in sorted((tmp / "drop").iterdir()):
                shutil.move(p, imp / p.name)
            secs = wait(root, n + 2, 3600)
            print(f"drop of {n}        : all filed or set aside in {secs:5.1f} s ({n / secs:.1f} photos/s)")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
        with photolab.open_library(root) as lib:
            states = dict(lib.catalog.query("SELECT state, count(*) FROM import_state GROUP BY state"))
            q = lib.catalog.query("SELECT count(*) FROM photos WHERE status = 'quarantined'")[0][0]
        print(f"outcome          : {states}; {q} quarantined as duplicates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
