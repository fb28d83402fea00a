"""The notebooks' set-up call: open (or build) the library, show photolab's errors as one line.

Every notebook starts with :func:`setup`. It installs a handler so that an error a user can cause
(:class:`~photolab.errors.PhotolabError`) shows as one sentence with the next step instead of a
traceback, checks the folders before anything is created (a mistyped path is a message, not a new
empty library), gathers and indexes, and refuses ``DEMO = True`` on any library but a demo library.

A **demo library** carries the marker file ``.photolab/DEMO_LIBRARY``. Only ``photolab demo`` and
``setup(..., demo=True)`` on a folder that does not exist yet (or is empty) write it, so a person's
library never becomes one by accident; the notebooks' simulated clicks (``if DEMO:`` cells) run on
nothing else.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path

from .catalog import CATALOG_FILE, STATE_DIR
from .demo import DEMO_MARKER
from .errors import PhotolabError

log = logging.getLogger(__name__)


class NotebookError(PhotolabError):
    """A notebook's parameters point at a folder that is missing, empty or not allowed."""


def show_error(message: str) -> None:
    """Show one line, in red, with a plain-text copy for logs and tests."""
    from IPython.display import display

    display({"text/plain": f"photolab: {message}",
             "text/html": f"<div style='color:#a00;font-weight:600'>photolab: {html.escape(message)}</div>"},
            raw=True)


def _handler(shell, etype, value, tb, tb_offset=None):
    show_error(str(value))
    return []


def install_error_handler() -> bool:
    """Show :class:`PhotolabError` as one line in this IPython kernel; returns False outside IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    shell.set_custom_exc((PhotolabError,), _handler)
    return True


def _root(library) -> Path:
    from .library import Library

    return Path(library.root if isinstance(library, Library) else library).expanduser().resolve()


def is_demo_library(library) -> bool:
    """Whether ``library`` (a folder or an open library) carries the demo marker."""
    return (_root(library) / STATE_DIR / DEMO_MARKER).is_file()


def require_demo(library) -> None:
    """Raise unless ``library`` is a demo library: simulated clicks never touch a person's photos."""
    if not is_demo_library(library):
        root = _root(library)
        raise NotebookError(
            f"{root}: DEMO = True runs only on a demo library (made by `photolab demo`, or by a notebook with "
            "DEMO = True in a new folder); set DEMO = False for your own photos, or point LIBRARY at a new folder")


def usable_photos(lib) -> int:
    from .index import USABLE

    return lib.catalog.query(
        f"SELECT count(*) FROM photos WHERE status IN ({', '.join('?' * len(USABLE))})", USABLE)[0][0]


def setup(library, gather_from=None, *, demo: bool = False, tag: bool = True, require_photos: bool = True,
          gather_into: bool = True):
    """Open the notebook's library (creating it when photos are to be gathered into it), gather, index, tag.

    Args:
        library: the library folder (the notebook's ``LIBRARY``).
        gather_from: a folder of photos to copy in first, or None.
        demo: the notebook's ``DEMO`` switch: a new folder becomes a demo library; an existing library
            must already be one.
        tag: run the labeling pass (photos already tagged are skipped).
        require_photos: an empty library is an error with the next step.
        gather_into: copy ``gather_from`` into the library (False: it is only checked, e.g. as the photos
            that the automation notebook drops into its import folder).

    Returns:
        The open :class:`~photolab.library.Library`.

    Raises:
        NotebookError: a missing folder, an empty library, or ``demo`` on a library that is not a demo library.
    """
    from . import gather, index_library, init_library, tag_library

    install_error_handler()
    root = Path(library).expanduser()
    source = Path(gather_from).expanduser() if gather_from else None
    if source is not None and not source.is_dir():
        raise NotebookError(f"{source.resolve()}: no such folder to gather photos from; check GATHER_FROM "
                            "(or set it to None to use the library as it is)")
    if not root.exists() and source is None:
        raise NotebookError(f"{root.resolve()}: no such folder; check LIBRARY (a typo?), or set GATHER_FROM to a "
                            "folder of photos to build a new library there")
    if root.exists() and not root.is_dir():
        raise NotebookError(f"{root.resolve()}: is a file, not a folder; point LIBRARY at your photo folder")
    new = not root.exists() or not any(root.iterdir())
    existing_library = (root / STATE_DIR / CATALOG_FILE).is_file()
    if demo and not new:
        require_demo(root)
    lib = init_library(root)
    if demo and new:
        (lib.state / DEMO_MARKER).write_text("a demo library: the notebooks' simulated clicks run here; "
                                             "safe to delete\n")
    if source is not None and gather_into:
        print(gather([source], lib).summary())
    print(index_library(lib).summary())
    if require_photos and not usable_photos(lib):
        where = "a new library" if not existing_library else "the library"
        raise NotebookError(f"{lib.root}: {where} with no photos yet; set GATHER_FROM to a folder of photos "
                            "(a card, a phone dump) and run this notebook again, or start with 01_tag_library")
    if tag and usable_photos(lib):
        print(tag_library(lib).summary())  # photos already tagged are skipped
    return lib

