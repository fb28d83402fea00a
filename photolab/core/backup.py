"""Backups of the library: encrypted, deduplicated, versioned snapshots, checked before bulk changes.

The engine is `BorgBackup <https://www.borgbackup.org/>`_ (``borg``, from Debian's ``borgbackup``
package or the upstream binary); photolab never copies files itself. What it adds:

- :func:`backup` (``photolab backup LIBRARY --to REPO``): one snapshot of the whole master folder,
  ``.photolab/`` included, into an encrypted repository (``repokey-blake2``: the key sits in the
  repository, protected by the passphrase). The passphrase comes from ``--password-file FILE`` or
  the environment variable ``PHOTOLAB_BACKUP_PASSPHRASE`` and reaches borg through a pipe
  (``BORG_PASSPHRASE_FD``): it is never on a command line, in the environment of borg, or in a log.
  The live catalog (with its WAL) is not read by borg: a consistent copy made with SQLite's backup
  API, under the catalog's writer lock, goes into the snapshot in its place
  (``.photolab/core/backup/catalog.sqlite``; a restore puts it back as ``.photolab/catalog.sqlite``).
  Borg deduplicates by content, so a snapshot of an unchanged library adds almost nothing.
  ``REPO`` is a local folder (external drive, mounted NAS share) or an SSH URL borg supports
  (``ssh://user@host/./photolab``, ``user@host:photolab``; borg must be installed there too).
- Retention (:func:`prune`): keep every snapshot of the last ``keep_days`` days (30) and at least
  the ``keep_last`` (2) newest, whatever their age (borg's ``--keep-within`` and ``--keep-last``).
- :func:`snapshots` (``--list``), :func:`restore` (``--restore SNAPSHOT|latest [PATH ...] --into DIR``,
  never over the live library) and :func:`verify` (``--verify``: borg's own check, then a sample
  of files extracted and compared byte for byte with the library).
- :func:`guard`: the one check before a bulk change (``organize --apply``, ``dedupe --apply``,
  ``purge``, ``write-metadata`` in the file, ``maintain``): is there a snapshot newer than the last
  change the catalog records? Without one it warns (default) or refuses (``require_backup = yes``).
- :func:`status`: plain data for the start-here notebook and ``photolab check``.

Settings live where the library keeps its other settings, the catalog's ``meta`` table
(``backup_repository``, ``backup_password_file``, ``backup_keep_last``, ``backup_keep_days``,
``backup_every_hours``, ``require_backup``); :func:`configure` changes them.

A backup killed at any moment leaves the library as it was (borg only reads it; the catalog copy
lives in ``.photolab/core/backup/`` and is replaced by the next run) and the repository consistent:
borg commits a snapshot as one transaction and rolls an unfinished one back on its next use.
Borg's lock records host and process id; a lock whose process is gone on this host is removed by
borg itself on the next run (its default ``BORG_HOSTNAME_IS_UNIQUE=yes``). photolab never breaks
a lock that a live process, or another host, holds: it says so and names ``borg break-lock``.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import filecmp
import json
import logging
import os
import random
import shutil
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from photolab.store.catalog import CATALOG_FILE, STATE_DIR
from photolab.core.errors import PhotolabError
from photolab.core.library import open_library
from photolab.store.backups import paths_by_sha, seal_copy

log = logging.getLogger(__name__)

PREFIX = "photolab-"
PASS_ENV = "PHOTOLAB_BACKUP_PASSPHRASE"
STAGING = "backup"                                     # .photolab/core/backup/: the catalog copy for the snapshot
CATALOG_COPY = f"{STATE_DIR}/{STAGING}/{CATALOG_FILE}"
LIVE_CATALOG = f"{STATE_DIR}/{CATALOG_FILE}"
ENCRYPTION = "repokey-blake2"
DEFAULT_KEEP_LAST = 2
DEFAULT_KEEP_DAYS = 30.0
DEFAULT_EVERY_HOURS = 24.0
COMPRESSION = "auto,zstd,3"                            # photos (incompressible) stored as they are; the catalog packed
LOCK_WAIT = 10                                         # seconds borg waits for a lock held by a live process
INSTALL_HINT = ("install BorgBackup: `sudo apt install borgbackup`, or put the upstream binary "
                "(https://github.com/borgbackup/borg/releases) on PATH")
EXCLUDES = (f"{STATE_DIR}/{CATALOG_FILE}", f"{STATE_DIR}/{CATALOG_FILE}-*", f"{STATE_DIR}/*.lock",
            f"{STATE_DIR}/{STAGING}/*.tmp")

_KEYS = {"repository": "backup_repository", "password_file": "backup_password_file",
         "keep_last": "backup_keep_last", "keep_days": "backup_keep_days",
         "every_hours": "backup_every_hours", "require_backup": "require_backup"}


class BackupError(PhotolabError, RuntimeError):
    """A backup, restore or check cannot be done; the message names the repository or file and the next step."""


class BackupRequiredError(BackupError):
    """A bulk change was refused: the library asks for a fresh snapshot first (``require_backup = yes``)."""


# -- settings ------------------------------------------------------------------------------------
@dataclass
class BackupSettings:
    """The library's backup settings (kept in the catalog's ``meta`` table)."""

    repository: str | None = None
    password_file: str | None = None
    keep_last: int = DEFAULT_KEEP_LAST
    keep_days: float = DEFAULT_KEEP_DAYS
    every_hours: float = DEFAULT_EVERY_HOURS
    require_backup: bool = False


def settings(library) -> BackupSettings:
    """The library's backup settings (defaults where none was stored)."""
    cat = open_library(library).catalog
    get = {name: cat.get_meta(key) for name, key in _KEYS.items()}
    return BackupSettings(
        repository=get["repository"] or None, password_file=get["password_file"] or None,
        keep_last=int(get["keep_last"] or DEFAULT_KEEP_LAST), keep_days=float(get["keep_days"] or DEFAULT_KEEP_DAYS),
        every_hours=float(get["every_hours"] or DEFAULT_EVERY_HOURS),
        require_backup=(get["require_backup"] or "no").lower() in ("yes", "true", "1"))


def configure(library, *, repository: str | None = None, password_file: str | os.PathLike | None = None,
              keep_last: int | None = None, keep_days: float | None = None, every_hours: float | None = None,
              require_backup: bool | str | None = None) -> BackupSettings:
    """Change the library's backup settings (``None`` leaves one as it is); returns them all.

    Args:
        repository: where snapshots go (a local folder or an SSH URL borg supports).
        password_file: a file holding the passphrase (only its path is stored).
        keep_last: retention keeps at least this many newest snapshots (1 or more).
        keep_days: ... and every snapshot younger than this many days (0: only ``keep_last``).
        every_hours: how often the watcher's pass takes a snapshot (0: never).
        require_backup: refuse bulk changes without a fresh snapshot (``True``/``"yes"``).
    """
    lib = open_library(library)
    if keep_last is not None and int(keep_last) < 1:
        raise ValueError(f"keep_last {keep_last}: retention keeps at least 1 snapshot")
    for name, v in (("keep_days", keep_days), ("every_hours", every_hours)):
        if v is not None and float(v) < 0:
            raise ValueError(f"{name} {v}: cannot be negative")
    if isinstance(require_backup, str):
        if require_backup.lower() not in ("yes", "no", "true", "false"):
            raise ValueError(f"require_backup {require_backup!r}: use yes or no")
        require_backup = require_backup.lower() in ("yes", "true")
    values = {"repository": repository, "password_file": None if password_file is None else
              str(Path(password_file).expanduser().resolve()),
              "keep_last": None if keep_last is None else str(int(keep_last)),
              "keep_days": None if keep_days is None else str(float(keep_days)),
              "every_hours": None if every_hours is None else str(float(every_hours)),
              "require_backup": None if require_backup is None else ("yes" if require_backup else "no")}
    for name, value in values.items():
        if value is not None:
            lib.catalog.set_meta(_KEYS[name], value)
    return settings(lib)


# -- the passphrase ------------------------------------------------------------------------------
def _passphrase(password_file: str | os.PathLike | None, *, remembered: str | None = None) -> tuple[bytes, str]:
    """(passphrase, where it came from): ``password_file``, else the environment, else a remembered file."""
    path = password_file or (None if os.environ.get(PASS_ENV) else remembered)
    if path:
        p = Path(path).expanduser()
        try:
            text = p.read_bytes()
        except OSError as exc:
            raise BackupError(f"{p}: cannot read the backup passphrase file ({exc.strerror}); give a readable "
                              f"--password-file or set {PASS_ENV}") from None
        text = text[:-2] if text.endswith(b"\r\n") else text[:-1] if text.endswith(b"\n") else text
        if not text:
            raise BackupError(f"{p}: the backup passphrase file is empty; write the passphrase into it")
        return text, str(p)
    env = os.environ.get(PASS_ENV)
    if env:
        return env.encode(), PASS_ENV
    raise BackupError(f"no backup passphrase: give --password-file FILE or set the environment variable {PASS_ENV} "
                      "(never on the command line)")


# -- the engine ----------------------------------------------------------------------------------
def borg_binary() -> str:
    """Path of the ``borg`` program, or a :class:`BackupError` saying how to install it."""
    exe = shutil.which("borg")
    if not exe:
        raise BackupError(f"BorgBackup (borg) is not installed, and photolab's backups run on it: {INSTALL_HINT}")
    return exe


def _is_remote(repo: str) -> bool:
    return repo.startswith("ssh://") or (":" in repo.split("/", 1)[0] and not os.path.isabs(repo))


def _die_with_parent() -> None:   # pragma: no cover - runs in the child
    """borg ends (SIGTERM: it rolls back and releases its locks) when photolab is killed."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))   # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: borg then finishes on its own
        pass


class Borg:
    """A borg repository and its passphrase; every call goes through :meth:`run`."""

    def __init__(self, repository: str, passphrase: bytes, *, passphrase_from: str = ""):
        self.exe = borg_binary()
        self.repo = repository if _is_remote(repository) else str(Path(repository).expanduser().absolute())
        self._pass = passphrase
        self.passphrase_from = passphrase_from

    def _env(self, fd: int) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("BORG_PASSPHRASE", "BORG_PASSCOMMAND",
                                                              "BORG_NEW_PASSPHRASE", PASS_ENV)}
        env.update(BORG_PASSPHRASE_FD=str(fd), BORG_DISPLAY_PASSPHRASE="no", BORG_RELOCATED_REPO_ACCESS_IS_OK="yes",
                   BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="no", BORG_EXIT_CODES="legacy", LANG="C.UTF-8")
        return env

    def run(self, args: list[str], *, cwd=None, what: str = "", on_progress=None) -> tuple[str, list[str]]:
        """Run ``borg ARGS`` (``::ARCHIVE`` in ARGS is completed with the repository).

        Returns (stdout, warnings); raises :class:`BackupError` with one line on failure."""
        args = [a.replace("{repo}", self.repo) for a in args]
        r, w = os.pipe()
        os.write(w, self._pass)
        os.close(w)
        cmd = [self.exe, "--log-json", *args]
        log.debug("borg %s", " ".join(args))
        with tempfile.TemporaryFile() as out:
            try:
                proc = subprocess.Popen(cmd, cwd=cwd, env=self._env(r), pass_fds=(r,), stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)
            finally:
                os.close(r)
            messages = []
            for line in proc.stderr:
                try:
                    m = json.loads(line)
                except ValueError:   # a few messages are plain text even with --log-json
                    if line.strip():
                        messages.append({"levelname": "PLAIN", "message": line.rstrip()})
                    continue
                if m.get("type") == "archive_progress" and on_progress:
                    on_progress(m)
                elif m.get("type") == "log_message":
                    messages.append(m)
            rc = proc.wait()
            out.seek(0)
            stdout = out.read().decode("utf-8", "replace")
        errors = [m for m in messages if m.get("levelname") in ("ERROR", "CRITICAL")] or \
            [m for m in messages if m.get("levelname") == "PLAIN"][-3:]
        warnings = [m["message"] for m in messages if m.get("levelname") == "WARNING"]
        if rc >= 2 or rc < 0:
            raise BackupError(self._explain(errors, rc, what or args[0]))
        return stdout, warnings

    def json(self, args: list[str], **kw) -> dict:
        return json.loads(self.run(args, **kw)[0] or "{}")

    def _explain(self, errors: list[dict], rc: int, what: str) -> str:
        ids = {m.get("msgid") or "" for m in errors}
        text = " ".join(m.get("message", "") for m in errors)
        repo = self.repo
        if rc < 0:
            return f"{repo}: borg {what} was stopped (signal {-rc}); run it again (borg rolls back what was unfinished)"
        if "PassphraseWrong" in ids or "passphrase supplied" in text and "incorrect" in text:
            return (f"{repo}: wrong passphrase (from {self.passphrase_from}); give the passphrase this repository "
                    "was created with")
        if ids & {"Repository.DoesNotExist"}:
            return (f"{repo}: no backup repository there (is the drive mounted?); check the path, or give a new "
                    "folder with --to to create one")
        if ids & {"Repository.ParentPathDoesNotExist"} or "parent path" in text.lower():
            return f"{repo}: its parent folder does not exist (is the drive mounted?); check the path given to --to"
        if ids & {"Repository.InvalidRepository", "Repository.InvalidRepositoryConfig", "Repository.AlreadyExists",
                  "Repository.PathAlreadyExists"}:
            return (f"{repo}: this folder is not a borg repository and is not empty; choose an empty or new folder "
                    "for --to")
        if "No space left" in text or ids & {"Repository.InsufficientFreeSpaceError"}:
            free = ""
            if not _is_remote(repo):
                with contextlib.suppress(OSError):
                    p = Path(repo)
                    while not p.exists():
                        p = p.parent
                    free = f" ({shutil.disk_usage(p).free / 1e6:.0f} MB free)"
            return (f"{repo}: the backup disk is full{free}; nothing was added. Free space there, apply the "
                    "retention (photolab backup LIBRARY --prune) or use a larger disk")
        if ids & {"LockTimeout", "LockFailed", "LockError", "NotLocked", "NotMyLock"} or "lock" in text.lower() \
                and "timeout" in text.lower():
            return (f"{repo}: locked by another borg process (a backup still running here or on another host); "
                    f"wait for it, or if none runs anywhere: `borg break-lock {repo}`")
        if ids & {"Archive.AlreadyExists"}:
            return f"{repo}: a snapshot of that name already exists"
        if ids & {"Archive.DoesNotExist"}:
            return f"{repo}: no such snapshot; `photolab backup LIBRARY --list` shows them"
        if ids & {"ConnectionClosed", "ConnectionClosedWithHint", "RemoteRepository.RPCServerOutdated",
                  "PathNotAllowed"}:
            return f"{repo}: cannot reach the repository over SSH ({text.strip()[:200]}); check the URL and that " \
                   "borg is installed there"
        if "Permission denied" in text:
            return f"{repo}: permission denied ({text.strip()[:200]}); check who owns the folder"
        first = text.strip().splitlines()[0][:300] if text.strip() else f"exit status {rc}"
        return f"{repo}: borg {what} failed: {first}"

    def exists(self) -> bool:
        """Is there a repository this passphrase opens? (A wrong passphrase or bad folder raises.)"""
        try:
            self.run(["info", "--json", "--lock-wait", str(LOCK_WAIT), "{repo}"], what="info")
            return True
        except BackupError as exc:
            if "no backup repository there" in str(exc):
                return False
            raise

    def init(self) -> None:
        if not _is_remote(self.repo):
            p = Path(self.repo)
            if p.exists() and not p.is_dir():
                raise BackupError(f"{p}: exists and is not a folder; give a folder for --to")
            if not p.parent.is_dir():
                raise BackupError(f"{p}: its parent folder {p.parent} does not exist (is the drive mounted?); "
                                  "check the path given to --to")
            if p.is_dir() and any(p.iterdir()):
                raise BackupError(f"{p}: this folder is not a borg repository and is not empty; choose an empty "
                                  "or new folder for --to")
        self.run(["init", "--encryption", ENCRYPTION, "{repo}"], what="init")
        log.info("created the encrypted repository %s (%s)", self.repo, ENCRYPTION)

    def archives(self) -> list[dict]:
        """photolab's snapshots, oldest first: name, time (UTC), comment (parsed)."""
        d = self.json(["list", "--json", "--glob-archives", f"{PREFIX}*", "--format", "{name}{comment}{time}",
                       "{repo}"], what="list")
        out = []
        for a in d.get("archives", []):
            try:
                comment = json.loads(a.get("comment") or "{}")
            except ValueError:
                comment = {}
            out.append({"name": a["name"], "time": _borg_time(a.get("time") or a["start"]), "comment": comment})
        return sorted(out, key=lambda a: a["time"])


def _borg_time(s: str) -> _dt.datetime:
    """borg's JSON times are local time without an offset."""
    return _dt.datetime.fromisoformat(s).astimezone().astimezone(_dt.timezone.utc)


def _engine(lib, repository: str | None, password_file, *, need_repo: bool = True) -> tuple[Borg, BackupSettings]:
    cfg = settings(lib)
    repo = repository or cfg.repository
    if not repo and need_repo:
        raise BackupError(f"{lib.root}: no backup repository configured; give --to REPO (an external drive or NAS "
                          "folder, or an SSH URL) the first time")
    passphrase, source = _passphrase(password_file, remembered=cfg.password_file)
    return Borg(repo, passphrase, passphrase_from=source), cfg


# -- what changed, and when ----------------------------------------------------------------------
def _parse(s: str | None) -> _dt.datetime | None:
    if not s:
        return None
    d = _dt.datetime.fromisoformat(s)
    return d if d.tzinfo else d.replace(tzinfo=_dt.timezone.utc)


def last_change(library) -> _dt.datetime | None:
    """When the library last changed, as far as the catalog records it: files gathered, indexed, moved,
    quarantined, purged or rewritten, and a person's labels, reviews, ratings, names and event edits."""
    from photolab.store.backups import change_times

    times = [t for t in map(_parse, change_times(open_library(library).catalog.conn)) if t]
    return max(times) if times else None


# -- status and the guard ------------------------------------------------------------------------
@dataclass
class BackupStatus:
    """Where the library's backups stand (plain data; :meth:`summary` is one line)."""

    library: str
    configured: bool
    repository: str | None
    last_snapshot: str | None
    last_snapshot_at: str | None           # ISO 8601 UTC: when its catalog copy was made
    age_hours: float | None
    last_change_at: str | None
    fresh: bool                            # a snapshot newer than the last change
    require_backup: bool
    keep_last: int
    keep_days: float
    every_hours: float

    def summary(self) -> str:
        if not self.configured:
            return (f"no backup configured: `photolab backup {self.library} --to /media/YOU/DRIVE/photolab-backup` "
                    f"makes an encrypted one (passphrase from --password-file FILE or {PASS_ENV})")
        where = f"backups go to {self.repository}"
        if not self.last_snapshot:
            return f"{where}; no snapshot yet: run `photolab backup {self.library}`"
        state = ("up to date with the library" if self.fresh else
                 f"the library changed since: run `photolab backup {self.library}`")
        return f"{where}; last snapshot {_age(self.age_hours)} ago ({self.last_snapshot}), {state}"


def _age(hours: float | None) -> str:
    if hours is None:
        return "never"
    if hours < 1:
        return f"{hours * 60:.0f} minutes"
    if hours < 48:
        return f"{hours:.1f} hours"
    return f"{hours / 24:.1f} days"


def status(library) -> BackupStatus:
    """The library's backup state, from its settings and catalog alone (no repository access, no passphrase)."""
    lib = open_library(library)
    cfg = settings(lib)
    cat = lib.catalog
    last_at = _parse(cat.get_meta("backup_last_at"))
    covers = _parse(cat.get_meta("backup_covers")) or last_at
    changed = last_change(lib)
    now = _dt.datetime.now(_dt.timezone.utc)
    return BackupStatus(
        library=str(lib.root), configured=bool(cfg.repository), repository=cfg.repository,
        last_snapshot=cat.get_meta("backup_last_name"), last_snapshot_at=last_at.isoformat() if last_at else None,
        age_hours=(now - last_at).total_seconds() / 3600 if last_at else None,
        last_change_at=changed.isoformat() if changed else None,
        fresh=changed is None or (covers is not None and changed <= covers),
        require_backup=cfg.require_backup, keep_last=cfg.keep_last, keep_days=cfg.keep_days,
        every_hours=cfg.every_hours)


_checked: contextvars.ContextVar[bool] = contextvars.ContextVar("photolab_backup_checked", default=False)


@contextlib.contextmanager
def checked():
    """Within this block :func:`guard` passes: its caller checked already (a command's own guard, a
    maintenance run), or the changes are a pass's filing of new files that are still in the import folder."""
    token = _checked.set(True)
    try:
        yield
    finally:
        _checked.reset(token)


def guard(library, action: str, *, quiet: bool = False) -> str | None:
    """The check before a bulk change: ``None`` when a snapshot is newer than the library's last change.

    Otherwise the one-line warning (logged unless ``quiet``); with the setting ``require_backup = yes`` a
    :class:`BackupRequiredError` instead, so nothing is changed.

    Args:
        action: what is about to run, as the user would type it (``"organize --apply"``).
    """
    if _checked.get():
        return None
    lib = open_library(library)
    if (lib.state / "DEMO_LIBRARY").exists():   # the demo's copy of the bundled photos: nothing to lose
        return None
    st = status(lib)
    if st.fresh:
        return None
    since = st.last_change_at[:19].replace("T", " ") if st.last_change_at else "?"
    if not st.configured:
        msg = (f"{action}: no backup of {st.library} yet (last change {since} UTC); "
               f"`photolab backup {st.library} --to REPO` makes one first")
    else:
        last = f"last snapshot {_age(st.age_hours)} ago" if st.last_snapshot else "no snapshot yet"
        msg = (f"{action}: no backup snapshot since the library last changed ({since} UTC; {last}); "
               f"`photolab backup {st.library}` makes one first")
    if st.require_backup:
        raise BackupRequiredError(f"{msg}; refused, nothing changed (the library's setting require_backup = yes)")
    if not quiet:
        log.warning("%s", msg)
    return msg


# -- taking a snapshot ---------------------------------------------------------------------------
@dataclass
class SnapshotReport:
    """One snapshot: its name, what it holds and what it added to the repository."""

    name: str
    repository: str
    taken_at: str                 # the catalog copy's time (UTC)
    photos: int
    files: int
    size: int                     # bytes of the files it holds
    added: int                    # bytes it added to the repository (deduplicated, compressed)
    seconds: float
    created_repository: bool = False
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        s = (f"snapshot {self.name}: {self.photos} photos, {self.files} files, {self.size / 1e6:.1f} MB; "
             f"added {self.added / 1e6:.2f} MB to {self.repository} ({self.seconds:.1f} s)")
        if self.created_repository:
            s += "; new encrypted repository (keep the passphrase safe: without it nothing can be restored)"
        if self.warnings:
            s += f"; {len(self.warnings)} warnings"
        return s


def _copy_catalog(lib, staging: Path) -> tuple[_dt.datetime, int, _dt.datetime]:
    """Copy the live catalog consistently (SQLite backup API, under the writer lock).

    Returns (time of the copy, photos in it, the last change it holds). The catalog's times have second
    resolution: when that last change fell in the copy's own second, the lock is held into the next
    second, so every change recorded after the copy carries a later time than the one it covers."""
    staging.mkdir(parents=True, exist_ok=True)
    dest = staging / CATALOG_FILE
    tmp = staging / (CATALOG_FILE + ".tmp")
    for p in (dest, tmp):
        p.unlink(missing_ok=True)
    with lib.catalog.write():
        start = int(time.time())
        taken = _dt.datetime.fromtimestamp(start, _dt.timezone.utc)
        covers = last_change(lib) or taken - _dt.timedelta(seconds=1)
        src = sqlite3.connect(str(lib.catalog.path))
        dst = sqlite3.connect(str(tmp))
        try:
            src.backup(dst)
            photos = seal_copy(dst)   # one self-contained file
        finally:
            dst.close()
            src.close()
        os.replace(tmp, dest)
        if covers >= taken:
            time.sleep(max(0.0, start + 1 - time.time()))
    return taken, int(photos), covers


def _clear_staging(lib) -> None:
    folder = lib.state / STAGING
    for p in (folder / CATALOG_FILE, folder / (CATALOG_FILE + ".tmp")):
        with contextlib.suppress(OSError):
            p.unlink(missing_ok=True)


def backup(library, *, to: str | None = None, password_file: str | os.PathLike | None = None,
           timestamp: _dt.datetime | None = None, progress: bool = False) -> SnapshotReport:
    """Take one snapshot of the library (see the module text).

    Args:
        to: the repository (remembered for later runs); default: the remembered one. A new
            repository is created (encrypted) only when it is given here.
        password_file: a file with the passphrase (default: ``PHOTOLAB_BACKUP_PASSPHRASE``, then the
            remembered file).
        timestamp: record the snapshot as taken at this time (borg's ``--timestamp``), e.g. for
            snapshots of older copies; the guard still counts the real time.
        progress: a progress bar (bytes read).
    """
    lib = open_library(library)
    start = time.perf_counter()
    engine, cfg = _engine(lib, to, password_file)
    created = False
    local = not _is_remote(engine.repo)
    if not ((Path(engine.repo) / "config").is_file() if local else engine.exists()):
        if not to:
            raise BackupError(f"{engine.repo}: no backup repository there (is the drive mounted?); give --to REPO "
                              "to create a new one")
        engine.init()
        created = True
    if to or password_file:
        configure(lib, repository=to or None, password_file=password_file)
    staging = lib.state / STAGING
    try:
        taken, photos, covers = _copy_catalog(lib, staging)
        when = (timestamp or taken)
        when = when.astimezone(_dt.timezone.utc) if when.tzinfo else when
        name = f"{PREFIX}{when:%Y-%m-%dT%H:%M:%S}"
        comment = json.dumps({"photos": photos, "library": str(lib.root), "taken_at": taken.isoformat()})
        args = ["create", "--json", "--comment", comment.replace("{", "{{").replace("}", "}}"),
                "--lock-wait", str(LOCK_WAIT), "--compression", COMPRESSION]
        if timestamp is not None:
            args += ["--timestamp", f"{when:%Y-%m-%dT%H:%M:%S}"]
        for pat in EXCLUDES:
            args += ["--exclude", pat]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            from photolab.store.backups import total_size

            total = total_size(lib.catalog.conn)
            bar = tqdm(total=total, desc="backup", unit="B", unit_scale=True)
            args.append("--progress")
        try:
            def on_progress(m):
                if bar is not None and "original_size" in m:
                    bar.update(max(0, m["original_size"] - bar.n))
            for n in range(2, 100):
                try:
                    out, warnings = engine.run(args + [f"{{repo}}::{name}", "."], cwd=lib.root, what="create",
                                               on_progress=on_progress)
                    break
                except BackupError as exc:
                    if "already exists" not in str(exc):
                        raise
                    name = f"{PREFIX}{when:%Y-%m-%dT%H:%M:%S}.{n}"   # two snapshots in one second
        finally:
            if bar is not None:
                bar.close()
        stats = json.loads(out)["archive"]["stats"]
        lib.catalog.set_meta("backup_last_at", taken.isoformat())
        lib.catalog.set_meta("backup_covers", covers.isoformat())
        lib.catalog.set_meta("backup_last_name", name)
    finally:
        _clear_staging(lib)
    report = SnapshotReport(name=name, repository=engine.repo, taken_at=taken.isoformat(), photos=photos,
                            files=int(stats["nfiles"]), size=int(stats["original_size"]),
                            added=int(stats["deduplicated_size"]), seconds=time.perf_counter() - start,
                            created_repository=created, warnings=warnings)
    log.info("%s", report.summary())
    return report


def scheduled(library) -> SnapshotReport | None:
    """The watcher's scheduled snapshot: taken when a repository is configured, ``every_hours`` have passed
    since the last one and the library changed since. Problems are logged, never raised (a pass goes on)."""
    lib = open_library(library)
    st = status(lib)
    if not st.configured or st.every_hours <= 0 or st.fresh:
        return None
    if st.age_hours is not None and st.age_hours < st.every_hours:
        return None
    try:
        return backup(lib)
    except BackupError as exc:
        log.warning("scheduled backup skipped: %s", exc)
        return None


# -- the repository's snapshots, retention ------------------------------------------------------
def snapshots(library, *, repository: str | None = None, password_file=None):
    """photolab's snapshots in the repository, oldest first: ``name``, ``date`` (UTC), ``photos``,
    ``files``, ``size`` (bytes held) and ``unique`` (bytes only this snapshot holds)."""
    import pandas as pd

    lib = open_library(library)
    engine, _ = _engine(lib, repository, password_file)
    d = engine.json(["info", "--json", "--glob-archives", f"{PREFIX}*", "{repo}"], what="info")
    rows = []
    for a in d.get("archives", []):
        st = a.get("stats", {})
        try:
            comment = json.loads(a.get("comment") or "{}")
        except ValueError:
            comment = {}
        rows.append({"name": a["name"], "date": _borg_time(a["start"]).isoformat(timespec="seconds"),
                     "photos": comment.get("photos"), "files": st.get("nfiles"),
                     "size": st.get("original_size"), "unique": st.get("deduplicated_size")})
    df = pd.DataFrame(rows, columns=["name", "date", "photos", "files", "size", "unique"])
    return df.sort_values("date").reset_index(drop=True)


@dataclass
class PruneReport:
    kept: list[str]
    pruned: list[str]
    keep_last: int
    keep_days: float

    def summary(self) -> str:
        return (f"prune: {len(self.pruned)} snapshots removed, {len(self.kept)} kept (every snapshot of the last "
                f"{self.keep_days:g} days and at least the {self.keep_last} newest)")


def prune(library, *, repository: str | None = None, password_file=None, keep_last: int | None = None,
          keep_days: float | None = None) -> PruneReport:
    """Apply the retention: keep every snapshot younger than ``keep_days`` and the ``keep_last`` newest
    (default: the library's settings, 30 days and 2); then give the space back (``borg compact``)."""
    lib = open_library(library)
    engine, cfg = _engine(lib, repository, password_file)
    last = int(keep_last if keep_last is not None else cfg.keep_last)
    days = float(keep_days if keep_days is not None else cfg.keep_days)
    if last < 1:
        raise ValueError(f"keep_last {last}: retention keeps at least 1 snapshot")
    archives = engine.archives()
    before = [a["name"] for a in archives]
    hours = int(round(days * 24))
    cut = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(hours=hours)
    # borg applies its rules one after the other (--keep-last would keep N more beyond --keep-within):
    # every snapshot of the window when they are keep_last or more, else the keep_last newest
    args = ["prune", "--lock-wait", str(LOCK_WAIT), "--glob-archives", f"{PREFIX}*"]
    if hours > 0 and sum(a["time"] > cut for a in archives) >= last:
        args += ["--keep-within", f"{hours}H"]
    else:
        args += ["--keep-last", str(last)]
    engine.run(args + ["{repo}"], what="prune")
    engine.run(["compact", "--lock-wait", str(LOCK_WAIT), "{repo}"], what="compact")
    after = [a["name"] for a in engine.archives()]
    return PruneReport(kept=after, pruned=[n for n in before if n not in set(after)], keep_last=last, keep_days=days)


# -- restore and verify --------------------------------------------------------------------------
def _resolve(engine: Borg, snapshot: str) -> str:
    names = [a["name"] for a in engine.archives()]
    if not names:
        raise BackupError(f"{engine.repo}: no photolab snapshot in this repository yet; run `photolab backup` first")
    if snapshot in ("latest", "last", ""):
        return names[-1]
    if snapshot in names:
        return snapshot
    if PREFIX + snapshot in names:
        return PREFIX + snapshot
    raise BackupError(f"{engine.repo}: no snapshot {snapshot!r}; the newest is {names[-1]} "
                      "(`photolab backup LIBRARY --list` shows them all)")


@dataclass
class RestoreReport:
    snapshot: str
    into: str
    files: int
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"restored {self.files} files from {self.snapshot} into {self.into}"


def restore(library, snapshot: str = "latest", paths=(), *, into, repository: str | None = None,
            password_file=None) -> RestoreReport:
    """Extract a snapshot (or only ``paths`` of it, relative to the library) into the folder ``into``.

    ``into`` must be outside the library and empty or new: nothing is ever written over a file. A whole
    snapshot restored is a working library (its catalog copy is put back as ``.photolab/catalog.sqlite``).
    """
    lib = open_library(library)
    engine, _ = _engine(lib, repository, password_file)
    dest = Path(into).expanduser().resolve()
    if dest == lib.root or lib.root in dest.parents:
        raise BackupError(f"{dest}: inside the live library {lib.root}; restore into a folder outside it and copy "
                          "back what you need (nothing is restored over the library)")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest}: not an empty folder; restore into an empty or new folder (nothing is "
                          "overwritten)")
    name = _resolve(engine, snapshot)
    wanted = []
    for p in paths:
        p = Path(p)
        if p.is_absolute():
            try:
                p = Path(os.path.abspath(p)).relative_to(lib.root)
            except ValueError:
                raise BackupError(f"{p}: not a path in the library {lib.root}; give paths inside it") from None
        rel = PurePosixPath(*p.parts).as_posix()
        wanted.append(CATALOG_COPY if rel == LIVE_CATALOG else rel)
    dest.mkdir(parents=True, exist_ok=True)
    _, warnings = engine.run(["extract", "--lock-wait", str(LOCK_WAIT), f"{{repo}}::{name}", "--", *wanted],
                             cwd=dest, what="extract")
    missing = [w for w in warnings if "never matched" in w]
    if missing:
        raise BackupError(f"{name}: {missing[0]}; the snapshot has no such file (paths are relative to the library, "
                          "as in the catalog)")
    copy = dest / CATALOG_COPY
    if copy.is_file():
        os.replace(copy, dest / LIVE_CATALOG)
        with contextlib.suppress(OSError):
            copy.parent.rmdir()
    files = sum(1 for p in dest.rglob("*") if p.is_file())
    return RestoreReport(snapshot=name, into=str(dest), files=files, warnings=warnings)


@dataclass
class VerifyReport:
    snapshot: str
    checked: bool                      # borg check passed
    compared: int                      # files extracted and compared byte for byte
    identical: int
    differ: list[str] = field(default_factory=list)
    changed_since: list[str] = field(default_factory=list)   # changed in the library since: not compared

    @property
    def ok(self) -> bool:
        return self.checked and not self.differ

    def summary(self) -> str:
        s = (f"verify: repository and snapshots checked by borg; {self.identical} of {self.compared} sampled files "
             f"of {self.snapshot} identical byte for byte to the library")
        if self.changed_since:
            s += f" ({len(self.changed_since)} more changed in the library since the snapshot, not compared)"
        if self.differ:
            s += f"; DIFFERENT: {', '.join(self.differ[:5])}"
        return s


def verify(library, *, sample: int = 20, seed: int | None = None, full: bool = False, repository: str | None = None,
           password_file=None) -> VerifyReport:
    """Check the repository (``borg check``; ``full``: also read and authenticate every chunk), then extract
    a random sample of ``sample`` files of the newest snapshot and compare them byte for byte with the
    library: with the same file where it is unchanged since the snapshot (same size and modification
    time: any difference is reported), else with the file of the same content where the catalog has
    moved it; a file rewritten or deleted since is counted as changed, not compared."""
    lib = open_library(library)
    engine, _ = _engine(lib, repository, password_file)
    name = _resolve(engine, "latest")
    engine.run(["check", "--lock-wait", str(LOCK_WAIT), *(["--verify-data"] if full else []), "{repo}"],
               what="check")
    out, _ = engine.run(["list", "--json-lines", "--format", "{type}{path}{size}{mtime}", f"{{repo}}::{name}"],
                        what="list")
    items = [json.loads(line) for line in out.splitlines() if line.strip()]
    files = [i for i in items if i.get("type") == "-" and not i["path"].startswith(STATE_DIR + "/")]
    rng = random.Random(seed)
    picked = rng.sample(files, min(sample, len(files)))
    by_sha = paths_by_sha(lib.catalog.conn)
    identical, differ, changed = 0, [], []
    if picked:
        from photolab.core.fileops import sha256_file

        with tempfile.TemporaryDirectory(prefix="photolab-verify-") as tmp:
            engine.run(["extract", f"{{repo}}::{name}", "--", *[i["path"] for i in picked]], cwd=tmp,
                       what="extract")
            for i in picked:
                got, live = Path(tmp) / i["path"], lib.root / i["path"]
                try:
                    st = live.stat()
                    unchanged = st.st_size == i["size"] and abs(
                        st.st_mtime_ns / 1e9 - _dt.datetime.fromisoformat(i["mtime"]).timestamp()) < 2e-6
                except OSError:
                    unchanged = False
                if unchanged:   # the same file, untouched since: its bytes must be the same
                    if got.is_file() and filecmp.cmp(got, live, shallow=False):
                        identical += 1
                    else:
                        differ.append(i["path"])
                    continue
                # moved or rewritten since: compare with the library's file of the same content, if any
                others = [lib.root / p for p in by_sha.get(sha256_file(got), [])] if got.is_file() else []
                if any(o.is_file() and filecmp.cmp(got, o, shallow=False) for o in others):
                    identical += 1
                else:
                    changed.append(i["path"])
    compared = identical + len(differ)
    return VerifyReport(snapshot=name, checked=True, compared=compared, identical=identical, differ=differ,
                        changed_since=changed)


__all__ = ["BackupError", "BackupRequiredError", "BackupSettings", "BackupStatus", "Borg", "PruneReport",
           "RestoreReport", "SnapshotReport", "VerifyReport", "backup", "borg_binary", "checked", "configure",
           "guard", "last_change", "prune", "restore", "scheduled", "settings", "snapshots", "status", "verify"]
