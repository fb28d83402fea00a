"""The notebooks' set-up call: open (or build) the library, show photolab's errors as one line.

Every notebook starts with :func:`prepare` (``photolab.prepare``; :func:`setup` is the same function).
It installs a handler so that an error a user can cause (:class:`~photolab.core.errors.PhotolabError`) shows
as one sentence with the next step instead of a traceback, checks the folders before anything is
created (a mistyped path is a message, not a new empty library), runs the chain's first stages
(gather, index, tag), and refuses ``DEMO = True`` on any library but a demo library. The functions at
the end are what the notebooks show, so that their cells call photolab and hold no logic of their own.

A **demo library** carries the marker file ``.photolab/DEMO_LIBRARY``. Only ``photolab demo`` and
``prepare(..., demo=True)`` on a folder that does not exist yet (or is empty) write it, so a person's
library never becomes one by accident; the notebooks' simulated clicks (``if DEMO:`` cells) run on
nothing else.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path

from photolab.store.catalog import CATALOG_FILE, STATE_DIR
from photolab.demo import DEMO_MARKER
from photolab.core.errors import PhotolabError

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
    from photolab.core.library import Library

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
    """How many usable photos the library holds."""
    from photolab.stages.index import USABLE
    from photolab.store.meta import count_usable

    return count_usable(lib.catalog.conn, USABLE)


def prepare(library, gather_from=None, *, demo: bool = False, tag: bool = True, require_photos: bool = True,
            gather_into: bool = True):
    """Open the notebook's library (creating it when photos are to be gathered into it), then run the
    chain's first stages on it (:data:`photolab.stages.PREPARE`: gather, index, tag; photos already done
    are skipped). In IPython, photolab's errors show as one line from here on.

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
        The open :class:`~photolab.core.library.Library`.

    Raises:
        NotebookError: a missing folder, an empty library, or ``demo`` on a library that is not a demo library.
    """
    from photolab.core.library import init_library
    from photolab.stages import PREPARE, run_chain

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

    def say(name, out, run):
        if out is not None:
            print(out.summary())

    sources = [source] if source is not None and gather_into else None
    first, last = PREPARE[:-1], PREPARE[-1:]   # gather and index; then tag, once there are photos
    run_chain(lib, first, progress=True, on_done=say, options={"gather": {"sources": sources}})
    if require_photos and not usable_photos(lib):
        where = "a new library" if not existing_library else "the library"
        raise NotebookError(f"{lib.root}: {where} with no photos yet; set GATHER_FROM to a folder of photos "
                            "(a card, a phone dump) and run this notebook again, or start with 01_tag_library")
    if tag and usable_photos(lib):
        run_chain(lib, last, progress=True, on_done=say)   # photos already tagged are skipped
    return lib


setup = prepare   # the name the notebooks used first


# -- what the notebooks show and the demo's simulated clicks, so that their cells hold no logic of their own --
def demo_labels(lib, tag: str = "party", *, where: str = "kde_", n: int = 5) -> int:
    """A person's labels, from code (demo library only): the first ``n`` photos whose path holds ``where`` get
    ``tag``, every other photo is confirmed without it. Returns how many photos were labeled."""
    from photolab.stages.index import photos
    from photolab.stages.review import confirm

    require_demo(lib)
    paths = photos(lib)["path"]
    chosen = set(paths[paths.str.contains(where, regex=False)].index[:n])
    for pid in paths.index:
        confirm(lib, int(pid), [tag] if pid in chosen else [], scope=[tag])
    return len(paths)


def head_preview(lib, replaces, n: int = 8):
    """The decisions table's path, tags and the scores of up to three tags a trained head now gives
    (``replaces``: the head's tags), highest first; without such a tag, the first ``n`` rows."""
    from photolab.stages.tagging import decisions

    decided = decisions(lib)
    cols = ["path", "tags"] + [f"score:{t}" for t in list(replaces or [])[:3] if f"score:{t}" in decided]
    if len(cols) > 2:
        return decided[cols].sort_values(cols[-1], ascending=False).head(n)
    return decided[cols].head(n)


def read_back(lib, paths):
    """What the files at ``paths`` (library-relative; a sidecar stands for its photo) now carry: a DataFrame of
    path, keywords, hierarchical tags and rating, read from the file and its sidecar."""
    import pandas as pd

    from photolab.stages.metadata import read_metadata

    rows = []
    for rel in list(paths):
        photo = lib.root / rel
        if photo.suffix.lower() == ".xmp" and photo.with_suffix("").exists():
            photo = photo.with_suffix("")
        m = read_metadata(photo)
        rows.append({"path": rel, "keywords": m["keywords"], "hierarchical": m["hierarchical"], "rating": m["rating"]})
    return pd.DataFrame(rows, columns=["path", "keywords", "hierarchical", "rating"])


def people_and_places(lib):
    """The photos with a named face or a confirmed place (what writing people and places would reach): a
    DataFrame of ``path`` by photo id, in id order."""
    import pandas as pd

    from photolab.stages.faces import faces
    from photolab.stages.places import places

    named = faces(lib).query("status == 'named'")
    confirmed = places(lib).query("confirmed == 1")
    paths = dict(zip(confirmed.index, confirmed["path"])) | dict(zip(named["photo_id"], named["path"]))
    return pd.DataFrame({"path": pd.Series(paths, dtype=object)}).sort_index().rename_axis("photo_id")


def files_on_disk(lib, limit: int = 25) -> list[str]:
    """The first ``limit`` files of the library folder (outside ``.photolab/``), by path."""
    return sorted(p.relative_to(lib.root).as_posix() for p in lib.root.rglob("*")
                  if p.is_file() and STATE_DIR not in p.relative_to(lib.root).parts)[:limit]


def import_folder(lib, drop_from=None, *, n: int = 6) -> Path:
    """The automation notebook's import folder (beside the library, made when missing); with ``drop_from``,
    up to ``n`` of its photos copied in, as a phone sync or a card copy would leave them.

    Raises:
        NotebookError: neither the library nor the import folder holds a photo.
    """
    import shutil

    folder = lib.root.parent / (lib.root.name + "-import")
    folder.mkdir(exist_ok=True)
    if drop_from:
        for photo in sorted(Path(drop_from).glob("*.*"))[:n]:
            if photo.suffix.lower() != ".md":
                shutil.copy2(photo, folder / photo.name)
    if not usable_photos(lib) and not any(folder.iterdir()):
        raise NotebookError(f"{lib.root}: no photos in the library nor in the import folder {folder}; drop photos "
                            "there (or set GATHER_FROM) and run this notebook again")
    return folder
