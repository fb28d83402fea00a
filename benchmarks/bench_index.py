"""Index speed: a first index and a re-index of an unchanged library of N files; the time per video.

Builds N distinct camera-like JPEGs (default 5,000; resized crops of the sample
photos, each with its own EXIF capture time) in a temporary library, then
prints files/s for the first index and for a re-index that must read no file
contents (target >= 5,000 files/s).

Then a large video (default 1 GB: one second of lossless, all-keyframe H.264
made with PyAV, its packets copied again and again into one MP4, as a
concatenation does): the time to index it, the time and the bytes of the
container-header read (duration, size, codec, capture time, GPS) and of the
poster frame at 10 % that the labeling pass decodes. A clip that gather copied is
indexed from the SHA-256 its verified copy recorded, so the index reads only its
header; a clip placed in the library by hand is hashed once (every byte; exact
duplicates and verified moves need it). Both are timed.

    python benchmarks/bench_index.py [N] [--keep DIR] [--video-mb MB]
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
import photolab.stages.index as index_mod

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def build(root: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    from photolab.features.media import register_heif

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


def make_large_video(path: Path, megabytes: int) -> float:
    """An MP4 of about ``megabytes`` MB: a second of noise encoded once (lossless, every frame a
    keyframe), its packets muxed again with shifted times until the size is reached. Returns seconds."""
    import av
    import numpy as np

    t = time.perf_counter()
    rng = np.random.default_rng(0)
    seg = path.with_suffix(".segment.mp4")
    fps, size = 10, (1280, 720)
    with av.open(str(seg), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height = size
        s.pix_fmt = "yuv420p"
        s.codec_context.gop_size = 1
        s.options = {"preset": "ultrafast", "qp": "0"}
        for i in range(fps):
            noise = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(noise, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    target = megabytes * 1024 * 1024
    with av.open(str(seg)) as inp, av.open(str(path), "w", options={"movflags": "use_metadata_tags"}) as out:
        out.metadata["creation_time"] = "2024-05-01T10:00:00Z"
        out.metadata["location"] = "+43.4633+011.8807/"
        src = inp.streams.video[0]
        dst = out.add_stream_from_template(src)
        packets = [p for p in inp.demux(src) if p.size]
        step = sum(int(p.duration or 0) for p in packets) or len(packets)
        written, k = 0, 0
        while written < target:
            for p in packets:
                p.stream = dst
                if k:   # shift the times one segment further
                    p.pts = None if p.pts is None else p.pts + step
                    p.dts = None if p.dts is None else p.dts + step
                out.mux(p)
                written += p.size
            k += 1
    seg.unlink()
    return time.perf_counter() - t


def _read_bytes() -> int:
    """Bytes this process has read through read(2) and friends so far (Linux /proc/self/io)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def bench_video(megabytes: int, folder: Path) -> None:
    import os

    from photolab.features.exif import PhotoInfo
    from photolab.features.video import poster_frame, read_video_info

    card = folder / "card"
    card.mkdir()
    clip = card / "VID_large.mp4"
    took = make_large_video(clip, megabytes)
    old = 1_600_000_000 * 10**9   # a camera's file: written before it is gathered
    os.utime(clip, ns=(old, old))
    size = clip.stat().st_size
    print(f"built a {size / 2**20:.0f} MB video in {took:.1f} s")
    # placed in the library by hand: the index hashes every byte once
    hand = photolab.init_library(folder / "by-hand")
    os.link(clip, hand.root / "VID_large.mp4")
    b0, t = _read_bytes(), time.perf_counter()
    report = photolab.index_library(hand, progress=False)
    t_hand, b_hand = time.perf_counter() - t, _read_bytes() - b0
    assert report.read == 1, report.problems
    hand.close()
    # gathered: the copy is verified by its SHA-256, which the index then takes instead of reading again
    lib = photolab.init_library(folder / "videos")
    t = time.perf_counter()
    photolab.gather([card], lib, progress=False)
    t_gather = time.perf_counter() - t
    b0, t = _read_bytes(), time.perf_counter()
    report = photolab.index_library(lib, progress=False)
    t_index, b_index = time.perf_counter() - t, _read_bytes() - b0
    path = lib.catalog.query("SELECT path FROM photos WHERE kind = 'video'")[0][0]
    row = dict(lib.catalog.query("SELECT * FROM photos WHERE path = ?", (path,))[0])
    assert row["status"] == "ok", report.problems
    target = lib.abs(path)
    b0, t = _read_bytes(), time.perf_counter()
    read_video_info(target, PhotoInfo())
    t_meta, b_meta = time.perf_counter() - t, _read_bytes() - b0
    stats: dict = {}
    b0, t = _read_bytes(), time.perf_counter()
    poster_frame(target, stats=stats)
    t_poster, b_poster = time.perf_counter() - t, _read_bytes() - b0
    print(f"video       : {row['width']}x{row['height']} {row['codec']} {row['duration']:.0f} s, "
          f"captured {row['captured_at']} ({row['captured_source']}), GPS {row['gps_lat']}, {row['gps_lon']}")
    print(f"index, gathered clip : {t_index:.3f} s per video, {b_index / 2**20:.2f} MB read of {size / 2**20:.0f} MB "
          f"(gather's verified copy took {t_gather:.1f} s)")
    print(f"index, clip put in by hand: {t_hand:.2f} s per video, {b_hand / 2**20:.0f} MB read "
          f"({size / 2**20 / t_hand:.0f} MB/s; its SHA-256 reads every byte once)")
    print(f"  metadata  : {t_meta * 1000:.1f} ms, {b_meta / 1024:.0f} KB read of {size / 2**20:.0f} MB")
    print(f"poster frame: {t_poster * 1000:.1f} ms, {b_poster / 2**20:.2f} MB read, {stats['decoded']} frame(s) "
          f"decoded at {stats['time']:.1f} s of {stats['duration']:.0f} s")
    lib.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="?", type=int, default=5000)
    ap.add_argument("--keep", type=Path, help="build the library here and keep it")
    ap.add_argument("--video-mb", type=int, default=1024, help="size of the large video (0: no video benchmark)")
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
    if args.video_mb:
        with tempfile.TemporaryDirectory(prefix="photolab-bench-video-") as vt:
            bench_video(args.video_mb, Path(vt))
    if tmp:
        tmp.cleanup()
    return 0 if not opened else 1


if __name__ == "__main__":
    sys.exit(main())
