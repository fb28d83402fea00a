"""Real video files for the tests, encoded here with FFmpeg's encoders (through PyAV)."""

from __future__ import annotations

from pathlib import Path


def make_clip(path, *, seconds: float = 2.0, fps: int = 10, size=(160, 120), metadata: dict | None = None,
              image=None, codec: str = "libx264", crf: int | None = None, pan: float = 0.2,
              gop: int | None = None, rotation: int | None = None) -> Path:
    """Encode a clip: frames panning across ``image`` (a photo) or a moving bar, with container
    ``metadata`` (``creation_time``, ``location``, ``com.apple.quicktime.creationdate`` ...);
    ``rotation``: degrees counter-clockwise a player turns the picture (a display matrix)."""
    import av
    import numpy as np
    from PIL import Image

    from photolab.features.media import register_heif

    register_heif()
    path = Path(path)
    ext = path.suffix.lower()
    options = {"movflags": "use_metadata_tags"} if ext in (".mp4", ".mov", ".m4v") else {}
    out = av.open(str(path), "w", options=options)
    for k, v in (metadata or {}).items():
        out.metadata[k] = v
    s = out.add_stream(codec, rate=fps)
    s.width, s.height = size
    s.pix_fmt = "yuv420p"
    if gop:
        s.codec_context.gop_size = gop
    if rotation is not None:   # a display matrix, as phones write for clips held upright
        s.set_display_rotation(rotation)
    if codec == "libx264":
        s.options = {"preset": "ultrafast", **({"crf": str(crf)} if crf is not None else {})}
    base = Image.open(image).convert("RGB") if image else None
    n = max(1, int(round(seconds * fps)))
    for i in range(n):
        if base is not None:
            w, h = base.size
            dx = int(i * (w * pan) / n)
            im = base.crop((dx, 0, dx + int(w * (1 - pan)), h)).resize(size)
        else:
            arr = np.full((size[1], size[0], 3), 40, np.uint8)
            arr[:, : max(1, (i + 1) * size[0] // n)] = (200, 120, 40)
            im = Image.fromarray(arr)
        _mux(out, s, im)
    _mux(out, s, None)   # flush the encoder
    out.close()
    return path


def _mux(out, stream, image) -> None:
    """Encode one picture (None: what the encoder still holds) and write its packets."""
    import av

    for p in stream.encode(None if image is None else av.VideoFrame.from_image(image)):
        out.mux(p)


def reencode(src, dest, *, size=None, crf: int = 30, trim_end: float = 0.0) -> Path:
    """Decode ``src`` and encode it again (another size and quality; ``trim_end`` seconds cut off the end),
    keeping its container metadata: what a phone's "export" or a messenger makes of a clip."""
    import av

    dest = Path(dest)
    with av.open(str(src)) as inp:
        vs = inp.streams.video[0]
        rate = vs.average_rate or 10
        duration = inp.duration / 1_000_000 if inp.duration else None
        out = av.open(str(dest), "w", options={"movflags": "use_metadata_tags"})
        for k, v in inp.metadata.items():
            if k not in ("major_brand", "minor_version", "compatible_brands", "encoder"):
                out.metadata[k] = v
        s = out.add_stream("libx264", rate=rate)
        s.width, s.height = size or (vs.codec_context.width, vs.codec_context.height)
        s.pix_fmt = "yuv420p"
        s.options = {"preset": "ultrafast", "crf": str(crf)}
        for frame in inp.decode(vs):
            if duration and trim_end and frame.time is not None and frame.time >= duration - trim_end:
                break
            _mux(out, s, frame.to_image().resize((s.width, s.height)))
        _mux(out, s, None)
        out.close()
    return dest
