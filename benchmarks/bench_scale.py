"""Library-wide steps at scale: N photos, each step timed in a process of its own with its peak RSS.

The library: the sample photos (indexed and tagged for real) plus synthetic
photos as ``bench_dedupe.py`` makes them (random embeddings and hashes, 10%
planted duplicates), here also with a capture time (50 photos a day, one event a
day), a score for every tag with the source and model the labeling pass gives it,
filed where the default rules put them (``{year}/{month}/{event}``) and a one-byte
file on disk each, so that indexing
walks a library of that size and organizing finds it in place, and the score
matrix a labeling pass leaves (``photolab.store.scores``). Then, one line
each (``name : seconds s`` and ``peak RSS : MB MB``, plus the CPU seconds, since
the machine may be shared):

- dedupe grouping of the whole library (the feature cache removed first);
- 1,000 new photos (100 of them copies) checked against the library;
- a watcher pass with 10 new real photos (gather, index, tag, dedupe, people,
  organize, metadata; the model loaded before the clock starts);
- ``review_queue``; ``export-csv``;
- a ``find`` query (``photolab.stages.search.find``, what ``photolab find`` runs) for two tags, ``dog beach``.

    python benchmarks/bench_scale.py N [--keep DIR [--reuse]] [--only STEP,...]

With ``--keep DIR`` the library is built in DIR and left there; ``--reuse`` runs the
steps again on the library an earlier ``--keep DIR`` left. ``--only`` runs only the
named steps (``dedupe``, ``new``, ``watch``, ``review_queue``, ``export-csv``, ``find``).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_dedupe  # noqa: E402

import photolab  # noqa: E402
from photolab.store.catalog import utcnow  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
PER_DAY = 50


def _touch_files(root: Path, paths) -> None:
    """A one-byte file, modification time 0, for each catalog row of a synthetic photo (as the rows say)."""
    made = set()
    for rel in paths:
        p = root / rel
        if p.parent not in made:
            p.parent.mkdir(parents=True, exist_ok=True)
            made.add(p.parent)
        p.write_bytes(b"\0")
        os.utime(p, ns=(0, 0))


def build(root: Path, n: int) -> dict:
    rng = np.random.default_rng(0)
    shutil.copytree(SAMPLE, root / "camera", ignore=shutil.ignore_patterns("*.md"))
    lib = photolab.init_library(root)
    photolab.index_library(lib, progress=False)
    photolab.tag_library(lib, progress=False)
    real = lib.catalog.query("SELECT count(*) FROM features")[0][0]
    t = time.perf_counter()
    planted = bench_dedupe.synthetic(lib, n - real, rng)
    # a capture time for each (PER_DAY a day from 08:00, 10 minutes apart: one event a day), and the
    # folder the default rules give it
    t_expr = ("strftime('%Y-%m-%dT%H:%M:%S', '1990-01-01 08:00:00', '+' || (id / {d}) || ' days', "
              "'+' || ((id % {d}) * 10) || ' minutes')").format(d=PER_DAY)
    model = lib.catalog.query("SELECT model FROM features WHERE model != 'synthetic' LIMIT 1")[0][0]
    with lib.catalog.write() as db:
        db.execute(f"UPDATE photos SET captured_at = {t_expr}, captured_source = 'DateTimeOriginal' "
                   "WHERE path LIKE 'synthetic/%'")
        # a planted copy keeps the capture time of its original (a re-encode does)
        db.executemany("UPDATE photos SET captured_at = (SELECT captured_at FROM photos WHERE id = ?) WHERE id = ?",
                       sorted(planted))
        db.execute("UPDATE photos SET path = substr(captured_at, 1, 4) || '/' || substr(captured_at, 6, 2) || '/' || "
                   "substr(captured_at, 1, 10) || '/IMG_' || printf('%06d', id) || '.jpg' WHERE path LIKE 'synthetic/%'")
        # each tag's score as the installed labeling pass writes it (the starter head's, the prior's, the
        # quality measures'; none yet for the tags a trained head scores), so a pass sees nothing to redo
        made = {r[0]: (r[1], r[2]) for r in db.execute(
            "SELECT tag, source, model FROM scores GROUP BY tag, source, model ORDER BY count(*)")}
        tags = sorted(made)
        ids = [r[0] for r in db.execute("SELECT photo_id FROM features WHERE model = 'synthetic'")]
        # features as the installed model would have made them: a tagging pass leaves them alone
        db.execute("UPDATE features SET model = ? WHERE model = 'synthetic'", (model,))
        for k in range(0, len(ids), 20000):
            part = ids[k:k + 20000]
            s = rng.beta(0.3, 3.0, (len(part), len(tags)))
            db.executemany("INSERT INTO scores(photo_id, tag, score, source, model) VALUES (?,?,?,?,?)",
                           ((pid, tag, None if made[tag][0] == "none" else float(s[a, b]), *made[tag])
                            for a, pid in enumerate(part) for b, tag in enumerate(tags)))
    _touch_files(root, (r[0] for r in lib.catalog.query("SELECT path FROM photos WHERE path NOT LIKE 'camera/%'")))
    from photolab.stages.events import detect_events

    detect_events(lib)
    # the score matrix as the library's labeling pass leaves it (tag_library makes it at the end of a large
    # pass; the synthetic scores above were written behind its back)
    from photolab.store.scores import score_matrix

    score_matrix(lib)
    built = time.perf_counter() - t
    lib.close()
    return {"real": real, "synthetic": n - real, "planted": len(planted), "built_s": built}


# -- the steps, each run in a process of its own --------------------------------------------------
def step_dedupe(root: Path, arg: str) -> str:
    from photolab.stages import dedupe

    for p in (root / ".photolab" / "features").glob("dedupe-*"):
        p.unlink()
    plan = dedupe.plan(root)
    return dedupe.summary(plan)


def step_new(root: Path, arg: str) -> str:
    from photolab.stages import dedupe

    new = json.loads(arg)
    sub = dedupe.plan(root, only=new)
    return dedupe.summary(sub)


def step_watch(root: Path, arg: str) -> str:
    from photolab.automate import run_once
    from photolab.features.backbone import engine, load_backbone

    model = load_backbone()        # from the user's model cache, as `photolab watch` loads it
    engine(model)                  # its checked ONNX export made once per user (not per pass), before the clock
    global _T0
    _T0 = (time.perf_counter(), time.process_time())   # the clock starts once the model is loaded
    report = run_once(root, arg, stable_seconds=0, model=model)
    return report.summary()


def step_review(root: Path, arg: str) -> str:
    from photolab.stages.review import review_queue

    q = review_queue(root)
    return f"{len(q)} photos queued"


def step_export(root: Path, arg: str) -> str:
    from photolab.stages.tagging import export_csv

    out = export_csv(root, Path(arg))
    return f"{out.stat().st_size / 1e6:.0f} MB written"


def step_find(root: Path, arg: str) -> str:
    from photolab.stages.search import find

    res = find(root, arg)   # as `photolab find`: the first 100, best first
    return f"{len(res)} photos shown for {arg!r}"


STEPS = {"dedupe": step_dedupe, "new": step_new, "watch": step_watch, "review": step_review,
         "export": step_export, "find": step_find}
ALIASES = {"review_queue": "review", "export-csv": "export", "export_csv": "export"}
FIND_QUERY = "dog beach"
_T0 = None


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM: ru_maxrss would count the parent's, kept across exec)."""
    try:
        for ln in Path("/proc/self/status").read_text().splitlines():
            if ln.startswith("VmHWM:"):
                return int(ln.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(name: str, root: str, arg: str) -> int:
    global _T0
    t, c = time.perf_counter(), time.process_time()
    note = STEPS[name](Path(root), arg)
    start, c = _T0 if _T0 is not None else (t, c)
    print(json.dumps({"seconds": time.perf_counter() - start, "cpu": time.process_time() - c,
                      "rss_mb": peak_rss_mb(), "note": note}))
    return 0


def run_step(name: str, root: Path, arg: str = "") -> dict:
    out = subprocess.run([sys.executable, __file__, "--step", name, str(root), arg], capture_output=True, text=True)
    if out.returncode:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def arrivals(lib, n: int, copies: int, rng) -> list[int]:
    """As ``bench_dedupe.arrivals``: n new synthetic photos, ``copies`` of them re-encodes of library photos."""
    olds = lib.catalog.query("SELECT f.photo_id, f.embedding, f.phash8, f.dhash8 FROM features f JOIN photos p "
                             "ON p.id = f.photo_id WHERE p.path NOT LIKE 'camera/%' ORDER BY random() LIMIT ?",
                             (copies,))
    start = lib.catalog.query("SELECT coalesce(max(id), 0) FROM photos")[0][0] + 1
    now = utcnow()
    photos, feats = [], []
    for k in range(n):
        pid = start + k
        if k < len(olds):
            o = olds[k]
            e = np.frombuffer(o["embedding"], np.float16).astype(np.float32)
            e = e + rng.standard_normal(len(e)).astype(np.float32) * 0.012
            p8 = np.array([int(h, 16) for h in o["phash8"].split(",")], np.uint64) ^ np.uint64(1 << int(rng.integers(0, 64)))
            d8 = np.array([int(h, 16) for h in o["dhash8"].split(",")], np.uint64)
        else:
            e = rng.standard_normal(bench_dedupe.DIM).astype(np.float32)
            p8 = rng.integers(0, 2**63, 8, dtype=np.int64).astype(np.uint64)
            d8 = rng.integers(0, 2**63, 8, dtype=np.int64).astype(np.uint64)
        e /= np.linalg.norm(e)
        photos.append((pid, f"import/IMG_{pid:06d}.jpg", "photo", 1, 0, f"{pid:064x}", "JPEG", 2016, 1512, "ok", now))
        feats.append(bench_dedupe.feature_row(pid, e, p8, d8, now))
    bench_dedupe.insert(lib, photos, feats)
    return [p[0] for p in photos]


def arrivals_with_files(root: Path) -> list[int]:
    lib = photolab.open_library(root)
    new = arrivals(lib, 1000, 100, np.random.default_rng(1))
    _touch_files(root, (r[0] for r in lib.catalog.query(
        f"SELECT path FROM photos WHERE id IN ({', '.join(map(str, new))})")))
    lib.close()
    return new


def remove_arrivals(root: Path, new: list[int]) -> None:
    lib = photolab.open_library(root)
    paths = [r[0] for r in lib.catalog.query(f"SELECT path FROM photos WHERE id IN ({', '.join(map(str, new))})")]
    with lib.catalog.write() as db:
        db.execute(f"DELETE FROM features WHERE photo_id IN ({', '.join(map(str, new))})")
        db.execute(f"DELETE FROM photos WHERE id IN ({', '.join(map(str, new))})")
    for p in paths:
        (root / p).unlink(missing_ok=True)
    lib.close()


def ten_new_photos(folder: Path) -> None:
    """10 real photos no library holds yet: crops of the sample photos, with their capture dates. Each run
    on a kept library (``--reuse``) cuts other crops, so its photos are new to the library too."""
    folder.mkdir(parents=True, exist_ok=True)
    runs = folder.parent / "watch-runs"
    run = int(runs.read_text()) if runs.is_file() else 0
    runs.write_text(str(run + 1))
    srcs = sorted(p for p in SAMPLE.glob("*.jpg"))
    for k in range(10):
        src = srcs[(k + 3 * run) % len(srcs)]
        with Image.open(src) as im:
            exif = im.getexif()
            w, h = im.size
            f = 0.6 + 0.03 * k - 0.011 * (run % 9)
            box = (int(w * (1 - f) * ((k + run) % 3) / 2), int(h * (1 - f) * ((k + run) % 2)), 0, 0)
            box = (box[0], box[1], box[0] + int(w * f), box[1] + int(h * f))
            name = f"NEW_{k:02d}.jpg" if run == 0 else f"NEW_{run}_{k:02d}.jpg"
            im.convert("RGB").crop(box).save(folder / name, quality=88, exif=exif)


def line(name: str, r: dict) -> str:
    if "error" in r:
        return f"{name:<28}: failed ({r['error']})"
    return (f"{name:<28}: {r['seconds']:7.1f} s  (cpu {r['cpu']:6.1f} s)   peak RSS : {r['rss_mb']:6.0f} MB   "
            f"[{r['note']}]")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--step"]:
        return child(argv[1], argv[2], argv[3] if len(argv) > 3 else "")
    n = int(argv[0]) if argv else 100_000
    keep = argv[argv.index("--keep") + 1] if "--keep" in argv else None
    only = set(STEPS)
    if "--only" in argv:
        only = {ALIASES.get(x.strip(), x.strip()) for x in argv[argv.index("--only") + 1].split(",") if x.strip()}
        if only - set(STEPS):
            raise SystemExit(f"--only: unknown step(s) {', '.join(sorted(only - set(STEPS)))}; "
                             f"known: dedupe, new, watch, review_queue, export-csv, find")
    tmp = None
    if keep:
        base = Path(keep)
        base.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="photolab-scale-")
        base = Path(tmp.name)
    root = base / "Photos"
    try:
        if "--reuse" in argv and (root / ".photolab").is_dir():   # the library --keep left: the steps again
            print(f"library: {root} as built before", flush=True)
        else:
            info = build(root, n)
            print(f"library: {info['real']} real photos + {info['synthetic']} synthetic ({info['planted']} planted "
                  f"duplicates), built in {info['built_s']:.0f} s", flush=True)
        if "dedupe" in only:
            print(line("dedupe grouping", run_step("dedupe", root)), flush=True)
        if "new" in only:
            new = arrivals_with_files(root)
            print(line("1,000 new against library", run_step("new", root, json.dumps(new))), flush=True)
            remove_arrivals(root, new)
        if "watch" in only:
            ten_new_photos(base / "import")
            print(line("watcher pass, 10 new", run_step("watch", root, str(base / "import"))), flush=True)
        if "review" in only:
            print(line("review_queue", run_step("review", root)), flush=True)
        if "export" in only:
            print(line("export-csv", run_step("export", root, str(base / "export.csv"))), flush=True)
        if "find" in only:
            print(line(f"find {FIND_QUERY!r}", run_step("find", root, FIND_QUERY)), flush=True)
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
