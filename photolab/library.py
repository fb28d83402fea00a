"""A photo library: one master folder and its ``.photolab/`` state folder."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from .catalog import CATALOG_FILE, STATE_DIR, Catalog, CatalogError, utcnow

STATE_SUBDIRS = ("features", "models", "quarantine", "versions")


class LibraryError(CatalogError):
    """A library folder is missing, not initialised, or unusable."""


class Library:
    """An initialised photo library.

    Attributes:
        root: the master folder (absolute).
        state: ``root/.photolab``.
        catalog: the open :class:`~photolab.catalog.Catalog`.
    """

    def __init__(self, root: str | os.PathLike, *, lock_timeout: float = 60.0):
        self.root = Path(root).expanduser().resolve()
        self.state = self.root / STATE_DIR
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
    for sub in ("",) + STATE_SUBDIRS:
        (state / sub).mkdir(parents=True, exist_ok=True)
    catalog = Catalog(state / CATALOG_FILE)
    if catalog.get_meta("created_at") is None:
        catalog.set_meta("created_at", utcnow())
    catalog.close()
    return Library(root)


def open_library(root: str | os.PathLike | Library) -> Library:
    """Open an existing library (a :class:`Library` is returned as it is)."""
    if isinstance(root, Library):
        return root
    return Library(root)
