"""Automation: a watched import folder runs the whole chain on new files; passes for timers; maintenance.

One pass (:func:`run_once`, ``photolab run LIBRARY --import DIR --once``):

1. find the import folder's files that have finished arriving (size and time
   unchanged for ``stable_seconds``; names of partial downloads are skipped) and
   that are not done yet (the catalog's ``import_state`` remembers each file by
   size and time);
2. gather them (copied and verified; the import folder is only read), index them,
   tag them with the current head and thresholds;
3. check them against the whole library for duplicates and quarantine the copies
   (exact and near; similar scenes are only reported);
4. suggest places from GPS and, once a person has named any face, find faces and
   suggest names (both stay suggestions until a person confirms them);
5. file them by the organize rules;
6. write their metadata (people and place tags still wait for a person's review),
   after filing so that a new sidecar is made beside the photo where it now lives.

These steps are the registered stage chain (:data:`photolab.stages.WATCH_PASS`), scoped to the new files.
A pass over a few files copies no catalog (see :data:`PASS_BULK_FILES`).

Every step is journaled where it touches files, so a pass stopped at any point
(SIGTERM, a crash) is recovered by the next one. A file that fails is retried
with backoff (30 s, 1 min, 2 min, …) and after five attempts set aside with its
reason; a file whose content is not a photo is set aside at once. Nothing blocks
the other files.

:func:`watch` (``photolab watch``) runs a pass at start (whatever arrived
meanwhile), then whenever the folder has been quiet for ``stable_seconds`` after
a change (watchdog's native observer, or polling for network mounts and when
inotify's watch limit is reached), and every ``rescan`` seconds regardless. One
watcher per library (a lock file). :func:`maintain` is the quarterly check-up.
"""

from __future__ import annotations

import fnmatch
import glob
import logging
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from photolab.core.errors import PhotolabError
from photolab.store.catalog import utcnow
from photolab.core.library import open_library
from photolab.core.names import shown
from photolab.store.watch import (TAGGED_KINDS, follow_moves, import_states, latest_copies, rows_by_path)

log = logging.getLogger(__name__)

STABLE_SECONDS = 3.0
MAX_ATTEMPTS = 5
BACKOFF = 30.0
PARTIAL = ("*.part", "*.partial", "*.crdownload", "*.download", "*.tmp", "*.!sync", ".*")
WATCH_LOCK = "watch.lock"


class AutomationError(PhotolabError, RuntimeError):
    """The watcher or a pass cannot start; the message says why."""


@dataclass
class PassReport:
    """What one pass did."""

    ready: int = 0
    waiting: int = 0
    gathered: int = 0
    tagged: int = 0
    duplicates: int = 0
    metadata: int = 0
    organized: int = 0
    faces: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)     # (import path, reason)
    retrying: list[tuple[str, str]] = field(default_factory=list)
    stopped: bool = False
    seconds: float = 0.0
    snapshot: str = ""            # the scheduled backup snapshot this pass took, if any

    def summary(self) -> str:
        s = (f"{self.ready} new files: {self.gathered} gathered, {self.tagged} tagged, {self.duplicates} duplicates "
             f"quarantined, {self.metadata} metadata written, {self.organized} filed")
        if self.faces:
            s += f"; {self.faces} faces found"
        if self.waiting:
            s += f"; {self.waiting} still arriving"
        if self.retrying:
            s += f"; {len(self.retrying)} to retry"
        if self.failed:
            s += f"; {len(self.failed)} set aside"
        if self.stopped:
            s += "; stopped early (the next pass goes on)"
        if self.snapshot:
            s += f"; backup snapshot {self.snapshot}"
        return s + f" ({self.seconds:.1f} s)"


def _partial(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pat) for pat in PARTIAL)


def arrived_files(library, import_dir, *, stable_seconds: float = STABLE_SECONDS) -> tuple[list[Path], list[Path]]:
    """(files ready to take in, files still arriving) in ``import_dir``: not done yet, not a partial
    download, size and modification time unchanged over ``stable_seconds`` (and that old)."""
    lib = open_library(library)
    root = Path(import_dir).expanduser().resolve()
    now = time.time()
    seen: dict[Path, os.stat_result] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if _partial(name):
                continue
            p = Path(folder) / name
            try:
                seen[p] = p.stat()
            except OSError:
                continue
    known = import_states(lib.catalog.conn, [shown(p) for p in seen])   # this folder's files only
    first: dict[Path, tuple[int, int]] = {}
    for p, st in seen.items():
        k = known.get(shown(p))
        if k and k["size"] == st.st_size and k["mtime_ns"] == st.st_mtime_ns and (
                k["state"] in ("done", "failed") or (k["next_try"] or 0) > now):
            continue
        first[p] = (st.st_size, st.st_mtime_ns)
    young = [p for p, (_, m) in first.items() if now - m / 1e9 < stable_seconds]
    if young:
        time.sleep(max(0.0, min(stable_seconds, stable_seconds - min(now - first[p][1] / 1e9 for p in young))))
    ready, waiting = [], []
    for p, (size, mtime) in sorted(first.items()):
        try:
            st = p.stat()
        except OSError:
            continue
        settled = (st.st_size, st.st_mtime_ns) == (size, mtime) and time.time() - st.st_mtime_ns / 1e9 >= stable_seconds
        (ready if settled else waiting).append(p)
    return ready, waiting


def _record(lib, rows: list[tuple]) -> None:
    from photolab.store.jobs import record_imports

    with lib.catalog.write() as db:
        record_imports(db, rows)


# a pass moves or rewrites few files: below this many in one batch it takes no catalog backup (each move is
# journaled, so undoable, and the day's backups hold the catalog); a batch of this many or more is a bulk
# change, and the first one of a pass is preceded by one backup, the pass's only one
PASS_BULK_FILES = 1000


def run_once(library, import_dir, *, stable_seconds: float = STABLE_SECONDS, should_stop=None,
             progress: bool = False, model=None) -> PassReport:
    """One pass over the import folder (see the module text). ``should_stop()`` is asked between steps;
    ``model``: a loaded backbone to reuse (the watcher keeps one loaded between passes).

    The catalog is copied (a backup generation) only before a batch that moves or rewrites
    :data:`PASS_BULK_FILES` files or more, at most once per pass: a pass over a few new photos copies no
    catalog, whatever the size of the library (its moves are journaled and undoable)."""
    from photolab.core.backup import checked
    from photolab.core.fileops import recover
    from photolab.stages.index import USABLE
    from photolab.stages import WATCH_PASS, run_chain
    from photolab.store.jobs import source_id as source_of

    stop = should_stop or (lambda: False)
    start = time.perf_counter()
    lib = open_library(library)
    root = Path(import_dir).expanduser().resolve()
    if not root.is_dir():
        raise AutomationError(f"{import_dir}: import folder not found")
    if root == lib.root or lib.root in root.parents:
        raise AutomationError(f"{import_dir}: the import folder must be outside the library {lib.root}")
    recover(lib)
    report = PassReport()
    ready, waiting = arrived_files(lib, root, stable_seconds=stable_seconds)
    report.ready, report.waiting = len(ready), len(waiting)
    if not ready:
        report.snapshot = _scheduled_backup(lib)
        report.seconds = time.perf_counter() - start
        return report
    run_id = lib.catalog.start_run("pass")
    conn = lib.catalog.conn
    attempts = {k: r["attempts"] for k, r in import_states(conn, [shown(p) for p in ready]).items()}
    stats = {p: p.stat() for p in ready}
    seen: dict = {}   # what the gather and index steps found, for the bookkeeping after them
    recorded = [False]

    def after(name, out, run):
        if name == "gather":
            report.gathered = out.copied
            seen["failed_copy"] = dict(out.failed)      # shown path -> reason
            seen["set_aside"] = dict(out.set_aside)     # links: never retried
            # by name, through indexes: the latest copy of each ready file, and (gather_log keeps the first
            # destination; organize may have moved it since) where the journal says it went
            seen["dest_of"] = latest_copies(conn, source_of(conn, shown(root)),
                                            [shown(p.relative_to(root).as_posix()) for p in ready])
            seen["now_at"] = follow_moves(conn, sorted(set(seen["dest_of"].values())))
            run.options["index"] = {"paths": sorted(set(seen["now_at"].values()))}   # the import's files only
        elif name == "index":
            run.ids = _import_states(lib, root, ready, stats, attempts, seen, report, USABLE)
            recorded[0] = True
        elif name == "tag":
            report.tagged = out.tagged
        elif name == "dedupe":
            report.duplicates = out.done
        elif name == "faces":
            report.faces = out.faces if out is not None else 0
        elif name == "organize":
            report.organized = out.done
        elif name == "metadata":
            report.metadata = out.counts().get("written", 0)

    # filing new files (still in the import folder) needs no snapshot first
    with lib.catalog.one_backup_for("pass", bulk=PASS_BULK_FILES), checked():
        run = run_chain(lib, WATCH_PASS, progress=False, should_stop=lambda: recorded[0] and stop(), on_done=after,
                        options={"gather": {"sources": [root], "only": ready, "progress": progress},
                                 "tag": {"model": model, "counts": False}})
    report.stopped = run.stopped
    report.snapshot = _scheduled_backup(lib)
    report.seconds = time.perf_counter() - start
    lib.catalog.finish_run(run_id, asdict(report))
    log.info("pass %s: %s", root, report.summary())
    return report


def _import_states(lib, root: Path, ready: list[Path], stats: dict, attempts: dict, seen: dict, report: PassReport,
                   usable) -> list[int]:
    """Each ready file's state recorded (done, retry with backoff, or set aside with its reason); returns the
    ids of the new photos and clips the rest of the pass works on."""
    rows = {r["path"]: r for r in rows_by_path(lib.catalog.conn, sorted(set(seen["now_at"].values())),
                                               "id, path, kind, status, error")}
    failed_copy, set_aside, dest_of, now_at = seen["failed_copy"], seen["set_aside"], seen["dest_of"], seen["now_at"]
    now, state_rows, new_ids = utcnow(), [], []
    for p in ready:
        st = stats[p]
        key = shown(p)    # the catalog's text for the file (escaped where the name is not UTF-8)
        rel = shown(p.relative_to(root).as_posix())
        tries = attempts.get(key, 0) + 1
        if key in set_aside:
            why = f"not copied: {set_aside[key]}"
            state_rows.append((key, st.st_size, st.st_mtime_ns, "failed", tries, None, None, why, now))
            report.failed.append((key, why))
            continue
        if key in failed_copy:
            why = f"not copied: {failed_copy[key]}"
            if tries >= MAX_ATTEMPTS:
                state_rows.append((key, st.st_size, st.st_mtime_ns, "failed", tries, None, None, why, now))
                report.failed.append((key, why))
            else:
                state_rows.append((key, st.st_size, st.st_mtime_ns, "retry", tries,
                                   time.time() + BACKOFF * 2 ** (tries - 1), None, why, now))
                report.retrying.append((key, why))
            continue
        dest = dest_of.get(rel)
        dest = now_at.get(dest, dest)   # after later moves (organize runs after every pass)
        row = rows.get(dest)
        if row is None:
            why = "not a photo or companion photolab takes in" if dest is None else "copied, but not in the catalog"
            state_rows.append((key, st.st_size, st.st_mtime_ns, "failed", tries, None, None, why, now))
            report.failed.append((key, why))
            continue
        if row["kind"] in TAGGED_KINDS and row["status"] not in usable:
            why = f"{row['status']}: {row['error']}"
            state_rows.append((key, st.st_size, st.st_mtime_ns, "failed", tries, None, row["id"], why, now))
            report.failed.append((key, why))
            continue
        state_rows.append((key, st.st_size, st.st_mtime_ns, "done", tries, None, row["id"], None, now))
        if row["kind"] in TAGGED_KINDS:   # clips are deduped and filed like photos
            new_ids.append(row["id"])
    _record(lib, state_rows)
    return new_ids


def _scheduled_backup(lib) -> str:
    """A snapshot when one is due (a repository configured, ``every_hours`` passed, the library changed)."""
    from photolab.core.backup import scheduled

    rep = scheduled(lib)
    return rep.name if rep else ""


def import_log(library, *, short: bool = False):
    """Every import folder file's outcome: path, state (done / retry / failed), attempts, photo, reason.

    ``short``: as a notebook shows it: the file's name for its path, an empty reason for none, and only the
    path, state, reason and library path columns."""
    from photolab.store.jobs import import_log as log_of

    log = log_of(open_library(library).catalog.conn)
    if not short:
        return log
    log["path"] = log["path"].map(lambda p: Path(p).name)
    log["reason"] = log["reason"].fillna("")
    return log[["path", "state", "reason", "library_path"]]


def maintenance_table(done: dict):
    """What :func:`maintain` returned, one row per item (a dict item as ``key: value, ...``), as a DataFrame."""
    import pandas as pd

    def cell(v):
        return ", ".join(f"{a}: {b}" for a, b in v.items()) if isinstance(v, dict) else v

    return pd.Series({k: cell(v) for k, v in done.items()}, name="maintenance").to_frame()


# -- the watcher -----------------------------------------------------------------------------
def watch(library, import_dir, *, stable_seconds: float = STABLE_SECONDS, poll: bool = False,
          rescan: float = 300.0, gather_from=None, stop_event: threading.Event | None = None) -> None:
    """Watch ``import_dir`` and run a pass whenever new files have settled (see the module text).

    Stops cleanly on SIGTERM/SIGINT (the current step finishes; the rest waits for the next start)."""
    import filelock

    lib = open_library(library)
    root = Path(import_dir).expanduser().resolve()
    if not root.is_dir():
        raise AutomationError(f"{import_dir}: import folder not found")
    lock = filelock.FileLock(str(lib.state / WATCH_LOCK))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise AutomationError(f"{lib.root}: another photolab watcher is running for this library") from None
    stop = stop_event or threading.Event()
    changed = threading.Event()
    last_change = [time.time()]

    def on_signal(signum, frame):
        log.warning("signal %s: finishing the current step, then stopping", signum)
        stop.set()

    if stop_event is None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    observer = _observer(root, poll, changed, last_change)
    model = None
    try:
        next_scan = 0.0
        while not stop.is_set():
            now = time.time()
            settled = changed.is_set() and now - last_change[0] >= stable_seconds
            if settled or now >= next_scan:
                changed.clear()
                if gather_from:
                    _gather_from(lib, gather_from)
                if model is None and any(root.iterdir()):   # loaded once, kept between passes
                    from photolab.features.backbone import load_backbone

                    model = load_backbone(fallback_dir=lib.state / "models" / "backbone")
                report = run_once(lib, root, stable_seconds=stable_seconds, should_stop=stop.is_set, model=model)
                if report.ready or report.waiting:
                    print(f"photolab watch: {report.summary()}", flush=True)
                if report.waiting:   # look again once they have had time to settle
                    changed.set()
                    last_change[0] = time.time()
                next_scan = time.time() + rescan
            stop.wait(0.25)
    finally:
        observer.stop()
        observer.join(timeout=5)
        lock.release()


def _observer(root: Path, poll: bool, changed: threading.Event, last_change: list):
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer
    from watchdog.observers.polling import PollingObserver

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event):
            last_change[0] = time.time()
            changed.set()

    if not poll:
        try:
            obs = Observer()
            obs.schedule(Handler(), str(root), recursive=True)
            obs.start()
            return obs
        except OSError as exc:   # e.g. inotify's watch limit reached
            log.warning("%s: native file watching unavailable (%s); polling instead", root, exc)
    obs = PollingObserver(timeout=2)
    obs.schedule(Handler(), str(root), recursive=True)
    obs.start()
    return obs


def _gather_from(lib, patterns) -> None:
    """Copy (reading only) from every mounted folder matching ``patterns`` (a camera's or phone's DCIM)."""
    from photolab.stages.gather import gather

    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    folders = sorted({f for pat in patterns for f in glob.glob(os.path.expandvars(os.path.expanduser(pat)))})
    for folder in folders:
        if Path(folder).is_dir():
            rep = gather([folder], lib, progress=False)
            print(f"photolab: from {folder}: {rep.summary()}", flush=True)


def run_with_sources(library, import_dir, *, gather_from=None, **kw) -> PassReport:
    """A pass, after copying from any mounted camera/phone folders matching ``gather_from``."""
    lib = open_library(library)
    if gather_from:
        _gather_from(lib, gather_from)
    return run_once(lib, import_dir, **kw)


# -- maintenance -----------------------------------------------------------------------------
def maintain(library, *, apply_dedupe: bool = True) -> dict:
    """The quarterly check-up: catalog against the disk, re-tag and re-score what changed,
    dedupe across the whole library, purge quarantine past retention, trim metadata versions.
    It first checks for a fresh backup snapshot (``out["backup"]``; refused with ``require_backup = yes``)."""
    from photolab.core.backup import checked, guard

    lib = open_library(library)
    warning = guard(lib, "maintain", quiet=True)
    with checked():
        out = _maintain(lib, apply_dedupe=apply_dedupe)
    return {"backup": warning or "a snapshot newer than the last change exists"} | out


def _maintain(lib, *, apply_dedupe: bool) -> dict:
    from photolab.stages import dedupe
    from photolab.core.fileops import clean_temp_files, prune_versions, recover
    from photolab.stages import MAINTAIN, run_chain
    from photolab.store.meta import missing_paths

    out: dict = {"recovered": recover(lib)}
    out["temp_files_removed"] = len(clean_temp_files(lib.root))   # left by killed runs
    done = run_chain(lib, MAINTAIN, options={"dedupe": {"apply": apply_dedupe}}).results
    out["index"] = done["index"].summary()
    out["missing"] = missing_paths(lib.catalog.conn)
    out["tag"] = done["tag"].summary()
    out["rescored"] = done["rescore"]
    out["dedupe"] = dedupe.summary(done["dedupe"].plan)
    if done["dedupe"].report is not None:
        out["quarantined"] = done["dedupe"].report.done
    out["purged"] = dedupe.purge(lib)
    out["versions_dropped"] = prune_versions(lib)
    run = lib.catalog.start_run("maintain")
    lib.catalog.finish_run(run, {k: v for k, v in out.items() if k != "missing"} | {"missing": len(out["missing"])})
    return out


def systemd_units() -> dict[str, Path]:
    """The systemd units and udev rule shipped with photolab (``photolab/data/systemd/``; in a source checkout
    also ``contrib/systemd/``): file name -> path, readable from an installed wheel too. Each file says how
    to install it."""
    from importlib import resources

    folder = Path(str(resources.files("photolab").joinpath("data", "systemd")))
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_file()}


def systemd_table():
    """The shipped units (:func:`systemd_units`) as a DataFrame: file, what it is (``Description=``) and what it
    runs or when (the first ``ExecStart=``, ``OnCalendar=``, ``PathExists=`` or ``PathChanged=``)."""
    import pandas as pd

    def first(lines, keys):
        return next((ln.split("=", 1)[1] for ln in lines if ln.startswith(keys)), "")

    rows = []
    for unit in systemd_units().values():
        text = unit.read_text(errors="replace").splitlines()
        rows.append({"file": unit.name, "what": first(text, ("Description=",)),
                     "runs / when": first(text, ("ExecStart=", "OnCalendar=", "PathExists=", "PathChanged="))})
    return pd.DataFrame(rows, columns=["file", "what", "runs / when"])


__all__ = ["AutomationError", "PASS_BULK_FILES", "PassReport", "arrived_files", "import_log", "maintain",
           "maintenance_table", "run_once", "systemd_table", "systemd_units", "watch"]
