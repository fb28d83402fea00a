"""Index speed: a first index and a re-index of an unchanged library of N files.

Builds N distinct camera-like JPEGs (default 5,000; resized crops of the sample
photos, each with its own EXIF capture time) in a temporary library, then
prints files/s for the first index and for a re-index that must read no file
contents (target >= 5,000 files/s).

    python benchmarks/bench_index.py [N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

import photolab
import photolab.index as index_mod

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def build(root: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    from photolab.media import register_heif

    register_heif()
    sources = []
    for p in sorted(SAMPLE.iterdir()):
        if p.suffix.lower() in (".jpg", ".png", ".heic"):
            with Image.open(p) as im:
                im = im.convert("RGB")
                im.thumbnail((1600, 1600))
                sources.append(im.copy())
    start = dt.datetime(2015, 1, 1)
    for i in range(n):
        im = sources[i % len(sources)]
        w, h = im.size
        cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        crop = im.crop((x, y, x + cw, y + ch))
        exif = Image.Exif()
        moment = start + dt.timedelta(minutes=17 * i)
        exif[0x010F], exif[0x0110] = "Benchcam", f"Model {i % 7}"
        exif.get_ifd(0x8769)[0x9003] = moment.strftime("%Y:%m:%d %H:%M:%S")
        folder = root / "bench" / f"{moment:%Y}" / f"{moment:%m}"
        folder.mkdir(parents=True, exist_ok=True)
        crop.save(folder / f"IMG_{i:05d}.jpg", quality=88, exif=exif)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="?", type=int, default=5000)
    ap.add_argument("--keep", type=Path, help="build the library here and keep it")
    args = ap.parse_args()
    tmp = None
    if args.keep:
        root = args.keep
    else:
        tmp = tempfile.TemporaryDirectory(prefix="photolab-bench-")
        root = Path(tmp.name) / "library"
    lib = photolab.init_library(root)
    t = time.perf_counter()
    build(lib.root, args.n)
    print(f"built {args.n} JPEGs in {time.perf_counter() - t:.1f} s")

    t = time.perf_counter()
    first = photolab.index_library(lib, progress=False)
    t_first = time.perf_counter() - t
    assert first.read == args.n, first.summary()

    opened = []
    real = index_mod.inspect_file
    index_mod.inspect_file = lambda p, **kw: opened.append(p) or real(p, **kw)
    t = time.perf_counter()
    again = photolab.index_library(lib, progress=False)
    t_again = time.perf_counter() - t
    assert again.unchanged == args.n, again.summary()
    index_mod.inspect_file = real

    print(f"first index : {args.n / t_first:8.0f} files/s  ({t_first:.2f} s, {first.summary()})")
    print(f"re-index    : {args.n / t_again:8.0f} files/s  ({t_again:.3f} s, files opened: {len(opened)})")
    print(f"ratio re-index / target 5000 files/s: {args.n / t_again / 5000:.2f}")
    lib.close()
    if tmp:
        tmp.cleanup()
    return 0 if not opened else 1


if __name__ == "__main__":
    sys.exit(main())
