"""Organize speed: plan and apply (and undo) for 10,000 files.

Builds N (default 10,000) small real JPEGs with EXIF capture dates spread over
three years in 20 import folders (every tenth with an XMP sidecar), indexes
them, then prints files/s for the plan, the journaled apply and the undo.

    python benchmarks/bench_organize.py [N]
"""

from __future__ import annotations

import datetime as dt
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import photolab
from photolab.stages import organize
from photolab.core.fileops import undo


def build(root: Path, n: int) -> int:
    rng = np.random.default_rng(0)
    start = dt.datetime(2023, 1, 1, 8, 0)
    files = 0
    for i in range(n):
        folder = root / f"import{i % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        when = start + dt.timedelta(minutes=int(i * 157 + rng.integers(0, 90)))
        exif = Image.Exif()
        exif[0x8769] = {0x9003: when.strftime("%Y:%m:%d %H:%M:%S")}
        im = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
        p = folder / f"IMG_{i:05d}.jpg"
        im.save(p, quality=80, exif=exif)
        files += 1
        if i % 10 == 0:
            (folder / f"IMG_{i:05d}.jpg.xmp").write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"/>\n')
            files += 1
    return files


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory(prefix="photolab-bench-") as tmp:
        root = Path(tmp) / "Photos"
        t = time.perf_counter()
        files = build(root, n)
        print(f"built {n} photos ({files} files with sidecars) in {time.perf_counter() - t:.0f} s")
        lib = photolab.init_library(root)
        t = time.perf_counter()
        photolab.index_library(lib, progress=False)
        print(f"index            : {files / (time.perf_counter() - t):8.0f} files/s")
        t = time.perf_counter()
        plan = organize.plan(lib)
        plan_s = time.perf_counter() - t
        t = time.perf_counter()
        report = organize.apply(lib, plan, progress=False)
        apply_s = time.perf_counter() - t
        t = time.perf_counter()
        back = undo(lib, report.batch)
        undo_s = time.perf_counter() - t
        folders = plan["target"].str.rsplit("/", n=1).str[0].nunique()
        print(f"plan             : {len(plan) / plan_s:8.0f} files/s  ({len(plan)} moves into {folders} folders, "
              f"{plan_s:.1f} s)")
        print(f"apply (journaled): {report.done / apply_s:8.0f} files/s  ({report.done} moved, {apply_s:.1f} s)")
        print(f"undo             : {back.done / undo_s:8.0f} files/s  ({back.done} moved back, {undo_s:.1f} s)")
        print(f"peak RSS         : {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:8.0f} MB")
        lib.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
