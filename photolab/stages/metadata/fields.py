"""The fields photolab reads and writes (XMP, IPTC, MWG face regions) and reading them from one file or sidecar."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from photolab.core.errors import PhotolabError
from photolab.features.media import VIDEO_EXTS

log = logging.getLogger("photolab.stages.metadata")

NAMESPACE = "http://ns.photolab.local/xmp/1.0/"
PREFIX = "photolab"
IN_FILE_FORMATS = frozenset({"JPEG", "TIFF", "PNG", "WEBP"})   # what Exiv2 writes in place
IPTC_FORMATS = frozenset({"JPEG", "TIFF", "PNG"})               # Exiv2 has no IPTC in WebP
IPTC_MAX_BYTES = 64
IPTC_UTF8 = "\x1b%G"
REVIEW_FIRST = ("people", "places")    # categories written only once a person confirmed the tag
AUTO_RATING_TAGS = {"blurry": 1, "dark": 1, "overexposed": 1}
MS_RATING = {0: 0, 1: 1, 2: 25, 3: 50, 4: 75, 5: 99}   # xmp:Rating -> MicrosoftPhoto:Rating (percent)
WHERE = ("in-file", "sidecar", "both")
NAMING = ("ext", "stem")

K_SUBJECT = "Xmp.dc.subject"
K_HIER = "Xmp.lr.hierarchicalSubject"
K_TAGSLIST = "Xmp.digiKam.TagsList"
K_RATING = "Xmp.xmp.Rating"
K_MSRATING = "Xmp.MicrosoftPhoto.Rating"
K_IPTC_KW = "Iptc.Application2.Keywords"
K_IPTC_CS = "Iptc.Envelope.CharacterSet"
K_TAGS = f"Xmp.{PREFIX}.Tags"
K_CONF = f"Xmp.{PREFIX}.Confidence"
K_MODEL = f"Xmp.{PREFIX}.Model"
K_REVIEWED = f"Xmp.{PREFIX}.Reviewed"
K_AUTORATING = f"Xmp.{PREFIX}.AutoRating"
K_REGIONS_DIGEST = f"Xmp.{PREFIX}.Regions"
REGIONS = "Xmp.mwg-rs.Regions"
OWN_XMP = (K_SUBJECT, K_HIER, K_TAGSLIST, K_RATING, K_MSRATING, K_TAGS, K_CONF, K_MODEL, K_REVIEWED, K_AUTORATING,
           K_REGIONS_DIGEST)
OWN_IPTC = (K_IPTC_KW, K_IPTC_CS)

_exiv2 = None


class MetadataError(PhotolabError, RuntimeError):
    """A file's metadata cannot be read or written safely; the message names the file and why."""


def _pyexiv2():
    """pyexiv2, set up once: quiet log, photolab's namespace registered."""
    global _exiv2
    if _exiv2 is None:
        import pyexiv2

        pyexiv2.set_log_level(4)
        try:
            pyexiv2.registerNs(NAMESPACE, PREFIX)
        except Exception:   # already registered in this process
            pass
        _exiv2 = pyexiv2
    return _exiv2


# -- reading ------------------------------------------------------------------------------------
@dataclass
class Embedded:
    """What one file (or sidecar) holds in the fields photolab reads and writes."""

    keywords: list[str] = field(default_factory=list)          # dc:subject
    hierarchical: list[str] = field(default_factory=list)      # lr:hierarchicalSubject
    tags_list: list[str] = field(default_factory=list)         # digiKam:TagsList
    iptc_keywords: list[str] = field(default_factory=list)
    rating: int | None = None                                  # xmp:Rating, else EXIF Rating
    photolab_tags: list[str] = field(default_factory=list)     # 'category|tag' photolab wrote
    reviewed: list[str] = field(default_factory=list)
    auto_rating: int | None = None
    confidence: str | None = None
    model: str | None = None
    regions: dict = field(default_factory=dict)               # every Xmp.mwg-rs.Regions key
    regions_digest: str | None = None                          # what photolab wrote there

    def all_keywords(self) -> list[str]:
        """Every keyword any of the fields holds (hierarchy leaves included), in first-seen order."""
        out = []
        for k in (self.keywords + self.iptc_keywords + [h.split("|")[-1] for h in self.hierarchical]
                  + [t.split("/")[-1] for t in self.tags_list]):
            k = k.strip()
            if k and k not in out:
                out.append(k)
        return out


def _as_list(v) -> list[str]:
    if v is None:
        return []
    return [str(x) for x in v] if isinstance(v, list) else [str(v)]


def _as_rating(v) -> int | None:
    try:
        r = int(float(v))
    except (TypeError, ValueError):
        return None
    return r if -1 <= r <= 5 else None


_XMP_HAS_PROPS = re.compile(r"<rdf:Description[^>]*?\s\w+:\w+\s*=|<rdf:Description[^>]*>\s*<\w")


def _read(img, *, strict: bool = False) -> tuple[dict, dict, dict]:
    """(exif, iptc, xmp) of an open pyexiv2 image.

    With ``strict``, metadata Exiv2 could not make sense of raises :class:`MetadataError`
    (rewriting such a file would drop it); otherwise an unreadable part is empty.
    """
    out = []
    for name, fn in (("EXIF", img.read_exif), ("IPTC", img.read_iptc), ("XMP", img.read_xmp)):
        try:
            out.append(fn())
        except Exception as exc:
            if strict:
                raise MetadataError(f"existing {name} cannot be parsed ({exc}); not rewritten") from exc
            out.append({})
    if strict and not out[2]:
        try:
            raw = img.read_raw_xmp()
        except Exception:
            raw = ""
        if raw and _XMP_HAS_PROPS.search(raw):
            raise MetadataError("existing XMP cannot be parsed by Exiv2 (malformed packet); not rewritten")
    return tuple(out)


def _embedded(exif: dict, iptc: dict, xmp: dict) -> Embedded:
    rating = _as_rating(xmp.get(K_RATING))
    if rating is None:
        rating = _as_rating(exif.get("Exif.Image.Rating"))
    return Embedded(
        keywords=_as_list(xmp.get(K_SUBJECT)), hierarchical=_as_list(xmp.get(K_HIER)),
        tags_list=_as_list(xmp.get(K_TAGSLIST)), iptc_keywords=_as_list(iptc.get(K_IPTC_KW)),
        rating=rating, photolab_tags=_as_list(xmp.get(K_TAGS)), reviewed=_as_list(xmp.get(K_REVIEWED)),
        auto_rating=_as_rating(xmp.get(K_AUTORATING)), confidence=xmp.get(K_CONF), model=xmp.get(K_MODEL),
        regions={k: v for k, v in xmp.items() if _is_region_key(k)}, regions_digest=xmp.get(K_REGIONS_DIGEST))


def _is_region_key(key: str) -> bool:
    return key == REGIONS or key.startswith(REGIONS + "/")


def region_values(faces: list[dict]) -> dict:
    """The ``Xmp.mwg-rs.Regions`` keys for named faces (``name``, ``area`` = centre x, y, w, h as
    fractions of the stored image, ``size`` = stored w, h px), as pyexiv2 writes and reads them."""
    if not faces:
        return {}
    out = {REGIONS: 'type="Struct"'}
    w, h = faces[0].get("size") or (None, None)
    if w and h:
        out.update({f"{REGIONS}/mwg-rs:AppliedToDimensions": 'type="Struct"',
                    f"{REGIONS}/mwg-rs:AppliedToDimensions/stDim:w": str(int(w)),
                    f"{REGIONS}/mwg-rs:AppliedToDimensions/stDim:h": str(int(h)),
                    f"{REGIONS}/mwg-rs:AppliedToDimensions/stDim:unit": "pixel"})
    out[f"{REGIONS}/mwg-rs:RegionList"] = 'type="Bag"'
    for i, f in enumerate(faces, 1):
        item = f"{REGIONS}/mwg-rs:RegionList[{i}]"
        x, y, fw, fh = f["area"]
        out.update({item: 'type="Struct"', f"{item}/mwg-rs:Name": f["name"], f"{item}/mwg-rs:Type": "Face",
                    f"{item}/mwg-rs:Area": 'type="Struct"',
                    f"{item}/mwg-rs:Area/stArea:x": f"{x:.5f}", f"{item}/mwg-rs:Area/stArea:y": f"{y:.5f}",
                    f"{item}/mwg-rs:Area/stArea:w": f"{fw:.5f}", f"{item}/mwg-rs:Area/stArea:h": f"{fh:.5f}",
                    f"{item}/mwg-rs:Area/stArea:unit": "normalized"})
    return out


def regions_digest(values: dict) -> str | None:
    if not values:
        return None
    return hashlib.sha256(json.dumps(sorted(values.items())).encode()).hexdigest()[:16]


def read_bytes(data: bytes) -> Embedded:
    """The fields of an in-memory file (photo or XMP sidecar)."""
    with _pyexiv2().ImageData(data) as img:
        return _embedded(*_read(img))


def sidecar_candidates(photo: Path) -> list[Path]:
    """The sidecar names photolab looks for, preferred first: ``IMG_1.jpg.xmp``, ``IMG_1.xmp``."""
    return [photo.with_name(photo.name + ".xmp"), photo.with_suffix(".xmp")]


def existing_sidecar(photo: Path, listings: dict | None = None) -> Path | None:
    """The photo's sidecar if it has one (either naming, any case of ``.xmp``). ``listings`` caches
    each folder's names across calls (a pass over a folder of thousands reads it once)."""
    folder = photo.parent
    names = listings.get(folder) if listings is not None else None
    if names is None:
        names = {p.name.lower(): p for p in folder.iterdir()} if folder.is_dir() else {}
        if listings is not None:
            listings[folder] = names
    for cand in sidecar_candidates(photo):
        hit = names.get(cand.name.lower())
        if hit is not None and hit.is_file():
            return hit
    return None


def read_metadata(path: str | os.PathLike) -> dict:
    """Keywords, hierarchical tags and rating of a photo, from the file and its sidecar.

    Returns:
        ``{"keywords": [...], "hierarchical": [...], "tags_list": [...], "iptc_keywords": [...],
        "rating": int | None, "photolab_tags": [...], "reviewed": [...], "sidecar": path | None}``;
        the sidecar's values come first (apps treat it as the newer copy).
    """
    p = Path(path)
    merged = Embedded()
    side = existing_sidecar(p)
    parts = []
    if side is not None:
        try:
            parts.append(read_bytes(side.read_bytes()))
        except Exception as exc:
            log.warning("%s: sidecar unreadable: %s", side, exc)
    if p.suffix.lower() in VIDEO_EXTS:   # a video's keywords live in its sidecar; the clip is not read
        if side is None:
            raise MetadataError(f"{p}: a video without an XMP sidecar: no keywords to read")
    else:
        try:
            parts.append(read_bytes(p.read_bytes()))
        except Exception as exc:
            if side is None:
                raise MetadataError(f"{p}: metadata unreadable: {exc}") from exc
    for e in parts:
        for name in ("keywords", "hierarchical", "tags_list", "iptc_keywords", "photolab_tags", "reviewed"):
            cur = getattr(merged, name)
            cur.extend(x for x in getattr(e, name) if x not in cur)
        for name in ("rating", "auto_rating", "confidence", "model"):
            if getattr(merged, name) is None:
                setattr(merged, name, getattr(e, name))
    out = asdict(merged)
    out["sidecar"] = str(side) if side else None
    return out
