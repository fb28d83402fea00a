"""The journaled writing pass.

:func:`plan` reads every file, makes and verifies its new bytes and writes nothing (neither a file nor the
catalog); :func:`apply` writes a plan: the previous bytes kept under ``.photolab/versions/``, each replace
journaled and atomic (:func:`photolab.core.fileops.rewrite`), what was written recorded so the next run skips
it. :func:`write_metadata` is the two in one (with ``dry_run`` only the plan).
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from photolab.store.catalog import utcnow
from photolab.core.fileops import Rewrite, new_batch, prune_versions, recover, rewrite, sha256_file
from photolab.core.library import open_library
from photolab.plans import Plan, library_and_plan
from photolab.store import metadata as q
from photolab.store.watch import metadata_written
from photolab.stages.metadata.decide import Decision, WriteOptions, decisions_for_writing
from photolab.stages.metadata.fields import IN_FILE_FORMATS, MetadataError, existing_sidecar, sidecar_candidates
from photolab.stages.metadata.rendering import render
from photolab.stages.metadata.splice import EMPTY_PACKET

KEEP_BYTES = 256 << 20   # new bytes a plan holds at most; past that, apply makes them again (and checks them)
FLUSH = 64               # files per journaled rewrite batch
COLUMNS = ["photo_id", "path", "target", "status", "reason", "changes"]
UP_TO_DATE = "already holds these values"


@dataclass
class MetadataReport:
    """What a metadata run did; ``rows`` has one row per photo and target."""

    batch: str | None = None
    dry_run: bool = False
    rows: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r["status"]] = out.get(r["status"], 0) + 1
        return out

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows, columns=["photo_id", "path", "target", "status", "reason", "changes"])

    def summary(self) -> str:
        c = self.counts()
        verb = "would write" if self.dry_run else "written"
        parts = [f"{c.get('written', 0)} {verb}", f"{c.get('unchanged', 0)} unchanged"]
        if c.get("skipped"):
            parts.append(f"{c['skipped']} skipped")
        rate = len(self.rows) / self.seconds if self.seconds else 0.0
        return ", ".join(parts) + f" ({len(self.rows)} files, {rate:.0f}/s)"


def _media_facts(folder: Path, cache: dict) -> tuple[bool, bool]:
    try:
        dev = folder.stat().st_dev
    except OSError:
        return False, True
    if dev not in cache:
        from photolab.stages.gather import source_facts

        cache[dev] = source_facts(folder)
    return cache[dev]


def _plan_targets(lib, row, opts: WriteOptions, media: dict) -> list[tuple[str, Path, str | None]]:
    """[(target, file, reason)] for one photo: where its metadata goes, and why a sidecar."""
    photo = lib.abs(row["path"])
    removable, read_only = _media_facts(photo.parent, media)
    locked = read_only or _locked(photo)
    in_place_ok = (row["kind"] == "photo" and row["format"] in IN_FILE_FORMATS and not removable and not locked
                   and not read_only_dir(photo.parent))
    why = None
    if not in_place_ok:
        why = ("RAW: sidecar only" if row["kind"] == "raw" else
               "video: sidecar only (the container is never rewritten)" if row["kind"] == "video" else
               "removable media: sidecar only" if removable else
               "read-only: sidecar only" if locked else
               f"{row['format']}: Exiv2 cannot write it in place; sidecar")
    out = []
    if opts.where in ("in-file", "both") and in_place_ok:
        out.append(("file", photo, None))
    side = existing_sidecar(photo, media.setdefault("listings", {}))
    if opts.where in ("sidecar", "both") or not in_place_ok or side is not None:
        if side is None:
            side = sidecar_candidates(photo)[0 if opts.sidecar_naming == "ext" else 1]
        out.append(("sidecar", side, why))
    return out


def _work(lib, pid, row, target, path: Path, decision: Decision, opts: WriteOptions,
          fallback: bool = True) -> list[tuple[dict, Rewrite | None]]:
    """Read one file, make and verify its new bytes: [(plan row, Rewrite or None)]. A photo
    refused in place (``where="in-file"``) gets a sidecar instead, reported on its own row."""
    rel = lib.rel(path)
    base = {"photo_id": pid, "path": rel, "target": target, "reason": None, "changes": None}
    try:
        if target == "sidecar" and not path.exists():
            if read_only_dir(path.parent):
                return [({**base, "status": "skipped", "reason": "folder is read-only; no sidecar can be made"}, None)]
            data, old_sha = EMPTY_PACKET, None
        else:
            data = path.read_bytes()
            old_sha = hashlib.sha256(data).hexdigest()
        new, changes = render(data, decision, fmt=row["format"], sidecar=target == "sidecar", options=opts)
    except (MetadataError, OSError) as exc:
        why = str(exc) if isinstance(exc, MetadataError) else f"cannot read: {exc.strerror or exc}"
        out = [({**base, "status": "skipped", "reason": why}, None)]
        if target == "file" and opts.where == "in-file" and fallback:
            side = existing_sidecar(path) or sidecar_candidates(path)[0 if opts.sidecar_naming == "ext" else 1]
            out += _work(lib, pid, row, "sidecar", side, decision, opts)
        return out
    if new is None:
        return [({**base, "status": "unchanged", "_sha": old_sha}, None)]
    summary = ", ".join(sorted(k.split(".", 1)[1] for k in changes))
    item = Rewrite(path=rel, data=new, old_sha256=old_sha, photo_id=pid if target == "file" else None,
                   detail={"target": target, "photo": pid})
    return [({**base, "status": "write", "changes": summary}, item)]


def _locked(path: Path) -> bool:
    """A file its owner made read-only (no write bit), or one the process may not write.
    (The mode bits count even for root, who could write anyway: they say what the user wants.)"""
    try:
        mode = path.stat().st_mode
    except OSError:
        return True
    return not (mode & 0o222) or not os.access(path, os.W_OK)


def read_only_dir(folder: Path) -> bool:
    """A folder no new file (sidecar) can be made in."""
    try:
        mode = folder.stat().st_mode
    except OSError:
        return True
    return not (mode & 0o222) or not os.access(folder, os.W_OK)


@dataclass
class _Write:
    """One file of a plan to rewrite: the new bytes (``item.data``; None when the plan let them go to stay
    under :data:`KEEP_BYTES`, made again on apply) and what they were made from."""

    index: int               # its row in the plan
    item: Rewrite
    new_sha256: str
    digest: str
    fmt: str | None
    decision: Decision


@dataclass(eq=False, kw_only=True)
class MetadataPlan(Plan):
    """What writing metadata would do, every file's new bytes made and verified; making it wrote nothing.

    Attributes:
        rows: one row per photo and target (``photo_id``, ``path``, ``target`` file/sidecar, ``status``
            ``write``, ``unchanged`` or ``skipped``, ``reason``, ``changes``).
        kept: ``(path, why)`` of every file left as it is (already up to date, or skipped and why).
        unchecked: files taken as up to date from the catalog's record of what was written (same values,
            same bytes) without being read again.
        why: ``{sidecar path: why}`` for the photos whose metadata goes to a sidecar rather than the file.
        options: the :class:`WriteOptions` it was made with (:func:`apply` writes with them).
        seconds: how long making it took.
    """

    stage: str = "metadata"
    rows: object = None                           # pandas.DataFrame
    kept: list[tuple[str, str]] = field(default_factory=list)
    unchecked: int = 0
    why: dict[str, str] = field(default_factory=dict)
    options: WriteOptions = field(default_factory=WriteOptions)
    seconds: float = 0.0
    _rows: list[dict] = field(default_factory=list, repr=False)
    _writes: list[_Write] = field(default_factory=list, repr=False)
    _records: list[tuple] = field(default_factory=list, repr=False)   # files found up to date, to record

    def counts(self) -> dict[str, int]:
        """Files per status."""
        out: dict[str, int] = {}
        for r in self._rows:
            out[r["status"]] = out.get(r["status"], 0) + 1
        return out

    def report(self) -> "MetadataReport":
        """The plan as a dry run's :class:`MetadataReport` (``written`` rows: would be written)."""
        return MetadataReport(batch=None, dry_run=True, rows=_report_rows(self._rows), seconds=self.seconds)


def _report_rows(rows: list[dict]) -> list[dict]:
    return [{**r, "status": "written"} if r["status"] == "write" else dict(r) for r in rows]


def _finish(p: MetadataPlan) -> MetadataPlan:
    import pandas as pd

    p.rows = pd.DataFrame(p._rows, columns=COLUMNS)
    p.kept = [(r["path"], r["reason"] if r["status"] == "skipped" else UP_TO_DATE) for r in p._rows
              if r["status"] != "write"]
    return p


def _parts(lib, opts: WriteOptions, photo_ids, *, progress: bool, workers: int | None, every: int | None):
    """The plan in parts of at most ``every`` files to write (None: one part), each yielded as soon as it is
    made (rows in order: the files the catalog's record shows up to date first, then the rest), its
    ``rows`` frame and ``kept`` list not made yet (:func:`_finish`)."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    decisions = decisions_for_writing(lib, opts, photo_ids=photo_ids)
    conn = lib.catalog.conn
    subset = None if photo_ids is None else list(decisions)   # a watched import's photos: their rows only
    rows = q.photo_rows(conn, subset)
    done_before = {(r["photo_id"], r["target"]): (r["sha256"], r["digest"], r["path"])
                   for r in metadata_written(conn, subset)}
    part = MetadataPlan(rows=None, options=opts, library=lib)
    media: dict = {}
    jobs = []
    for pid, d in decisions.items():
        row = rows[pid]
        if not (d.tags or d.places or d.people) and d.rating is None and d.auto_rating is None:
            jobs_for = [(t, p, w) for t, p, w in _plan_targets(lib, row, opts, media) if p.exists()]
        else:
            jobs_for = _plan_targets(lib, row, opts, media)
        digest = d.digest(opts)
        for target, path, why in jobs_for:
            before = done_before.get((pid, target))
            rel = lib.rel(path)
            if why:
                part.why[rel] = why
            if before and before[1] == digest and before[2] == rel and (
                    (target == "file" and row["sha256"] == before[0]) or
                    (target == "sidecar" and path.is_file() and sha256_file(path) == before[0])):
                part._rows.append({"photo_id": pid, "path": rel, "target": target, "status": "unchanged",
                                   "reason": None, "changes": None})
                part.unchecked += 1
                continue
            jobs.append((pid, row, target, path, d, digest, not any(t == "sidecar" for t, _, _ in jobs_for)))
    threads = workers or max(1, os.cpu_count() or 1)
    bar = tqdm(total=len(jobs), desc="metadata", unit="file", disable=not progress)
    with cf.ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(_work, lib, pid, row, target, path, d, opts, fallback)
                   for pid, row, target, path, d, _, fallback in jobs]
        for (pid, row, target, path, d, digest, _), fut in zip(jobs, futures):
            for r, item in fut.result():
                sha = r.pop("_sha", None)
                part._rows.append(r)
                if item is not None:
                    part._writes.append(_Write(index=len(part._rows) - 1, item=item, new_sha256=item.new_sha256,
                                               digest=digest, fmt=row["format"], decision=d))
                elif r["status"] == "unchanged" and sha:
                    part._records.append((pid, r["target"], r["path"], sha, digest))
            bar.update(1)
            if every is not None and len(part._writes) >= every:
                part.seconds = time.perf_counter() - start
                yield part
                start = time.perf_counter()
                part = MetadataPlan(rows=None, options=opts, library=lib)
    bar.close()
    part.seconds = time.perf_counter() - start
    yield part


def plan(library, *, options: WriteOptions | None = None, photo_ids=None, progress: bool = True,
         workers: int | None = None) -> MetadataPlan:
    """What :func:`write_metadata` would write, each file's new bytes made and verified; writes nothing
    (no file, no catalog row).

    Args:
        options: where and what (:class:`WriteOptions`).
        photo_ids: only these photos (default: all usable photos).
        workers: threads making and verifying new bytes (default: cores).

    Returns:
        A :class:`MetadataPlan`; :func:`apply` writes it.
    """
    lib = open_library(library)
    p = _finish(next(_parts(lib, options or WriteOptions(), photo_ids, progress=progress, workers=workers,
                            every=None)))
    held = 0
    for w in p._writes:   # keep the first new bytes in memory; the rest are made again on apply
        held += len(w.item.data)
        if held > KEEP_BYTES:
            w.item.data = None
    return p


def _remake(lib, w: _Write, opts: WriteOptions) -> tuple[Rewrite | None, str | None]:
    """A write whose bytes the plan let go, made again from the file as it is now: (Rewrite, None), or
    (None, why) when the file or its values changed since the plan."""
    path = lib.abs(w.item.path)
    target = w.item.detail.get("target")
    try:
        if w.item.old_sha256 is None:
            data = EMPTY_PACKET
        else:
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != w.item.old_sha256:
                return None, "changed since the plan was made; plan again"
        new, _ = render(data, w.decision, fmt=w.fmt, sidecar=target == "sidecar", options=opts)
    except MetadataError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    if new is None or hashlib.sha256(new).hexdigest() != w.new_sha256:
        return None, "changed since the plan was made; plan again"
    return Rewrite(path=w.item.path, data=new, old_sha256=w.item.old_sha256, photo_id=w.item.photo_id,
                   detail=w.item.detail), None


def _write_part(lib, p: MetadataPlan, report: MetadataReport, records: list) -> None:
    """Write one plan (or part of one) into ``report``'s batch, FLUSH files per journaled rewrite."""
    base = len(report.rows)
    report.rows += _report_rows(p._rows)
    records += p._records
    for k in range(0, len(p._writes), FLUSH):
        ready = []
        for w in p._writes[k:k + FLUSH]:
            row = report.rows[base + w.index]
            item, why = (w.item, None) if w.item.data is not None else _remake(lib, w, p.options)
            if item is None:
                row["status"], row["reason"], row["changes"] = "skipped", why, None
            else:
                ready.append((row, item, w.digest))
        if not ready:
            continue
        res = rewrite(lib, [item for _, item, _ in ready], batch=report.batch)
        skipped = dict(res.skipped)
        done = []
        for row, item, digest in ready:
            if item.path in skipped:
                row["status"], row["reason"] = "skipped", skipped[item.path]
                continue
            done.append((row["photo_id"], row["target"], item.path, item.new_sha256, digest, utcnow()))
        with lib.catalog.write() as db:
            q.record_written(db, done)


def _close(lib, report: MetadataReport, records: list, start: float) -> MetadataReport:
    if records:
        with lib.catalog.write() as db:
            q.record_written(db, [(*u, utcnow()) for u in records])
    prune_versions(lib)
    report.seconds = time.perf_counter() - start
    run = lib.catalog.start_run("write-metadata")
    lib.catalog.finish_run(run, {"counts": report.counts(), "dry_run": False, "batch": report.batch,
                                 "seconds": round(report.seconds, 2)})
    return report


def _before_writing(lib, opts: WriteOptions) -> None:
    if opts.where != "sidecar":
        from photolab.core.backup import guard

        guard(lib, "write-metadata")
    recover(lib)   # settle a run that was killed before anything else reads the files


def apply(library, plan: MetadataPlan | None = None, *, progress: bool = True) -> MetadataReport:
    """Write a :class:`MetadataPlan`: each file replaced atomically while it still holds the bytes the
    plan read (a file changed since is skipped, its row says so), the previous bytes kept as a version,
    one journaled batch; what was written is recorded so the next run skips it.

    Returns:
        A :class:`MetadataReport` (``report.batch`` undoes it).
    """
    library, plan = library_and_plan(library, plan)
    lib = open_library(library)
    _before_writing(lib, plan.options)
    start = time.perf_counter()
    report = MetadataReport(batch=new_batch("metadata"), dry_run=False)
    records: list = []
    _write_part(lib, plan, report, records)
    return _close(lib, report, records, start)


def write_metadata(library, *, options: WriteOptions | None = None, dry_run: bool = False,
                   photo_ids=None, progress: bool = True, workers: int | None = None) -> MetadataReport:
    """Write each usable photo's accepted tags and rating into the file and/or its sidecar: :func:`plan`,
    then :func:`apply` (in parts of :data:`FLUSH` files as they are made, so memory stays flat).

    Args:
        options: where and what (:class:`WriteOptions`).
        dry_run: only the plan: make and verify everything, write nothing (the report says what would change).
        photo_ids: only these photos (default: all usable photos).
        workers: threads making and verifying new bytes (default: cores).

    Returns:
        A :class:`MetadataReport`; ``report.frame()`` has one row per photo and target with
        ``status`` ``written``, ``unchanged`` or ``skipped`` and the reason.
    """
    opts = options or WriteOptions()
    lib = open_library(library)
    if dry_run:
        return plan(lib, options=opts, photo_ids=photo_ids, progress=progress, workers=workers).report()
    _before_writing(lib, opts)
    start = time.perf_counter()
    report = MetadataReport(batch=new_batch("metadata"), dry_run=False)
    records: list = []
    for part in _parts(lib, opts, photo_ids, progress=progress, workers=workers, every=FLUSH):
        _write_part(lib, part, report, records)
    return _close(lib, report, records, start)
