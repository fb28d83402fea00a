"""Reading what a photo says about itself: format, size, capture time, camera, GPS.

Pillow (with pillow-heif) reads JPEG, PNG, TIFF, WebP, GIF, BMP and HEIC/HEIF;
RAW files get their size from LibRaw (rawpy, header only) and their EXIF from
Exiv2 (pyexiv2). Capture time follows a fallback chain and records which link
of the chain gave it.
"""

from __future__ import annotations

import datetime as _dt
import io
import logging
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

log = logging.getLogger(__name__)

# EXIF tag numbers (Pillow gives them as ints)
_IFD_EXIF, _IFD_GPS = 0x8769, 0x8825
_MAKE, _MODEL, _ORIENTATION, _DATETIME = 0x010F, 0x0110, 0x0112, 0x0132
_DT_ORIGINAL, _DT_DIGITIZED = 0x9003, 0x9004
_OFFSET_ORIGINAL, _OFFSET_DIGITIZED, _OFFSET = 0x9011, 0x9012, 0x9010
_SUBSEC_ORIGINAL, _SUBSEC_DIGITIZED = 0x9291, 0x9292
_LENS_MODEL = 0xA434

CAPTURE_SOURCES = ("DateTimeOriginal", "CreationDate", "CreateDate", "GPSDateTime", "FileName", "FileModifyDate")


@dataclass
class PhotoInfo:
    """What :func:`read_info` learned about one file."""

    format: str | None = None
    width: int | None = None
    height: int | None = None
    orientation: int | None = None
    captured_at: str | None = None
    captured_source: str | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    lens: str | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None
    gps_alt: float | None = None
    warnings: list[str] = field(default_factory=list)


# -- capture time -------------------------------------------------------------
_EXIF_DT = re.compile(r"^\s*(\d{4})[:\-/](\d{2})[:\-/](\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?\s*(Z|[+-]\d{2}:?\d{2})?")
_OFFSET_RE = re.compile(r"^\s*([+-])(\d{2}):?(\d{2})\s*$")
# IMG_20160915_123456, PXL_20210101_123456789, 20190102_101112, 2019-01-02 10.11.12,
# Screenshot_2019-01-02-10-11-12, IMG-20190102-WA0001 (date only)
_NAME_DT = re.compile(
    r"(?<!\d)((?:19|20)\d{2})[-_.]?([01]\d)[-_.]?([0-3]\d)"
    r"(?:[-_ T.]?([0-2]\d)[-_.:h]?([0-5]\d)[-_.:m]?([0-5]\d)(?:\d{3})?)?(?!\d)"
)


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.split(b"\x00", 1)[0].decode("utf-8", "replace")
    text = str(value).replace("\x00", "").strip()
    return text or None


def _tz(offset: str | None) -> _dt.timezone | None:
    m = _OFFSET_RE.match(offset or "")
    if not m:
        return None
    minutes = int(m.group(2)) * 60 + int(m.group(3))
    if minutes > 14 * 60:
        return None
    return _dt.timezone(_dt.timedelta(minutes=minutes if m.group(1) == "+" else -minutes))


def parse_exif_datetime(value, offset=None, subsec=None) -> _dt.datetime | None:
    """Parse an EXIF ``YYYY:MM:DD HH:MM:SS`` value; None for blanks and impossible dates."""
    text = _text(value)
    if not text:
        return None
    m = _EXIF_DT.match(text)
    if not m:
        return None
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    if y < 1826 or y > 2100:
        return None
    try:
        moment = _dt.datetime(y, mo, d, h, mi, s)
    except ValueError:
        return None
    frac = m.group(7) or (_text(subsec) or "").strip()
    if frac.isdigit():
        moment = moment.replace(microsecond=int((frac + "000000")[:6]))
    tz = None
    if m.group(8):
        tz = _dt.timezone.utc if m.group(8) == "Z" else _tz(m.group(8))
    tz = tz or _tz(_text(offset))
    return moment.replace(tzinfo=tz) if tz else moment


def parse_filename_datetime(name: str) -> _dt.datetime | None:
    """Capture time from common camera/phone file-name patterns, or None."""
    for m in _NAME_DT.finditer(Path(name).stem):
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
        h, mi, s = (int(g) if g else 0 for g in m.groups()[3:6])
        try:
            moment = _dt.datetime(y, mo, d, h, mi, s)
        except ValueError:
            continue
        if moment.year >= 1990 and moment <= _dt.datetime.now() + _dt.timedelta(days=1):
            return moment
    return None


def _gps_coord(value, ref) -> float | None:
    try:
        if isinstance(value, str):  # pyexiv2: "43/1 28/1 281400000/100000000"
            parts = [Fraction(p) for p in value.split()]
        else:
            parts = [Fraction(float(p)).limit_denominator(10**9) if not isinstance(p, tuple)
                     else Fraction(p[0], p[1]) for p in value]
        if not parts:
            return None
        while len(parts) < 3:
            parts.append(Fraction(0))
        deg = float(parts[0] + parts[1] / 60 + parts[2] / 3600)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    ref = (_text(ref) or "").upper()
    if ref in ("S", "W"):
        deg = -deg
    return deg


def _rational(value) -> float | None:
    try:
        if isinstance(value, str):
            return float(Fraction(value.split()[0]))
        return float(value)
    except (TypeError, ValueError, ZeroDivisionError, IndexError):
        return None


def _gps_datetime(date, time) -> _dt.datetime | None:
    dtext = _text(date)
    if not dtext or time is None:
        return None
    try:
        if isinstance(time, str):
            hms = [float(Fraction(p)) for p in time.split()]
        else:
            hms = [float(p) for p in time]
        y, mo, d = (int(p) for p in re.split(r"[:\-]", dtext)[:3])
        base = _dt.datetime(y, mo, d, tzinfo=_dt.timezone.utc)
        return base + _dt.timedelta(hours=hms[0], minutes=hms[1], seconds=hms[2])
    except (ValueError, TypeError, IndexError, ZeroDivisionError, OverflowError):
        return None


def _iso(moment: _dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds")


def _fill_from_tags(info: PhotoInfo, tags: dict) -> _dt.datetime | None:
    """Fill camera/orientation/GPS from a flat tag dict; return the best EXIF time, if any.

    ``tags`` uses ExifTool-style names (DateTimeOriginal, GPSLatitude...),
    which both readers below produce.
    """
    info.camera_make = _text(tags.get("Make"))
    info.camera_model = _text(tags.get("Model"))
    info.lens = _text(tags.get("LensModel"))
    try:
        orientation = int(_text(tags.get("Orientation")) or 0)
        info.orientation = orientation if 1 <= orientation <= 8 else None
    except ValueError:
        info.orientation = None
    if tags.get("GPSLatitude") is not None and tags.get("GPSLongitude") is not None:
        lat = _gps_coord(tags["GPSLatitude"], tags.get("GPSLatitudeRef"))
        lon = _gps_coord(tags["GPSLongitude"], tags.get("GPSLongitudeRef"))
        if lat is not None and lon is not None and abs(lat) <= 90 and abs(lon) <= 180 and (lat, lon) != (0.0, 0.0):
            info.gps_lat, info.gps_lon = round(lat, 7), round(lon, 7)
            alt = _rational(tags.get("GPSAltitude"))
            if alt is not None:
                ref = tags.get("GPSAltitudeRef")
                below = ref in (1, b"\x01", "1") or _text(ref) == "1"
                info.gps_alt = -alt if below else alt
    chain = [
        ("DateTimeOriginal", parse_exif_datetime(
            tags.get("DateTimeOriginal"), tags.get("OffsetTimeOriginal") or tags.get("OffsetTime"),
            tags.get("SubSecTimeOriginal"))),
        ("CreateDate", parse_exif_datetime(
            tags.get("DateTimeDigitized"), tags.get("OffsetTimeDigitized") or tags.get("OffsetTime"),
            tags.get("SubSecTimeDigitized"))),
        ("GPSDateTime", _gps_datetime(tags.get("GPSDateStamp"), tags.get("GPSTimeStamp"))),
    ]
    for source, moment in chain:
        if moment is not None:
            info.captured_source = source
            return moment
    return None


def _pillow_tags(im) -> dict:
    exif = im.getexif()
    tags: dict = {}
    if not exif:
        return tags
    tags.update(Make=exif.get(_MAKE), Model=exif.get(_MODEL), Orientation=exif.get(_ORIENTATION),
                DateTime=exif.get(_DATETIME))
    try:
        sub = exif.get_ifd(_IFD_EXIF)
    except Exception:  # noqa: BLE001 - a broken sub-IFD loses only that IFD
        sub = {}
    tags.update(
        DateTimeOriginal=sub.get(_DT_ORIGINAL), DateTimeDigitized=sub.get(_DT_DIGITIZED),
        OffsetTimeOriginal=sub.get(_OFFSET_ORIGINAL), OffsetTimeDigitized=sub.get(_OFFSET_DIGITIZED),
        OffsetTime=sub.get(_OFFSET), SubSecTimeOriginal=sub.get(_SUBSEC_ORIGINAL),
        SubSecTimeDigitized=sub.get(_SUBSEC_DIGITIZED), LensModel=sub.get(_LENS_MODEL),
    )
    try:
        gps = exif.get_ifd(_IFD_GPS)
    except Exception:  # noqa: BLE001
        gps = {}
    if gps:
        tags.update(
            GPSLatitudeRef=gps.get(1), GPSLatitude=gps.get(2), GPSLongitudeRef=gps.get(3),
            GPSLongitude=gps.get(4), GPSAltitudeRef=gps.get(5), GPSAltitude=gps.get(6),
            GPSTimeStamp=gps.get(7), GPSDateStamp=gps.get(29),
        )
    return tags


_EXIV2_NAMES = {
    "Exif.Image.Make": "Make", "Exif.Image.Model": "Model", "Exif.Image.Orientation": "Orientation",
    "Exif.Photo.DateTimeOriginal": "DateTimeOriginal", "Exif.Photo.DateTimeDigitized": "DateTimeDigitized",
    "Exif.Photo.OffsetTimeOriginal": "OffsetTimeOriginal", "Exif.Photo.OffsetTimeDigitized": "OffsetTimeDigitized",
    "Exif.Photo.OffsetTime": "OffsetTime", "Exif.Photo.SubSecTimeOriginal": "SubSecTimeOriginal",
    "Exif.Photo.SubSecTimeDigitized": "SubSecTimeDigitized", "Exif.Photo.LensModel": "LensModel",
    "Exif.GPSInfo.GPSLatitudeRef": "GPSLatitudeRef", "Exif.GPSInfo.GPSLatitude": "GPSLatitude",
    "Exif.GPSInfo.GPSLongitudeRef": "GPSLongitudeRef", "Exif.GPSInfo.GPSLongitude": "GPSLongitude",
    "Exif.GPSInfo.GPSAltitudeRef": "GPSAltitudeRef", "Exif.GPSInfo.GPSAltitude": "GPSAltitude",
    "Exif.GPSInfo.GPSTimeStamp": "GPSTimeStamp", "Exif.GPSInfo.GPSDateStamp": "GPSDateStamp",
}


def exiv2_tags(data: bytes) -> tuple[dict, tuple[int, int] | None]:
    """EXIF of any format Exiv2 reads (RAW included), as ExifTool-style names, and the pixel size."""
    import pyexiv2

    pyexiv2.set_log_level(4)
    with pyexiv2.ImageData(data) as img:
        try:
            raw = img.read_exif()
        except UnicodeDecodeError:
            raw = img.read_exif(encoding="iso-8859-1")
        try:
            size = (int(img.get_pixel_width()), int(img.get_pixel_height()))
        except Exception:  # noqa: BLE001
            size = None
    tags = {short: raw[name] for name, short in _EXIV2_NAMES.items() if name in raw}
    return tags, size if size and all(size) else None


def read_raw_info(data: bytes, fmt: str, info: PhotoInfo) -> _dt.datetime | None:
    """Size of a RAW file from LibRaw's header parse, EXIF from Exiv2."""
    import rawpy

    raw = rawpy.RawPy()
    try:
        raw.open_buffer(io.BytesIO(data))
        sizes = raw.sizes
        info.width, info.height = int(sizes.width), int(sizes.height)
    except Exception as exc:  # noqa: BLE001 - LibRaw raises its own error types
        info.warnings.append(f"LibRaw cannot decode this {fmt} ({exc.args[0] if exc.args else exc!r})")
    finally:
        raw.close()
    try:
        tags, size = exiv2_tags(data)
    except Exception as exc:  # noqa: BLE001
        info.warnings.append(f"no readable EXIF ({exc})")
        return None
    if info.width is None and size:
        info.width, info.height = size  # metadata readable, image data not: a warning, not corrupt
    return _fill_from_tags(info, tags)


def read_pillow_info(im, info: PhotoInfo) -> _dt.datetime | None:
    """Size, orientation, camera, GPS and EXIF time of an opened Pillow image."""
    info.width, info.height = im.size
    try:
        tags = _pillow_tags(im)
    except Exception as exc:  # noqa: BLE001 - broken EXIF must not lose the photo
        info.warnings.append(f"EXIF unreadable ({type(exc).__name__}: {exc})")
        return None
    return _fill_from_tags(info, tags)


def finish_capture_time(info: PhotoInfo, moment: _dt.datetime | None, name: str, mtime_ns: int) -> None:
    """Apply the rest of the fallback chain (file name, then modification time)."""
    if moment is None:
        moment = parse_filename_datetime(name)
        if moment is not None:
            info.captured_source = "FileName"
    if moment is None:
        moment = _dt.datetime.fromtimestamp(mtime_ns / 1e9).astimezone()
        moment = moment.replace(microsecond=0)
        info.captured_source = "FileModifyDate"
    info.captured_at = _iso(moment)


def open_image(data: bytes | None, path: Path):
    """Open an image with Pillow (HEIF registered), from bytes when we have them."""
    from PIL import Image

    from photolab.features.media import register_heif

    register_heif()
    return Image.open(io.BytesIO(data) if data is not None else path)
