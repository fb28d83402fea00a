"""The ``photolab`` command line: the same functions the Python API offers."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import threading
from photolab import __version__


def _cmd_init(args) -> int:
    from photolab.core.library import init_library

    lib = init_library(args.library)
    print(f"library ready at {lib.root} (catalog {lib.catalog.path}, schema v{lib.catalog.version})")
    return 0


def _cmd_gather(args) -> int:
    from photolab.stages.gather import gather
    from photolab.core.library import init_library

    lib = init_library(args.into)
    report = gather(args.sources, lib, progress=not args.quiet)
    for src, label in report.sources.items():
        print(f"{src} -> {lib.root / label}")
    print(f"gather: {report.summary()}")
    for path, reason in report.failed:
        print(f"  failed: {path}: {reason}")
    for path, reason in report.set_aside:
        print(f"  set aside: {path}: {reason}")
    for path, dest in report.renamed:
        print(f"  renamed: {path} -> {dest} (the name was not valid UTF-8)")
    return 1 if report.failed else 0


def _cmd_index(args) -> int:
    from photolab.stages.index import index_library

    report = index_library(args.library, workers=args.workers, progress=not args.quiet, force=args.force)
    print(f"index: {report.summary()}")
    shown = report.problems if args.verbose else report.problems[:20]
    for path, status, error in shown:
        print(f"  {status:11s} {path}: {error}")
    if len(report.problems) > len(shown):
        print(f"  ... {len(report.problems) - len(shown)} more (use -v to list all)")
    return 0


def _cmd_tag(args) -> int:
    from photolab.features.backbone import DEFAULT_MODEL, load_backbone
    from photolab.core.library import open_library
    from photolab.stages.tagging import crops_setting, set_crops, tag_library

    lib = open_library(args.library)
    if args.crops is not None and args.crops != crops_setting(lib):
        set_crops(lib, args.crops)
        print(f"crop mode set to {args.crops} view{'s' if args.crops > 1 else ''} per photo for this library "
              f"(later passes use it; photos already tagged keep their scores unless --force)")
    model = None
    if args.model or args.checkpoint or args.hub_cache:
        model = load_backbone(name=args.model or DEFAULT_MODEL, checkpoint=args.checkpoint,
                              hub_cache=args.hub_cache, fallback_dir=lib.state / "models" / "backbone")
    report = tag_library(lib, model=model, batch_size=args.batch_size, progress=not args.quiet, force=args.force,
                         device=args.device, cluster=args.cluster, worker_root=args.worker_root)
    print(f"tag: {report.summary()}")
    if report.crops > 1:
        print(f"  cost: {report.crops} model runs per photo in place of 1 (on a CPU about 1.5x the time of a "
              f"--crops 1 pass on camera JPEGs, up to 4x on small photos)")
    counts = ", ".join(f"{t} {n}" for t, n in report.tag_counts.items() if n)
    print(f"  photos per tag: {counts or 'none'}")
    for path, reason in report.failed:
        print(f"  failed: {path}: {reason}")
    return 0


def _cmd_export_csv(args) -> int:
    from photolab.stages.tagging import export_csv

    out = export_csv(args.library, args.out)
    print(f"wrote {out}")
    return 0


def _cmd_events(args) -> int:
    from photolab.stages.events import detect_events
    from photolab.stages.organize import load_rules

    df = detect_events(args.library, options=load_rules(args.library).events)
    for eid, r in df.iterrows():
        print(f"{eid:6d}  {r['name']:40s} {r['photos']:5d} photos  {r['start'][:16]} .. {r['end'][:16]}")
    print(f"events: {len(df)}")
    return 0


def _cmd_organize(args) -> int:
    from photolab.stages.organize import apply, load_rules, plan, preview_tree, write_plan_csv

    df = plan(args.library, rules=load_rules(args.library, path=args.rules))
    if args.plan_csv:
        print(f"wrote {write_plan_csv(df, args.plan_csv)}")
    photos = int((df["role"] == "photo").sum())
    print(f"organize: {photos} photos ({len(df)} files with companions) to move; "
          f"{len(df.kept)} left where they are")
    if photos:
        print(preview_tree(df))
    if args.verbose:
        for path, why in df.kept:
            print(f"  kept {path}: {why}")
    if not args.apply:
        if photos:
            print("dry run: nothing moved; add --apply to move, `photolab undo` reverses it")
        return 0
    with _guarded(args.library, "organize --apply"):
        report = apply(df, progress=not args.quiet)
    _print_report("organize", report, f"; undo with `photolab undo {args.library} {report.batch}`")
    return 0


def _print_report(stage: str, report, extra: str = "") -> None:
    """A journaled batch's one-line summary, then each skipped file with its reason."""
    print(f"{stage}: {report.summary()}{extra}")
    for path, why in report.skipped:
        print(f"  skipped {path}: {why}")


def _cmd_undo(args) -> int:
    from photolab.core.fileops import undo

    _print_report("undo", undo(args.library, args.batch))
    return 0


def _cmd_dedupe(args) -> int:
    from photolab.stages import dedupe

    df = dedupe.plan(args.library, options=dedupe.DedupeOptions(per_event=args.per_event))
    if args.plan_csv:
        print(f"wrote {dedupe.write_plan_csv(df, args.plan_csv)}")
    print(f"dedupe: {dedupe.summary(df)}")
    if df.unchecked:
        print(f"  {df.unchecked} photos have no features yet: run `photolab tag` for near duplicates")
    if not args.apply:
        if (~df["keep"]).any():
            print("dry run: nothing moved; add --apply to set the copies aside in quarantine")
        return 0
    with _guarded(args.library, "dedupe --apply"):
        report = dedupe.apply(df, progress=not args.quiet)
    _print_report("dedupe", report, f" into .photolab/quarantine/{report.batch}/; "
                  f"restore with `photolab restore-duplicates {args.library} {report.batch}`")
    return 0


def _cmd_restore_duplicates(args) -> int:
    from photolab.stages.dedupe import restore

    _print_report("restore", restore(args.library, args.what))
    return 0


def _cmd_purge(args) -> int:
    from photolab.stages.dedupe import purge, quarantine_batches, retention_days, set_retention

    if args.retention_days is not None:
        set_retention(args.library, args.retention_days)
        print(f"retention set to {args.retention_days:g} days")
    with (_guarded(args.library, "purge") if quarantine_batches(args.library)["purgeable"].any()
          else contextlib.nullcontext()):
        n = purge(args.library, batch=args.batch)
    left = quarantine_batches(args.library)
    print(f"purge: {n} quarantined files deleted; {len(left)} batches kept "
          f"(retention {retention_days(args.library):g} days)")
    return 0


def _cmd_write_metadata(args) -> int:
    from photolab.stages.metadata import WriteOptions, write_metadata

    where = "sidecar" if args.sidecar else "both" if args.both else "in-file"
    unreviewed = tuple(c.strip() for c in (args.include_unreviewed or "").split(",") if c.strip())
    opts = WriteOptions(where=where, sidecar_naming=args.sidecar_naming, write_unreviewed=unreviewed,
                        auto_rating=not args.no_auto_rating)
    with (_guarded(args.library, "write-metadata") if where != "sidecar" and not args.dry_run
          else contextlib.nullcontext()):
        report = write_metadata(args.library, options=opts, dry_run=args.dry_run, progress=not args.quiet)
    print(f"write-metadata: {report.summary()}")
    df = report.frame()
    show = df[df["status"] == "skipped"] if not args.verbose else df[df["status"] != "unchanged"]
    for r in show.itertuples():
        print(f"  {r.status} {r.path} ({r.target}): {r.reason if isinstance(r.reason, str) else r.changes}")
    if args.dry_run:
        print("dry run: nothing written; run without --dry-run to write")
    elif report.batch and (df["status"] == "written").any():
        print(f"previous bytes kept in .photolab/versions/; `photolab restore {args.library} FILE` "
              f"or `photolab undo {args.library} {report.batch}` puts them back")
    return 0


def _cmd_read_metadata(args) -> int:
    from photolab.stages.metadata import import_metadata

    df = import_metadata(args.library, progress=not args.quiet)
    tagged = (df["tags"] != "").sum()
    print(f"read-metadata: {len(df)} photos read; {tagged} carry taxonomy keywords (now labeled examples), "
          f"{df['rating'].notna().sum()} carry a rating")
    unknown = sorted({k for u in df["unknown"] if u for k in u.split(";")})
    if unknown:
        print(f"  keywords not in the taxonomy (add them as tags or aliases to use them): {', '.join(unknown[:30])}")
    return 0


def _cmd_restore(args) -> int:
    from photolab.core.library import open_library
    from photolab.stages.metadata import restore, versions

    lib = open_library(args.library)
    if args.list:
        df = versions(lib, args.file)
        print(df.to_string() if len(df) else f"{args.file}: no kept versions")
        return 0
    report = restore(lib, args.file, version=args.version)
    print(f"restore: {args.file} put back ({report.summary()}); `photolab undo {args.library} {report.batch}` reverses it")
    return 0


def _cmd_sample(args) -> int:
    from photolab.stages.review import sample

    df = sample(args.library, args.n, seed=args.seed, name=args.name, refresh=args.refresh)
    strata = df["stratum"].nunique() if len(df) else 0
    print(f"sample {args.name!r}: {len(df)} photos from {strata} groups (year | folder | camera | predicted tag), "
          f"seed {args.seed}")
    return 0


def _cmd_thresholds(args) -> int:
    import pandas as pd

    from photolab.stages.review import set_thresholds, suggest_thresholds, tag_metrics

    ids = None
    if args.sample:
        from photolab.core.library import open_library
        from photolab.store.meta import sample_ids

        ids = sample_ids(open_library(args.library).catalog.conn, args.sample)
    df = suggest_thresholds(args.library, target_precision=args.target_precision, photo_ids=ids)
    m = tag_metrics(args.library, photo_ids=ids)
    out = pd.concat([df, m[["ap"]]], axis=1)
    with pd.option_context("display.max_rows", 100, "display.width", 160):
        print(out.round(3).to_string())
    if args.apply:
        set_thresholds(args.library, df[df["positives"] >= 3])
        print(f"stored thresholds for {int((df['positives'] >= 3).sum())} tags; every later stage uses them")
    else:
        print("nothing stored; add --apply to store the suggested thresholds")
    return 0


def _cmd_train(args) -> int:
    from photolab.stages.train import heads, train, use_head

    if args.list:
        df = heads(args.library)
        print(df.to_string() if len(df) else "no heads trained yet")
        return 0
    if args.use:
        n = use_head(args.library, None if args.use == "prior" else args.use)
        print(f"active: {args.use}; {n} scores written")
        return 0
    report = train(args.library, force=args.force, use_metadata=not args.no_metadata)
    print(f"train: {report.summary()}")
    if report.metrics is not None:
        print(report.metrics.dropna(subset=["cv_ap"]).round(3).to_string())
    return 0


def _cmd_run(args) -> int:
    from photolab.automate import run_with_sources

    report = run_with_sources(args.library, args.import_dir, gather_from=args.gather_from,
                              stable_seconds=args.stable_seconds, progress=not args.quiet)
    print(f"photolab run: {report.summary()}")
    for path, why in report.failed:
        print(f"  set aside {path}: {why}")
    for path, why in report.retrying:
        print(f"  will retry {path}: {why}")
    return 0


def _cmd_watch(args) -> int:
    import signal

    from photolab.automate import watch

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"photolab watch: watching {args.import_dir} for {args.library} (Ctrl-C or SIGTERM stops)", flush=True)
    watch(args.library, args.import_dir, stable_seconds=args.stable_seconds, poll=args.poll, rescan=args.rescan,
          gather_from=args.gather_from, stop_event=stop)
    print("photolab watch: stopped", flush=True)
    return 0


def _cmd_maintain(args) -> int:
    from photolab.automate import maintain

    out = maintain(args.library, apply_dedupe=not args.no_dedupe)
    for k, v in out.items():
        if k == "missing":
            print(f"  missing   : {len(v)} files cataloged but gone from disk" + (f" (e.g. {v[0]})" if v else ""))
        else:
            print(f"  {k:10s}: {v}")
    return 0


def _cmd_find(args) -> int:
    from photolab.stages.search import RESULT_COLUMNS, find, link_into
    from photolab.core.library import open_library

    lib = open_library(args.library)
    df = find(lib, " ".join(args.query), limit=args.limit or None)
    if args.csv:
        import os
        from pathlib import Path

        out = Path(args.csv)
        tmp = out.with_name(out.name + ".tmp")
        df[RESULT_COLUMNS].to_csv(tmp, index=False, float_format="%.4f", encoding="utf-8")
        os.replace(tmp, out)
    if args.link_into:
        r = link_into(lib, df, args.link_into)
        print(f"album {r['folder']}: {r['linked']} linked ({r['hard']} hard, {r['symbolic']} symbolic), "
              f"{r['kept']} kept, {r['removed']} removed", file=sys.stderr)
    for rel in df["path"]:
        print(lib.abs(rel))
    if df.empty:
        print(f"find: no photo matches {' '.join(args.query)!r}", file=sys.stderr)
    return 0


def _cmd_places(args) -> int:
    from photolab.stages.places import confirm_places, places, suggest_places

    df = suggest_places(args.library)
    if args.confirm_event is not None:
        print(f"confirmed {confirm_places(args.library, event=args.confirm_event)} places")
        df = places(args.library)
    elif args.confirm_all:
        print(f"confirmed {confirm_places(args.library, list(df.index))} places")
        df = places(args.library)
    print(f"places: {len(df)} photos with a place ({int((df['confirmed'] == 1).sum())} confirmed; only those are "
          "written into files)")
    for tag, n in df["tag"].value_counts().head(20).items():
        print(f"  {n:5d}  {tag}")
    return 0


def _cmd_faces(args) -> int:
    from photolab.stages.faces import cluster_faces, clusters, confirm_faces, faces, name_cluster, people, scan_faces

    if args.name is not None:
        cluster, _, name = args.name.partition("=")
        if not cluster.strip().isdigit() or not name.strip():
            raise ValueError(f"--name takes CLUSTER=NAME (e.g. 0=Anna), got {args.name!r}")
        print(f"named {name_cluster(args.library, int(cluster), name)} faces {name.strip()!r}")
    elif args.confirm:
        print(f"confirmed {confirm_faces(args.library, confident_only=not args.tentative)} suggested names")
    else:
        report = scan_faces(args.library, progress=not args.quiet, workers=args.workers, cluster=args.cluster,
                            worker_root=args.worker_root)
        print(report.summary())
        for path, err in report.failed[:10]:
            print(f"  failed: {path}: {err} (it is retried on the next run)")
        cluster_faces(args.library)
    df = faces(args.library)
    counts = df["status"].value_counts()
    print("faces: " + ", ".join(f"{int(counts.get(k, 0))} {k}" for k in
                                ("named", "confident", "tentative", "unknown", "rejected")))
    ppl = people(args.library)
    for name, r in ppl.iterrows():
        print(f"  {name}: {r['faces']} named, {r['suggested']} suggested")
    cl = clusters(args.library)
    if len(cl):
        print("unnamed clusters (name one with --name CLUSTER=NAME):")
        for c, r in cl.head(10).iterrows():
            hint = f", looks like {r['suggestion']}" if isinstance(r["suggestion"], str) else ""
            print(f"  {c:4d}: {r['size']} faces in {r['photos']} photos{hint}")
    return 0


def _cmd_check(args) -> int:
    from photolab.core.health import check

    df = check(args.library)
    for r in df.itertuples():
        print(f"  {'ok  ' if r.ok else 'FAIL'} {r.check:20s} {r.detail}")
    if args.cluster:
        from photolab.features.cluster import connect, workers

        with connect(args.cluster, progress=not args.quiet) as client:
            for addr, info in sorted(workers(client).items()):
                where = "GPU (CUDA)" if info["device"] == "cuda" else "CPU"
                print(f"  ok   worker {addr}: tag model on {where} through {info['runtime']}; decoding and "
                      f"faces on its CPU (photolab {info['photolab']}, process {info['pid']})")
    return 0 if df["ok"].all() else 1


def _cmd_repair(args) -> int:
    from photolab.store.catalog import list_backups

    if args.list_backups:
        gens = list_backups(args.library)
        for k, p in enumerate(gens, 1):
            print(f"  {k}: {p.name} ({p.stat().st_size / 1e6:.1f} MB)")
        print(f"{len(gens)} catalog backup generations under {args.library}/.photolab/backups/")
        return 0
    if args.restore_catalog is not None:
        from photolab.core.repair import restore_catalog

        used, kept = restore_catalog(args.library, None if args.restore_catalog == "newest" else args.restore_catalog)
        print(f"catalog restored from {used.name}" + (f"; the replaced catalog is kept as {kept.name}" if kept else ""))
        print(f"next: `photolab index {args.library}` catalogs what changed on disk since that backup")
        return 0
    from photolab.core.repair import repair

    report = repair(args.library)
    print(f"repair: {report.summary()}")
    for name in report.unlinked:
        print(f"  second name removed: {name}")
    for name in report.temp_removed:
        print(f"  temporary file removed: {name}")
    for names in report.left.other_links:
        print(f"  left alone (hard links photolab did not make): {' = '.join(names)}")
    return 0


def _guarded(library, action: str):
    """The backup check before a bulk change: its warning as one line of the report (or a refusal)."""
    from photolab.core.backup import checked, guard

    warning = guard(library, action, quiet=True)
    if warning:
        print(f"warning: {warning}", flush=True)
    return checked()


def _cmd_backup(args) -> int:
    from photolab.core import backup as bk

    lib = args.library
    settings_given = any(v is not None for v in (args.keep_last, args.keep_days, args.every_hours,
                                                  args.require_backup))
    if settings_given:
        cfg = bk.configure(lib, keep_last=args.keep_last, keep_days=args.keep_days, every_hours=args.every_hours,
                           require_backup=args.require_backup)
        print(f"backup settings: keep the {cfg.keep_last} newest snapshots and all of the last {cfg.keep_days:g} days; "
              f"watcher snapshot every {cfg.every_hours:g} hours; require_backup = "
              f"{'yes' if cfg.require_backup else 'no'}")
    kw = {"repository": args.to, "password_file": args.password_file}
    if args.list:
        df = bk.snapshots(lib, **kw)
        if not len(df):
            print("no snapshots yet")
        for r in df.itertuples():
            photos = "?" if r.photos is None or r.photos != r.photos else int(r.photos)
            print(f"  {r.name:34s} {r.date[:19].replace('T', ' ')} UTC  {photos:>7} photos  "
                  f"{(r.size or 0) / 1e6:10.1f} MB  ({(r.unique or 0) / 1e6:.1f} MB only in it)")
        print(f"{len(df)} snapshots in {bk.settings(lib).repository if not args.to else args.to}")
        return 0
    if args.prune:
        print(bk.prune(lib, **kw).summary())
        return 0
    if args.restore:
        if not args.into:
            raise ValueError("--restore needs --into DIR (an empty or new folder outside the library)")
        rep = bk.restore(lib, args.restore[0], args.restore[1:], into=args.into, **kw)
        print(rep.summary())
        return 0
    if args.verify:
        rep = bk.verify(lib, sample=args.sample, full=args.full, **kw)
        print(rep.summary())
        return 0 if rep.ok else 1
    if settings_given and not args.to:
        return 0
    rep = bk.backup(lib, to=args.to, password_file=args.password_file, progress=not args.quiet)
    print(f"backup: {rep.summary()}")
    for w in rep.warnings[:20]:
        print(f"  warning: {w}")
    return 0


def _cmd_demo(args) -> int:
    from photolab.demo import run_demo

    return run_demo(args.library, sample=args.sample, fresh=not args.keep)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="photolab", description="Tag, review, de-duplicate and organize a photo library, locally.")
    p.add_argument("--version", action="version", version=f"photolab {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true", help="log more, list every problem")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("init", help="create a library (LIBRARY/.photolab with its catalog)")
    s.add_argument("library")
    s.set_defaults(func=_cmd_init)

    s = sub.add_parser("gather", help="copy photos from sources into the library (sources are only read)")
    s.add_argument("sources", nargs="+", metavar="SRC")
    s.add_argument("--into", required=True, metavar="LIBRARY")
    s.set_defaults(func=_cmd_gather)

    s = sub.add_parser("index", help="catalog every file: hash, format, size, EXIF, status")
    s.add_argument("library")
    s.add_argument("--workers", type=int, default=None, help="reader processes (default: all cores)")
    s.add_argument("--force", action="store_true", help="re-read unchanged files too")
    s.set_defaults(func=_cmd_index)

    def cluster_args(s):
        s.add_argument("--cluster", metavar="ADDRESS",
                       help="do the pixel work on a Dask cluster: a scheduler (tcp://host:8786) or local:N for N "
                            "worker processes here; this machine stays the catalog's only writer "
                            "(needs pip install 'photolab[cluster]')")
        s.add_argument("--worker-root", metavar="DIR",
                       help="with --cluster: where the library's folder is mounted on the workers "
                            "(default: the same path as here)")

    s = sub.add_parser("tag", help="labeling pass: embeddings, hashes, quality, thumbnails and tag scores")
    s.add_argument("library")
    s.add_argument("--batch-size", type=int, default=None, help="photos per model batch (default 16; 64 on a GPU)")
    s.add_argument("--force", action="store_true", help="redo photos already tagged with this model")
    s.add_argument("--crops", type=int, choices=[1, 3], default=None,
                   help="views per photo tags are scored from, kept as the library's setting: 1 (default) the "
                        "centre; 3 also both ends of the long side, for small subjects off centre, at 3 model "
                        "runs per photo")
    s.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where the model runs (default auto: a GPU where there is one)")
    cluster_args(s)
    s.add_argument("--model", help="timm architecture name (default tf_efficientnet_lite0)")
    s.add_argument("--checkpoint", help="a checkpoint file of your own for --model")
    s.add_argument("--hub-cache", action="store_true", help="load --model from the local hub cache (offline)")
    s.set_defaults(func=_cmd_tag)

    s = sub.add_parser("export-csv", help="one row per photo: path, captured_at, tags, score:<tag>, confidence:<tag> "
                                          "(a score is the probability that the photo has the tag)")
    s.add_argument("library")
    s.add_argument("out", metavar="OUT.csv")
    s.set_defaults(func=_cmd_export_csv)

    s = sub.add_parser("events", help="group photos into events by time and place, and list them")
    s.add_argument("library")
    s.set_defaults(func=_cmd_events)

    s = sub.add_parser("organize", help="plan (dry run) or --apply moves into folders by the rules file")
    s.add_argument("library")
    s.add_argument("--apply", action="store_true", help="carry the plan out (journaled, undoable)")
    s.add_argument("--plan-csv", metavar="OUT.csv", help="write the plan: source, target, rule, reason")
    s.add_argument("--rules", metavar="FILE", help="a rules file (default: LIBRARY/.photolab/rules.txt)")
    s.set_defaults(func=_cmd_organize)

    s = sub.add_parser("undo", help="reverse a batch of moves (default: the latest)")
    s.add_argument("library")
    s.add_argument("batch", nargs="?", default=None)
    s.set_defaults(func=_cmd_undo)

    s = sub.add_parser("dedupe", help="find exact/near duplicates and similar scenes; --apply quarantines copies")
    s.add_argument("library")
    s.add_argument("--apply", action="store_true", help="move the copies into .photolab/quarantine (undoable)")
    s.add_argument("--plan-csv", metavar="OUT.csv", help="write the plan: group, tier, path, keep, reason")
    s.add_argument("--per-event", action="store_true", help="keep one copy per event")
    s.set_defaults(func=_cmd_dedupe)

    s = sub.add_parser("restore-duplicates", help="put a quarantine batch or one quarantined file back")
    s.add_argument("library")
    s.add_argument("what", metavar="BATCH|FILE")
    s.set_defaults(func=_cmd_restore_duplicates)

    s = sub.add_parser("purge", help="delete quarantined files older than the retention (default 7 days)")
    s.add_argument("library")
    s.add_argument("--batch", help="only this batch (refused while younger than the retention)")
    s.add_argument("--retention-days", type=float, help="change the retention first")
    s.set_defaults(func=_cmd_purge)

    s = sub.add_parser("write-metadata", help="write tags and ratings into XMP/IPTC (in the file or a sidecar)")
    s.add_argument("library")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--in-file", action="store_true", help="in the photo itself (default; RAW/HEIC/read-only get sidecars)")
    g.add_argument("--sidecar", action="store_true", help="only in XMP sidecars")
    g.add_argument("--both", action="store_true", help="in the photo and in a sidecar")
    s.add_argument("--dry-run", action="store_true", help="make and verify everything, write nothing")
    s.add_argument("--sidecar-naming", choices=["ext", "stem"], default="ext",
                   help="new sidecars as IMG_1.jpg.xmp (ext: darktable, digiKam) or IMG_1.xmp (stem: Lightroom)")
    s.add_argument("--include-unreviewed", metavar="people,places",
                   help="also write these categories' tags before a person confirmed them")
    s.add_argument("--no-auto-rating", action="store_true", help="no rating suggestion from quality")
    s.set_defaults(func=_cmd_write_metadata)

    s = sub.add_parser("read-metadata", help="read keywords and ratings other apps wrote into the catalog")
    s.add_argument("library")
    s.set_defaults(func=_cmd_read_metadata)

    s = sub.add_parser("restore", help="put a file back as it was before photolab rewrote its metadata")
    s.add_argument("library")
    s.add_argument("file", metavar="FILE")
    s.add_argument("--version", type=int, help="a kept version's id (see --list; default: the newest)")
    s.add_argument("--list", action="store_true", help="list the file's kept versions")
    s.set_defaults(func=_cmd_restore)

    s = sub.add_parser("sample", help="draw a representative sample (years, folders, cameras, tags) to tune on")
    s.add_argument("library")
    s.add_argument("--n", type=int, default=1000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--name", default="default")
    s.add_argument("--refresh", action="store_true", help="draw again instead of reusing the stored sample")
    s.set_defaults(func=_cmd_sample)

    s = sub.add_parser("thresholds", help="per-tag precision/recall from reviewed photos; suggest (and --apply) thresholds")
    s.add_argument("library")
    s.add_argument("--target-precision", type=float, help="lowest threshold reaching this precision (default: best F1)")
    s.add_argument("--sample", help="measure on this sample's photos only")
    s.add_argument("--apply", action="store_true", help="store the suggested thresholds")
    s.set_defaults(func=_cmd_thresholds)

    s = sub.add_parser("train", help="train a tag head on your labeled photos; used, tag by tag, where it beats "
                                     "the active one")
    s.add_argument("library")
    s.add_argument("--force", action="store_true",
                   help="use the new weights on every tag, even where they do not beat the active head")
    s.add_argument("--no-metadata", action="store_true",
                   help="leave out photos labeled only by keywords other apps wrote")
    s.add_argument("--list", action="store_true", help="list trained heads")
    s.add_argument("--use", metavar="VERSION|prior", help="roll back or forward to a head, or to the prior alone")
    s.set_defaults(func=_cmd_train)

    def import_args(s):
        s.add_argument("library")
        s.add_argument("--import", dest="import_dir", required=True, metavar="DIR",
                       help="the import folder (only read; files are copied into the library)")
        s.add_argument("--stable-seconds", type=float, default=3.0,
                       help="a file counts as arrived when unchanged this long (default 3)")
        s.add_argument("--gather-from", metavar="GLOB", action="append",
                       help="also copy (reading only) from mounted folders matching this, e.g. "
                            "'/media/$USER/*/DCIM' (may be repeated)")

    s = sub.add_parser("run", help="one pass over an import folder: gather, index, tag, dedupe, metadata, organize")
    import_args(s)
    s.add_argument("--once", action="store_true", help="one pass, then exit (the default; for cron and timers)")
    s.set_defaults(func=_cmd_run)

    s = sub.add_parser("watch", help="watch an import folder and run a pass whenever new files have arrived")
    import_args(s)
    s.add_argument("--poll", action="store_true", help="poll instead of native events (network mounts)")
    s.add_argument("--rescan", type=float, default=300.0, help="also look every this many seconds (default 300)")
    s.set_defaults(func=_cmd_watch)

    s = sub.add_parser("maintain", help="check-up: catalog vs disk, re-score, dedupe, purge, trim versions")
    s.add_argument("library")
    s.add_argument("--no-dedupe", action="store_true", help="report duplicates without quarantining them")
    s.set_defaults(func=_cmd_maintain)

    s = sub.add_parser("places", help="country/region/city from GPS, offline; confirm before they are written")
    s.add_argument("library")
    s.add_argument("--confirm-event", type=int, metavar="EVENT", help="confirm the places of one event's photos")
    s.add_argument("--confirm-all", action="store_true", help="confirm every suggested place")
    s.set_defaults(func=_cmd_places)

    s = sub.add_parser("faces", help="find faces, group them, suggest names; people tags wait for a person")
    s.add_argument("library")
    s.add_argument("--name", metavar="CLUSTER=NAME", help="name every face of an unnamed cluster")
    s.add_argument("--confirm", action="store_true", help="accept the confident suggested names")
    s.add_argument("--tentative", action="store_true", help="with --confirm: the tentative ones too")
    s.add_argument("--workers", type=int, default=None, help="processes for detection (default: cores)")
    cluster_args(s)
    s.set_defaults(func=_cmd_faces)

    s = sub.add_parser("find", help="find photos by tags, people, places, dates, ratings, things and likeness; "
                                    "prints one path per line",
                       description="Query terms (AND between terms by default): a bare word (tag, alias, person, "
                                   "place, event or any thing WordNet names: dog, pizza, \"musical instrument\"), "
                                   "tag:, person:, place:, event:, camera:, date:2019 or date:2019-06..2019-08, "
                                   "rating:>=3, kind:raw, format:HEIF, quality:blurry, status:quarantined, thing:, "
                                   "like:PATH or like:ID; OR, NOT or -term, parentheses, \"quoted phrases\". "
                                   "Quote the whole query for the shell.")
    s.add_argument("library")
    s.add_argument("query", nargs="+", metavar="QUERY", help="the query (quote it: photolab find ~/Photos 'dog -cat date:2019')")
    s.add_argument("--limit", type=int, default=100, help="at most N photos (default 100; 0: all)")
    s.add_argument("--csv", metavar="OUT", help="also write photo_id, path, why, score, captured_at to OUT")
    s.add_argument("--link-into", metavar="DIR", help="make DIR an album of links to the results (refreshed "
                                                      "on every run; the photos never move)")
    s.set_defaults(func=_cmd_find)

    s = sub.add_parser("check", help="is everything in place? catalog, offline model weights, devices, free disk")
    s.add_argument("library")
    s.add_argument("--cluster", metavar="ADDRESS", help="also list a Dask cluster's workers and the device each "
                                                       "one's model will use")
    s.set_defaults(func=_cmd_check)

    s = sub.add_parser("repair", help="fix what a crash or kill left (interrupted moves, second names, temp files); "
                                      "--restore-catalog puts a catalog backup back")
    s.add_argument("library")
    s.add_argument("--restore-catalog", nargs="?", const="newest", metavar="GENERATION",
                   help="replace the catalog by a backup generation (1 = newest, the default; or its file name)")
    s.add_argument("--list-backups", action="store_true", help="list the catalog's backup generations")
    s.set_defaults(func=_cmd_repair)

    s = sub.add_parser("backup", help="encrypted, deduplicated snapshots of the library (BorgBackup); "
                                      "--list, --prune, --restore, --verify")
    s.add_argument("library")
    s.add_argument("--to", metavar="REPO", help="the repository: a folder (external drive, NAS) or an SSH URL; "
                                               "created the first time, then remembered")
    s.add_argument("--password-file", metavar="FILE",
                   help="the passphrase's file (default: the environment variable PHOTOLAB_BACKUP_PASSPHRASE)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--list", action="store_true", help="list snapshots: date, photos, size")
    g.add_argument("--prune", action="store_true", help="apply the retention (default: 30 days, at least 2)")
    g.add_argument("--restore", nargs="+", metavar=("SNAPSHOT|latest", "PATH"),
                   help="extract a snapshot (or some of its files) --into an empty folder outside the library")
    g.add_argument("--verify", action="store_true", help="borg's check, then a sample of files byte for byte")
    s.add_argument("--into", metavar="DIR", help="where --restore writes (empty or new; never the library)")
    s.add_argument("--sample", type=int, default=20, help="files compared by --verify (default 20)")
    s.add_argument("--full", action="store_true", help="with --verify: read and authenticate every chunk (slow)")
    s.add_argument("--keep-last", type=int, help="retention: keep at least this many newest snapshots")
    s.add_argument("--keep-days", type=float, help="retention: keep every snapshot younger than this")
    s.add_argument("--every-hours", type=float, help="the watcher takes a snapshot this often (0: never)")
    s.add_argument("--require-backup", choices=["yes", "no"],
                   help="yes: bulk changes refuse to run without a snapshot newer than the last change")
    s.set_defaults(func=_cmd_backup)

    s = sub.add_parser("demo", help="run every stage on a copy of the bundled sample photos")
    s.add_argument("--library", default="demo-library", help="where to build the demo library")
    s.add_argument("--sample", default=None, help="folder of photos to use (default: sample_data/)")
    s.add_argument("--keep", action="store_true", help="keep an existing demo library instead of starting fresh")
    s.set_defaults(func=_cmd_demo)
    return p


def _disk_full(exc: BaseException) -> bool:
    import errno

    return getattr(exc, "errno", None) == errno.ENOSPC or "no space left" in str(exc).lower()


def _one_line(exc: BaseException, args) -> str:
    """The message of a user-fixable error, naming the file and the next step."""
    import sqlite3
    from pathlib import Path

    from photolab.store.catalog import CATALOG_FILE, STATE_DIR, explain
    from photolab.core.errors import PhotolabError

    if isinstance(exc, PhotolabError):
        return str(exc)
    library = getattr(args, "library", None) or getattr(args, "into", None)
    if isinstance(exc, sqlite3.DatabaseError) and library:
        err = explain(exc, Path(library).expanduser().resolve() / STATE_DIR / CATALOG_FILE)
        if err is not None:
            return str(err)
    import errno

    if isinstance(exc, OSError) and exc.errno == errno.EROFS:
        return (f"{exc.filename or library}: the library is read-only (read-only file system); this command "
                "writes to it: remount it read-write and run it again; reading commands such as export-csv "
                "and check work as it is")
    if _disk_full(exc):
        where = getattr(exc, "filename", None) or library or "the disk"
        return (f"{where}: no space left on the device ({str(exc).splitlines()[0][:200]}); free space on that "
                "disk and run the command again (finished work is saved)")
    msg = " ".join(str(exc).split())
    return msg if isinstance(exc, (OSError, ValueError, KeyError)) else f"{type(exc).__name__}: {msg}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from photolab.core.errors import PhotolabError

    try:
        return int(args.func(args) or 0)
    except (PhotolabError, OSError, ValueError, KeyError) as exc:
        print(f"photolab: error: {_one_line(exc, args)}", file=sys.stderr)
        return 2
    except Exception as exc:
        import sqlite3

        if isinstance(exc, sqlite3.DatabaseError) or _disk_full(exc):
            print(f"photolab: error: {_one_line(exc, args)}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("photolab: interrupted; finished work is saved, run the command again to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
