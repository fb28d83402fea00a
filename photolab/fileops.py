"""Journaled, crash-safe file moves inside a library, and their undo.

Every move photolab makes (organize, quarantine, restore) goes through here:

1. the move is written to the catalog's ``journal`` as ``planned`` (committed
   with a full sync) before the file is touched;
2. the file gets its new name without ever overwriting anything: a hard link to
   the new name (which fails if the name is taken), then the old name is removed.
   Across filesystems, or where hard links are not supported, the bytes are
   copied to a temporary file next to the target, synced, read back and compared
   by SHA-256, and only then given the target name;
3. the catalog path and the journal state (``done``) change in one transaction.

A process killed at any moment leaves a ``planned`` entry behind. :func:`recover`
(called before any journaled operation starts, and by every photolab command
that changes files) finishes the move where the file already has its new name
and rolls it back otherwise, so every file is present exactly once and the
catalog matches the disk. :func:`undo` reverses a whole batch, itself journaled.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from .catalog import utcnow
from .library import open_library

log = logging.getLogger(__name__)

TMP_SUFFIX = ".photolab-tmp"
CHUNK = 256  # moves journaled per transaction


class FileOpError(RuntimeError):
    """A journaled operation cannot go ahead; the message names the file and why."""


@dataclass
class Move:
    """One file to move, paths relative to the library ('/'-separated)."""

    src: str
    dst: str
    sha256: str | None = None
    detail: dict = field(default_factory=dict)


@dataclass
class BatchReport:
    """What applying (or undoing) a batch did."""

    batch: str
    done: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (path, reason)
    seconds: float = 0.0

    def summary(self) -> str:
        s = f"batch {self.batch}: {self.done} moved"
        if self.skipped:
            s += f", {len(self.skipped)} skipped"
        return s


def new_batch(kind: str) -> str:
    """A batch id that sorts by time: ``20261126T091500-organize-3fa2``."""
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{kind}-{secrets.token_hex(2)}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _tmp_name(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}{TMP_SUFFIX}")


def move_file(src: Path, dst: Path, sha256: str | None = None) -> None:
    """Give ``src`` the name ``dst``, never overwriting; ``FileExistsError`` if ``dst`` is taken."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        _copy_verified(src, dst, sha256)
    _fsync_dir(dst.parent)
    os.unlink(src)
    _fsync_dir(src.parent)


def _copy_verified(src: Path, dst: Path, sha256: str | None) -> None:
    """Copy across filesystems: temp file, fsync, compare checksums, then take the name."""
    tmp = _tmp_name(dst)
    expected = sha256 or sha256_file(src)
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())
    shutil.copystat(src, tmp)
    if sha256_file(tmp) != expected:
        tmp.unlink()
        raise FileOpError(f"{src}: the copy at {dst} does not match the original; nothing moved")
    try:
        os.link(tmp, dst)
        tmp.unlink()
    except FileExistsError:
        tmp.unlink()
        raise
    except OSError:
        if dst.exists():  # no hard links at all here: take the name only if it is still free
            tmp.unlink()
            raise FileExistsError(errno.EEXIST, "exists", str(dst)) from None
        os.rename(tmp, dst)


def free_name(path: Path, taken: set[str] | None = None) -> Path:
    """``path`` or ``name (1).ext``, ``name (2).ext``... whichever is not on disk nor in ``taken``."""
    taken = taken or set()
    stem, suffix = path.stem, path.suffix
    candidate, n = path, 0
    while candidate.exists() or str(candidate) in taken:
        n += 1
        candidate = path.with_name(f"{stem} ({n}){suffix}")
    return candidate


def _remove_empty_dirs(lib, folder: Path) -> None:
    """Remove folders that a move left empty, up to (never including) the library root."""
    stop = {lib.root, lib.state}
    while folder not in stop and lib.root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def execute(library, moves: list[Move], *, batch: str, op: str = "move",
            remove_empty: bool = True, on_progress=None) -> BatchReport:
    """Apply ``moves`` as one journaled batch (see the module text for the guarantees).

    A move whose source is gone, or whose target name is taken by the time it
    runs, is skipped with its reason; nothing is overwritten.
    """
    lib = open_library(library)
    recover(lib)
    cat = lib.catalog
    report = BatchReport(batch=batch)
    start = time.perf_counter()
    for i in range(0, len(moves), CHUNK):
        chunk = moves[i:i + CHUNK]
        ids = []
        now = utcnow()
        cat.conn.execute("PRAGMA synchronous=FULL")  # the plan is on disk before any file moves
        try:
            with cat.write() as db:
                for m in chunk:
                    cur = db.execute(
                        "INSERT INTO journal(batch, op, src, dst, sha256, state, created_at, detail) "
                        "VALUES (?,?,?,?,?,'planned',?,?)",
                        (batch, op, m.src, m.dst, m.sha256, now, json.dumps(m.detail, sort_keys=True)))
                    ids.append(cur.lastrowid)
        finally:
            cat.conn.execute("PRAGMA synchronous=NORMAL")
        results = []
        for jid, m in zip(ids, chunk):
            src, dst = lib.abs(m.src), lib.abs(m.dst)
            if not src.exists():
                results.append((jid, m, "rolled_back", f"{m.src}: no longer there"))
                continue
            try:
                move_file(src, dst, m.sha256)
            except FileExistsError:
                results.append((jid, m, "rolled_back", f"{m.dst}: name taken meanwhile; not overwritten"))
                continue
            except (OSError, FileOpError) as exc:
                results.append((jid, m, "rolled_back", f"{m.src}: {exc}"))
                continue
            results.append((jid, m, "done", None))
            if remove_empty:
                _remove_empty_dirs(lib, src.parent)
        with cat.write() as db:
            for jid, m, state, why in results:
                if state == "done":
                    db.execute("DELETE FROM photos WHERE path = ? AND status = 'missing'", (m.dst,))
                    db.execute("UPDATE photos SET path = ? WHERE path = ?", (m.dst, m.src))
                    report.done += 1
                else:
                    report.skipped.append((m.src, why))
                db.execute("UPDATE journal SET state = ? WHERE id = ?", (state, jid))
        if on_progress:
            on_progress(len(chunk))
    report.seconds = time.perf_counter() - start
    log.info("%s", report.summary())
    return report


def recover(library) -> dict[str, int]:
    """Finish or roll back every move a killed process left half-done; returns counts by outcome.

    For each ``planned`` journal entry: if the file already has its new name,
    the move is finished (the old name, a second link to the same file, is
    removed) and the catalog updated; if it still has only its old name, the
    move is rolled back (a partial temporary copy is removed). Runs under the
    catalog's writer lock, so two processes never recover at once.
    """
    lib = open_library(library)
    cat = lib.catalog
    counts = {"finished": 0, "rolled_back": 0, "conflict": 0}
    if not cat.query("SELECT 1 FROM journal WHERE state = 'planned' LIMIT 1"):
        return counts
    with cat.write() as db:
        rows = db.execute("SELECT id, batch, src, dst, sha256 FROM journal WHERE state = 'planned' "
                          "ORDER BY id").fetchall()
        for r in rows:
            src, dst = lib.abs(r["src"]), lib.abs(r["dst"])
            tmp = _tmp_name(dst)
            s_ok, d_ok = src.exists(), dst.exists()
            if d_ok and s_ok:
                same = os.path.samefile(src, dst) or (
                    r["sha256"] and not db.execute("SELECT 1 FROM photos WHERE path = ?", (r["dst"],)).fetchone()
                    and sha256_file(dst) == r["sha256"])  # a verified cross-filesystem copy
                if not same:
                    # the target name belongs to some other file: this move never happened
                    tmp.unlink(missing_ok=True)
                    db.execute("UPDATE journal SET state = 'rolled_back' WHERE id = ?", (r["id"],))
                    counts["rolled_back"] += 1
                    continue
                os.unlink(src)
                d_ok, s_ok = True, False
            if d_ok and not s_ok:
                db.execute("UPDATE photos SET path = ? WHERE path = ?", (r["dst"], r["src"]))
                db.execute("UPDATE journal SET state = 'done' WHERE id = ?", (r["id"],))
                counts["finished"] += 1
                _remove_empty_dirs(lib, src.parent)
            elif s_ok:
                tmp.unlink(missing_ok=True)
                db.execute("UPDATE journal SET state = 'rolled_back' WHERE id = ?", (r["id"],))
                counts["rolled_back"] += 1
                _remove_empty_dirs(lib, dst.parent)
            else:
                if tmp.exists() and r["sha256"] and sha256_file(tmp) == r["sha256"]:
                    os.rename(tmp, dst)  # cannot happen by the protocol, but never lose a verified copy
                    db.execute("UPDATE photos SET path = ? WHERE path = ?", (r["dst"], r["src"]))
                    db.execute("UPDATE journal SET state = 'done' WHERE id = ?", (r["id"],))
                    counts["finished"] += 1
                    continue
                db.execute("UPDATE journal SET state = 'conflict', detail = ? WHERE id = ?",
                           (json.dumps({"error": "neither the old nor the new name exists"}), r["id"]))
                counts["conflict"] += 1
                log.error("%s -> %s: file missing from both places (batch %s)", r["src"], r["dst"], r["batch"])
    if any(counts.values()):
        log.warning("recovered an interrupted operation: %s", counts)
    return counts


def batches(library, op: str | None = None):
    """Journaled batches as a DataFrame: batch, op, files moved, first and last time, undone."""
    lib = open_library(library)
    where, params = ("WHERE op = ?", (op,)) if op else ("", ())
    return lib.catalog.dataframe(
        "SELECT batch, op, sum(state = 'done') AS done, sum(state = 'undone') AS undone, "
        f"min(created_at) AS started, max(created_at) AS last FROM journal {where} "
        "GROUP BY batch ORDER BY min(id)", params)


def undo(library, batch: str | None = None, *, on_progress=None) -> BatchReport:
    """Reverse every completed move of ``batch`` (default: the newest batch not yet undone).

    The reverse moves are journaled as their own batch (``undo-<batch>``), so an
    interrupted undo is recovered like any other run. A file whose old name has
    been taken since is left where it is and reported.
    """
    lib = open_library(library)
    recover(lib)
    cat = lib.catalog
    if batch is None:
        row = cat.query("SELECT batch FROM journal WHERE state = 'done' AND op != 'undo' "
                        "ORDER BY id DESC LIMIT 1")
        if not row:
            raise FileOpError(f"{lib.root}: nothing to undo")
        batch = row[0]["batch"]
    rows = cat.query("SELECT id, src, dst, sha256 FROM journal WHERE batch = ? AND state = 'done' "
                     "ORDER BY id DESC", (batch,))
    if not rows:
        known = cat.query("SELECT 1 FROM journal WHERE batch = ? LIMIT 1", (batch,))
        raise FileOpError(f"batch {batch}: " + ("already undone" if known else "no such batch"))
    moves = [Move(src=r["dst"], dst=r["src"], sha256=r["sha256"], detail={"undoes": r["id"]}) for r in rows]
    report = execute(lib, moves, batch=f"undo-{batch}", op="undo", on_progress=on_progress)
    with cat.write() as db:
        db.execute(
            "UPDATE journal SET state = 'undone' WHERE id IN (SELECT json_extract(detail, '$.undoes') "
            "FROM journal WHERE batch = ? AND state = 'done')", (f"undo-{batch}",))
    return report


__all__ = ["BatchReport", "FileOpError", "Move", "batches", "execute", "free_name", "move_file", "new_batch",
           "recover", "sha256_file", "undo"]
