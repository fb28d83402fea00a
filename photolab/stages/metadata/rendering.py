"""Making one file's new bytes and verifying them before anything is written."""

from __future__ import annotations

import re

from photolab.stages.metadata.decide import Decision, WriteOptions, target_values
from photolab.stages.metadata.fields import (IPTC_FORMATS, K_IPTC_KW, OWN_IPTC, OWN_XMP, MetadataError, _as_list, _embedded,
                     _is_region_key, _pyexiv2, _read)
from photolab.stages.metadata.splice import (EMPTY_PACKET, _has_iptc_digest, _image_unchanged, _set_bags, _splice, _tiff_in_place_problem,
                     _unparsed_jpeg_blocks)


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
