"""Videos: what a clip's container says about it, and one poster frame.

PyAV (FFmpeg, bundled in its wheel) reads the container's header only: the
duration, the frame size and codec of the first video stream, and the capture
time and place the camera wrote:

- ``com.apple.quicktime.creationdate`` (iPhones: local time with its offset),
  recorded as ``CreationDate``;
- the QuickTime/MP4 ``creation_time`` (the movie header's time, UTC by the
  format's definition), shown in this machine's time zone and recorded as
  ``CreateDate``;
- GPS from ``com.apple.quicktime.location.ISO6709`` or the ``©xyz`` atom
  (``location``), ISO 6709 text such as ``+43.4633+011.8807+120.000/``.

Without them the capture time falls back to the file name and the file's
modification time, as for photos. The poster frame is one frame at 10 % of the
duration: the demuxer seeks to the keyframe before it and decodes forward to
it, so a clip is never decoded in full, however long it is.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
from pathlib import Path

from photolab.features.exif import PhotoInfo, parse_exif_datetime

log = logging.getLogger(__name__)

POSTER_AT = 0.10          # share of the duration where the poster frame is taken
MAX_DECODE_FRAMES = 600   # frames decoded after the seek before giving up (a keyframe is never this far)

_ISO6709 = re.compile(r"^\s*([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)?")


class VideoError(Exception):
    """A video cannot be read; the message is the reason recorded in the catalog."""


def parse_iso6709(text: str | None) -> tuple[float, float, float | None] | None:
    """(lat, lon, alt) from ISO 6709 text in decimal degrees (``+43.4633+011.8807+120.000/``)."""
    if not text:
        return None
    m = _ISO6709.match(text)
    if not m:
        return None
    try:
        lat, lon = float(m.group(1)), float(m.group(2))
        alt = float(m.group(3)) if m.group(3) else None
    except ValueError:
        return None
    if abs(lat) > 90 or abs(lon) > 180 or (lat, lon) == (0.0, 0.0):
        return None
    return lat, lon, alt


def _creation_time(text: str | None) -> _dt.datetime | None:
    """The container's ``creation_time`` (UTC) in this machine's time zone; None for blanks and zero dates."""
    moment = parse_exif_datetime(text)
    if moment is None or moment.year < 1971:     # 1904/1970 epochs: a camera that never set its clock
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return moment.astimezone()


def _open(path: Path):
    import av

    try:
        return av.open(str(path), metadata_errors="replace")
    except av.error.FFmpegError as exc:
        raise VideoError(f"not a readable video ({_ffmpeg_reason(exc)})") from exc


def _ffmpeg_reason(exc) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(": '", 1)[0].strip() or type(exc).__name__


def read_video_info(path: str | Path, info: PhotoInfo) -> tuple[_dt.datetime | None, dict]:
    """Fill ``info`` (size, camera, GPS) from a video's container; return (capture time, extra).

    ``extra`` has ``duration`` (seconds), ``codec``, ``format`` (the container) and ``problem``
    (why the stream holds no readable data, from its first packet; None when it does). Raises
    :class:`VideoError` with the reason when the file is not a readable video."""
    path = Path(path)
    container = _open(path)
    with container:
        streams = list(container.streams.video)
        if not streams:
            raise VideoError("no video stream in the container")
        s = streams[0]
        cc = s.codec_context
        tags = {str(k).lower(): v for k, v in (container.metadata or {}).items()}
        stream_tags = {str(k).lower(): v for k, v in (s.metadata or {}).items()}
        duration = None
        if container.duration:
            duration = container.duration / 1_000_000
        elif s.duration and s.time_base:
            duration = float(s.duration * s.time_base)
        codec = cc.name if cc is not None else None
        width, height = (cc.width, cc.height) if cc is not None else (0, 0)
        fmt = container.format.name.split(",")[0].upper() if container.format else None
        problem = _first_packet_problem(container, s)
    extra = {"duration": round(duration, 3) if duration else None, "codec": codec,
             "format": _container_name(path, fmt), "problem": problem}
    if width and height:
        info.width, info.height = int(width), int(height)
    else:
        info.warnings.append("frame size unknown (stream parameters unreadable)")
    if not duration:
        info.warnings.append("duration unknown")
    info.camera_make = _text(tags.get("com.apple.quicktime.make") or tags.get("make"))
    info.camera_model = _text(tags.get("com.apple.quicktime.model") or tags.get("model"))
    where = parse_iso6709(tags.get("com.apple.quicktime.location.iso6709") or tags.get("location")
                          or tags.get("location-eng"))
    if where:
        info.gps_lat, info.gps_lon = round(where[0], 7), round(where[1], 7)
        info.gps_alt = where[2]
    apple = parse_exif_datetime(tags.get("com.apple.quicktime.creationdate"))
    if apple is not None and apple.year >= 1971:
        info.captured_source = "CreationDate"
        return apple, extra
    created = _creation_time(tags.get("creation_time") or stream_tags.get("creation_time"))
    if created is not None:
        info.captured_source = "CreateDate"
        return created, extra
    return None, extra


def _first_packet_problem(container, stream) -> str | None:
    """Why the video stream has no data, read from its first packet (not decoded), or None."""
    try:
        for packet in container.demux(stream):
            if packet.size:
                return None
            break
    except Exception as exc:  # noqa: BLE001 - FFmpeg's errors: this file's problem
        return f"video data unreadable ({_ffmpeg_reason(exc)})"
    return "no video data (the header is there, the frames are not: a truncated or header-only file)"


def _container_name(path: Path, fmt: str | None) -> str | None:
    """The container as people name it: MP4/MOV (FFmpeg calls both ``mov``), else FFmpeg's name."""
    if fmt == "MOV":
        ext = path.suffix.lower()
        return {".mp4": "MP4", ".m4v": "MP4", ".3gp": "3GP"}.get(ext, "MOV")
    return fmt


def _text(value) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def poster_frame(path: str | Path, *, at: float = POSTER_AT, stats: dict | None = None):
    """One decoded frame at ``at`` of the duration, upright, as an RGB Pillow image.

    Seeks to the keyframe before the moment and decodes forward to it (at most
    :data:`MAX_DECODE_FRAMES` frames); the rest of the clip is never read. ``stats``, if
    given, receives ``decoded`` (frames decoded), ``time`` (the poster's time in seconds),
    ``bytes`` (bytes of compressed data demuxed) and ``duration``."""
    from PIL import Image

    def decode_to(target: float, seek: bool):
        container = _open(Path(path))
        with container:
            if not container.streams.video:
                raise VideoError("no video stream in the container")
            s = container.streams.video[0]
            s.thread_type = "NONE"
            tb = s.time_base
            duration = (container.duration / 1_000_000) if container.duration else (
                float(s.duration * tb) if s.duration and tb else 0.0)
            start = float(s.start_time * tb) if s.start_time is not None and tb else 0.0
            if target is None:
                target = start + max(0.0, duration) * at
            if seek and target > 0 and tb:
                try:
                    container.seek(int(target / tb), stream=s, backward=True, any_frame=False)
                except Exception:  # noqa: BLE001 - an unseekable stream is decoded from where it opened
                    log.debug("%s: cannot seek; decoding from the start", path)
            frame = None
            count = 0
            demuxed = 0
            try:
                for packet in container.demux(s):
                    demuxed += packet.size
                    for f in packet.decode():
                        frame = f
                        count += 1
                        if f.time is None or f.time + 1e-6 >= target or count >= MAX_DECODE_FRAMES:
                            break
                    else:
                        continue
                    break
            except Exception as exc:  # noqa: BLE001 - FFmpeg's errors: this file's problem
                if frame is None:
                    raise VideoError(f"video data undecodable ({_ffmpeg_reason(exc)})") from exc
            got = None
            if frame is not None:
                got = {"image": frame.to_image(), "time": frame.time, "rotation": getattr(frame, "rotation", 0) or 0}
            return got, count, demuxed, duration, target

    got, count, demuxed, duration, target = decode_to(None, True)
    # a seek in a stream without an index (MPEG-TS: .mts, .m2ts) can land past the last keyframe before the
    # moment, so nothing decodes, or well after it: then decode forward from the start instead
    if got is None or (got["time"] is not None and got["time"] > target + 1.0):
        again, count2, demuxed2, _, _ = decode_to(target, False)
        count, demuxed = count + count2, demuxed + demuxed2
        got = again or got
    if got is None:
        raise VideoError("no frame could be decoded (no video data)")
    im, rotation = got["image"], got["rotation"]
    if stats is not None:
        stats.update(decoded=count, time=got["time"], bytes=demuxed, duration=duration)
    # the display matrix turns the picture counter-clockwise by ``rotation`` degrees
    turn = {90: Image.Transpose.ROTATE_90, -270: Image.Transpose.ROTATE_90,
            180: Image.Transpose.ROTATE_180, -180: Image.Transpose.ROTATE_180,
            -90: Image.Transpose.ROTATE_270, 270: Image.Transpose.ROTATE_270}.get(int(rotation))
    if turn is not None:
        im = im.transpose(turn)
    return im.convert("RGB")
