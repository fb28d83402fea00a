"""Gather: copy photos from phones, cameras and drives into the library.

Sources are only ever read. Each source gets its own folder in the library
(named after the source folder, made unique), so two cards that both hold
``DCIM/100CANON/IMG_0001.JPG`` never collide. Every copy is written to a
temporary file, flushed to disk, read back and compared by SHA-256 before it
takes its final name; an existing file is never overwritten. Duplicates are
kept (dedupe comes later). Re-running is idempotent: a source file whose
content was already copied from the same place is skipped.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import PhotolabError
from .catalog import utcnow
from .fileops import clean_component, sha256_file, verified_copy
from .library import Library, open_library
from .media import companions, kind_by_extension

log = logging.getLogger(__name__)



class GatherError(PhotolabError, RuntimeError):
    """A source cannot be gathered (missing, not a folder, inside the library)."""


@dataclass
class GatherReport:
    """What a gather run did."""

    copied: int = 0
    skipped: int = 0          # already gathered from this source with the same content
    companions: int = 0       # sidecars, AAE edits and live-photo videos copied with their photo
    ignored: int = 0          # files that are neither photos nor companions
    failed: list[tuple[str, str]] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)   # source path -> folder in the library
    by_kind: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        return (f"{self.copied} copied ({self.companions} companions), {self.skipped} already gathered, "
                f"{self.ignored} ignored, {len(self.failed)} failed")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["by_kind"] = dict(self.by_kind)
        return d


def source_facts(path: Path) -> tuple[bool, bool]:
    """(removable, read_only) for the filesystem holding ``path`` (Linux; False where unknown)."""
    read_only = False
    try:
        read_only = bool(os.statvfs(path).f_flag & os.ST_RDONLY) or not os.access(path, os.W_OK)
    except OSError:
        pass
    removable = False
    try:
        dev = os.stat(path).st_dev
        sys_dev = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}").resolve()
        for candidate in (sys_dev, sys_dev.parent):
            flag = candidate / "removable"
            if flag.is_file():
                removable = flag.read_text().strip() == "1"
                break
    except OSError:
        pass
    return removable, read_only


def _register_source(lib: Library, src: Path) -> tuple[int, str]:
    """Source id and library folder for ``src``, creating them on first sight."""
    cat = lib.catalog
    key = str(src)
    removable, read_only = source_facts(src)
    now = utcnow()
    with cat.write() as db:
        row = db.execute("SELECT id, label FROM sources WHERE path = ?", (key,)).fetchone()
        if row:
            db.execute("UPDATE sources SET last_seen = ?, removable = ?, read_only = ? WHERE id = ?",
                       (now, int(removable), int(read_only), row["id"]))
            return row["id"], row["label"]
        base = clean_component(src.name.strip(" .") or "source")
        label, n = base, 1
        while db.execute("SELECT 1 FROM sources WHERE label = ?", (label,)).fetchone() or \
                (lib.root / label).exists():
            n += 1
            label = f"{base}-{n}"
        cur = db.execute(
            "INSERT INTO sources(label, path, removable, read_only, first_seen, last_seen) VALUES (?,?,?,?,?,?)",
            (label, key, int(removable), int(read_only), now, now))
        return int(cur.lastrowid), label


def _free_name(dest: Path) -> Path:
    if not dest.exists():
        return dest
    n = 1
    while True:
        candidate = dest.with_name(f"{dest.stem}_{n}{dest.suffix}")
        if not candidate.exists():
            return candidate
        n += 1


def _plan_source(src: Path) -> tuple[list[Path], list[Path], int]:
    """Photos and their companions under ``src`` (sorted), and how many files are ignored."""
    photos: list[Path] = []
    companion_files: list[Path] = []
    ignored = 0
    for folder, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        names = set(files)
        taken: set[str] = set()
        folder_path = Path(folder)
        for name in sorted(files):
            if name.startswith("."):
                continue
            if kind_by_extension(name) in ("photo", "raw"):
                photos.append(folder_path / name)
                for c in companions(Path(name), names):
                    if c not in taken:
                        taken.add(c)
                        companion_files.append(folder_path / c)
        ignored += sum(1 for n in names if not n.startswith(".") and n not in taken
                       and kind_by_extension(n) not in ("photo", "raw"))
    return photos, companion_files, ignored


def gather(sources, into, *, progress: bool = True, only=None) -> GatherReport:
    """Copy the photos of one or more source folders into a library.

    Args:
        sources: folders to read (a phone dump, a camera card's DCIM, a drive).
        into: the library (a :class:`~photolab.library.Library` or its folder).
        progress: show a progress bar.
        only: copy only these files (paths under the sources; e.g. the files of a watched
            import folder that have finished arriving).

    Returns:
        A :class:`GatherReport`; also stored in the catalog's ``runs`` table.
    """
    from tqdm.auto import tqdm

    lib = open_library(into)
    cat = lib.catalog
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    report = GatherReport()
    run_id = cat.start_run("gather")
    for source in sources:
        src = Path(source).expanduser().resolve()
        if not src.is_dir():
            raise GatherError(f"{source}: not a folder (give the folder that holds the photos, e.g. the card's DCIM)")
        if src == lib.root or lib.root in src.parents:
            raise GatherError(f"{source}: is inside the library {lib.root}; gather reads from outside it")
        source_id, label = _register_source(lib, src)
        report.sources[str(src)] = label
        photo_files, companion_files, ignored = _plan_source(src)
        if only is not None:
            wanted = {Path(p).resolve() for p in only}
            photo_files = [p for p in photo_files if p.resolve() in wanted]
            companion_files = [p for p in companion_files if p.resolve() in wanted]
        report.ignored += ignored
        done = {(r["source_rel"], r["sha256"]): r["dest"] for r in cat.query(
            "SELECT source_rel, sha256, dest FROM gather_log WHERE source_id = ?", (source_id,))}
        done_rels = {rel for rel, _ in done}
        companion_set = set(companion_files)
        for path in tqdm(photo_files + companion_files, desc=f"gather {label}", unit="file",
                         disable=not progress):
            rel = path.relative_to(src).as_posix()
            try:
                if rel in done_rels:
                    digest = sha256_file(path)
                    if (rel, digest) in done:  # even if the copy was since moved or quarantined
                        report.skipped += 1
                        continue
                dest = _free_name(lib.root / label / rel)
                digest = verified_copy(path, dest)
            except OSError as exc:
                report.failed.append((str(path), f"{exc.strerror or exc}"))
                log.warning("%s: not gathered (%s)", path, exc)
                continue
            dest_rel = lib.rel(dest)
            with cat.write() as db:
                db.execute(
                    "INSERT OR REPLACE INTO gather_log(source_id, source_rel, sha256, size, dest, copied_at) "
                    "VALUES (?,?,?,?,?,?)", (source_id, rel, digest, dest.stat().st_size, dest_rel, utcnow()))
            report.copied += 1
            report.by_kind[kind_by_extension(path)] += 1
            if path in companion_set:
                report.companions += 1
    cat.finish_run(run_id, report.as_dict())
    log.info("gather into %s: %s", lib.root, report.summary())
    return report
