"""Pixels: one reduced-scale decode per photo (or a video's poster frame), and the image measures every
stage that needs pixels shares (the labeling pass, the face scan, heads that score from measures).

Kept apart from the labeling pass so that training, faces and the pass depend on it, never on each other.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from photolab.features.starter import COLOR_MEASURES

DECODE_TARGET = 256        # default shorter side to decode to (the pass uses max(model's resize, thumb))


def quality_measures(gray) -> dict:
    """Sharpness, brightness, dark and clipped shares of a grayscale image (PIL "L" image).

    Everything is measured at a fixed working size (384 px on the long side), so
    it does not depend on the file's resolution. Sharpness is the 90th
    percentile of the Laplacian variance over a grid of tiles, so a portrait
    with a sharp subject on a blurred background counts as sharp.
    """
    from PIL import Image

    w, h = gray.size
    scale = 384 / max(h, w)
    if scale < 1:
        gray = gray.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
    g = np.asarray(gray, dtype=np.float32) / 255.0
    lap = (g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4 * g[1:-1, 1:-1])
    th, tw = lap.shape[0] // 6, lap.shape[1] // 6
    if th and tw:  # a 6 x 6 grid of tiles, variance per tile
        tiles = lap[:6 * th, :6 * tw].reshape(6, th, 6, tw).var(axis=(1, 3)).ravel()
    else:
        tiles = np.array([lap.var()]) if lap.size else np.array([0.0])
    return {
        "sharpness": float(np.percentile(tiles, 90)),
        "brightness": float(g.mean()),
        "dark_frac": float((g < 0.1).mean()),
        "clipped_frac": float((g > 0.97).mean()),
    }


def colorfulness(rgb) -> float:
    """Hasler and Süsstrunk's colorfulness of an RGB image (0 for grayscale, about 100+ for vivid),
    measured on a 64-px copy."""
    from PIL import Image

    small = rgb.convert("RGB")
    small.thumbnail((64, 64), Image.BILINEAR)
    a = np.asarray(small, dtype=np.float32)
    rg = a[..., 0] - a[..., 1]
    yb = 0.5 * (a[..., 0] + a[..., 1]) - a[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def color_measures(rgb) -> dict:
    """Where the warm and the blue light is, on a 64-px copy of an RGB image: what tells a sunset or a
    golden-hour sky from a grey or blue one, which an ImageNet embedding mostly leaves out.

    ``warm_frac`` / ``warm_top_frac``: share of pixels (whole image / upper half) that are red, orange
    or yellow, saturated (> 0.3) and lit (> 0.25); ``blue_frac`` / ``blue_top_frac``: share that is
    cyan to blue (saturation > 0.2); ``saturation``: mean HSV saturation; ``top_lift``: mean value of
    the upper half less the lower half's (a bright sky over a dark foreground).
    """
    from PIL import Image

    small = rgb.convert("RGB")
    small.thumbnail((64, 64), Image.BILINEAR)
    hsv = np.asarray(small.convert("HSV"), dtype=np.float32) / 255.0
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    warm = ((h < 0.125) | (h > 0.92)) & (s > 0.3) & (v > 0.25)
    blue = (h > 0.5) & (h < 0.72) & (s > 0.2)
    half = max(1, hsv.shape[0] // 2)
    lower = v[half:] if v.shape[0] > half else v
    return {"warm_frac": float(warm.mean()), "warm_top_frac": float(warm[:half].mean()),
            "blue_frac": float(blue.mean()), "blue_top_frac": float(blue[:half].mean()),
            "saturation": float(s.mean()), "top_lift": float(v[:half].mean() - lower.mean())}


def decode(path: Path, kind: str, target: int = DECODE_TARGET):
    """Decode once at reduced scale, upright (EXIF orientation applied), RGB; a video's poster frame."""
    from PIL import Image, ImageOps

    from photolab.features.media import register_heif

    register_heif()
    if kind == "video":   # one frame at 10 % of the duration: the clip is never decoded in full
        from photolab.features.video import poster_frame

        im = poster_frame(path)
    elif kind == "raw":
        import rawpy

        with rawpy.imread(str(path)) as raw:
            thumb = raw.extract_thumb()
        if thumb.format == rawpy.ThumbFormat.JPEG:
            im = Image.open(io.BytesIO(thumb.data))
        else:
            im = Image.fromarray(thumb.data)
    else:
        im = Image.open(path)
    if im.format in ("JPEG", "MPO") and min(im.size) > target:
        ratio = min(im.size) / target
        im.draft("RGB", (max(1, int(im.size[0] / ratio)), max(1, int(im.size[1] / ratio))))
    im = ImageOps.exif_transpose(im)
    if im.mode != "RGB":
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            im = Image.new("RGB", im.size, (255, 255, 255))
            im.paste(rgba, mask=rgba.getchannel("A"))
        else:
            im = im.convert("RGB")
    factor = int(min(im.size) / target)  # formats without DCT scaling (HEIC, PNG...)
    if factor >= 2:
        im = im.reduce(factor)
    im.load()
    return im


__all__ = ["COLOR_MEASURES", "DECODE_TARGET", "color_measures", "colorfulness", "decode", "quality_measures"]
