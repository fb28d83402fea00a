"""Reading keywords and ratings other apps wrote (files and sidecars) into the catalog; a person's rating."""

from __future__ import annotations

import logging

from photolab.store.catalog import utcnow
from photolab.stages.index import USABLE
from photolab.core.library import open_library
from photolab.features.media import VIDEO_EXTS
from photolab.store import metadata as q
from photolab.core.taxonomy import load_taxonomy
from photolab.stages.metadata.fields import Embedded, MetadataError, _as_rating, existing_sidecar, read_metadata

log = logging.getLogger("photolab.stages.metadata")


def import_metadata(library, *, photo_ids=None, progress: bool = True):
    """Read keywords and ratings other apps wrote (every field above, file and sidecar) into the catalog.

    A keyword that names a taxonomy tag or one of its aliases becomes a labeled example
    (``labels``, value 1, ``who='metadata'``) unless a person already labeled that tag;
    keywords photolab wrote itself are not counted. A rating photolab did not set becomes
    the photo's rating (``ratings``, source ``file``) unless a person rated it in photolab.

    Returns:
        A DataFrame indexed by photo id: ``path``, ``keywords`` (all found, ';'),
        ``tags`` (the taxonomy tags they name, ';'), ``unknown`` (the rest), ``rating``.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    lib = open_library(library)
    tax = load_taxonomy(lib)
    rows = q.media_rows(lib.catalog.conn, USABLE)
    if photo_ids is not None:
        want = {int(i) for i in photo_ids}
        rows = [r for r in rows if r["id"] in want]
    out, labels, ratings = [], [], []
    now = utcnow()
    for r in tqdm(rows, desc="read metadata", unit="photo", disable=not progress):
        if r["path"].rsplit(".", 1)[-1].lower() in {e.lstrip(".") for e in VIDEO_EXTS} and \
                existing_sidecar(lib.abs(r["path"])) is None:
            continue   # a clip's keywords live only in a sidecar: none, nothing to import (the normal case)
        try:
            m = read_metadata(lib.abs(r["path"]))
        except (MetadataError, OSError) as exc:
            log.warning("%s: %s", r["path"], exc)
            continue
        ours = {t.split("|", 1)[-1] for t in m["photolab_tags"]} - set(m["reviewed"])
        found = Embedded(**{k: m[k] for k in ("keywords", "hierarchical", "tags_list", "iptc_keywords")})
        kws = found.all_keywords()
        tags, unknown = [], []
        for k in kws:
            t = tax.resolve(k)
            if t is None:
                unknown.append(k)
            elif t not in tags:
                tags.append(t)
        tags.sort(key=tax.names.index)
        for t in tags:
            if t not in ours:
                labels.append((r["id"], t, now))
        rating = m["rating"]
        if rating is not None and rating != m["auto_rating"]:
            ratings.append((r["id"], int(rating), now))
        else:
            rating = None
        out.append({"photo_id": r["id"], "path": r["path"], "keywords": ";".join(kws), "tags": ";".join(tags),
                    "unknown": ";".join(unknown), "rating": rating})
    with lib.catalog.write() as db:
        q.add_file_labels(db, labels)
        q.set_file_ratings(db, ratings)
    return pd.DataFrame(out, columns=["photo_id", "path", "keywords", "tags", "unknown", "rating"]).set_index("photo_id")


def set_rating(library, photo_id: int, rating: int | None) -> None:
    """A person's rating for a photo (0-5, -1 rejected; ``None`` clears it); written by the next
    :func:`write_metadata` over any rating in the file."""
    lib = open_library(library)
    with lib.catalog.write() as db:
        if rating is None:
            q.clear_rating(db, int(photo_id))
            return
        if _as_rating(rating) is None or int(rating) != rating:
            raise ValueError(f"rating must be an integer from -1 to 5, got {rating!r}")
        q.set_person_rating(db, int(photo_id), int(rating), utcnow())
