"""A photo library: one master folder and its ``.photolab/`` state folder."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import sqlite3
import urllib.parse

from photolab.store.catalog import BACKUP_DIR, CATALOG_FILE, STATE_DIR, Catalog, CatalogError, list_backups, utcnow

STATE_SUBDIRS = ("features", "models", "quarantine", "versions")


class LibraryError(CatalogError):
    """A library folder is missing, not initialised, or unusable."""


class Library:
    """An initialised photo library.

    Attributes:
        root: the master folder (absolute).
        state: ``root/.photolab``.
        catalog: the open :class:`~photolab.store.catalog.Catalog`.
    """

    def __init__(self, root: str | os.PathLike, *, lock_timeout: float = 60.0):
        self.root = Path(root).expanduser().resolve()
        self.state = self.root / STATE_DIR
        refuse_lost_catalog(self.root)
        if not (self.state / CATALOG_FILE).is_file():
            raise LibraryError(
                f"{self.root}: not a photolab library (no {STATE_DIR}/{CATALOG_FILE}); "
                f"create it with `photolab init {root}`"
            )
        self.catalog = Catalog(self.state / CATALOG_FILE, lock_timeout=lock_timeout)

    def rel(self, path: str | os.PathLike) -> str:
        """Path relative to the library root, '/'-separated (the catalog's form)."""
        p = Path(path)
        if p.is_absolute():
            p = p.relative_to(self.root)
        return PurePosixPath(*p.parts).as_posix()

    def abs(self, rel: str) -> Path:
        """Absolute path of a catalog path."""
        return self.root.joinpath(*PurePosixPath(rel).parts)

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> "Library":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Library({str(self.root)!r})"


def init_library(root: str | os.PathLike) -> Library:
    """Create (or re-open) a library at ``root``.

    Creates the folder if needed, ``.photolab/`` with its sub-folders and an
    empty, current-schema catalog. Running it on an existing library only
    migrates the catalog; nothing is overwritten.

    Args:
        root: the master folder of the library.

    Returns:
        The open :class:`Library`.
    """
    root = Path(root).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise LibraryError(f"{root}: exists and is not a folder; choose another library path")
    state = root / STATE_DIR
    refuse_lost_catalog(root)
    for sub in ("",) + STATE_SUBDIRS:
        (state / sub).mkdir(parents=True, exist_ok=True)
    catalog = Catalog(state / CATALOG_FILE)
    if catalog.get_meta("created_at") is None:
        catalog.set_meta("created_at", utcnow())
    catalog.close()
    return Library(root)


def _catalog_is_lost(path: Path) -> bool:
    """No catalog file, an empty one, or one without a schema (not a damaged one: that is reported as such)."""
    if not path.is_file() or path.stat().st_size == 0:
        return True
    if path.stat().st_size > 8192:    # more than a header page: it has a schema (or is damaged, not lost)
        return False
    try:
        conn = sqlite3.connect(f"file:{urllib.parse.quote(str(path))}?mode=ro", uri=True)
        try:
            from photolab.store.meta import has_no_schema

            return has_no_schema(conn)
        finally:
            conn.close()
    except sqlite3.Error:
        return False


def _kept_data(state: Path) -> list[str]:
    """What under ``.photolab/`` only makes sense with its catalog: quarantined files, kept versions, backups."""
    found = []
    for sub, what in (("quarantine", "quarantined files"), ("versions", "kept versions of rewritten files"),
                      (BACKUP_DIR, "catalog backups")):
        folder = state / sub
        if folder.is_dir() and next((p for p in folder.rglob("*") if p.is_file()), None) is not None:
            found.append(what)
    return found


def refuse_lost_catalog(root: str | os.PathLike) -> None:
    """Refuse to start a new catalog where one was lost: a missing or empty catalog while
    ``.photolab/`` still holds quarantined files, versions or backups (restoring those needs the
    catalog). Raises :class:`LibraryError` with the way to restore a backup generation."""
    root = Path(root).expanduser().resolve()
    state = root / STATE_DIR
    if not state.is_dir() or not _catalog_is_lost(state / CATALOG_FILE):
        return
    kept = _kept_data(state)
    if not kept:
        return
    backups = list_backups(root)
    how = (f"restore the newest backup with `photolab repair {root} --restore-catalog` ({len(backups)} "
           f"generations, newest {backups[0].name}; `--list-backups` lists them)" if backups else
           f"no catalog backup exists: move {state} aside (its files stay in it) before starting a new library")
    raise LibraryError(f"{state / CATALOG_FILE}: the catalog is missing or empty but {STATE_DIR}/ still holds "
                       f"{', '.join(kept)}; photolab does not start a new catalog over them; {how}")


def open_library(root: str | os.PathLike | Library) -> Library:
    """Open an existing library (a :class:`Library` is returned as it is)."""
    if isinstance(root, Library):
        return root
    return Library(root)
