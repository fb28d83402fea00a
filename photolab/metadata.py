"""Write tags and ratings into XMP/IPTC so other photo apps read them; read theirs back.

Fields (written with pyexiv2, read by digiKam, Lightroom, darktable, Immich, PhotoPrism):

- ``Xmp.dc.subject`` (rdf:Bag) and ``Iptc.Application2.Keywords`` (64 bytes at
  most each, the IPTC record marked UTF-8): flat keywords, the tag names;
- ``Xmp.lr.hierarchicalSubject`` (rdf:Bag of ``category|tag``) and
  ``Xmp.digiKam.TagsList`` (``category/tag``);
- ``Xmp.xmp.Rating`` 0-5 with ``Xmp.MicrosoftPhoto.Rating`` (percent) to match;
- named faces as MWG face regions (``Xmp.mwg-rs.Regions``: name, type Face, the area
  as fractions of the stored image, which readers turn with the EXIF orientation as
  they turn the pixels), beside the ``People|Name`` keywords, so digiKam, Lightroom
  and Immich show the names on the faces. photolab writes regions only where a file
  has none, or has the ones photolab wrote (a digest in its namespace tells): regions
  another app or a person drew are never replaced;
- photolab's own namespace (``photolab:``, :data:`NAMESPACE`): the tags photolab
  wrote (so a tag it no longer gives is taken out again, and only that),
  per-tag confidence, the model version, the tags a person confirmed, and the
  automatic rating it set.

Merging: keywords and ratings already in a file stay. A rating a person set
(in another app, or in photolab) is never replaced by an automatic one; the
automatic rating (1 for a blurry, dark or blown-out photo) goes only where a
file has none. People and place tags are written only once a person confirmed
them, unless ``write_unreviewed`` opts those categories in.

Where: in the file (JPEG, TIFF, PNG, WebP: what Exiv2 writes), in an XMP sidecar,
or both. Videos only ever get a sidecar (``clip.mp4.xmp``): a video container is
never rewritten, and reading a video's keywords reads only its sidecar. RAW and
HEIC/AVIF photos (Exiv2 cannot write those), photos on
read-only or removable media, and anything else that cannot be written in
place get a sidecar. Sidecars are named ``IMG_1.jpg.xmp`` (``sidecar_naming="ext"``,
darktable and digiKam) or ``IMG_1.xmp`` (``"stem"``, Lightroom); an existing
sidecar under either name is updated, never replaced by a second one.

Safety: the new bytes are made in memory and verified before anything is
written: photolab's fields read back as intended; every other EXIF (maker notes
included), IPTC and XMP value and the ICC profile are unchanged; the image data
is unchanged (for JPEG and PNG the non-metadata segments are byte-identical,
for other formats the decoded pixels hash the same); the file opens. Then
:func:`photolab.fileops.rewrite` keeps the previous bytes under
``.photolab/versions/``, journals the change and atomically replaces the file,
so a process killed at any moment leaves old or new bytes, never a mix.
:func:`restore` (``photolab restore``) puts any kept version back byte-identical.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import io
import json
import logging
import os
import re
import struct
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import PhotolabError
from .catalog import utcnow
from .fileops import FileOpError, Rewrite, new_batch, prune_versions, recover, rewrite, sha256_file, version_bytes
from .index import USABLE
from .library import open_library
from .media import VIDEO_EXTS
from .store.watch import metadata_written, rows_by_id as by_id
from .taxonomy import load_taxonomy

log = logging.getLogger(__name__)

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
EMPTY_PACKET = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
                '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
                ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
                ' </rdf:RDF>\n</x:xmpmeta>\n<?xpacket end="w"?>').encode("utf-8")

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
_BAGS = ("dc:subject", "lr:hierarchicalSubject", f"{PREFIX}:Tags", f"{PREFIX}:Reviewed")
_BAG_RE = re.compile(r"(<(%s)>\s*)<rdf:Seq>(.*?)</rdf:Seq>" % "|".join(map(re.escape, _BAGS)), re.S)

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


def _unparsed_jpeg_blocks(data: bytes, exif: dict) -> str | None:
    """A JPEG metadata block Exiv2 read nothing from (rewriting would lose it), or None."""
    walk = _walk_jpeg(data)
    if walk is None:
        return None
    for marker, a, _ in walk[0]:
        if marker == 0xE1 and data[a + 4:a + 9] == b"Exif\0" and not exif:
            return "EXIF"
    return None


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


# -- what to write ------------------------------------------------------------------------------
@dataclass
class WriteOptions:
    """Where and what :func:`write_metadata` writes.

    Attributes:
        where: ``in-file``, ``sidecar`` or ``both``. Photos that cannot be written
            in place get a sidecar whatever this says.
        sidecar_naming: ``ext`` (``IMG_1.jpg.xmp``) or ``stem`` (``IMG_1.xmp``) for new sidecars.
        write_unreviewed: categories among ``people``/``places`` whose tags are written
            without a person's confirmation (default none).
        auto_rating: suggest a rating from quality where a file has none.
        iptc: write IPTC keywords too (in-file only; sidecars are XMP).
    """

    where: str = "in-file"
    sidecar_naming: str = "ext"
    write_unreviewed: tuple[str, ...] = ()
    auto_rating: bool = True
    iptc: bool = True

    def __post_init__(self):
        if self.where not in WHERE:
            raise ValueError(f"where must be one of {', '.join(WHERE)}, got {self.where!r}")
        if self.sidecar_naming not in NAMING:
            raise ValueError(f"sidecar_naming must be 'ext' or 'stem', got {self.sidecar_naming!r}")
        bad = set(self.write_unreviewed) - set(REVIEW_FIRST)
        if bad:
            raise ValueError(f"write_unreviewed takes {', '.join(REVIEW_FIRST)}; not {', '.join(sorted(bad))}")
        self.write_unreviewed = tuple(self.write_unreviewed)


@dataclass
class Decision:
    """What photolab has decided about one photo, as it goes into the file."""

    tags: list[str]                      # 'category|tag', taxonomy order
    confidence: dict[str, float]
    reviewed: list[str]                  # tags a person confirmed
    rating: int | None                   # a person's rating (photolab's catalog), written as is
    auto_rating: int | None              # the quality suggestion, only where a file has no rating
    model: str | None
    places: list[str] = field(default_factory=list)   # 'Places|Country|Region|City', confirmed
    people: list[str] = field(default_factory=list)   # 'People|Name', named by a person
    faces: list[dict] = field(default_factory=list)   # named faces: name, area, size (see region_values)

    def digest(self, opts: WriteOptions) -> str:
        blob = json.dumps([self.tags, sorted(self.confidence.items()), self.reviewed, self.rating,
                           self.auto_rating, self.model, self.places, self.people, self.faces, asdict(opts)],
                          sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def decisions_for_writing(library, options: WriteOptions | None = None, photo_ids=None) -> dict[int, Decision]:
    """Per usable photo (or per photo of ``photo_ids``), the :class:`Decision` that
    :func:`write_metadata` would write."""
    from .faces import named_faces, person_path
    from .places import path as place_path
    from .tagging import accepted_tags, thresholds

    opts = options or WriteOptions()
    lib = open_library(library)
    tax = load_taxonomy(lib)
    usable = ", ".join("?" * len(USABLE))
    # photo_ids: those photos' rows only, by id
    ids = [r[0] for r in by_id(lib.catalog.conn, photo_ids, "id",
                               f"kind IN ('photo', 'raw', 'video') AND status IN ({usable})", USABLE)]
    subset = None if photo_ids is None else ids
    accepted = accepted_tags(lib, photo_ids=subset)
    confirmed: dict[int, set[str]] = {}
    rows = lib.catalog.query_ids
    for pid, tag in rows("SELECT photo_id, tag FROM labels WHERE value = 1 AND {ids}", subset):
        confirmed.setdefault(pid, set()).add(tag)
    ratings = {r[0]: r[1] for r in rows("SELECT photo_id, rating FROM ratings WHERE source = 'person' AND {ids}",
                                        subset)}
    models = {r[0]: r[1] for r in rows("SELECT photo_id, model FROM features WHERE {ids}", subset)}
    score = {(r[0], r[1]): r[2] for r in rows("SELECT photo_id, tag, score FROM scores WHERE "
                                              "score IS NOT NULL AND {ids}", subset)}
    lowest = 1 if "places" not in opts.write_unreviewed else 0
    place_of = {r[0]: place_path(dict(r)) for r in rows(
        "SELECT photo_id, country, region, city FROM places WHERE confirmed >= ? AND {ids}", subset, (lowest,))}
    named = named_faces(lib, subset, include_suggestions="people" in opts.write_unreviewed)
    thr = thresholds(lib, tax)
    out = {}
    for pid in ids:
        tags, conf = [], {}
        have = accepted.get(pid, set())
        mine = confirmed.get(pid, set())
        for name in tax.names:
            if name not in have:
                continue
            cat = tax[name].category
            if cat in REVIEW_FIRST and cat not in opts.write_unreviewed and name not in mine:
                continue
            tags.append(f"{cat}|{name}")
            if (pid, name) in score and thr.get(name) is not None:
                conf[name] = round(float(score[(pid, name)]), 2)
        auto = None
        if opts.auto_rating:
            hits = [AUTO_RATING_TAGS[t] for t in have if t in AUTO_RATING_TAGS]
            auto = min(hits) if hits else None
        out[pid] = Decision(tags=tags, confidence=conf, reviewed=sorted(t for t in mine if t in tax),
                            rating=ratings.get(pid), auto_rating=auto, model=models.get(pid),
                            places=[place_of[pid]] if pid in place_of else [],
                            people=sorted({person_path(f["name"]) for f in named.get(pid, [])}),
                            faces=named.get(pid, []))
    return out


def _iptc_safe(keyword: str) -> str:
    """A keyword cut to IPTC's 64 bytes of UTF-8, on a character boundary."""
    b = keyword.encode("utf-8")[:IPTC_MAX_BYTES]
    return b.decode("utf-8", errors="ignore")


def _keywords_of(paths) -> list[str]:
    """Flat keywords for photolab's hierarchical paths: a tag's name; every level of a place."""
    out = []
    for p in paths:
        levels = p.split("|")[1:] if p.startswith("Places|") else [p.split("|", 1)[-1]]
        out.extend(x for x in levels if x not in out)
    return out


def _merge(existing: list[str], ours: list[str], dropped: set[str]) -> list[str]:
    """``existing`` less what photolab wrote before and no longer gives, then ``ours`` not yet there."""
    keep = [x for x in existing if x not in dropped or x in ours]
    return keep + [x for x in ours if x not in keep]


def target_values(cur: Embedded, d: Decision, *, sidecar: bool, iptc: bool) -> tuple[dict, dict]:
    """(xmp, iptc) key -> value that the file should end up with (``None``: remove the key)."""
    prev = set(cur.photolab_tags)
    ours = list(d.tags) + list(d.places) + list(d.people)
    dropped = prev - set(ours)
    names = _keywords_of(ours)
    xmp: dict = {
        K_SUBJECT: _merge(cur.keywords, names, set(_keywords_of(sorted(dropped)))),
        K_HIER: _merge(cur.hierarchical, ours, dropped),
        K_TAGSLIST: _merge(cur.tags_list, [t.replace("|", "/") for t in ours], {t.replace("|", "/") for t in dropped}),
        K_TAGS: list(ours),
        K_CONF: ";".join(f"{k}={v:.2f}" for k, v in sorted(d.confidence.items()) if k in names) or None,
        K_MODEL: d.model if ours else None,
        K_REVIEWED: [t for t in d.reviewed if any(o.endswith("|" + t) for o in ours)],
    }
    # ratings: a person's (photolab's catalog) > one already in the file > the automatic suggestion
    ours_before = cur.auto_rating is not None and cur.rating == cur.auto_rating
    if d.rating is not None:
        rating, auto = d.rating, None
    elif cur.rating is not None and not ours_before:
        rating, auto = cur.rating, None   # the user's: untouched
    else:
        rating = auto = d.auto_rating
    if rating is not None and (d.rating is not None or auto is not None):
        xmp[K_RATING] = str(rating)
        xmp[K_MSRATING] = str(MS_RATING.get(rating, 0))
    elif ours_before:   # photolab's own earlier suggestion, no longer given
        xmp[K_RATING] = xmp[K_MSRATING] = None
    xmp[K_AUTORATING] = None if auto is None else str(auto)
    for k in (K_SUBJECT, K_HIER, K_TAGSLIST, K_TAGS, K_REVIEWED):
        if not xmp[k]:
            xmp[k] = None
    # face regions: only where the file has none or holds exactly what photolab wrote
    if not cur.regions or (cur.regions_digest and cur.regions_digest == regions_digest(cur.regions)):
        want = region_values(d.faces)
        if want != cur.regions:
            xmp.update({k: None for k in cur.regions if k not in want})
            xmp.update(want)
        xmp[K_REGIONS_DIGEST] = regions_digest(want)
    ipt: dict = {}
    if iptc and not sidecar:
        kw = _merge(cur.iptc_keywords, [_iptc_safe(n) for n in names], {_iptc_safe(t) for t in _keywords_of(dropped)})
        if kw != cur.iptc_keywords:
            ipt = {K_IPTC_KW: kw or None, K_IPTC_CS: IPTC_UTF8}
    return xmp, ipt


def _norm(v):
    if v is None or v == [] or v == "":
        return None
    return v


def _changes(xmp_now: dict, target: dict) -> dict:
    out = {}
    for k, v in target.items():
        now = xmp_now.get(k)
        if isinstance(now, str) and isinstance(v, list):
            now = [now]
        if _norm(now) != _norm(v):
            out[k] = v
    return out


# -- image data checks --------------------------------------------------------------------------
_JPEG_META = set(range(0xE0, 0xF0)) | {0xFE}      # APPn and COM: metadata; the rest is the image
_PNG_META = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}


def _walk_jpeg(data: bytes):
    """The segments before a JPEG's scan as (marker, start, end), where the scan starts, and whether
    fill bytes sat between segments; None when the structure is not plain."""
    if data[:2] != b"\xff\xd8":
        return None
    segs, i, n, fill = [], 2, len(data), False
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            fill = True
            continue
        if marker == 0xDA:   # start of scan: the rest is image data
            return segs, i, fill
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0x00, 0xD8) or length < 2 or i + 2 + length > n:
            return None
        segs.append((marker, i, i + 2 + length))
        i += 2 + length
    return None


def _walk_png(data: bytes):
    """A PNG's chunks as (kind, start, end) up to IEND, and where IEND ends; None when not plain."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    chunks, i, n = [], 8, len(data)
    while i + 12 <= n:
        length = struct.unpack(">I", data[i:i + 4])[0]
        if i + 12 + length > n:
            return None
        kind = data[i + 4:i + 8]
        chunks.append((kind, i, i + 12 + length))
        i += 12 + length
        if kind == b"IEND":
            return chunks, i
    return None


def _jpeg_payload(data: bytes) -> bytes | None:
    """A JPEG's bytes less its APPn/COM segments (None if the structure is not plain)."""
    walk = _walk_jpeg(data)
    if walk is None:
        return None
    segs, scan, _ = walk
    return b"".join(data[a:b] for m, a, b in segs if m not in _JPEG_META) + data[scan:]


def _png_payload(data: bytes) -> bytes | None:
    """A PNG's chunks less its text/EXIF/time chunks (None if the structure is not plain)."""
    walk = _walk_png(data)
    if walk is None:
        return None
    return b"".join(data[a:b] for kind, a, b in walk[0] if kind not in _PNG_META)


def _pixel_digest(data: bytes) -> str:
    """SHA-256 of the fully decoded pixels (every frame), as Pillow decodes them."""
    from PIL import Image, ImageSequence

    from .media import register_heif

    register_heif()
    h = hashlib.sha256()
    with Image.open(io.BytesIO(data)) as im:
        for frame in ImageSequence.Iterator(im):
            frame.load()
            h.update(f"{frame.mode}{frame.size}".encode())
            h.update(frame.tobytes())
    return h.hexdigest()


def _opens(data: bytes, fmt: str) -> None:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if fmt == "JPEG":
            im.draft("RGB", (64, 64))
        im.load()


def _image_unchanged(old: bytes, new: bytes, fmt: str) -> None:
    """Raise unless ``new`` holds the same image as ``old`` (and opens)."""
    payload = {"JPEG": _jpeg_payload, "PNG": _png_payload}.get(fmt)
    if payload is not None:
        a, b = payload(old), payload(new)
        if a is not None and a == b:
            try:
                _opens(new, fmt)
            except Exception:
                try:
                    _opens(old, fmt)
                except Exception:
                    return   # the image data was damaged before and is byte-identical now
                raise
            return
    try:
        before = _pixel_digest(old)
    except Exception as exc:
        raise MetadataError(f"the image does not decode ({exc}), so a rewrite cannot be verified") from exc
    if before != _pixel_digest(new):
        raise MetadataError("decoded pixels differ after writing")


# -- placing Exiv2's new metadata blocks into the original file ---------------------------------
# Exiv2 re-encodes the whole EXIF block (maker notes moved, padding changed, duplicate blocks merged)
# whenever it saves a JPEG or PNG. photolab only changes XMP and IPTC, so it takes just those blocks
# from Exiv2's output and puts them into the original file: every other byte stays as it was.
_XMP_SIG = b"http://ns.adobe.com/xap/1.0/\0"
_PS_SIG = b"Photoshop 3.0\0"


def _split_jpeg(data: bytes) -> tuple[list[bytes], bytes] | None:
    """(segments before the scan, each with its marker; the rest from SOS on), or None if not plain
    (fill bytes between segments included: splicing would not keep them)."""
    walk = _walk_jpeg(data)
    if walk is None or walk[2]:
        return None
    segs, scan, _ = walk
    return [data[a:b] for _, a, b in segs], data[scan:]


def _jpeg_own(seg: bytes, iptc: bool) -> bool:
    return (seg[1] == 0xE1 and seg[4:4 + len(_XMP_SIG)] == _XMP_SIG) or \
        (iptc and seg[1] == 0xED and seg[4:4 + len(_PS_SIG)] == _PS_SIG)


def _splice_jpeg(old: bytes, new: bytes, iptc: bool) -> bytes | None:
    a, b = _split_jpeg(old), _split_jpeg(new)
    if a is None or b is None:
        return None
    own = [s for s in b[0] if _jpeg_own(s, iptc)]
    out, placed = [], False
    for seg in a[0]:
        if _jpeg_own(seg, iptc):
            if not placed:
                out += own
                placed = True
            continue
        out.append(seg)
    if not placed:   # after the leading JFIF/EXIF segments, where readers look for XMP
        k = 0
        while k < len(out) and out[k][1] in (0xE0, 0xE1):
            k += 1
        out[k:k] = own
    return b"\xff\xd8" + b"".join(out) + a[1]


def _split_png(data: bytes) -> list[bytes] | None:
    """The chunks of a PNG that ends at IEND, or None (not plain, or data after IEND)."""
    walk = _walk_png(data)
    if walk is None or walk[1] != len(data):
        return None
    return [data[a:b] for _, a, b in walk[0]]


def _png_own(chunk: bytes, iptc: bool) -> bool:
    kind, body = chunk[4:8], chunk[8:8 + 40]
    if kind == b"iTXt" and body.startswith(b"XML:com.adobe.xmp\0"):
        return True
    return iptc and kind in (b"zTXt", b"tEXt", b"iTXt") and body.startswith(b"Raw profile type iptc\0")


def _splice_png(old: bytes, new: bytes, iptc: bool) -> bytes | None:
    a, b = _split_png(old), _split_png(new)
    if a is None or b is None:
        return None
    own = [c for c in b if _png_own(c, iptc)]
    out, placed = [], False
    for c in a:
        if _png_own(c, iptc):
            if not placed:
                out += own
                placed = True
            continue
        if c[4:8] in (b"IDAT", b"IEND") and not placed:
            out += own
            placed = True
        out.append(c)
    return b"\x89PNG\r\n\x1a\n" + b"".join(out)


def _splice(old: bytes, new: bytes, fmt: str | None, iptc: bool) -> bytes:
    fn = {"JPEG": _splice_jpeg, "PNG": _splice_png}.get(fmt or "")
    out = fn(old, new, iptc) if fn else None
    return new if out is None else out


def _has_iptc_digest(data: bytes, fmt: str | None) -> bool:
    """IPTC that photolab leaves alone: a JPEG whose Photoshop block carries a checksum of the
    IPTC data (rewriting IPTC would leave it stale) or that has several Photoshop blocks."""
    if fmt != "JPEG":
        return False
    parts = _split_jpeg(data)
    if not parts:
        return True
    ps = [s for s in parts[0] if s[1] == 0xED]
    return len(ps) > 1 or any(b"8BIM\x04\x25" in s for s in ps)


_TIFF_PLAIN_COMPRESSION = {"1", "5", "8", "32773", "32946"}   # none, LZW, deflate, PackBits


def _tiff_in_place_problem(exif: dict) -> str | None:
    """Why Exiv2 should not rewrite this TIFF in place (it re-lays-out the whole file), or None:
    only single-image TIFFs with plain compression and consistent sample tags are rewritten."""
    if any(k.startswith(("Exif.SubImage", "Exif.Image2.", "Exif.Image3.")) or k == "Exif.Image.SubIFDs" for k in exif):
        return "TIFF with sub-images"
    comp = str(exif.get("Exif.Image.Compression", "1"))
    if comp not in _TIFF_PLAIN_COMPRESSION:
        return f"TIFF compression {comp}"
    spp = str(exif.get("Exif.Image.SamplesPerPixel", "1"))
    bps = str(exif.get("Exif.Image.BitsPerSample", "8")).split()
    if not spp.isdigit() or len(bps) not in (1, int(spp)):
        return "TIFF sample tags disagree"
    return None


# -- making and verifying the new bytes ---------------------------------------------------------
def _set_bags(img) -> None:
    """pyexiv2 writes every list as rdf:Seq; keywords and hierarchical subjects are rdf:Bag
    (as Lightroom, digiKam and ExifTool write them): re-set them through the raw packet."""
    raw = img.read_raw_xmp()
    fixed = _BAG_RE.sub(r"\1<rdf:Bag>\3</rdf:Bag>", raw)
    if fixed != raw:
        img.modify_raw_xmp(fixed)


def render(data: bytes, decision: Decision, *, fmt: str | None, sidecar: bool,
           options: WriteOptions) -> tuple[bytes | None, dict]:
    """The new bytes for one file (``None``: nothing to change) and what changes, verified.

    Raises:
        MetadataError: the file cannot be written safely (the reason says why).
    """
    ex = _pyexiv2()
    try:
        with ex.ImageData(data) as img:
            exif0, iptc0, xmp0 = _read(img, strict=True)
            bad = _unparsed_jpeg_blocks(data, exif0) if not sidecar else None
            if bad:
                raise MetadataError(f"existing {bad} block cannot be parsed by Exiv2; not rewritten")
            if fmt == "TIFF" and not sidecar:
                why = _tiff_in_place_problem(exif0)
                if why:
                    raise MetadataError(f"{why}: Exiv2 would rewrite its structure; not rewritten in place")
            try:
                icc0 = img.read_icc()
            except Exception:
                icc0 = None
            cur = _embedded(exif0, iptc0, xmp0)
            use_iptc = options.iptc and not sidecar and fmt in IPTC_FORMATS and not _has_iptc_digest(data, fmt)
            xmp_t, iptc_t = target_values(cur, decision, sidecar=sidecar, iptc=use_iptc)
            xmp_c = _changes(xmp0, xmp_t)
            if not xmp_c and not iptc_t:
                return None, {}
            if sidecar:
                # Exiv2 derives EXIF and IPTC from a sidecar's XMP when reading it and folds them back
                # into the XMP when writing: a keyword taken out of the XMP would come back from there
                img.clear_iptc()
                img.clear_exif()
            if any(_is_region_key(k) for k in xmp_c):
                # regions are replaced as a whole: every key of the old tree goes first, deepest first
                # (deleting the root alone leaves its members)
                img.modify_xmp({k: None for k in sorted((k for k in xmp0 if _is_region_key(k)), key=len,
                                                        reverse=True)})
                xmp_c = {**{k: v for k, v in xmp_t.items() if _is_region_key(k) and v is not None},
                         **{k: v for k, v in xmp_c.items() if not _is_region_key(k)}}
            if xmp_c:
                img.modify_xmp(xmp_c)
                _set_bags(img)
            if iptc_t:
                img.modify_iptc(iptc_t)
            # Exiv2 leaves a sidecar's old bytes in place when its XMP became empty: write an empty packet
            new = EMPTY_PACKET if sidecar and not img.read_xmp() else img.get_bytes()
        if not sidecar:
            new = _splice(data, new, fmt, bool(iptc_t))
    except MetadataError:
        raise
    except Exception as exc:
        raise MetadataError(f"Exiv2 cannot write it: {exc}") from exc
    _verify(data, new, fmt, sidecar, exif0, iptc0, xmp0, icc0, xmp_t, iptc_t)
    return new, {**xmp_c, **iptc_t}


_EXIF_GROUPS = ("Exif.Image.", "Exif.Photo.", "Exif.GPSInfo.", "Exif.Iop.", "Exif.Thumbnail.", "Exif.Image2.",
                "Exif.Image3.", "Exif.SubImage", "Exif.MakerNote.", "Exif.MpfInfo.")
_MAKERNOTE_LAYOUT = ("Exif.Photo.MakerNote", "Exif.MakerNote.Offset")
# where things sit in the file, not what they say: pointers and offsets move when a metadata block
# grows; TIFF holds IPTC and XMP themselves in tags (what is being written)
_LAYOUT_RE = re.compile(r"\.(ExifTag|GPSTag|InteroperabilityTag|SubIFDs|StripOffsets|TileOffsets|"
                        r"JPEGInterchangeFormat|IPTCNAA|XMLPacket|ImageResources)$")


def _same_exif(exif0: dict, exif1: dict) -> None:
    """Raise unless every EXIF value survived. Exiv2 re-lays-out a maker note it decodes (its
    IFD may move or gain padding): that is accepted when every decoded maker-note tag is
    identical; an undecoded maker note must come through byte for byte."""
    diff = sorted(k for k in set(exif0) ^ set(exif1) | {k for k in exif0 if exif1.get(k) != exif0[k]}
                  if not _LAYOUT_RE.search(k))
    if not diff:
        return
    decoded = [k for k in exif0 if not k.startswith(_EXIF_GROUPS)]
    if decoded and all(k in _MAKERNOTE_LAYOUT for k in diff):
        return
    raise MetadataError(f"EXIF would change ({', '.join(diff[:5])})")


def _verify(old, new, fmt, sidecar, exif0, iptc0, xmp0, icc0, xmp_t, iptc_t) -> None:
    ex = _pyexiv2()
    try:
        with ex.ImageData(new) as img:
            exif1, iptc1, xmp1 = _read(img)
            try:
                icc1 = img.read_icc()
            except Exception:
                icc1 = None
    except Exception as exc:
        raise MetadataError(f"written file does not read back: {exc}") from exc
    if _changes(xmp1, xmp_t):
        raise MetadataError(f"fields did not read back as written: {sorted(_changes(xmp1, xmp_t))}")
    for k, v in iptc_t.items():
        if _norm(_as_list(iptc1.get(k)) if k == K_IPTC_KW else iptc1.get(k)) != _norm(v):
            raise MetadataError(f"{k} did not read back as written")
    if not sidecar:   # (Exiv2 derives EXIF from a sidecar's XMP: nothing to keep there)
        _same_exif(exif0, exif1)
    if {k: v for k, v in iptc0.items() if k not in OWN_IPTC} != {k: v for k, v in iptc1.items() if k not in OWN_IPTC}:
        raise MetadataError("other IPTC fields would change")
    regions = any(_is_region_key(k) for k in xmp_t)   # photolab rewrote the regions: they are its own

    def others(xmp: dict) -> dict:
        return {k: v for k, v in xmp.items() if k not in OWN_XMP and not (regions and _is_region_key(k))}

    if others(xmp0) != others(xmp1):
        raise MetadataError("other XMP fields would change")
    if icc0 != icc1:
        raise MetadataError("ICC profile would change")
    if not sidecar:
        try:
            _image_unchanged(old, new, fmt)
        except MetadataError:
            raise
        except Exception as exc:
            raise MetadataError(f"written file does not decode: {exc}") from exc


# -- the writing pass ---------------------------------------------------------------------------
@dataclass
class MetadataReport:
    """What a metadata run did; ``rows`` has one row per photo and target."""

    batch: str | None = None
    dry_run: bool = False
    rows: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r["status"]] = out.get(r["status"], 0) + 1
        return out

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows, columns=["photo_id", "path", "target", "status", "reason", "changes"])

    def summary(self) -> str:
        c = self.counts()
        verb = "would write" if self.dry_run else "written"
        parts = [f"{c.get('written', 0)} {verb}", f"{c.get('unchanged', 0)} unchanged"]
        if c.get("skipped"):
            parts.append(f"{c['skipped']} skipped")
        rate = len(self.rows) / self.seconds if self.seconds else 0.0
        return ", ".join(parts) + f" ({len(self.rows)} files, {rate:.0f}/s)"


def _media_facts(folder: Path, cache: dict) -> tuple[bool, bool]:
    try:
        dev = folder.stat().st_dev
    except OSError:
        return False, True
    if dev not in cache:
        from .gather import source_facts

        cache[dev] = source_facts(folder)
    return cache[dev]


def _plan_targets(lib, row, opts: WriteOptions, media: dict) -> list[tuple[str, Path, str | None]]:
    """[(target, file, reason)] for one photo: where its metadata goes, and why a sidecar."""
    photo = lib.abs(row["path"])
    removable, read_only = _media_facts(photo.parent, media)
    locked = read_only or _locked(photo)
    in_place_ok = (row["kind"] == "photo" and row["format"] in IN_FILE_FORMATS and not removable and not locked
                   and not read_only_dir(photo.parent))
    why = None
    if not in_place_ok:
        why = ("RAW: sidecar only" if row["kind"] == "raw" else
               "video: sidecar only (the container is never rewritten)" if row["kind"] == "video" else
               "removable media: sidecar only" if removable else
               "read-only: sidecar only" if locked else
               f"{row['format']}: Exiv2 cannot write it in place; sidecar")
    out = []
    if opts.where in ("in-file", "both") and in_place_ok:
        out.append(("file", photo, None))
    side = existing_sidecar(photo, media.setdefault("listings", {}))
    if opts.where in ("sidecar", "both") or not in_place_ok or side is not None:
        if side is None:
            side = sidecar_candidates(photo)[0 if opts.sidecar_naming == "ext" else 1]
        out.append(("sidecar", side, why))
    return out


def _work(lib, pid, row, target, path: Path, decision: Decision, opts: WriteOptions,
          fallback: bool = True) -> list[tuple[dict, Rewrite | None]]:
    """Read one file, make and verify its new bytes: [(result row, Rewrite or None)]. A photo
    refused in place (``where="in-file"``) gets a sidecar instead, reported on its own row."""
    rel = lib.rel(path)
    base = {"photo_id": pid, "path": rel, "target": target, "reason": None, "changes": None}
    try:
        if target == "sidecar" and not path.exists():
            if read_only_dir(path.parent):
                return [({**base, "status": "skipped", "reason": "folder is read-only; no sidecar can be made"}, None)]
            data, old_sha = EMPTY_PACKET, None
        else:
            data = path.read_bytes()
            old_sha = hashlib.sha256(data).hexdigest()
        new, changes = render(data, decision, fmt=row["format"], sidecar=target == "sidecar", options=opts)
    except (MetadataError, OSError) as exc:
        why = str(exc) if isinstance(exc, MetadataError) else f"cannot read: {exc.strerror or exc}"
        out = [({**base, "status": "skipped", "reason": why}, None)]
        if target == "file" and opts.where == "in-file" and fallback:
            side = existing_sidecar(path) or sidecar_candidates(path)[0 if opts.sidecar_naming == "ext" else 1]
            out += _work(lib, pid, row, "sidecar", side, decision, opts)
        return out
    if new is None:
        return [({**base, "status": "unchanged", "_sha": old_sha}, None)]
    summary = ", ".join(sorted(k.split(".", 1)[1] for k in changes))
    item = Rewrite(path=rel, data=new, old_sha256=old_sha, photo_id=pid if target == "file" else None,
                   detail={"target": target, "photo": pid})
    return [({**base, "status": "written", "changes": summary}, item)]


def _locked(path: Path) -> bool:
    """A file its owner made read-only (no write bit), or one the process may not write.
    (The mode bits count even for root, who could write anyway: they say what the user wants.)"""
    try:
        mode = path.stat().st_mode
    except OSError:
        return True
    return not (mode & 0o222) or not os.access(path, os.W_OK)


def read_only_dir(folder: Path) -> bool:
    """A folder no new file (sidecar) can be made in."""
    try:
        mode = folder.stat().st_mode
    except OSError:
        return True
    return not (mode & 0o222) or not os.access(folder, os.W_OK)


def write_metadata(library, *, options: WriteOptions | None = None, dry_run: bool = False,
                   photo_ids=None, progress: bool = True, workers: int | None = None) -> MetadataReport:
    """Write each usable photo's accepted tags and rating into the file and/or its sidecar.

    Args:
        options: where and what (:class:`WriteOptions`).
        dry_run: make and verify everything, write nothing (the report says what would change).
        photo_ids: only these photos (default: all usable photos).
        workers: threads making and verifying new bytes (default: cores).

    Returns:
        A :class:`MetadataReport`; ``report.frame()`` has one row per photo and target with
        ``status`` ``written``, ``unchanged`` or ``skipped`` and the reason.
    """
    from tqdm.auto import tqdm

    opts = options or WriteOptions()
    lib = open_library(library)
    if not dry_run and opts.where != "sidecar":
        from .backup import guard

        guard(lib, "write-metadata")
    recover(lib)   # settle a run that was killed before anything else reads the files
    start = time.perf_counter()
    decisions = decisions_for_writing(lib, opts, photo_ids=photo_ids)
    if photo_ids is not None:   # a watched import's photos: their rows only
        rows = {r["id"]: r for r in by_id(lib.catalog.conn, decisions, "id, path, kind, format, sha256")}
        written = metadata_written(lib.catalog.conn, decisions)
    else:
        rows = {r["id"]: r for r in lib.catalog.query("SELECT id, path, kind, format, sha256 FROM photos")}
        written = lib.catalog.query("SELECT photo_id, target, sha256, digest, path FROM metadata_written")
    done_before = {(r["photo_id"], r["target"]): (r["sha256"], r["digest"], r["path"]) for r in written}
    report = MetadataReport(batch=None if dry_run else new_batch("metadata"), dry_run=dry_run)
    media: dict = {}
    jobs = []
    for pid, d in decisions.items():
        row = rows[pid]
        if not (d.tags or d.places or d.people) and d.rating is None and d.auto_rating is None:
            jobs_for = [(t, p, w) for t, p, w in _plan_targets(lib, row, opts, media) if p.exists()]
        else:
            jobs_for = _plan_targets(lib, row, opts, media)
        digest = d.digest(opts)
        for target, path, _why in jobs_for:
            before = done_before.get((pid, target))
            rel = lib.rel(path)
            if before and before[1] == digest and before[2] == rel and (
                    (target == "file" and row["sha256"] == before[0]) or
                    (target == "sidecar" and path.is_file() and sha256_file(path) == before[0])):
                report.rows.append({"photo_id": pid, "path": rel, "target": target, "status": "unchanged",
                                    "reason": None, "changes": None})
                continue
            jobs.append((pid, row, target, path, d, digest, not any(t == "sidecar" for t, _, _ in jobs_for)))
    threads = workers or max(1, os.cpu_count() or 1)
    bar = tqdm(total=len(jobs), desc="metadata", unit="file", disable=not progress)
    pending: list[tuple[dict, Rewrite, str]] = []
    unchanged_records = []

    def flush():
        if dry_run or not pending:
            pending.clear()
            return
        res = rewrite(lib, [p[1] for p in pending], batch=report.batch)
        skipped = dict(res.skipped)
        with lib.catalog.write() as db:
            for r, item, digest in pending:
                if item.path in skipped:
                    r["status"], r["reason"] = "skipped", skipped[item.path]
                    continue
                db.execute("INSERT OR REPLACE INTO metadata_written(photo_id, target, path, sha256, digest, at) "
                           "VALUES (?,?,?,?,?,?)", (r["photo_id"], r["target"], item.path, item.new_sha256,
                                                     digest, utcnow()))
        pending.clear()

    with cf.ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(_work, lib, pid, row, target, path, d, opts, fallback)
                   for pid, row, target, path, d, _, fallback in jobs]
        for (pid, row, target, path, d, digest, _), fut in zip(jobs, futures):
            for r, item in fut.result():
                sha = r.pop("_sha", None)
                report.rows.append(r)
                if item is not None:
                    pending.append((r, item, digest))
                elif r["status"] == "unchanged" and sha and not dry_run:
                    unchanged_records.append((pid, r["target"], r["path"], sha, digest))
            if len(pending) >= 64:
                flush()
            bar.update(1)
        flush()
    bar.close()
    if unchanged_records:
        with lib.catalog.write() as db:
            db.executemany("INSERT OR REPLACE INTO metadata_written(photo_id, target, path, sha256, digest, at) "
                           "VALUES (?,?,?,?,?,?)", [(*u, utcnow()) for u in unchanged_records])
    if not dry_run:
        prune_versions(lib)
    report.seconds = time.perf_counter() - start
    run = lib.catalog.start_run("write-metadata")
    lib.catalog.finish_run(run, {"counts": report.counts(), "dry_run": dry_run, "batch": report.batch,
                                 "seconds": round(report.seconds, 2)})
    return report


# -- reading other apps' tags back --------------------------------------------------------------
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
    usable = ", ".join("?" * len(USABLE))
    rows = lib.catalog.query(
        f"SELECT id, path FROM photos WHERE kind IN ('photo', 'raw', 'video') AND status IN ({usable}) ORDER BY id", USABLE)
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
        db.executemany("INSERT OR IGNORE INTO labels(photo_id, tag, value, who, at) VALUES (?,?,1,'metadata',?)",
                       labels)
        db.executemany("INSERT INTO ratings(photo_id, rating, source, at) VALUES (?,?,'file',?) "
                       "ON CONFLICT(photo_id) DO UPDATE SET rating = excluded.rating, at = excluded.at "
                       "WHERE ratings.source = 'file'", ratings)
    return pd.DataFrame(out, columns=["photo_id", "path", "keywords", "tags", "unknown", "rating"]).set_index("photo_id")


def set_rating(library, photo_id: int, rating: int | None) -> None:
    """A person's rating for a photo (0-5, -1 rejected; ``None`` clears it); written by the next
    :func:`write_metadata` over any rating in the file."""
    lib = open_library(library)
    with lib.catalog.write() as db:
        if rating is None:
            db.execute("DELETE FROM ratings WHERE photo_id = ?", (int(photo_id),))
            return
        if _as_rating(rating) is None or int(rating) != rating:
            raise ValueError(f"rating must be an integer from -1 to 5, got {rating!r}")
        db.execute("INSERT OR REPLACE INTO ratings(photo_id, rating, source, at) VALUES (?,?,'person',?)",
                   (int(photo_id), int(rating), utcnow()))


# -- versions -----------------------------------------------------------------------------------
def versions(library, path: str | os.PathLike | None = None):
    """Kept versions, newest first: id, photo_id, path (when kept), sha256 (None: the file did not
    exist yet), batch, saved_at. For a photo, its own versions wherever it has been moved since."""
    lib = open_library(library)
    if path is None:
        return lib.catalog.dataframe("SELECT * FROM versions ORDER BY id DESC", index_col="id")
    p = Path(path)
    rel = lib.rel(p.resolve()) if p.is_absolute() else lib.rel(p)
    row = lib.catalog.query("SELECT id FROM photos WHERE path = ? AND kind != 'sidecar'", (rel,))
    if row:
        return lib.catalog.dataframe("SELECT * FROM versions WHERE photo_id = ? ORDER BY id DESC",
                                     (row[0]["id"],), index_col="id")
    return lib.catalog.dataframe("SELECT * FROM versions WHERE path = ? AND photo_id IS NULL ORDER BY id DESC",
                                 (rel,), index_col="id")


def restore(library, path: str | os.PathLike, *, version: int | None = None):
    """Put a file back as it was before photolab last rewrote it (or as kept ``version``), byte-identical.

    The current bytes are kept as a version first, so a restore can itself be undone
    (``photolab undo``). Returns the :class:`~photolab.fileops.BatchReport`.
    """
    lib = open_library(library)
    df = versions(lib, path)
    if df.empty:
        raise FileOpError(f"{path}: photolab has kept no earlier version of it")
    if version is not None:
        if int(version) not in df.index:
            raise FileOpError(f"{path}: no kept version {version} (kept: {', '.join(map(str, df.index))})")
        v = df.loc[int(version)]
    else:
        v = df.iloc[0]
    pid = v["photo_id"]
    pid = None if pid is None or pid != pid else int(pid)
    rel = v["path"]
    if pid is not None:   # the photo may have been moved since: restore it where it is now
        now = lib.catalog.query("SELECT path FROM photos WHERE id = ?", (pid,))
        rel = now[0]["path"] if now else rel
    cur = lib.abs(rel)
    cur_sha = sha256_file(cur) if cur.is_file() else None
    want = v["sha256"] if isinstance(v["sha256"], str) else None
    if cur_sha == want:
        raise FileOpError(f"{rel}: already holds that version")
    data = version_bytes(lib, want)
    report = rewrite(lib, [Rewrite(path=rel, data=data, old_sha256=cur_sha, photo_id=pid,
                                   detail={"restores": int(v.name)})], batch=new_batch("restore"))
    if report.skipped:
        raise FileOpError(f"{rel}: {report.skipped[0][1]}")
    with lib.catalog.write() as db:
        db.execute("DELETE FROM metadata_written WHERE path = ?", (rel,))
    return report


__all__ = ["Embedded", "MetadataError", "MetadataReport", "WriteOptions", "import_metadata", "read_metadata",
           "restore", "set_rating", "versions", "write_metadata"]
