"""``photolab demo``: every stage that exists, on a fresh library built from the sample photos and a
phone clip the demo encodes (a few KB, made fresh each run from a sample photo)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from photolab.store.catalog import STATE_DIR

DEMO_MARKER = "DEMO_LIBRARY"


def default_sample() -> Path:
    """The repository's ``sample_data/`` folder."""
    return Path(__file__).resolve().parents[1] / "sample_data"


def _fresh(library: Path) -> None:
    """Remove a previous demo library; refuse to touch any folder that is not one."""
    if not library.exists():
        return
    if not (library / STATE_DIR / DEMO_MARKER).is_file():
        raise FileExistsError(
            f"{library}: exists and is not a photolab demo library; pass another --library path")
    shutil.rmtree(library)


def make_duplicates(sample: str | Path, folder: str | Path) -> int:
    """A few duplicates for the demo to find: an exact copy, a smaller re-encode, a PNG, a mirrored copy.

    Returns:
        How many files were made in ``folder``.
    """
    from PIL import Image, ImageOps

    sample, folder = Path(sample), Path(folder)
    src = sorted(sample.glob("kde_*.jpg"))[:2]
    if len(src) < 2:
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src[0], folder / f"copy of {src[0].name}")
    with Image.open(src[0]) as im:
        exif = im.getexif()
        im.convert("RGB").resize((im.width // 2, im.height // 2)).save(folder / "shared-small.jpg", quality=80,
                                                                        exif=exif)
    with Image.open(src[1]) as im:
        ImageOps.mirror(im.convert("RGB")).save(folder / "mirrored.jpg", quality=90)
        im.convert("RGB").save(folder / "exported.png")
    return 4


DEMO_CLIP = "IMG_0100.MOV"


def make_clip(sample: str | Path, folder: str | Path) -> Path | None:
    """A phone clip for the demo to gather: 2 s panning across a sample photo, encoded with H.264
    (PyAV's FFmpeg), a few KB, dated and placed as an iPhone does (``com.apple.quicktime.creationdate``
    with its offset, ``com.apple.quicktime.location.ISO6709``): the afternoon and place of
    ``kde_ColorfulCups.jpg``, so organize files it beside that photo.

    Returns:
        The clip, or None when the sample photo is not there.
    """
    import av
    from PIL import Image

    photo = Path(sample) / "kde_ColorfulCups.jpg"
    if not photo.is_file():
        return None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out_path = folder / DEMO_CLIP
    with Image.open(photo) as im:
        base = im.convert("RGB")
        base.thumbnail((480, 300))
    size, fps, n = (192, 108), 10, 20
    with av.open(str(out_path), "w", options={"movflags": "use_metadata_tags"}) as out:
        out.metadata.update({"com.apple.quicktime.creationdate": "2014-04-29T14:40:00+0200",
                             "com.apple.quicktime.location.ISO6709": "+56.1560+010.2082/",
                             "com.apple.quicktime.make": "Apple", "com.apple.quicktime.model": "iPhone 5s"})
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "32"}
        w, h = base.size
        for i in range(n):
            dx = int(i * w * 0.25 / n)
            frame = base.crop((dx, 0, dx + int(w * 0.75), h)).resize(size)
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return out_path


def run_demo(library: str | Path = "demo-library", *, sample: str | Path | None = None,
             fresh: bool = True) -> int:
    """Build a library from a copy of the sample photos and a phone clip, run every stage, print a summary.

    Returns:
        0 when every stage ran (bad files are reported, not fatal).
    """
    from photolab.stages import dedupe
    from photolab.stages.index import USABLE
    from photolab.core.library import init_library
    from photolab.stages.organize import preview_tree
    from photolab.stages import DEMO, run_chain
    from photolab.store.meta import present_photos
    from photolab.stages.tagging import accepted_tags, export_csv

    library = Path(library).resolve()
    sample = Path(sample) if sample else default_sample()
    if not sample.is_dir():
        raise FileNotFoundError(f"{sample}: sample photos not found; pass --sample FOLDER")
    if fresh:
        _fresh(library)
    t0 = time.perf_counter()
    lib = init_library(library)
    (lib.state / DEMO_MARKER).write_text("built by `photolab demo`; safe to delete\n")
    made = make_duplicates(sample, lib.root / "made-duplicates")

    print(f"photolab demo: library {lib.root}")

    def say(name, out, run):
        if name == "gather":
            print(f"  gather : {out.summary()}")
        elif name == "index":
            print(f"  index  : {out.summary()}")
        elif name == "tag":
            print(f"  tag    : {out.summary()}")
            (lib.state / "exports").mkdir(exist_ok=True)
            print(f"  csv    : {export_csv(lib, lib.state / 'exports' / 'tags.csv')}")
        elif name == "dedupe":
            print(f"  dedupe : {dedupe.summary(out.plan)}; {out.report.summary()} into quarantine")
        elif name == "faces":
            print(f"  people : {out.summary()}; places from GPS: {len(run.results['places'])} suggested "
                  "(names and places wait for you)")
        elif name == "organize":
            print(f"  organize: {out.report.summary()} (undo: photolab undo {lib.root} {out.report.batch})")
        elif name == "metadata":
            print(f"  metadata: {out.summary()}; earlier bytes kept in .photolab/versions/")

    import tempfile

    with tempfile.TemporaryDirectory(prefix="photolab-demo-") as tmp:
        phone = Path(tmp) / "phone"          # a phone's clip, gathered from outside the library
        clip = make_clip(sample, phone)
        done = run_chain(lib, DEMO, on_done=say,
                         options={"gather": {"sources": [sample] + ([phone] if clip else [])},
                                  "dedupe": {"apply": "always"}}).results
    ix, tg, dups, fs, pl = done["index"], done["tag"], done["dedupe"].plan, done["faces"], done["places"]
    moves, wdf = done["organize"].plan, done["metadata"].frame()

    rows = present_photos(lib.catalog.conn)
    n_photos = sum(1 for r in rows if r["kind"] in ("photo", "raw") and r["status"] in USABLE)
    clips = [r for r in rows if r["kind"] == "video" and r["status"] in USABLE]
    with_gps = sum(1 for r in rows if r["gps_lat"] is not None)
    exif_time = sum(1 for r in rows if r["captured_source"] == "DateTimeOriginal")
    errors = [p for p in ix.problems if p[1] not in USABLE] + [(p, "corrupt", e) for p, e in tg.failed]
    print()
    print("summary")
    print(f"  photos          : {n_photos} usable ({exif_time} with EXIF capture time, {with_gps} with GPS)")
    tagged = accepted_tags(lib, photo_ids=[r["id"] for r in clips])
    print(f"  videos          : {len(clips)} usable ({sum(r['duration'] or 0 for r in clips):.1f} s in all; "
          "dated from the container, tagged from a poster frame)")
    for r in clips:
        print(f"    {r['path']}: {r['width']}x{r['height']} {r['codec']} {r['duration']:.1f} s, captured "
              f"{r['captured_at']} ({r['captured_source']}), tags: {', '.join(sorted(tagged.get(r['id'], ()))) or '-'}")
    counts = ", ".join(f"{t} {n}" for t, n in sorted(tg.tag_counts.items(), key=lambda kv: -kv[1]) if n)
    print(f"  tags            : {counts or 'none'}")
    print(f"  duplicates      : {dedupe.summary(dups)} (among them {made} copies the demo made)")
    for r in dups.itertuples():
        print(f"    group {r.group} {r.tier:7s} {'keep ' if r.keep else 'aside'} {r.path}")
    n_moves = int((moves["role"] == "photo").sum())
    clip_ids = {r["id"] for r in clips}
    n_clips = int(((moves["role"] == "photo") & moves["photo_id"].isin(clip_ids)).sum())
    print(f"  organized       : {n_moves - n_clips} photos and {n_clips} video{'' if n_clips == 1 else 's'} moved into year/month/event folders "
          f"({len(moves) - n_moves} companions with them):")
    for line in preview_tree(moves).splitlines():
        print(f"                    {line}")
    w = wdf[wdf["status"] == "written"]
    skipped = wdf[wdf["status"] == "skipped"]
    covered = set(wdf.loc[(wdf["target"] == "sidecar") & (wdf["status"] != "skipped"), "photo_id"])
    print(f"  metadata        : keywords and ratings written into {int((w['target'] == 'file').sum())} photos and "
          f"{int((w['target'] == 'sidecar').sum())} XMP sidecars; {len(skipped)} photos not written in place "
          f"({int(skipped['photo_id'].isin(covered).sum())} of them have a sidecar instead), e.g. "
          f"{skipped['reason'].iloc[0] if len(skipped) else '-'}")
    print(f"  people, places  : {fs.faces} faces found (name them: photolab faces {lib.root} --name 0=NAME); "
          f"places: {', '.join(sorted(set(pl['tag']))) or 'none'} (confirm: photolab places {lib.root} --confirm-all)")
    print(f"  errors          : {len(errors)}")
    for path, status, error in errors:
        print(f"    {status}: {path}: {error}")
    print(f"  time            : {time.perf_counter() - t0:.1f} s")
    lib.close()
    return 0
