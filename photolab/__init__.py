"""photolab: tag, review, de-duplicate and organize a personal photo library, locally.

The public API is small; each pipeline stage is one module and passes plain
data (DataFrames keyed by photo id) to the next::

    import photolab
    lib = photolab.init_library("~/Photos")
    photolab.gather(["/media/card/DCIM"], into=lib)
    photolab.index_library(lib)
    df = photolab.photos(lib)

``photolab.prepare(folder, gather_from)`` opens or builds a library and runs the chain's first stages
(gather, index, tag; see :mod:`photolab.stages`), as every notebook's set-up cell does.
"""

from __future__ import annotations

__version__ = "0.1.0"

from photolab.core.privacy import quiet_environment as _quiet_environment

_quiet_environment()   # before any dependency that records telemetry is loaded

from photolab.store.catalog import Catalog, CatalogError
from photolab.core.errors import PhotolabError
from photolab.stages.gather import GatherError, gather
from photolab.stages.index import index_library, inspect_file, photos
from photolab.core.library import Library, LibraryError, init_library, open_library
from photolab.ui.notebook import prepare
from photolab.stages.query import QueryError
from photolab.stages.search import find
from photolab.stages.tagging import decisions, export_csv, tag_library
from photolab.core.taxonomy import TaxonomyError, load_taxonomy

#: the modules a notebook or script reaches as ``photolab.<name>`` (``from photolab import review``), loaded
#: on first use so ``import photolab`` stays light
MODULES = {
    **{m: f"photolab.core.{m}" for m in ("backup", "fileops", "health", "library", "repair", "taxonomy")},
    **{m: f"photolab.features.{m}" for m in ("backbone", "cluster", "exif", "imaging", "media", "starter",
                                             "things", "video")},
    **{m: f"photolab.stages.{m}" for m in ("dedupe", "events", "faces", "index", "metadata", "organize",
                                           "places", "query", "review", "search", "tagging", "train")},
    **{m: f"photolab.ui.{m}" for m in ("find_widget", "notebook", "plots", "widgets")},
    "automate": "photolab.automate", "demo": "photolab.demo", "plans": "photolab.plans", "store": "photolab.store",
    "stages": "photolab.stages",
}


def __getattr__(name: str):
    if name in MODULES:
        import importlib

        module = importlib.import_module(MODULES[name])
        globals()[name] = module
        return module
    raise AttributeError(f"module 'photolab' has no attribute {name!r}")


__all__ = [
    "Catalog", "CatalogError", "GatherError", "Library", "LibraryError", "PhotolabError", "QueryError", "TaxonomyError",
    "__version__", "decisions", "export_csv", "find", "gather", "index_library", "init_library", "inspect_file", "load_taxonomy",
    "open_library", "photos", "prepare", "tag_library",
]
