"""What a file is: photo, RAW, sidecar, video (standalone or a live photo's companion) or something else.

Kinds are decided by extension for gathering (cheap, before copying) and by
content for indexing (:func:`sniff_raw` plus Pillow's own identification), so
a PNG named ``.jpg`` is still read as the PNG it is.
"""

from __future__ import annotations

import functools
from pathlib import Path

PHOTO_EXTS = frozenset(
    ".jpg .jpeg .jpe .png .heic .heif .hif .webp .tif .tiff .gif .bmp .avif".split()
)
RAW_EXTS = frozenset(
    ".dng .cr2 .cr3 .crw .nef .nrw .arw .srf .sr2 .raf .orf .rw2 .pef .srw .x3f .3fr .iiq .erf .mrw .raw .rwl".split()
)
SIDECAR_EXTS = frozenset(".xmp .aae".split())
VIDEO_EXTS = frozenset(".mp4 .mov .m4v .3gp .avi .mkv .mts .m2ts".split())
#: videos that travel with a photo of the same name (iPhone live photos, older Android motion photos)
LIVE_VIDEO_EXTS = frozenset(".mov .mp4 .m4v".split())

# TIFF-based RAW formats cannot be told from a TIFF by magic bytes alone.
_TIFF_RAW_BY_EXT = {
    ".dng": "DNG", ".nef": "NEF", ".nrw": "NRW", ".arw": "ARW", ".srf": "SRF", ".sr2": "SR2",
    ".pef": "PEF", ".srw": "SRW", ".3fr": "3FR", ".iiq": "IIQ", ".erf": "ERF", ".rwl": "RWL",
    ".raw": "RAW",
}


def photo_stems(names) -> set[str]:
    """The lower-case stems of the photos and RAW files among ``names`` (one folder's files)."""
    return {n.rpartition(".")[0].lower() for n in names if kind_by_extension(n) in ("photo", "raw")}


def live_companion(name: str, stems: set[str]) -> bool:
    """Whether video ``name`` is the live-photo half of a photo whose stem is in ``stems``
    (:func:`photo_stems` of its folder)."""
    p = Path(name)
    return p.suffix.lower() in LIVE_VIDEO_EXTS and p.stem.lower() in stems


def kind_by_extension(path: str | Path) -> str:
    """``photo``, ``raw``, ``sidecar``, ``video`` or ``other`` from the file name."""
    ext = Path(path).suffix.lower()
    if ext in PHOTO_EXTS:
        return "photo"
    if ext in RAW_EXTS:
        return "raw"
    if ext in SIDECAR_EXTS:
        return "sidecar"
    if ext in VIDEO_EXTS:
        return "video"
    return "other"


def sniff_raw(head: bytes, ext: str) -> str | None:
    """Name of the RAW format in ``head`` (the first bytes of a file), or None."""
    ext = ext.lower()
    if head[:4] == b"II*\x00" and head[8:10] == b"CR":
        return "CR2"
    if head[4:12] == b"ftypcrx ":
        return "CR3"
    if head[:2] == b"II" and head[6:14] == b"HEAPCCDR":
        return "CRW"
    if head.startswith(b"FUJIFILMCCD-RAW"):
        return "RAF"
    if head[:4] in (b"IIRO", b"IIRS", b"MMOR"):
        return "ORF"
    if head[:4] == b"IIU\x00":
        return "RW2"
    if head[:4] == b"\x00MRM":
        return "MRW"
    if head[:4] == b"FOVb":
        return "X3F"
    if head[:4] in (b"II*\x00", b"MM\x00*") and ext in _TIFF_RAW_BY_EXT:
        return _TIFF_RAW_BY_EXT[ext]
    return None


def sniff_other(head: bytes) -> str | None:
    """MIME type of a non-image file (video, document, archive...), if recognisable."""
    import filetype

    guess = filetype.guess(head)
    return guess.mime if guess else None


@functools.lru_cache(maxsize=1)
def register_heif() -> bool:
    """Teach Pillow to open HEIC/HEIF (and AVIF) through pillow-heif; True when available."""
    try:
        import pillow_heif
    except ImportError:  # pragma: no cover - a declared dependency
        return False
    pillow_heif.register_heif_opener()
    if hasattr(pillow_heif, "register_avif_opener"):
        try:
            pillow_heif.register_avif_opener()
        except Exception:  # noqa: BLE001 - newer Pillow reads AVIF itself
            pass
    return True


def companions(photo: Path, siblings: set[str]) -> list[str]:
    """Names in ``siblings`` that travel with ``photo``: sidecars, AAE edits, live-photo videos.

    For a photo, ``IMG_1.jpg`` takes ``IMG_1.jpg.xmp``, ``IMG_1.xmp``, ``IMG_1.aae``,
    ``IMG_O1.aae`` (iOS originals' edits) and ``IMG_1.mov`` (case-insensitive). For a
    standalone video, ``clip.mp4`` takes ``clip.mp4.xmp`` and ``clip.xmp``.
    """
    stem = photo.stem.lower()
    name = photo.name.lower()
    is_video = photo.suffix.lower() in VIDEO_EXTS
    out = []
    for sib in siblings:
        low = sib.lower()
        if low == name:
            continue
        sib_stem, _, sib_ext = low.rpartition(".")
        ext = "." + sib_ext
        if ext in SIDECAR_EXTS and sib_stem in (stem, name):
            out.append(sib)
        elif ext == ".aae" and stem.startswith("img_") and sib_stem == "img_o" + stem[4:]:
            out.append(sib)
        elif ext in LIVE_VIDEO_EXTS and sib_stem == stem and not is_video:
            out.append(sib)
    return sorted(out)
