"""What a killed process can leave in a library, found (``photolab check``) and fixed (``photolab repair``).

A kill at any moment leaves at most:

- ``planned`` journal entries of a batch whose process is gone (:func:`photolab.core.fileops.recover`
  finishes or rolls them back; batches of running processes are left alone);
- a file under two names for a moment (a move is a hard link to the new name, then the
  old name's removal): one photo, whose second name is removed;
- temporary files ``.photolab-tmp-<pid>-<name>`` of a process that is gone (never the only
  copy of anything: the original is kept until the copy is verified);
- with a damaged catalog file, rows the catalog cannot vouch for: restore a backup
  generation (:func:`photolab.store.catalog.list_backups`, ``photolab repair LIBRARY --restore-catalog``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from photolab.store.catalog import STATE_DIR, CatalogError
from photolab.core.fileops import TMP_PREFIX, _release_dead_batch, _take_dead_batch, fsync_dir, pid_alive, recover, temp_owner
from photolab.core.library import open_library
from photolab.store import journal
from photolab.store import photos as photo_store

log = logging.getLogger(__name__)


@dataclass
class Leftovers:
    """What :func:`find_leftovers` found."""

    dead_batches: dict[str, int] = field(default_factory=dict)    # batch -> planned entries, owner gone
    live_batches: dict[str, int] = field(default_factory=dict)    # batch -> planned entries, owner running
    linked: list[list[str]] = field(default_factory=list)          # names of one file that a move made
    other_links: list[list[str]] = field(default_factory=list)     # hard links photolab did not make
    temp_files: list[str] = field(default_factory=list)            # temporary files of processes that are gone
    duplicate_rows: list[str] = field(default_factory=list)        # paths cataloged more than once

    @property
    def clean(self) -> bool:
        return not (self.dead_batches or self.linked or self.temp_files or self.duplicate_rows)


def _scan(root: Path) -> tuple[dict[tuple[int, int], list[str]], list[Path]]:
    """Hard-linked files (inode -> names inside the library) and temporary files, in one walk."""
    by_inode: dict[tuple[int, int], list[str]] = {}
    temps: list[Path] = []
    for folder, dirs, files in os.walk(root):
        rel_folder = Path(folder).relative_to(root)
        inside_state = rel_folder.parts[:1] == (STATE_DIR,)
        for name in files:
            p = Path(folder, name)
            if name.startswith(TMP_PREFIX):
                temps.append(p)
                continue
            if inside_state:
                continue
            try:
                st = p.lstat()
            except OSError:
                continue
            if st.st_nlink > 1:
                by_inode.setdefault((st.st_dev, st.st_ino), []).append((rel_folder / name).as_posix())
    return {k: sorted(v) for k, v in by_inode.items() if len(v) > 1}, temps


def find_leftovers(library) -> Leftovers:
    """Look for what a kill can leave (changes nothing)."""
    lib = open_library(library)
    cat = lib.catalog
    out = Leftovers()
    for r in journal.planned_counts(cat.conn):
        lock = _take_dead_batch(lib, r["batch"])
        if lock is None:
            out.live_batches[r["batch"]] = r["n"]
        else:
            _release_dead_batch(lock)
            out.dead_batches[r["batch"]] = r["n"]
    out.duplicate_rows = photo_store.duplicate_paths(cat.conn)
    groups, temps = _scan(lib.root)
    if groups:
        journaled = journal.moved_paths(cat.conn)
        for names in groups.values():
            # a second name a move made (its link step); links a person made are theirs to keep
            ours = any(n in journaled for n in names)
            (out.linked if ours else out.other_links).append(names)
    out.temp_files = sorted(str(p.relative_to(lib.root)) for p in temps
                            if (pid := temp_owner(p.name)) is not None and pid != os.getpid() and not pid_alive(pid))
    return out


@dataclass
class RepairReport:
    """What :func:`repair` did."""

    recovered: dict[str, int] = field(default_factory=dict)
    unlinked: list[str] = field(default_factory=list)       # second names of one file removed
    temp_removed: list[str] = field(default_factory=list)
    left: Leftovers | None = None

    def summary(self) -> str:
        rec = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in self.recovered.items() if v) or "none"
        s = (f"interrupted moves settled: {rec}; second names removed: {len(self.unlinked)}; "
             f"temporary files removed: {len(self.temp_removed)}")
        if self.left is not None and self.left.live_batches:
            s += f"; {len(self.left.live_batches)} batches being applied by running processes left alone"
        return s


def repair(library) -> RepairReport:
    """Fix what a kill left: settle dead batches, make a file under two names one photo again,
    remove dead processes' temporary files. Nothing that is the only copy of a file is removed."""
    lib = open_library(library)
    cat = lib.catalog
    report = RepairReport(recovered=recover(lib))
    found = find_leftovers(lib)
    for names in found.linked:
        rows = {r["path"]: r for r in photo_store.present_rows(cat.conn, names)}
        last = journal.last_done_dst(cat.conn, names)
        if last and (last in rows or not rows):
            keep = last
        elif rows:
            keep = min(rows.values(), key=lambda r: r["id"])["path"]
        else:
            keep = names[0]
        with cat.write() as db:
            for name in names:
                if name == keep:
                    continue
                p = lib.abs(name)
                try:
                    if not os.path.samefile(p, lib.abs(keep)):   # changed meanwhile: leave it
                        continue
                except OSError:
                    continue
                os.unlink(p)
                fsync_dir(p.parent)
                if name in rows:
                    if keep in rows:
                        photo_store.delete_path(db, name)
                    else:
                        photo_store.rename(db, name, keep)
                        rows[keep] = rows.pop(name)
                report.unlinked.append(name)
                log.warning("%s: second name of %s removed (one file, one photo)", name, keep)
    for rel in found.temp_files:
        p = lib.root / rel
        try:
            p.unlink()
            report.temp_removed.append(rel)
        except OSError as exc:
            log.warning("%s: temporary file not removed (%s)", p, exc)
    report.left = find_leftovers(lib)
    if report.left.duplicate_rows:
        raise CatalogError(f"{cat.path}: {len(report.left.duplicate_rows)} paths are cataloged twice (e.g. "
                           f"{report.left.duplicate_rows[0]}): the catalog's index is damaged; restore a backup "
                           f"with `photolab repair {lib.root} --restore-catalog`")
    return report


def restore_catalog(root: str | os.PathLike, generation: int | str | None = None) -> tuple[Path, Path | None]:
    """Put a backup generation of the catalog in place of the current (damaged, emptied or lost) one.

    Args:
        root: the library folder (the catalog need not open).
        generation: 1 for the newest backup (the default), 2 for the one before, ... or a backup's
            file name (see :func:`photolab.store.catalog.list_backups`).

    Returns:
        ``(backup used, where the replaced catalog was kept)``; the replaced catalog and its WAL
        files are renamed ``catalog.sqlite.replaced-<time>``, never deleted. Run ``photolab index``
        afterwards: files moved or added since the backup are then cataloged again.
    """
    import shutil
    import sqlite3
    import time

    import filelock

    from photolab.store.catalog import CATALOG_FILE, LOCK_FILE, list_backups

    root = Path(root).expanduser().resolve()
    state = root / STATE_DIR
    gens = list_backups(root)
    if not gens:
        raise CatalogError(f"{state / 'backups'}: no catalog backup generations to restore")
    if generation is None:
        chosen = gens[0]
    elif str(generation).isdigit():
        k = int(generation)
        if not 1 <= k <= len(gens):
            raise CatalogError(f"{state / 'backups'}: generation {k} does not exist (1 to {len(gens)}; "
                               "`photolab repair LIBRARY --list-backups` lists them)")
        chosen = gens[k - 1]
    else:
        chosen = next((p for p in gens if p.name == str(generation)), None)
        if chosen is None:
            raise CatalogError(f"{state / 'backups'}: no backup named {generation}")
    try:
        conn = sqlite3.connect(f"file:{chosen}?mode=ro", uri=True)
        try:
            verdict = journal.quick_check(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        verdict = str(exc)
    if verdict != "ok":
        raise CatalogError(f"{chosen}: this backup is damaged too ({verdict}); choose an older generation")
    cat = state / CATALOG_FILE
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    kept = None
    with filelock.FileLock(str(state / LOCK_FILE), timeout=60):
        tmp = state / f".{CATALOG_FILE}.restoring"
        shutil.copyfile(chosen, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        for suffix in ("", "-wal", "-shm"):
            old = cat.with_name(CATALOG_FILE + suffix)
            if old.exists():
                aside = cat.with_name(f"{CATALOG_FILE}.replaced-{stamp}{suffix}")
                os.replace(old, aside)
                kept = kept or aside
        os.replace(tmp, cat)
        fsync_dir(state)
        from photolab.store.scores import forget

        forget(state)   # the score matrix followed the replaced catalog's change log
    log.warning("catalog restored from %s (replaced catalog kept as %s)", chosen, kept)
    return chosen, kept


__all__ = ["Leftovers", "RepairReport", "find_leftovers", "repair", "restore_catalog"]
