"""Metadata writing speed: in-file and sidecar writes on N real photos (default 1,000).

Copies the bundled sample photos and ../shared/data/photos (when present) until
there are N files (JPEG, PNG, HEIC from a dozen cameras), indexes them, labels
every photo (two tags, a third of them also "blurry" for an automatic rating),
then prints files/s for:

- in-file writes (each verified: fields read back, EXIF/IPTC/XMP/ICC kept, image
  data unchanged; previous bytes kept as versions; journaled atomic replace);
- the same run again (nothing to change: the catalog's record short-cuts it);
- sidecar-only writes on a clone of the library.

    python benchmarks/bench_metadata.py [N]
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import photolab
from photolab.stages import metadata as md
from photolab.stages.tagging import set_labels

REPO = Path(__file__).resolve().parents[1]
SOURCES = [REPO / "sample_data", REPO.parent / "shared" / "data" / "photos"]


def build(root: Path, n: int) -> None:
    files = sorted(p for d in SOURCES if d.is_dir() for p in d.iterdir() if p.suffix.lower() != ".md")
    for i in range(n):
        src = files[i % len(files)]
        folder = root / f"import{i // 200:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, folder / f"{src.stem}_{i:05d}{src.suffix}")


def main(n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="photolab-bench-") as tmp:
        root = Path(tmp) / "lib"
        t = time.perf_counter()
        build(root, n)
        lib = photolab.init_library(root)
        photolab.index_library(lib, progress=False)
        ids = [r["id"] for r in lib.catalog.query("SELECT id FROM photos WHERE kind IN ('photo', 'raw')")]
        set_labels(lib, [(i, tag, 1) for i in ids for tag in ("dog", "beach")] + [(i, "blurry", 1) for i in ids[::3]])
        print(f"built and indexed {n} photos in {time.perf_counter() - t:.0f} s ({os.cpu_count()} cores)")
        clone = Path(tmp) / "clone"
        shutil.copytree(root, clone, copy_function=os.link, ignore=shutil.ignore_patterns(".photolab"))
        shutil.copytree(root / ".photolab", clone / ".photolab")

        t = time.perf_counter()
        rep = md.write_metadata(lib, progress=False)
        s = time.perf_counter() - t
        df = rep.frame()
        c = df.groupby(["target", "status"]).size().to_dict()
        print(f"in-file (verified)  : {len(df) / s:7.1f} files/s  ({s:.1f} s; {dict(c)})")
        t = time.perf_counter()
        again = md.write_metadata(lib, progress=False)
        s2 = time.perf_counter() - t
        print(f"second run          : {len(again.rows) / s2:7.1f} files/s  ({again.summary()})")
        lib.close()

        with photolab.open_library(clone) as lib2:
            t = time.perf_counter()
            rep = md.write_metadata(lib2, progress=False, options=md.WriteOptions(where="sidecar"))
            s3 = time.perf_counter() - t
            df = rep.frame()
            print(f"sidecar only        : {len(df) / s3:7.1f} files/s  ({s3:.1f} s; {df['status'].value_counts().to_dict()})")
        print(f"ratio in-file/sidecar: {(len(rep.rows) / s3) and (n / s) / (len(rep.rows) / s3):.2f}")
        print(f"peak RSS            : {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:7.0f} MB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
