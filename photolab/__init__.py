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

from .privacy import quiet_environment as _quiet_environment

_quiet_environment()   # before any dependency that records telemetry is loaded

from .catalog import Catalog, CatalogError
from .errors import PhotolabError
from .gather import GatherError, gather
from .index import index_library, inspect_file, photos
from .library import Library, LibraryError, init_library, open_library
from .notebook import prepare
from .query import QueryError
from .search import find
from .tagging import decisions, export_csv, tag_library
from .taxonomy import TaxonomyError, load_taxonomy

__all__ = [
    "Catalog", "CatalogError", "GatherError", "Library", "LibraryError", "PhotolabError", "QueryError", "TaxonomyError",
    "__version__", "decisions", "export_csv", "find", "gather", "index_library", "init_library", "inspect_file", "load_taxonomy",
    "open_library", "photos", "prepare", "tag_library",
]
