"""Face pipeline speed on this machine: detection per photo at the resolution used, embedding per
face, and a whole scan (decode + detect + embed + store) with 1 and 2 processes.

    python benchmarks/bench_faces.py [PHOTOS_DIR] [--copies N]

PHOTOS_DIR defaults to ``../shared/data/faces/images`` (else ``sample_data/``). The scan runs over
N copies of the folder (default 4) in a temporary library; the last lines project the time for a
100,000-photo library.
"""

from __future__ import annotations

import argparse
import shutil
import stat
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import photolab
from photolab.stages import faces as F
from photolab.stages.tagging import decode

REPO = Path(__file__).resolve().parents[1]
EXTS = {".jpg", ".jpeg", ".png"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("photos", nargs="?", default=None)
    ap.add_argument("--copies", type=int, default=4)
    args = ap.parse_args()
    src = Path(args.photos) if args.photos else REPO.parent / "shared" / "data" / "faces" / "images"
    if not src.is_dir():
        src = REPO / "sample_data"
    files = sorted(p for p in src.iterdir() if p.suffix.lower() in EXTS)
    detector, landmarks, descriptor = F._models()

    dec, det, emb, faces_n = [], [], [], 0
    for p in files:
        t = time.perf_counter()
        im = decode(p, "photo", target=F.DETECT_SIDE * 3 // 4)
        W, H = im.size
        s = min(1.0, F.DETECT_SIDE / max(W, H))
        if s < 1:
            im = im.resize((round(W * s), round(H * s)))
        a = np.asarray(im)
        dec.append(time.perf_counter() - t)
        t = time.perf_counter()
        rects, scores, _ = detector.run(a, 1, F.MIN_SCORE)
        det.append(time.perf_counter() - t)
        for r in rects:
            t = time.perf_counter()
            descriptor.compute_face_descriptor(a, landmarks(a, r))
            emb.append(time.perf_counter() - t)
            faces_n += 1
    print(f"{len(files)} photos from {src}, detection at {F.DETECT_SIDE} px long side, upsampled once")
    print(f"decode+resize     : median {statistics.median(dec) * 1000:6.0f} ms/photo")
    print(f"detection         : median {statistics.median(det) * 1000:6.0f} ms/photo (max {max(det) * 1000:.0f})")
    if emb:
        print(f"landmarks+embed   : median {statistics.median(emb) * 1000:6.0f} ms/face ({faces_n} faces)")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "library"
        for i in range(args.copies):
            d = root / f"copy{i}"
            shutil.copytree(src, d)
            for p in d.iterdir():
                p.chmod(p.stat().st_mode | stat.S_IWUSR)
        lib = photolab.init_library(root)
        photolab.index_library(lib, progress=False)
        for workers in (1, 2):
            with lib.catalog.write() as db:
                db.execute("DELETE FROM face_scans")
                db.execute("DELETE FROM faces")
            t = time.perf_counter()
            rep = F.scan_faces(lib, workers=workers, progress=False)
            s = time.perf_counter() - t
            rate = rep.scanned / s
            print(f"scan, {workers} process{'es' if workers > 1 else ''}: {rep.scanned} photos, {rep.faces} faces in "
                  f"{s:.1f} s = {rate:.1f} photos/s -> 100,000 photos in {100_000 / rate / 3600:.1f} h")
        lib.close()


if __name__ == "__main__":
    main()
