"""Byte-level work on JPEG, PNG and XMP packets: walking segments and chunks, placing Exiv2's new XMP/IPTC
blocks into the original bytes, and checking that the image data came through unchanged."""

from __future__ import annotations

import hashlib
import io
import re
import struct

from photolab.stages.metadata.fields import PREFIX, MetadataError

EMPTY_PACKET = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
                '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
                ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
                ' </rdf:RDF>\n</x:xmpmeta>\n<?xpacket end="w"?>').encode("utf-8")


_BAGS = ("dc:subject", "lr:hierarchicalSubject", f"{PREFIX}:Tags", f"{PREFIX}:Reviewed")
_BAG_RE = re.compile(r"(<(%s)>\s*)<rdf:Seq>(.*?)</rdf:Seq>" % "|".join(map(re.escape, _BAGS)), re.S)


def _unparsed_jpeg_blocks(data: bytes, exif: dict) -> str | None:
    """A JPEG metadata block Exiv2 read nothing from (rewriting would lose it), or None."""
    walk = _walk_jpeg(data)
    if walk is None:
        return None
    for marker, a, _ in walk[0]:
        if marker == 0xE1 and data[a + 4:a + 9] == b"Exif\0" and not exif:
            return "EXIF"
    return None


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

    from photolab.features.media import register_heif

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
