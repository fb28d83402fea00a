"""Journaled, crash-safe file moves inside a library, and their undo.

Every move photolab makes (organize, quarantine, restore) goes through here:

1. the move is written to the catalog's ``journal`` as ``planned`` (committed
   with a full sync) before the file is touched;
2. the file gets its new name without ever overwriting anything: a hard link to
   the new name (which fails if the name is taken), then the old name is removed.
   Across filesystems, or where hard links are not supported, the bytes are
   copied with :func:`verified_copy` (the same copy gather makes): a temporary
   file next to the target, synced, read back and compared by SHA-256, and only
   then given the target name;
3. the catalog path (and, where the move says so, the file's status) and the
   journal state (``done``) change in one transaction; the previous status is
   kept in the journal, so :func:`undo` puts it back.

A process killed at any moment leaves a ``planned`` entry behind. :func:`recover`
(called before any journaled operation starts, and by every photolab command
that changes files) finishes the move where the file already has its new name
and rolls it back otherwise, so every file is present exactly once and the
catalog matches the disk. :func:`undo` reverses a whole batch, itself journaled.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import secrets
import stat
import time
import unicodedata
from dataclasses import dataclass, field
from glob import escape as _glob_escape
from pathlib import Path

from photolab.core.errors import PhotolabError
from photolab.store.catalog import STATE_DIR, utcnow
from photolab.core.library import open_library
from photolab.store import journal, photos

log = logging.getLogger(__name__)

TMP_PREFIX = ".photolab-tmp-"   # temporary copies: .photolab-tmp-<pid>-<name>, skipped by index
CHUNK = 256  # moves journaled per transaction
_BLOCK = 1 << 20
WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
ILLEGAL = set('<>:"/\\|?*')
MAX_COMPONENT = 80       # characters per file or folder name made from user text


class FileOpError(PhotolabError, RuntimeError):
    """A journaled operation cannot go ahead; the message names the file and why."""


@dataclass
class Move:
    """One file to move, paths relative to the library ('/'-separated)."""

    src: str
    dst: str
    sha256: str | None = None
    detail: dict = field(default_factory=dict)
    status: str | None = None        # the file's catalog status once moved (e.g. quarantined); None: unchanged
    note: str | None = None          # the catalog's error/reason text that goes with that status


@dataclass
class BatchReport:
    """What applying (or undoing) a batch did."""

    batch: str
    done: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (path, reason)
    seconds: float = 0.0
    verb: str = "moved"

    def summary(self) -> str:
        s = f"batch {self.batch}: {self.done} {self.verb}"
        if self.skipped:
            s += f", {len(self.skipped)} skipped"
        return s


def new_batch(kind: str) -> str:
    """A batch id that sorts by time: ``20261126T091500-organize-3fa2``."""
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{kind}-{secrets.token_hex(2)}"


def clean_component(text: str) -> str:
    """One folder name that every common filesystem accepts and that cannot leave its parent."""
    text = unicodedata.normalize("NFC", str(text))
    out = "".join("_" if (c in ILLEGAL or ord(c) < 32 or ord(c) == 127) else c for c in text)
    out = " ".join(out.split()).rstrip(". ")
    if len(out) > MAX_COMPONENT:
        out = out[:MAX_COMPONENT].rstrip(". ")
    while len(out.encode("utf-8")) > 240:
        out = out[:-1]
    if out in ("", ".", ".."):
        out = "_"
    if out.split(".")[0].strip().upper() in WINDOWS_RESERVED:
        out = "_" + out
    if out.lower() == STATE_DIR:
        out = "_" + out
    return out


def temp_name(name: str) -> str:
    """The temporary name for a file about to be called ``name``: ``.photolab-tmp-<pid>-<name>``, or,
    where that would pass the 255-byte limit of one folder entry, a short hash of ``name`` in its place."""
    tmp = f"{TMP_PREFIX}{os.getpid()}-{name}"
    if len(os.fsencode(tmp)) <= 255:
        return tmp
    return f"{TMP_PREFIX}{os.getpid()}-{_name_hash(name)}"


def _name_hash(name: str) -> str:
    return "h" + hashlib.sha256(os.fsencode(name)).hexdigest()[:20]




def clean_temp_files(folder: Path, *, recursive: bool = True) -> list[Path]:
    """Remove the temporary copies (``.photolab-tmp-<pid>-*``) that killed photolab processes left in
    ``folder`` (and below it); a live process's are left alone. Returns the files removed."""
    removed: list[Path] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    walker = os.walk(folder) if recursive else [(str(folder), [], os.listdir(folder))]
    for here, _dirs, files in walker:
        for name in files:
            if not name.startswith(TMP_PREFIX):
                continue
            pid = temp_owner(name)
            if pid is None or pid == os.getpid() or pid_alive(pid):
                continue
            p = Path(here) / name
            try:
                p.unlink()
            except FileNotFoundError:
                continue
            removed.append(p)
    if removed:
        log.info("removed %d temporary files left by interrupted runs under %s", len(removed), folder)
    return removed


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's content, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries to disk (where the platform allows it)."""
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


LOCKS_DIR = "locks"     # .photolab/locks/<batch>.lock: held by the process applying that batch


def _batch_lock_path(lib, batch: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in batch)
    return lib.state / LOCKS_DIR / f"{safe}.lock"


@contextlib.contextmanager
def batch_owner(lib, batch: str):
    """Hold ``batch``'s owner lock while its journal entries are written and settled.

    The lock is an OS file lock, so it is released the moment its process dies
    (SIGKILL included): :func:`recover` takes over only batches whose lock it can
    take, and leaves the batches of running processes alone.
    """
    import filelock

    path = _batch_lock_path(lib, batch)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(path), timeout=lib.catalog.lock_timeout)
    try:
        lock.acquire()
    except filelock.Timeout as exc:
        raise FileOpError(f"{path}: batch {batch} is held by another photolab process; wait for it") from exc
    try:
        yield
    finally:
        lock.release()
        try:
            path.unlink()
        except OSError:
            pass


def _take_dead_batch(lib, batch: str):
    """The owner lock of ``batch`` if its owner is gone (the caller releases it), else ``None``."""
    import filelock

    path = _batch_lock_path(lib, batch)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(path), timeout=0)
        lock.acquire(timeout=0)
    except filelock.Timeout:
        return None
    except OSError:      # a read-only library: nothing can be recovered there anyway
        return None
    return lock


def _release_dead_batch(lock) -> None:
    lock.release()
    try:
        os.unlink(lock.lock_file)
    except OSError:
        pass


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError):
        return False
    return True


def temp_owner(name: str) -> int | None:
    """The process id in a temporary file name ``.photolab-tmp-<pid>-<name>`` (``None``: not one)."""
    if not name.startswith(TMP_PREFIX):
        return None
    pid, _, _ = name[len(TMP_PREFIX):].partition("-")
    return int(pid) if pid.isdigit() else None


def verified_copy(src: Path, dest: Path) -> str:
    """Copy ``src`` to a new file ``dest`` (never overwriting), verified by SHA-256.

    The bytes go to a temporary file beside ``dest``, are flushed to disk and
    read back; only a copy whose hash matches the source's takes the final name
    (a hard link, which fails if the name is taken; where the filesystem has no
    hard links, a rename once the name is checked free). Times and permissions
    are kept.

    Returns:
        The SHA-256 of the content.

    Raises:
        FileExistsError: ``dest`` exists.
        OSError: the source cannot be read or the copy does not verify.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(temp_name(dest.name))
    h = hashlib.sha256()
    try:
        with open(src, "rb") as fin, open(tmp, "xb") as fout:
            while block := fin.read(_BLOCK):
                h.update(block)
                fout.write(block)
            fout.flush()
            os.fsync(fout.fileno())
        expected = h.hexdigest()
        if sha256_file(tmp) != expected:
            raise OSError(f"{src}: copy did not verify (checksum mismatch); the source or disk may be failing")
        st = os.stat(src)
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.chmod(tmp, stat.S_IMODE(st.st_mode) | stat.S_IWUSR | stat.S_IRUSR)
        try:
            os.link(tmp, dest)  # fails if dest exists: the atomic, never-overwriting rename
        except FileExistsError:
            raise
        except OSError:
            if dest.exists():
                raise FileExistsError(errno.EEXIST, "exists", str(dest)) from None
            os.rename(tmp, dest)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    fsync_dir(dest.parent)
    return expected


def glob_escape(pattern: str) -> str:
    """``pattern`` with the glob characters of the file name in it escaped (the ``*`` photolab puts
    there stays a wildcard)."""
    return "*".join(_glob_escape(part) for part in pattern.split("*"))


def _partial_copies(dst: Path) -> list[Path]:
    """Temporary copies towards ``dst`` that a killed process left behind (never those of a running one)."""
    if not dst.parent.is_dir():
        return []
    out = []
    for pattern in (f"{TMP_PREFIX}*-{dst.name}", f"{TMP_PREFIX}*-{_name_hash(dst.name)}"):
        for p in dst.parent.glob(glob_escape(pattern)):
            pid = temp_owner(p.name)
            if pid is not None and pid != os.getpid() and not pid_alive(pid):
                out.append(p)
    return out


def move_file(src: Path, dst: Path) -> None:
    """Give ``src`` the name ``dst``, never overwriting; ``FileExistsError`` if ``dst`` is taken."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        verified_copy(src, dst)
    fsync_dir(dst.parent)
    os.unlink(src)
    fsync_dir(src.parent)


def _remove_empty_dirs(lib, folder: Path) -> None:
    """Remove folders that a move left empty, up to (never including) the library root."""
    stop = {lib.root, lib.state}
    while folder not in stop and lib.root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _journal_planned(cat, batch: str, entries: list[tuple], *, before=None) -> list[int]:
    """Write ``(op, src, dst, sha256, detail)`` entries as ``planned`` in one transaction synced to
    disk (the plan is there before any file changes); ``before(db)`` adds rows to the same
    transaction. Returns the journal ids."""
    now = utcnow()
    ids = []
    journal.set_synchronous(cat.conn, "FULL")
    try:
        with cat.write() as db:
            if before is not None:
                before(db, now)
            for op, src, dst, sha, detail in entries:
                ids.append(journal.add_planned(db, batch, op, src, dst, sha, now, json.dumps(detail, sort_keys=True)))
    finally:
        journal.set_synchronous(cat.conn, "NORMAL")
    return ids


def _settle(cat, results: list[tuple], report: BatchReport, record) -> None:
    """The catalog side of a chunk in one transaction: ``record(db, item)`` for each ``done``
    result, the reason for the rest, and each journal entry's final state."""
    with cat.write() as db:
        for jid, item, state, path, why in results:
            if state == "done":
                record(db, item)
                report.done += 1
            else:
                report.skipped.append((path, why))
            journal.set_state(db, jid, state)


def _mark_undone(lib, batch: str) -> None:
    """Entries of ``batch`` that its undo batch reversed are ``undone``."""
    with lib.catalog.write() as db:
        journal.mark_undone(db, f"undo-{batch}")


def execute(library, moves: list[Move], *, batch: str, op: str = "move",
            remove_empty: bool = True, on_progress=None) -> BatchReport:
    """Apply ``moves`` as one journaled batch (see the module text for the guarantees).

    A move whose source is gone, or whose target name is taken by the time it
    runs, is skipped with its reason; nothing is overwritten.
    """
    lib = open_library(library)
    recover(lib)
    cat = lib.catalog
    if moves:
        cat.backup(f"before-{op}", files=len(moves))
    report = BatchReport(batch=batch)
    start = time.perf_counter()
    with batch_owner(lib, batch):
        for i in range(0, len(moves), CHUNK):
            chunk = moves[i:i + CHUNK]
            for m in chunk:
                if m.status is not None:  # what undo puts back
                    row = photos.status_of(cat.conn, m.src)
                    m.detail = {**m.detail, "status": m.status, "note": m.note,
                                "prior_status": row["status"] if row else None, "prior_note": row["error"] if row else None}
            ids = _journal_planned(cat, batch, [(op, m.src, m.dst, m.sha256, m.detail) for m in chunk])
            results = []
            for jid, m in zip(ids, chunk):
                src, dst = lib.abs(m.src), lib.abs(m.dst)
                if not src.exists():
                    results.append((jid, m, "rolled_back", m.src, f"{m.src}: no longer there"))
                    continue
                try:
                    move_file(src, dst)
                except FileExistsError:
                    results.append((jid, m, "rolled_back", m.src, f"{m.dst}: name taken meanwhile; not overwritten"))
                    continue
                except OSError as exc:
                    results.append((jid, m, "rolled_back", m.src, f"{m.src}: {exc}"))
                    continue
                results.append((jid, m, "done", m.src, None))
                if remove_empty:
                    _remove_empty_dirs(lib, src.parent)
            _settle(cat, results, report, lambda db, m: _record_move(db, m.src, m.dst, m.detail))
            if on_progress:
                on_progress(len(chunk))
    report.seconds = time.perf_counter() - start
    if report.done:
        cat.backup(f"after-{op}")   # the newest generation holds this batch's journal (for undo)
    log.info("%s", report.summary())
    return report


def _record_move(db, src: str, dst: str, detail: dict) -> None:
    """The catalog side of a finished move: the new path, and the new status if the move sets one."""
    if photos.has_path(db, src):
        # the row of the file's old name carries its history; a row for the new name is either a
        # stale 'missing' one or one an index made of the second link of a half-done move
        photos.delete_path(db, dst)
        photos.rename(db, src, dst)
    if detail.get("status") is not None:
        photos.set_status(db, dst, detail["status"], detail["note"])


def recover(library) -> dict[str, int]:
    """Finish or roll back every move a killed process left half-done; returns counts by outcome.

    Only batches whose owner is gone are touched: each batch's owner holds its
    lock (:func:`batch_owner`) while it runs, so the batches of running
    processes (a ``write-metadata`` beside the watcher) are left alone.

    For each ``planned`` journal entry of a dead batch: if the file already has
    its new name, the move is finished (the old name, a second link to the same
    file, is removed) and the catalog updated; if it still has only its old
    name, the move is rolled back (a partial temporary copy is removed). Runs
    under the catalog's writer lock, so two processes never recover at once.
    """
    lib = open_library(library)
    cat = lib.catalog
    counts = {"finished": 0, "rolled_back": 0, "conflict": 0}
    pending = journal.planned_batches(cat.conn)
    if not pending:
        return counts
    held = {}
    for b in pending:
        lock = _take_dead_batch(lib, b)
        if lock is None:
            log.debug("batch %s is being applied by a running process; left alone", b)
        else:
            held[b] = lock
    if not held:
        return counts
    try:
        with cat.write() as db:
            rows = [r for r in journal.planned_entries(db) if r["batch"] in held]
            for r in rows:
                counts[_recover_one(lib, db, r)] += 1
    finally:
        for lock in held.values():
            _release_dead_batch(lock)
    if any(counts.values()):
        log.warning("recovered an interrupted operation: %s", counts)
    return counts


def _recover_one(lib, db, r) -> str:
    """Settle one ``planned`` journal entry of a dead batch; returns the outcome."""
    if r["op"] == REWRITE:
        return _recover_rewrite(lib, db, r)
    src, dst = lib.abs(r["src"]), lib.abs(r["dst"])
    detail = json.loads(r["detail"] or "{}")
    for partial in _partial_copies(dst):   # an interrupted cross-filesystem copy: never verified
        partial.unlink(missing_ok=True)
    s_ok, d_ok = src.exists(), dst.exists()
    if d_ok and s_ok:
        same = os.path.samefile(src, dst) or (
            r["sha256"] and not photos.present_at(db, r["dst"])
            and sha256_file(dst) == r["sha256"])  # a verified cross-filesystem copy
        if not same:
            # the target name belongs to some other file: this move never happened
            journal.set_state(db, r["id"], "rolled_back")
            return "rolled_back"
        os.unlink(src)
        fsync_dir(src.parent)
        d_ok, s_ok = True, False
    if d_ok and not s_ok:
        _record_move(db, r["src"], r["dst"], detail)
        journal.set_state(db, r["id"], "done")
        _remove_empty_dirs(lib, src.parent)
        return "finished"
    if s_ok:
        journal.set_state(db, r["id"], "rolled_back")
        _remove_empty_dirs(lib, dst.parent)
        return "rolled_back"
    journal.set_state(db, r["id"], "conflict",
                      json.dumps({**detail, "error": "neither the old nor the new name exists"}))
    log.error("%s -> %s: file missing from both places (batch %s)", r["src"], r["dst"], r["batch"])
    return "conflict"


def live_moves(library) -> list[tuple[str, str]]:
    """``(src, dst)`` of the moves running processes have planned and not yet settled."""
    lib = open_library(library)
    rows = journal.planned_moves(lib.catalog.conn, REWRITE)
    return [(r["src"], r["dst"]) for r in rows]


def batches(library, op: str | None = None):
    """Journaled batches as a DataFrame: batch, op, files moved, first and last time, undone."""
    lib = open_library(library)
    return journal.batch_table(lib.catalog.conn, op)


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
        batch = journal.last_undoable_batch(cat.conn)
        if batch is None:
            raise FileOpError(f"{lib.root}: nothing to undo")
    rows = journal.done_entries(cat.conn, batch)
    if not rows:
        known = journal.batch_known(cat.conn, batch)
        raise FileOpError(f"batch {batch}: " + ("already undone" if known else "no such batch"))
    if rows[0]["op"] == REWRITE:
        return _reverse_rewrites(lib, batch, rows, on_progress=on_progress)
    return _reverse(lib, batch, rows, on_progress=on_progress)


def undo_one(library, journal_id: int) -> BatchReport:
    """Reverse one completed move of a batch (e.g. one file out of quarantine)."""
    lib = open_library(library)
    recover(lib)
    rows = journal.done_entry(lib.catalog.conn, journal_id)
    if not rows:
        raise FileOpError(f"journal entry {journal_id}: no completed move to reverse")
    return _reverse(lib, rows[0]["batch"], rows)


def _reverse(lib, batch: str, rows, *, on_progress=None) -> BatchReport:
    """Move files back along ``rows`` (journal entries of ``batch``), restoring any status they changed."""
    moves = []
    for r in rows:
        d = json.loads(r["detail"] or "{}")
        back = Move(src=r["dst"], dst=r["src"], sha256=r["sha256"], detail={"undoes": r["id"]})
        if d.get("status") is not None:
            back.status, back.note = d.get("prior_status") or "ok", d.get("prior_note")
        moves.append(back)
    report = execute(lib, moves, batch=f"undo-{batch}", op="undo", on_progress=on_progress)
    _mark_undone(lib, batch)
    return report


# -- rewriting a file's bytes in place (metadata writing, version restore) ---------------------
REWRITE = "rewrite"
VERSIONS_KEEP = 2        # versions kept per file whatever their age
VERSIONS_DAYS = 30.0     # and every version younger than this


@dataclass
class Rewrite:
    """New content for one file, path relative to the library.

    ``old_sha256`` is the content the new bytes were made from (``None``: the
    file does not exist yet, as for a new sidecar); the file is only replaced
    while it still has exactly that content. ``data=None`` removes the file
    (restoring a sidecar to "did not exist"); its bytes are kept as a version.
    """

    path: str
    data: bytes | None
    old_sha256: str | None
    photo_id: int | None = None
    detail: dict = field(default_factory=dict)

    @property
    def new_sha256(self) -> str | None:
        return None if self.data is None else hashlib.sha256(self.data).hexdigest()


def version_path(library, sha256: str) -> Path:
    """Where the kept bytes with this SHA-256 live (content-addressed, so a version is stored once)."""
    lib = open_library(library)
    return lib.state / "versions" / sha256[:2] / sha256


def _keep_version(lib, src: Path, sha: str) -> None:
    """Keep ``src``'s bytes (known to hash to ``sha``) under ``.photolab/versions/``, verified."""
    dest = version_path(lib, sha)
    if dest.exists() and dest.stat().st_size == src.stat().st_size:
        return
    try:
        got = verified_copy(src, dest)
    except FileExistsError:   # a damaged or partial earlier copy: replace it with a verified one
        tmp = dest.with_name(dest.name + ".bad")
        os.replace(dest, tmp)
        got = verified_copy(src, dest)
        tmp.unlink()
    if got != sha:
        dest.unlink()
        raise FileOpError(f"{src}: changed while its previous version was being kept")


def _write_new_bytes(path: Path, data: bytes, *, create: bool) -> None:
    """Give ``path`` the content ``data`` in one atomic step: a synced temporary file beside it,
    then a rename over it (or, for a new file, a link that fails if the name is taken)."""
    tmp = path.with_name(temp_name(path.name))
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if create:
            os.link(tmp, path)
        else:
            st = os.stat(path)
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
            os.replace(tmp, path)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    fsync_dir(path.parent)


def _file_sha(path: Path) -> str | None:
    return sha256_file(path) if path.is_file() else None


def _record_rewrite(lib, db, path: str, new_sha: str | None, old_sha: str | None) -> None:
    """The catalog side of a finished rewrite: the file's hash, size and time (features stay valid:
    only metadata changed, which the writer verified)."""
    p = lib.abs(path)
    if new_sha is None:
        photos.delete_sidecar(db, path)
        return
    st = p.stat()
    photos.set_content(db, path, new_sha, st.st_size, st.st_mtime_ns)
    if old_sha:
        photos.rehash_features(db, path, old_sha, new_sha)


def _recover_rewrite(lib, db, r) -> str:
    """Settle one interrupted rewrite: the file holds the new bytes (finish), the old ones (roll
    back) or neither (conflict: someone else changed it; it is left alone and reported)."""
    p = lib.abs(r["src"])
    detail = json.loads(r["detail"] or "{}")
    old, new = detail.get("old_sha256"), r["sha256"]
    for partial in _partial_copies(p):
        partial.unlink(missing_ok=True)
    cur = _file_sha(p)
    if cur == new:
        _record_rewrite(lib, db, r["src"], new, old)
        journal.set_state(db, r["id"], "done")
        return "finished"
    if cur == old:
        journal.set_state(db, r["id"], "rolled_back")
        return "rolled_back"
    journal.set_state(db, r["id"], "conflict")
    log.error("%s: changed by something else during an interrupted rewrite (batch %s); left as it is",
              r["src"], r["batch"])
    return "conflict"


def rewrite(library, items: list[Rewrite], *, batch: str, on_progress=None) -> BatchReport:
    """Give files new bytes as one journaled batch; the previous bytes are kept as versions.

    For each file: its current bytes are copied (verified) to ``.photolab/versions/``
    and recorded; the rewrite is journaled ``planned`` with the old and new SHA-256
    (full sync); the new bytes are written to a synced temporary file that
    atomically replaces the original; then the catalog and the journal change in
    one transaction. A file whose content is no longer ``old_sha256`` is skipped
    (it changed since it was read). Killed at any moment, every file holds its
    old bytes or its new ones, and :func:`recover` settles the journal.
    """
    lib = open_library(library)
    recover(lib)
    cat = lib.catalog
    if items:
        cat.backup("before-rewrite", files=len(items))
    report = BatchReport(batch=batch, verb="rewritten")
    start = time.perf_counter()
    with batch_owner(lib, batch):
        for i in range(0, len(items), CHUNK):
            chunk, ready = items[i:i + CHUNK], []
            for it in chunk:
                p = lib.abs(it.path)
                cur = _file_sha(p)
                if cur != it.old_sha256:
                    report.skipped.append((it.path, "changed since it was read; not rewritten"))
                    continue
                try:
                    if cur is not None:
                        _keep_version(lib, p, cur)
                except (OSError, FileOpError) as exc:
                    report.skipped.append((it.path, f"previous version could not be kept: {exc}"))
                    continue
                ready.append(it)
            def kept(db, now, ready=ready):
                journal.add_versions(db, [(it.photo_id, it.path, it.old_sha256, batch, now) for it in ready])

            ids = _journal_planned(cat, batch, [(REWRITE, it.path, it.path, it.new_sha256,
                                                 {**it.detail, "old_sha256": it.old_sha256, "photo_id": it.photo_id})
                                                for it in ready], before=kept)
            results = []
            for jid, it in zip(ids, ready):
                p = lib.abs(it.path)
                try:
                    if it.data is None:
                        os.unlink(p)
                        fsync_dir(p.parent)
                    else:
                        p.parent.mkdir(parents=True, exist_ok=True)
                        _write_new_bytes(p, it.data, create=it.old_sha256 is None)
                except OSError as exc:
                    results.append((jid, it, "rolled_back", it.path, f"{it.path}: {exc}"))
                    continue
                results.append((jid, it, "done", it.path, None))
            _settle(cat, results, report, lambda db, it: _record_rewrite(lib, db, it.path, it.new_sha256, it.old_sha256))
            if on_progress:
                on_progress(len(chunk))
    report.seconds = time.perf_counter() - start
    if report.done:
        cat.backup("after-rewrite")   # the newest generation holds this batch's journal (for undo)
    return report


def version_bytes(library, sha256: str | None) -> bytes | None:
    """The kept bytes with this SHA-256 (``None`` for "the file did not exist"), checked."""
    if sha256 is None:
        return None
    p = version_path(library, sha256)
    if not p.is_file():
        raise FileOpError(f"version {sha256[:12]}: no longer kept under .photolab/versions/")
    data = p.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise FileOpError(f"{p}: kept version is damaged (checksum mismatch); not restored")
    return data


def _reverse_rewrites(lib, batch: str, rows, *, on_progress=None) -> BatchReport:
    """Undo a rewrite batch: each file gets back the bytes it had before (kept as a version)."""
    items = []
    for r in rows:
        d = json.loads(r["detail"] or "{}")
        items.append(Rewrite(path=r["src"], data=version_bytes(lib, d.get("old_sha256")),
                             old_sha256=r["sha256"], photo_id=d.get("photo_id"), detail={"undoes": r["id"]}))
    report = rewrite(lib, items, batch=f"undo-{batch}", on_progress=on_progress)
    _mark_undone(lib, batch)
    return report


def prune_versions(library, *, keep: int | None = None, days: float | None = None) -> int:
    """Forget versions beyond the retention: per file, the ``keep`` newest and all younger than
    ``days`` stay (defaults from the library: ``versions_keep`` 2, ``versions_days`` 30).
    A kept file no version refers to any more is deleted. Returns the number of versions dropped."""
    import datetime as dt

    lib = open_library(library)
    cat = lib.catalog
    keep = int(keep if keep is not None else cat.get_meta("versions_keep", str(VERSIONS_KEEP)))
    days = float(days if days is not None else cat.get_meta("versions_days", str(VERSIONS_DAYS)))
    if keep < 2 or days < 0:
        raise ValueError(f"version retention must keep at least 2 versions and 0 days (got {keep}, {days})")
    cutoff = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)).replace(microsecond=0).isoformat()
    rows = journal.versions(cat.conn)
    drop, seen = [], {}
    for r in rows:
        n = seen[r["who"]] = seen.get(r["who"], 0) + 1
        if n > keep and r["saved_at"] < cutoff:
            drop.append(r["id"])
    if not drop:
        return 0
    with cat.write() as db:
        journal.drop_versions(db, drop)
        live = journal.version_hashes(db)
    for f in (lib.state / "versions").glob("*/*"):
        if f.is_file() and f.name not in live and len(f.name) == 64:
            f.unlink()
    return len(drop)


__all__ = ["BatchReport", "FileOpError", "Move", "batch_owner", "batches", "clean_component", "clean_temp_files",
           "execute", "fsync_dir", "live_moves", "move_file", "new_batch", "pid_alive", "temp_name",
           "prune_versions", "recover", "rewrite", "Rewrite", "sha256_file", "undo", "undo_one", "verified_copy",
           "version_bytes", "version_path"]
