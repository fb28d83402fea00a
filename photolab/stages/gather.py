"""Gather: copy photos and videos from phones, cameras and drives into the library.

Photos, standalone videos (``.mp4 .mov .m4v .3gp .avi .mkv .mts .m2ts``) and
their companions are copied; a live photo's ``.mov`` travels with its photo.

Sources are only ever read. Each source gets its own folder in the library
(named after the source folder, made unique), so two cards that both hold
``DCIM/100CANON/IMG_0001.JPG`` never collide. Every copy is written to a
temporary file, flushed to disk, read back and compared by SHA-256 before it
takes its final name; an existing file is never overwritten. Duplicates are
kept (dedupe comes later). Re-running is idempotent: a source file whose
content was already copied from the same place is skipped.

A run killed at any moment leaves nothing behind that the next run does not
settle: before a copy takes a new name (``IMG_0001_1.jpg``), the files already
holding that name and its numbered variants are compared by content, so a copy
that a killed run finished but did not record yet is recorded, not made twice;
and the temporary files of killed runs are removed. Temporary files are only
ever written inside the library, never into a source or import folder.

Odd files never stop a batch: a name that is not valid UTF-8 is copied under a
valid name (see :mod:`photolab.core.names`) and shown escaped; a symbolic link is not
followed (a link could lead anywhere, e.g. ``/etc/passwd``) but set aside by
name with the reason.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from photolab.core.errors import PhotolabError
from photolab.store.catalog import utcnow
from photolab.core.fileops import clean_component, clean_temp_files, sha256_file, verified_copy
from photolab.core.library import Library, open_library
from photolab.features.media import companions, kind_by_extension
from photolab.core.names import fit, library_name, shown
from photolab.store import photos as photo_store

log = logging.getLogger(__name__)



class GatherError(PhotolabError, RuntimeError):
    """A source cannot be gathered (missing, not a folder, inside the library)."""


@dataclass
class GatherReport:
    """What a gather run did."""

    copied: int = 0
    skipped: int = 0          # already gathered from this source with the same content
    companions: int = 0       # sidecars, AAE edits and live-photo videos copied with their photo
    videos: int = 0           # standalone videos (phone and camera clips) copied
    ignored: int = 0          # files that are neither photos, videos nor companions
    failed: list[tuple[str, str]] = field(default_factory=list)
    set_aside: list[tuple[str, str]] = field(default_factory=list)   # (path, reason): links, not followed
    renamed: list[tuple[str, str]] = field(default_factory=list)     # (source path, library path): odd names
    sources: dict[str, str] = field(default_factory=dict)   # source path -> folder in the library
    by_kind: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        s = (f"{self.copied} copied ({self.videos} videos, {self.companions} companions), "
             f"{self.skipped} already gathered, "
             f"{self.ignored} ignored, {len(self.failed)} failed")
        if self.set_aside:
            s += f", {len(self.set_aside)} set aside"
        return s

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
    key = shown(src)
    removable, read_only = source_facts(src)
    now = utcnow()
    with cat.write() as db:
        row = photo_store.source_at(db, key)
        if row:
            photo_store.touch_source(db, row["id"], now, removable, read_only)
            return row["id"], row["label"]
        base = clean_component(library_name(src.name).strip(" .") or "source")
        label, n = base, 1
        while photo_store.label_taken(db, label) or (lib.root / label).exists():
            n += 1
            label = f"{base}-{n}"
        return photo_store.add_source(db, label, key, removable, read_only, now), label


def _candidates(dest: Path):
    """``dest``, then ``dest`` with ``_1``, ``_2``, … before its extension (each within 255 bytes)."""
    yield dest
    n = 1
    while True:
        yield dest.with_name(fit(dest.name, f"_{n}"))
        n += 1


def _place_for(path: Path, dest: Path, claimed: set[Path]) -> tuple[Path, str | None]:
    """Where the copy of ``path`` goes, and its SHA-256 if it is already there.

    The names ``dest``, ``dest_1``, … are tried in turn; one that holds a file of the same size
    and content as ``path`` (and is not the recorded copy of another source file) is the copy
    a killed run made before it could record it. Otherwise the first free name is returned."""
    size = None
    digest = None
    for candidate in _candidates(dest):
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            return candidate, None
        if candidate in claimed:
            continue
        if size is None:
            size = os.stat(path).st_size
        if st.st_size == size and os.path.isfile(candidate) and not os.path.islink(candidate):
            if digest is None:
                digest = sha256_file(path)
            if sha256_file(candidate) == digest:
                return candidate, digest
    raise AssertionError("unreachable")


def _plan_source(src: Path) -> tuple[list[Path], list[Path], int, list[tuple[Path, str]]]:
    """Photos, standalone videos and their companions under ``src`` (sorted), how many files are
    ignored, and the symbolic links set aside (not followed) with their reason.

    Photos claim their companions first, so a live photo's ``.mov`` travels with its photo; a
    video no photo claims is gathered itself, with its own sidecars."""
    primaries: list[Path] = []
    companion_files: list[Path] = []
    links: list[tuple[Path, str]] = []
    ignored = 0
    for folder, dirs, files in os.walk(src):
        folder_path = Path(folder)
        for d in sorted(dirs):
            if not d.startswith(".") and (folder_path / d).is_symlink():
                links.append((folder_path / d, _link_reason(src, folder_path / d)))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        names = set(files)
        taken: set[str] = set()
        for kinds in (("photo", "raw"), ("video",)):
            for name in sorted(files):
                if name.startswith(".") or name in taken or kind_by_extension(name) not in kinds:
                    continue
                taken.add(name)
                if (folder_path / name).is_symlink():
                    links.append((folder_path / name, _link_reason(src, folder_path / name)))
                    continue
                primaries.append(folder_path / name)
                for c in companions(Path(name), names):
                    if c not in taken:
                        taken.add(c)
                        if (folder_path / c).is_symlink():
                            links.append((folder_path / c, _link_reason(src, folder_path / c)))
                        else:
                            companion_files.append(folder_path / c)
        ignored += sum(1 for n in names if not n.startswith(".") and n not in taken)
    return sorted(primaries), companion_files, ignored, links


def _link_reason(src: Path, link: Path) -> str:
    target = Path(os.path.realpath(link))
    if target == src or src in target.parents:
        return f"a symbolic link to {shown(target.relative_to(src))} in the same source; not followed (that file is gathered itself)"
    return f"a symbolic link to {shown(target)}, outside the source; not followed (copy the file itself if you want it)"


def _library_rel(rel: str) -> str:
    """The path a source file gets under its library folder: every part a valid UTF-8 name."""
    return "/".join(library_name(part) for part in rel.split("/"))


def gather(sources, into, *, progress: bool = True, only=None) -> GatherReport:
    """Copy the photos of one or more source folders into a library.

    Args:
        sources: folders to read (a phone dump, a camera card's DCIM, a drive).
        into: the library (a :class:`~photolab.core.library.Library` or its folder).
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
        report.sources[shown(src)] = label
        clean_temp_files(lib.root / label)   # what killed runs left
        photo_files, companion_files, ignored, links = _plan_source(src)
        if only is not None:
            wanted = {Path(p).resolve() for p in only}
            photo_files = [p for p in photo_files if p.resolve() in wanted]
            companion_files = [p for p in companion_files if p.resolve() in wanted]
            named = {Path(os.path.realpath(Path(p).parent)) / Path(p).name for p in only}   # links unresolved
            links = [(p, why) for p, why in links if p in named]
        for link, why in links:
            report.set_aside.append((shown(link), why))
            log.warning("%s: %s", shown(link), why)
        report.ignored += ignored
        logged = photo_store.copies_from(cat.conn, source_id)
        done = {(r["source_rel"], r["sha256"]): r["dest"] for r in logged}
        done_rels = {rel for rel, _ in done}
        dest_of_rel: dict[str, set[Path]] = {}
        for r in logged:
            dest_of_rel.setdefault(r["source_rel"], set()).add(lib.abs(r["dest"]))
        all_dests = {p for dests in dest_of_rel.values() for p in dests}
        companion_set = set(companion_files)
        for path in tqdm(photo_files + companion_files, desc=f"gather {label}", unit="file",
                         disable=not progress):
            raw_rel = path.relative_to(src).as_posix()
            rel = shown(raw_rel)    # the catalog's text for the source file (escaped if not UTF-8)
            try:
                if rel in done_rels:
                    digest = sha256_file(path)
                    if (rel, digest) in done:  # even if the copy was since moved or quarantined
                        report.skipped += 1
                        continue
                # another source file's recorded copy is never taken for this one's
                claimed = all_dests - dest_of_rel.get(rel, set())
                dest, digest = _place_for(path, lib.root / label / _library_rel(raw_rel), claimed)
                if digest is None:
                    digest = verified_copy(path, dest)
                else:
                    log.info("%s: already copied to %s by an interrupted run; recorded", rel, lib.rel(dest))
            except OSError as exc:
                report.failed.append((shown(path), shown(str(exc.strerror or exc))))
                log.warning("%s: not gathered (%s)", shown(path), shown(str(exc)))
                continue
            dest_rel = lib.rel(dest)
            if raw_rel != rel:
                report.renamed.append((shown(path), dest_rel))
                log.warning("%s: name is not valid UTF-8; copied as %s", shown(path), dest_rel)
            with cat.write() as db:
                photo_store.log_copy(db, source_id, rel, digest, dest.stat().st_size, dest_rel, utcnow())
            dest_of_rel.setdefault(rel, set()).add(dest)
            all_dests.add(dest)
            report.copied += 1
            report.by_kind[kind_by_extension(path)] += 1
            if path in companion_set:
                report.companions += 1
            elif kind_by_extension(path) == "video":
                report.videos += 1
    cat.finish_run(run_id, report.as_dict())
    log.info("gather into %s: %s", lib.root, report.summary())
    return report
