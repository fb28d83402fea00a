"""The library catalog: one SQLite file under ``LIBRARY/.photolab/``.

The catalog is versioned (``PRAGMA user_version``) and migrated forward on
open, runs in WAL mode so readers never block the writer, and lets one writer
at a time change it: every write transaction holds an inter-process file lock
(``catalog.lock``), so a watcher and a notebook working on the same library
cannot interleave half-done changes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import sqlite3
import time
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

import filelock

from photolab.core.errors import PhotolabError

log = logging.getLogger(__name__)

STATE_DIR = ".photolab"
CATALOG_FILE = "catalog.sqlite"
LOCK_FILE = "catalog.lock"

# Each entry migrates the schema from version i to i + 1. Never edit an entry
# that has shipped: append a new one.
MIGRATIONS: list[str] = [
    # 0 -> 1: library, sources, files, gather log, runs, journal
    """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE sources (
        id          INTEGER PRIMARY KEY,
        label       TEXT NOT NULL UNIQUE,
        path        TEXT NOT NULL,
        removable   INTEGER NOT NULL DEFAULT 0,
        read_only   INTEGER NOT NULL DEFAULT 0,
        first_seen  TEXT NOT NULL,
        last_seen   TEXT NOT NULL
    );
    CREATE TABLE photos (
        id              INTEGER PRIMARY KEY,
        path            TEXT NOT NULL UNIQUE,      -- relative to the library, '/'-separated
        kind            TEXT NOT NULL,             -- photo | raw | sidecar | video | live | other
        size            INTEGER NOT NULL,
        mtime_ns        INTEGER NOT NULL,
        sha256          TEXT,
        format          TEXT,                      -- by content: JPEG, PNG, HEIF, CR2, ...
        width           INTEGER,
        height          INTEGER,
        orientation     INTEGER,
        captured_at     TEXT,                      -- ISO 8601, with offset when known
        captured_source TEXT,                      -- which fallback gave captured_at
        camera_make     TEXT,
        camera_model    TEXT,
        lens            TEXT,
        gps_lat         REAL,
        gps_lon         REAL,
        gps_alt         REAL,
        status          TEXT NOT NULL,             -- ok | warning | empty | corrupt | unsupported | too_large | unreadable | missing
        error           TEXT,
        source_id       INTEGER REFERENCES sources(id),
        indexed_at      TEXT NOT NULL
    );
    CREATE INDEX photos_sha ON photos(sha256);
    CREATE INDEX photos_status ON photos(status);
    CREATE TABLE gather_log (
        id          INTEGER PRIMARY KEY,
        source_id   INTEGER NOT NULL REFERENCES sources(id),
        source_rel  TEXT NOT NULL,
        sha256      TEXT NOT NULL,
        size        INTEGER NOT NULL,
        dest        TEXT NOT NULL,
        copied_at   TEXT NOT NULL,
        UNIQUE (source_id, source_rel, sha256)
    );
    CREATE TABLE runs (
        id          INTEGER PRIMARY KEY,
        stage       TEXT NOT NULL,
        started_at  TEXT NOT NULL,
        finished_at TEXT,
        report      TEXT                            -- JSON
    );
    CREATE TABLE journal (
        id          INTEGER PRIMARY KEY,
        batch       TEXT NOT NULL,
        op          TEXT NOT NULL,                  -- move | copy | quarantine | rewrite | ...
        src         TEXT,
        dst         TEXT,
        sha256      TEXT,
        state       TEXT NOT NULL,                  -- planned | done | undone | rolled_back
        created_at  TEXT NOT NULL,
        detail      TEXT
    );
    CREATE INDEX journal_batch ON journal(batch);
    """,
    # 1 -> 2: labeling pass (features, scores), thresholds, labeled examples, tag history
    """
    CREATE TABLE features (
        photo_id    INTEGER PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE,
        model       TEXT NOT NULL,                  -- backbone version that made the embedding
        sha256      TEXT,                           -- content the features were computed from
        embedding   BLOB NOT NULL,                  -- float16 x num_features
        top5        TEXT NOT NULL,                  -- JSON [[wnid, probability], ...]
        phash       TEXT,
        dhash       TEXT,
        sharpness   REAL,                           -- 90th percentile of tile Laplacian variance
        brightness  REAL,                           -- mean luminance 0..1
        dark_frac   REAL,                           -- share of pixels below 0.1
        clipped_frac REAL,                          -- share of pixels above 0.97
        thumb       TEXT,                           -- relative to .photolab/features/
        computed_at TEXT NOT NULL
    );
    CREATE TABLE scores (
        photo_id    INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        tag         TEXT NOT NULL,
        score       REAL,                           -- NULL: nothing scores this tag yet
        source      TEXT NOT NULL,                  -- prior | measure | head | faces | none
        model       TEXT NOT NULL,
        PRIMARY KEY (photo_id, tag)
    );
    CREATE INDEX scores_tag ON scores(tag, score);
    CREATE TABLE thresholds (
        tag         TEXT PRIMARY KEY,
        threshold   REAL NOT NULL,
        updated_at  TEXT NOT NULL
    );
    CREATE TABLE labels (
        photo_id    INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        tag         TEXT NOT NULL,
        value       INTEGER NOT NULL,               -- 1 has the tag, 0 does not
        who         TEXT NOT NULL,
        at          TEXT NOT NULL,
        PRIMARY KEY (photo_id, tag)
    );
    CREATE TABLE tag_history (
        id          INTEGER PRIMARY KEY,
        old         TEXT NOT NULL,
        new         TEXT NOT NULL,
        action      TEXT NOT NULL,
        at          TEXT NOT NULL
    );
    """,
    # 2 -> 3: events and a person's edits to them (kept by photo id, so they survive re-runs)
    """
    CREATE TABLE events (
        id          INTEGER PRIMARY KEY,            -- the id of the event's earliest photo
        name        TEXT NOT NULL,
        auto_name   TEXT NOT NULL,
        start       TEXT NOT NULL,
        end         TEXT NOT NULL,
        photos      INTEGER NOT NULL,
        lat         REAL,
        lon         REAL,
        dominant    TEXT
    );
    CREATE TABLE photo_events (
        photo_id    INTEGER PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE,
        event_id    INTEGER NOT NULL
    );
    CREATE INDEX photo_events_event ON photo_events(event_id);
    CREATE TABLE event_edits (
        id          INTEGER PRIMARY KEY,
        action      TEXT NOT NULL,                  -- rename | merge | split
        photo_id    INTEGER NOT NULL,
        other_id    INTEGER,
        value       TEXT,
        at          TEXT NOT NULL
    );
    """,
    # 3 -> 4: perceptual hashes of the 8 rotations/mirrorings, for duplicates turned or flipped
    """
    ALTER TABLE features ADD COLUMN phash8 TEXT;    -- 8 pHashes (hex, ',') of the dihedral transforms
    ALTER TABLE features ADD COLUMN dhash8 TEXT;    -- 8 dHashes, same order
    CREATE INDEX photos_size ON photos(size);
    """,
    # 4 -> 5: metadata writing: kept versions of rewritten files, ratings, what was written where
    """
    CREATE TABLE versions (
        id          INTEGER PRIMARY KEY,
        photo_id    INTEGER,                        -- the photo (or the photo a sidecar belongs to)
        path        TEXT NOT NULL,                  -- the file's path when it was rewritten
        sha256      TEXT,                           -- the kept content; NULL: the file did not exist yet
        batch       TEXT NOT NULL,
        saved_at    TEXT NOT NULL
    );
    CREATE INDEX versions_photo ON versions(photo_id);
    CREATE INDEX versions_path ON versions(path);
    CREATE TABLE ratings (
        photo_id    INTEGER PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE,
        rating      INTEGER NOT NULL,               -- 0..5 (-1: rejected, as Lightroom writes it)
        source      TEXT NOT NULL,                  -- person | file (read back from another app)
        at          TEXT NOT NULL
    );
    CREATE TABLE metadata_written (
        photo_id    INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        target      TEXT NOT NULL,                  -- file | sidecar
        path        TEXT NOT NULL,                  -- the file written (the photo or its sidecar)
        sha256      TEXT NOT NULL,                  -- its content after writing
        digest      TEXT NOT NULL,                  -- hash of what was written (tags, rating, options)
        at          TEXT NOT NULL,
        PRIMARY KEY (photo_id, target)
    );
    """,
    # 5 -> 6: review and training: samples, reviewed photos, trained heads, prior scores a head replaced
    """
    CREATE TABLE samples (
        name        TEXT NOT NULL,
        photo_id    INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        stratum     TEXT NOT NULL,
        seed        INTEGER NOT NULL,
        created     TEXT NOT NULL,
        PRIMARY KEY (name, photo_id)
    );
    CREATE TABLE reviews (
        photo_id    INTEGER PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE,
        who         TEXT NOT NULL,
        at          TEXT NOT NULL
    );
    CREATE TABLE heads (
        version     TEXT PRIMARY KEY,               -- head-<time>: file .photolab/models/heads/<version>.safetensors
        created     TEXT NOT NULL,
        examples    INTEGER NOT NULL,
        tags        TEXT NOT NULL,                  -- JSON: the tags it scores
        replaces    TEXT NOT NULL,                  -- JSON: the tags whose scores it provides when active
        metrics     TEXT NOT NULL,                  -- JSON: per-tag cross-validated figures
        active      INTEGER NOT NULL DEFAULT 0
    );
    ALTER TABLE features ADD COLUMN colorfulness REAL;   -- Hasler-Suesstrunk, 0 for grayscale
    CREATE TABLE import_state (                     -- what the watched import folder's files became
        path        TEXT PRIMARY KEY,               -- absolute path in the import folder
        size        INTEGER NOT NULL,
        mtime_ns    INTEGER NOT NULL,
        state       TEXT NOT NULL,                  -- done | retry | failed
        attempts    INTEGER NOT NULL DEFAULT 0,
        next_try    REAL,                           -- unix time of the next attempt (retry)
        photo_id    INTEGER,
        reason      TEXT,
        at          TEXT NOT NULL
    );
    CREATE TABLE places (                           -- offline reverse geocoding of a photo's GPS position
        photo_id    INTEGER PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE,
        lat         REAL NOT NULL,
        lon         REAL NOT NULL,
        country     TEXT NOT NULL,
        region      TEXT,
        city        TEXT,
        km          REAL NOT NULL,                  -- distance to the named place
        confirmed   INTEGER NOT NULL DEFAULT 0,     -- 1: a person confirmed it (only then written into files)
        at          TEXT NOT NULL
    );
    CREATE TABLE scores_stash (                     -- scores a head replaced, put back on rollback
        photo_id    INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        tag         TEXT NOT NULL,
        score       REAL,
        source      TEXT NOT NULL,
        model       TEXT NOT NULL,
        PRIMARY KEY (photo_id, tag)
    );
    """,
    # 6 -> 7: people: detected faces, their embeddings and names; which photos were scanned
    """
    CREATE TABLE faces (
        id          INTEGER PRIMARY KEY,
        photo_id    INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        x           REAL NOT NULL,                  -- box: left, top, width, height as fractions
        y           REAL NOT NULL,                  --   of the upright photo (EXIF orientation applied)
        w           REAL NOT NULL,
        h           REAL NOT NULL,
        score       REAL NOT NULL,                  -- detector score
        landmarks   TEXT NOT NULL,                  -- JSON [[x, y], ...], 5 points, fractions
        embedding   BLOB NOT NULL,                  -- 128 float32 (dlib ResNet descriptor)
        crop        TEXT NOT NULL,                  -- aligned crop, relative to .photolab/
        cluster     INTEGER,                        -- group of unnamed faces (cluster_faces)
        person      TEXT,                           -- the name a person gave it
        named_by    TEXT,
        named_at    TEXT,
        suggestion  TEXT,                           -- the name photolab suggests (not written until confirmed)
        distance    REAL,                           -- to the nearest named face of the suggested person
        rejected    INTEGER NOT NULL DEFAULT 0,     -- 1: not a face, or not to be tagged
        model       TEXT NOT NULL,
        at          TEXT NOT NULL
    );
    CREATE INDEX faces_photo ON faces(photo_id);
    CREATE INDEX faces_person ON faces(person);
    CREATE TABLE face_scans (
        photo_id    INTEGER PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE,
        model       TEXT NOT NULL,
        faces       INTEGER NOT NULL,
        at          TEXT NOT NULL
    );
    """,
    # 7 -> 8: colour measures (tagging.color_measures): where the warm and the blue light is, for sunset
    """
    ALTER TABLE features ADD COLUMN warm_frac REAL;      -- NULL on features made before: taken from the thumbnail
    ALTER TABLE features ADD COLUMN warm_top_frac REAL;
    ALTER TABLE features ADD COLUMN blue_frac REAL;
    ALTER TABLE features ADD COLUMN blue_top_frac REAL;
    ALTER TABLE features ADD COLUMN saturation REAL;
    ALTER TABLE features ADD COLUMN top_lift REAL;
    """,
    # 8 -> 9: videos: duration and codec from the container; videos indexed before are read again
    """
    ALTER TABLE photos ADD COLUMN duration REAL;    -- seconds (videos)
    ALTER TABLE photos ADD COLUMN codec TEXT;       -- the video stream's codec (h264, hevc, ...)
    UPDATE photos SET mtime_ns = -1 WHERE kind = 'video';
    """,
    # 9 -> 10: library-wide reads that stay small: narrow indexes beside the wide feature rows, and a
    # log of the photos whose scores changed, so the score matrix (store/scores.py) is patched, not re-read
    # (delete, then insert: an outer statement's conflict clause, an upsert's included, overrides a trigger's)
    """
    CREATE INDEX IF NOT EXISTS features_dedupe_stamp ON features(photo_id, computed_at, sha256, model)
        WHERE phash8 IS NOT NULL;
    CREATE INDEX features_thumb ON features(photo_id, thumb);
    CREATE INDEX journal_state ON journal(state);   -- the few moves still planned, found without a scan
    CREATE INDEX journal_src ON journal(src);       -- where a file went since, followed by name
    CREATE INDEX gather_log_dest ON gather_log(dest);
    CREATE TABLE score_changes (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        photo_id    INTEGER NOT NULL UNIQUE         -- its latest change only
    );
    CREATE TRIGGER scores_inserted AFTER INSERT ON scores BEGIN
        DELETE FROM score_changes WHERE photo_id = NEW.photo_id;
        INSERT INTO score_changes(photo_id) VALUES (NEW.photo_id);
    END;
    CREATE TRIGGER scores_updated AFTER UPDATE ON scores BEGIN
        DELETE FROM score_changes WHERE photo_id IN (OLD.photo_id, NEW.photo_id);
        INSERT INTO score_changes(photo_id) VALUES (OLD.photo_id);
        INSERT INTO score_changes(photo_id) SELECT NEW.photo_id WHERE NEW.photo_id != OLD.photo_id;
    END;
    CREATE TRIGGER scores_deleted AFTER DELETE ON scores BEGIN
        DELETE FROM score_changes WHERE photo_id = OLD.photo_id;
        INSERT INTO score_changes(photo_id) VALUES (OLD.photo_id);
    END;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)

BACKUP_DIR = "backups"        # .photolab/backups/catalog-<UTC time>-<reason>.sqlite
BACKUPS_RECENT = 3            # generations kept: the newest few, whatever their age,
BACKUPS_DAILY = 3             # and the newest of each of the last few days
BACKUP_MIN_AGE_S = 600.0      # bulk changes closer together than this share one backup
BACKUP_SMALL = 1000           # a change of fewer files than this shares a generation younger than BACKUP_MIN_AGE_S


class CatalogError(PhotolabError, RuntimeError):
    """The catalog cannot be opened or written; the message says why and what to do."""


def explain(exc: BaseException, path: str | os.PathLike) -> CatalogError | None:
    """A one-line :class:`CatalogError` for an SQLite error a user can fix (disk full, read-only,
    damaged file), naming the catalog file and the next step; ``None`` for other errors."""
    msg = str(exc).lower()
    path = Path(path)
    root = path.parent.parent if path.parent.name == STATE_DIR else path.parent
    if "disk i/o error" in msg:   # what SQLite says when a write to a full disk fails part-way
        try:
            import shutil

            usage = shutil.disk_usage(path.parent)
            if usage.free < max(1 << 20, usage.total // 1000):
                msg = "disk is full"
        except OSError:
            pass
    if "disk is full" in msg or "no space left" in msg:
        try:
            import shutil

            free = f"{shutil.disk_usage(path.parent).free / 1e6:.1f} MB free"
        except OSError:
            free = "no space left"
        return CatalogError(f"{path}: the disk holding the catalog is full ({free}); free space on it and run the "
                            "command again (the unfinished change was rolled back, nothing is lost)")
    if "malformed" in msg or "not a database" in msg or "database corrupt" in msg:
        return CatalogError(f"{path}: the catalog file is damaged ({exc}); restore a backup generation with "
                            f"`photolab repair {root} --restore-catalog` (`--list-backups` shows them)")
    if "readonly" in msg or "read-only" in msg or "unable to open database" in msg:
        return CatalogError(f"{path}: the library is read-only or its folder cannot be written ({exc}); "
                            "make it writable (remount it read-write, fix the owner) to change it; "
                            "reading commands such as export-csv and check work on a read-only library")
    if "disk i/o error" in msg:
        return CatalogError(f"{path}: the disk reported an I/O error ({exc}); check the disk (dmesg, SMART) and "
                            "copy the library to a healthy disk before running photolab on it again")
    return None


def list_backups(root: str | os.PathLike) -> list[Path]:
    """The catalog's backup generations of the library at ``root``, newest first."""
    folder = Path(root) / STATE_DIR / BACKUP_DIR
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.glob("catalog-*.sqlite") if p.is_file()), key=lambda p: p.name, reverse=True)


def _backup_day(p: Path) -> str:
    return p.name.split("-")[1][:8]


def _marks(conn) -> tuple:
    """The newest run and journal entry, and how many moves are done: a catalog no stage ran on
    and nothing was journaled in since has the same marks."""
    try:
        return (conn.execute("SELECT max(id) FROM runs").fetchone()[0],
                *conn.execute("SELECT max(id), sum(state = 'done') FROM journal").fetchone())
    except sqlite3.Error:
        return ()


def _change_marks_of(path: Path) -> tuple:
    try:
        conn = sqlite3.connect(f"file:{urllib.parse.quote(str(path))}?mode=ro", uri=True)
    except sqlite3.Error:
        return ()
    try:
        return _marks(conn)
    finally:
        conn.close()


def _rotate_backups(folder: Path) -> None:
    """Keep the :data:`BACKUPS_RECENT` newest generations and the newest of each of the last
    :data:`BACKUPS_DAILY` days; remove the others."""
    gens = sorted(folder.glob("catalog-*.sqlite"), key=lambda p: p.name, reverse=True)
    keep = set(gens[:BACKUPS_RECENT])
    days: dict[str, Path] = {}
    for p in gens:
        days.setdefault(_backup_day(p), p)
    keep.update(list(days.values())[:BACKUPS_DAILY])
    for p in gens:
        if p not in keep:
            p.unlink(missing_ok=True)


def utcnow() -> str:
    """Current UTC time as ISO 8601 with offset, second resolution."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


class Catalog:
    """Connection to one library's catalog.

    Reads go straight to SQLite (WAL lets them run beside a writer). Writes go
    through :meth:`write`, which takes the library's inter-process lock and an
    immediate transaction, and commits or rolls back as a whole.

    Args:
        path: the ``catalog.sqlite`` file.
        lock_timeout: seconds to wait for another writer before giving up.
    """

    def __init__(self, path: str | os.PathLike, *, lock_timeout: float = 60.0):
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self._lock = filelock.FileLock(str(self.path.with_name(LOCK_FILE)), timeout=lock_timeout)
        self._depth = 0
        self._pass: list | None = None   # inside one_backup_for(): the backups asked for
        self._bulk: int | None = None    # and the batch size below which it takes none
        # a library on a read-only mount (or a folder this user cannot write) is opened for reading
        self.read_only = self.path.is_file() and (not os.access(self.path.parent, os.W_OK)
                                                  or not os.access(self.path, os.W_OK))
        try:
            self.conn = self._connect(lock_timeout)
            self.conn.row_factory = sqlite3.Row
            if not self.read_only:
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.execute("PRAGMA cache_size=-131072")   # 128 MB: bulk score writes keep their index pages in memory
            self.conn.execute(f"PRAGMA busy_timeout={int(lock_timeout * 1000)}")
            self.migrate()
        except sqlite3.DatabaseError as exc:
            raise (explain(exc, self.path) or CatalogError(f"{self.path}: cannot open the catalog ({exc})")) from exc

    def _connect(self, lock_timeout: float) -> sqlite3.Connection:
        kw = dict(timeout=lock_timeout, isolation_level=None, check_same_thread=False)
        if not self.read_only:
            return sqlite3.connect(str(self.path), **kw)
        uri = "file:" + urllib.parse.quote(str(self.path))
        try:
            conn = sqlite3.connect(uri + "?mode=ro", uri=True, **kw)
            conn.execute("PRAGMA user_version").fetchone()
            return conn
        except sqlite3.OperationalError:
            wal = self.path.with_name(self.path.name + "-wal")
            if wal.exists() and wal.stat().st_size:
                raise
            # a cleanly closed WAL catalog on a read-only mount: nothing can change it meanwhile
            return sqlite3.connect(uri + "?immutable=1", uri=True, **kw)

    def _refuse_read_only(self) -> None:
        raise CatalogError(
            f"{self.path}: the library is read-only (its folder cannot be written); this command changes the "
            "catalog: make the library writable (remount it read-write) and run it again; reading commands "
            "such as export-csv and check work as it is")

    # -- schema -----------------------------------------------------------
    @property
    def version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self) -> None:
        """Bring the schema up to :data:`SCHEMA_VERSION`, one migration at a time."""
        current = self.version
        if current > SCHEMA_VERSION:
            raise CatalogError(
                f"{self.path}: catalog schema version {current} is newer than this photolab "
                f"understands ({SCHEMA_VERSION}); upgrade photolab to open it"
            )
        if current == SCHEMA_VERSION:
            return
        if self.read_only:
            raise CatalogError(
                f"{self.path}: this catalog was made by an older photolab (schema {current}; this one uses "
                f"{SCHEMA_VERSION}) and must be upgraded before any command, reading ones too, and the library "
                "is read-only; make it writable once (remount it read-write, fix the owner) so photolab can upgrade "
                "it (a backup generation is kept), or open it with the photolab that made it")
        if current > 0:
            self.backup(f"before-schema-{SCHEMA_VERSION}", min_age=0)
        with self.write():
            current = self.version  # another process may have migrated meanwhile
            for target in range(current + 1, SCHEMA_VERSION + 1):
                log.info("migrating catalog %s to schema version %d", self.path, target)
                for statement in _split_sql(MIGRATIONS[target - 1]):
                    self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version={target}")
            self.conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_migrated_at', ?)", (utcnow(),)
            )

    # -- transactions -----------------------------------------------------
    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the library's writer lock (re-entrant)."""
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        if self.read_only:
            self._refuse_read_only()
        try:
            self._lock.acquire()
        except filelock.Timeout as exc:
            raise CatalogError(
                f"{self.path}: another photolab process has been writing to this library for more "
                f"than {self.lock_timeout:.0f} s (lock {self._lock.lock_file}); wait for it to finish "
                "or stop it"
            ) from exc
        self._depth = 1
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if self.conn.in_transaction:
                try:
                    self.conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            err = explain(exc, self.path)
            if err is None:
                raise
            raise err from exc
        finally:
            self._depth = 0
            self._lock.release()

    def query(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def query_ids(self, sql: str, ids, params: tuple = (), *, column: str = "photo_id",
                  chunk: int = 900) -> list[sqlite3.Row]:
        """``sql`` with an ``{ids}`` placeholder in its WHERE clause: for every row (``ids`` None),
        or for ``column IN ids`` in chunks that stay under SQLite's parameter limit."""
        if ids is None:
            return self.query(sql.replace("{ids}", "1"), params)
        ids = [int(i) for i in ids]
        out: list[sqlite3.Row] = []
        for k in range(0, len(ids), chunk):
            part = ids[k:k + chunk]
            out += self.query(sql.replace("{ids}", f"{column} IN ({', '.join('?' * len(part))})"), (*params, *part))
        return out

    def dataframe(self, sql: str, params: Any = (), *, index_col: str | None = None):
        """Run a query and return a pandas DataFrame."""
        import pandas as pd

        return pd.read_sql_query(sql, self.conn, params=params, index_col=index_col)

    # -- small helpers ----------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self.write() as db:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def del_meta(self, key: str) -> None:
        if self.get_meta(key) is not None:
            with self.write() as db:
                db.execute("DELETE FROM meta WHERE key = ?", (key,))

    def start_run(self, stage: str) -> int:
        with self.write() as db:
            cur = db.execute("INSERT INTO runs(stage, started_at) VALUES (?, ?)", (stage, utcnow()))
            return int(cur.lastrowid)

    def finish_run(self, run_id: int, report: dict) -> None:
        with self.write() as db:
            db.execute(
                "UPDATE runs SET finished_at = ?, report = ? WHERE id = ?",
                (utcnow(), json.dumps(report, default=str, sort_keys=True), run_id),
            )

    # -- backups ----------------------------------------------------------
    def backup(self, reason: str = "manual", *, min_age: float = BACKUP_MIN_AGE_S,
               files: int | None = None) -> Path | None:
        """Copy the catalog (SQLite's online backup) to ``.photolab/backups/`` and rotate the
        generations. Skipped when a generation younger than ``min_age`` seconds already holds every
        run and journaled change, or, before a small change (``files`` below ``BACKUP_SMALL``: a
        watcher pass over a few new photos), when the newest generation is younger than
        ``min_age`` and was made after a batch (it already holds the state this change starts
        from, save index and tag rows, which can be redone from the files), so a 500,000-photo
        catalog is copied once per batch rather than before and after each; the backup after a
        batch (which holds its journal, for undo) is always made, and so is a day's first one. Returns the new file, or ``None`` when none was made. A failure
        (a full disk) is logged, never raised: the change it precedes is journaled anyway."""
        if self.read_only:
            return None
        if self._pass is not None:
            first = not self._pass
            self._pass.append(reason)
            if self._bulk is not None:   # only before the first batch of ``bulk`` files or more
                if not reason.startswith("before-") or (files or 0) < self._bulk or self._bulk_done:
                    return None
                self._bulk_done = True
            elif reason.startswith("after-") or not first:
                return None
        folder = self.path.parent / BACKUP_DIR
        gens = list_backups(self.path.parent.parent) if self.path.parent.name == STATE_DIR else sorted(
            folder.glob("catalog-*.sqlite"), reverse=True)
        now = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}"
        today = stamp[:8]
        marks = self._change_marks()
        if gens and _backup_day(gens[0]) == today and min_age > 0:
            # a recent generation that already holds every run and journaled change: nothing to add
            if time.time() - gens[0].stat().st_mtime < min_age and (
                    (files is not None and files < BACKUP_SMALL and "-after-" in gens[0].name)
                    or _change_marks_of(gens[0]) == marks):
                return None
        if not any(_backup_day(p) == today for p in gens):
            reason = "daily"
        reason = "".join(c if c.isalnum() or c in "-_" else "_" for c in reason)[:40]
        dest = folder / f"catalog-{stamp}-{reason}.sqlite"
        tmp = folder / f".{dest.name}.tmp"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            out = sqlite3.connect(str(tmp))
            try:
                self.conn.backup(out)
            finally:
                out.close()
            os.replace(tmp, dest)
            _rotate_backups(folder)
        except (OSError, sqlite3.Error) as exc:
            tmp.unlink(missing_ok=True)
            full = "full" in str(exc).lower() or getattr(exc, "errno", None) == 28
            (log.info if full else log.warning)("%s: catalog backup not made (%s)", folder, exc)
            return None
        log.info("catalog backed up to %s", dest)
        return dest

    @contextlib.contextmanager
    def one_backup_for(self, what: str, *, bulk: int | None = None) -> Iterator[None]:
        """Several small batches as one change (a watcher pass): the first backup asked for inside is made
        as :meth:`backup` decides (the state before them); later ``before-`` ones are left out (what changed
        since is these batches' own journaled work), and the ``after-`` ones become one ``after-<what>``
        backup at the end, so a 500,000-photo catalog is copied at most twice rather than once per batch.
        With ``bulk``: one backup at most, only before the first batch of ``bulk`` files or more; a change of
        fewer files (journaled, so undoable) copies no catalog."""
        if self._pass is not None:
            yield
            return
        self._pass, self._bulk, self._bulk_done = [], bulk, False
        try:
            yield
        finally:
            asked, self._pass, self._bulk = self._pass, None, None
            if bulk is None and any(r.startswith("after-") for r in asked):
                self.backup(f"after-{what}")

    def _change_marks(self) -> tuple:
        return _marks(self.conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (no semicolons inside literals here; a trigger's
    body, ``BEGIN ...; END``, stays one statement)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    out, buf = [], ""
    for piece in "\n".join(lines).split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n;"):
                out.append(buf.strip().rstrip(";").strip())
            buf = ""
    if buf.strip(" \n;"):
        out.append(buf.strip().rstrip(";").strip())
    return out
