"""The labeling pass: one decode per photo feeds every later stage.

For each usable photo: decode once at reduced scale (JPEG DCT scaling via
``Image.draft``; a RAW file's embedded preview), then compute in one go the
1280-d embedding (float16), the ImageNet top-5, perceptual hashes (pHash,
dHash), quality measures and a 256-px thumbnail, and score every taxonomy tag:

- ``starter`` tags (and ``prior`` tags the starter head knows): the starter head
  shipped with photolab (:mod:`photolab.features.starter`), trained on real everyday photos,
  over the embedding, the image measures and the prior; its scores are calibrated
  probabilities (:data:`SCORE_MEANING`);
- ``prior`` tags: the 1,000 ImageNet class probabilities mapped to tags through
  WordNet hypernyms (``photolab/data/imagenet_prior.csv``); also every ``starter``
  tag when the starter head cannot be used (another backbone, a damaged file);
- ``measure`` tags (quality): from sharpness, exposure and pixel count;
- ``head`` tags: no score until a head is trained on corrections (stored as NULL,
  shown as "untrained" rather than invented).

Decoding runs in threads ahead of the model, so both cores work. The pass is
incremental and resumable: results are committed per batch, and photos whose
features were made by the same model version are skipped.

Thresholds (default 0.5) turn scores into tags. A decision's confidence is how
far its score sits from the threshold, relative to the room on that side:
``(score - t) / (1 - t)`` above, ``(t - score) / t`` below, so 0 at the
threshold and 1 at a score of 0 or 1. A photo's confidence is its least
confident decision.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import io
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from photolab.store.catalog import utcnow
from photolab.stages.index import USABLE
from photolab.features.imaging import DECODE_TARGET, color_measures, colorfulness, decode, quality_measures  # noqa: F401 (re-exported)
from photolab.core.library import open_library
from photolab.features.starter import COLOR_MEASURES
from photolab.store import features as feature_store
from photolab.store import heads as head_store
from photolab.store import scores as score_store
from photolab.core.taxonomy import Taxonomy, load_taxonomy

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5
SCORE_MEANING = ("A score is photolab's estimate of the probability that the photo has the tag: of the photos "
                 "scored 0.8 for a tag, about 8 in 10 have it; at or above the tag's threshold (0.5 unless you "
                 "set it) the photo gets the tag.")
THUMB_SIZE = 256
# the 8 rotations and mirrorings of a square, as PIL transposes (None: as it is)
DIHEDRAL = (None, "ROTATE_90", "ROTATE_180", "ROTATE_270", "FLIP_LEFT_RIGHT", "FLIP_TOP_BOTTOM", "TRANSPOSE",
            "TRANSVERSE")
BATCH_SIZE = 16         # ONNX Runtime is as fast per image at 16 as at 32, with 240 MB less memory
CROPS = (1, 3)          # views a photo's tags are scored from: the centre; or the centre and both ends of the long side
CROPS_KEY = "tag_crops"   # meta: the library's crop mode, used by every pass not given one
CROP_POOL = "max"       # how the views' scores make the photo's: the highest probability (chosen on everyday val);
# for the starter's tags the highest view's log-odds, calibrated for three views by the head (Starter.pool)


@dataclass
class TagReport:
    """What a labeling pass did."""

    tagged: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    tag_counts: dict[str, int] = field(default_factory=dict)
    untrained: list[str] = field(default_factory=list)
    by_faces: list[str] = field(default_factory=list)
    by_starter: list[str] = field(default_factory=list)
    note: str | None = None         # why the starter head was not used, when it was not
    cluster: str | None = None      # the Dask cluster that did the pixel work, when one did
    crops: int = 1                  # views per photo its tags were scored from

    @property
    def images_per_second(self) -> float:
        return self.tagged / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        s = (f"{self.tagged} tagged ({self.images_per_second:.1f} images/s), {self.skipped} already done, "
             f"{len(self.failed)} failed")
        if self.untrained:
            s += f"; no score yet for {', '.join(self.untrained)} (train a head on corrections)"
        if self.by_faces:
            s += f"; {', '.join(self.by_faces)} scored by `photolab faces`"
        if self.note:
            s += f"; {self.note}"
        if self.cluster:
            s += f"; on a Dask {self.cluster}"
        if self.crops > 1:
            s += f"; tags scored from {self.crops} views per photo ({CROP_POOL} of their scores)"
        return s


# -- the prior ----------------------------------------------------------------
def prior_matrix(tags: list[str]) -> np.ndarray:
    """1000 x len(tags) weights: how much each ImageNet class votes for each tag."""
    w = np.zeros((1000, len(tags)), dtype=np.float32)
    col = {t: i for i, t in enumerate(tags)}
    text = resources.files("photolab").joinpath("data", "imagenet_prior.csv").read_text()
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    for r in rows:
        if r["tag"] in col:
            w[int(r["class_index"]), col[r["tag"]]] = float(r["weight"])
    return w


def prior_scores(probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Tag scores in [0, 1] from class probabilities (N x 1000) and :func:`prior_matrix`."""
    return np.clip(probs @ weights, 0.0, 1.0)


# -- quality ------------------------------------------------------------------
def _logistic(x: float, center: float, width: float) -> float:
    return 1.0 / (1.0 + math.exp(-(x - center) / width))


def quality_scores(q: dict, width: int | None, height: int | None) -> dict[str, float]:
    """Scores for blurry, dark, overexposed and low_resolution from :func:`quality_measures`."""
    sharp = max(q["sharpness"], 1e-9)
    mp = (width or 0) * (height or 0) / 1e6
    return {
        # log10 sharpness: ~-2.3 and above is crisp at 384 px, ~-3.3 and below is soft
        "blurry": 1.0 - _logistic(math.log10(sharp), -2.9, 0.18),
        "dark": max(_logistic(-q["brightness"], -0.18, 0.035), _logistic(q["dark_frac"], 0.75, 0.06)),
        "overexposed": max(_logistic(q["clipped_frac"], 0.25, 0.05), _logistic(q["brightness"], 0.85, 0.03)),
        "low_resolution": 1.0 - _logistic(math.log10(max(mp, 1e-4)), math.log10(0.5), 0.12) if mp else 1.0,
    }


def crop_boxes(w: int, h: int, side: float, crops: int = 1) -> list[tuple[float, float, float, float]]:
    """The square views a photo of ``w`` x ``h`` is scored from, ``side`` pixels each: the centre, and with
    ``crops=3`` also both ends of the long side (left and right, or top and bottom), centred across it."""
    boxes = [((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)]
    if crops == 3:
        if w >= h:
            boxes += [(0.0, (h - side) / 2, side, (h + side) / 2), (w - side, (h - side) / 2, float(w), (h + side) / 2)]
        else:
            boxes += [((w - side) / 2, 0.0, (w + side) / 2, side), ((w - side) / 2, h - side, (w + side) / 2, float(h))]
    elif crops != 1:
        raise ValueError(f"crops must be 1 or 3, got {crops!r}")
    return boxes


def _prepare(path: Path, kind: str, input_size: int, crop_pct: float, mean, std, crops: int = 1):
    """Everything that needs pixels except the model: (tensor input, hashes, quality, thumbnail bytes).

    The tensor input is the centre view (C x H x W); with ``crops=3``, the centre view and both ends of the
    long side (3 x C x H x W, the centre first), cut from the same decoded image and resized alike."""
    import imagehash
    from PIL import Image

    short = int(math.floor(input_size / crop_pct))
    im = decode(path, kind, max(short, THUMB_SIZE))
    w, h = im.size
    # resize-then-centre-crop as timm's eval transform does, computed only over the cropped box
    s = short / min(w, h)
    side = input_size / s
    m, sd = np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)
    views = []
    for box in crop_boxes(w, h, side, crops):
        crop = im.resize((input_size, input_size), Image.BICUBIC, box=box)
        arr = (np.asarray(crop, dtype=np.float32) / 255.0 - m) / sd
        views.append(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    x = views[0] if crops == 1 else np.stack(views)
    gray_im = im.convert("L")
    q = quality_measures(gray_im)
    tiny = im.copy()
    tiny.thumbnail((64, 64), Image.BILINEAR)   # colorfulness and the colour measures work at 64 px: made once
    q["colorfulness"] = colorfulness(tiny)
    q.update(color_measures(tiny))
    small = gray_im.resize((32, 32), Image.LANCZOS)  # what imagehash.phash works from
    turned = [small.transpose(getattr(Image.Transpose, t)) if t else small for t in DIHEDRAL]
    variants = [str(imagehash.phash(t)) for t in turned]
    hashes = (variants[0], str(imagehash.dhash(gray_im)), ",".join(variants),
              ",".join(str(imagehash.dhash(t)) for t in turned))
    thumb = im.copy()
    thumb.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.BILINEAR)
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=85)
    return x, hashes, q, buf.getvalue()


def crops_setting(library) -> int:
    """The library's crop mode: the views per photo a pass not given ``crops`` scores tags from (default 1)."""
    value = open_library(library).catalog.get_meta(CROPS_KEY)
    return int(value) if value in {str(c) for c in CROPS} else 1


def set_crops(library, crops: int) -> None:
    """Store the library's crop mode (1: the centre view, as photolab always did; 3: the centre and both ends
    of the long side, about 3 times the model's work); every later pass not given ``crops`` uses it."""
    if crops not in CROPS:
        raise ValueError(f"crops must be one of {', '.join(map(str, CROPS))}, got {crops!r}")
    lib = open_library(library)
    if crops == 1:
        lib.catalog.del_meta(CROPS_KEY)
    else:
        lib.catalog.set_meta(CROPS_KEY, str(crops))


def pool_views(scores: np.ndarray, how: str = CROP_POOL) -> np.ndarray:
    """A photo's scores (N x T) from its views' (N x views x T): their mean or their max (a tag with no
    score on a view has none on the photo)."""
    if how == "mean":
        return scores.mean(axis=1)
    if how == "max":
        return scores.max(axis=1)
    raise ValueError(f"pooling must be 'mean' or 'max', got {how!r}")


# -- thresholds and decisions -------------------------------------------------
def thresholds(library, taxonomy: Taxonomy | None = None) -> dict[str, float]:
    """Per-tag thresholds stored in the library (default 0.5)."""
    lib = open_library(library)
    tax = taxonomy or load_taxonomy(lib)
    stored = score_store.stored_thresholds(lib.catalog.conn)
    return {t: float(stored.get(t, DEFAULT_THRESHOLD)) for t in tax.names}


def set_threshold(library, tag: str, value: float) -> None:
    """Store a tag's threshold; every later stage uses it."""
    if not 0.0 < value < 1.0:
        raise ValueError(f"threshold for {tag!r} must be between 0 and 1, got {value}")
    lib = open_library(library)
    name = load_taxonomy(lib).resolve(tag)
    if name is None:
        raise KeyError(f"unknown tag {tag!r}")
    with lib.catalog.write() as db:
        score_store.set_threshold(db, name, float(value), utcnow())


def confidence(score, threshold: float):
    """How sure a decision is: 0 at the threshold, 1 at a score of 0 or 1 (works on arrays)."""
    s = np.asarray(score, dtype=np.float64)
    t = float(threshold)
    above = (s - t) / max(1e-9, 1 - t)
    below = (t - s) / max(1e-9, t)
    return np.clip(np.where(s >= t, above, below), 0.0, 1.0)


def decisions(library, *, photo_ids=None):
    """One row per photo: path, capture time, scores, confidences, accepted tags, photo confidence.

    Args:
        photo_ids: only these photos (read by id, not the whole score table).

    Returns:
        A DataFrame indexed by photo id with columns ``path``, ``captured_at``,
        ``tags`` (accepted, ';'-separated, see :func:`accepted_tags`), ``confidence`` (the least confident
        decision) and ``score:<tag>`` / ``confidence:<tag>`` for every taxonomy tag.
    """
    import pandas as pd

    lib = open_library(library)
    tax = load_taxonomy(lib)
    thr = thresholds(lib, tax)
    conn = lib.catalog.conn
    ids = None if photo_ids is None else sorted({int(i) for i in photo_ids})
    photos = pd.DataFrame(score_store.tagged_photos(conn, USABLE, ids),
                          columns=["id", "path", "captured_at"]).set_index("id")
    if ids is not None:
        photos = photos.sort_values("path")   # read by id; the whole library's are read in path order
    long = pd.DataFrame([tuple(r) for r in score_store.score_rows(conn, ids)], columns=["photo_id", "tag", "score"])
    wide = long.pivot(index="photo_id", columns="tag", values="score") if len(long) else pd.DataFrame()
    out = photos.copy()
    conf_cols = []
    for tag in tax.names:
        s = wide[tag].reindex(out.index) if tag in wide else pd.Series(np.nan, index=out.index)
        s = s.astype(float)
        out[f"score:{tag}"] = s.round(4)
        c = pd.Series(confidence(s.fillna(thr[tag]), thr[tag]), index=out.index).where(s.notna())
        out[f"confidence:{tag}"] = c.round(4)
        conf_cols.append(f"confidence:{tag}")
    accepted = accepted_tags(lib, photo_ids=None if photo_ids is None else list(out.index))
    out["tags"] = [";".join(t for t in tax.names if t in accepted.get(pid, ())) for pid in out.index]
    out["confidence"] = out[conf_cols].min(axis=1, skipna=True) if conf_cols else np.nan
    return out


def decision_arrays(library, taxonomy: Taxonomy, photo_ids, *, matrix=None, labels=None) -> dict:
    """What :func:`decisions` says about ``photo_ids``, as arrays over the taxonomy's tags (columns in
    ``taxonomy.names`` order), from the score matrix (:func:`photolab.store.scores.score_matrix`) rather
    than a pivot of score rows: ``scores`` and ``confidences`` (rounded to 4 places, NaN where a tag has
    no score), ``accepted`` (bool: at or above the threshold, a person's labels on top) and
    ``confidence`` (each photo's least confident decision, NaN where it has no score at all).

    ``matrix`` and ``labels`` ((photo_id, tag, value) rows): already read ones, to read them once."""
    from photolab.store import scores as store

    lib = open_library(library)
    thr = thresholds(lib, taxonomy)
    names = taxonomy.names
    ids = np.asarray(photo_ids, dtype=np.int64)
    m = matrix if matrix is not None else store.score_matrix(lib)
    raw = m.columns(ids, names)
    t = np.array([thr[n] for n in names], dtype=np.float64)
    with np.errstate(invalid="ignore"):   # as confidence(), a pass at a time over the arrays, in place
        accepted = raw >= t
        conf = np.subtract(raw, t)
        np.divide(conf, np.maximum(1e-9, 1 - t), out=conf)
        below = np.subtract(t, raw)
        np.divide(below, np.maximum(1e-9, t), out=below)
        np.copyto(conf, below, where=~accepted)
        del below
        np.clip(conf, 0.0, 1.0, out=conf)
        np.round(conf, 4, out=conf)   # NaN scores stay NaN
    if labels is None:
        labels = store.all_labels(lib.catalog.conn)
    if len(labels) and len(ids):
        col = {n: j for j, n in enumerate(names)}
        lab = [(p, col[tag], v) for p, tag, v in labels if tag in col]
        if lab:
            lp = np.array([r[0] for r in lab], dtype=np.int64)
            order = np.argsort(ids)
            pos = np.clip(np.searchsorted(ids[order], lp), 0, len(ids) - 1)
            hit = ids[order][pos] == lp
            rows = order[pos[hit]]
            cols = np.array([r[1] for r in lab], dtype=np.int64)[hit]
            vals = np.array([bool(r[2]) for r in lab], dtype=bool)[hit]
            accepted[rows, cols] = vals
    with np.errstate(invalid="ignore"):
        photo = np.fmin.reduce(conf, axis=1) if len(names) else np.full(len(ids), np.nan)
    return {"scores": raw.round(4), "confidences": conf, "accepted": accepted, "confidence": photo}


def joined_tags(accepted: np.ndarray, names: list[str], sep: str = ";") -> np.ndarray:
    """Each row's accepted tags, ``sep``-joined in ``names`` order (an object array of strings)."""
    n = len(accepted)
    if not len(names):
        return np.full(n, "", dtype=object)
    if len(names) > 62:
        return np.array([sep.join(t for t, a in zip(names, row) if a) for row in accepted], dtype=object)
    code = accepted.astype(np.int64) @ (np.int64(1) << np.arange(len(names), dtype=np.int64))
    uniq, inv = np.unique(code, return_inverse=True)
    text = np.array([sep.join(t for k, t in enumerate(names) if (int(c) >> k) & 1) for c in uniq], dtype=object)
    return text[inv] if n else np.zeros(0, dtype=object)


def accepted_tags(library, photo_ids=None) -> dict[int, set[str]]:
    """Each photo's accepted tags: scores at or above their threshold, then a person's labels on top
    (a label 1 adds the tag, a label 0 removes it). ``photo_ids``: only these photos."""
    lib = open_library(library)
    thr = thresholds(lib)
    out: dict[int, set[str]] = {}
    conn = lib.catalog.conn
    if photo_ids is not None:
        ids = [int(i) for i in photo_ids]
        for pid, tag, score in score_store.score_rows(conn, ids):
            if score is not None and tag in thr and score >= thr[tag]:
                out.setdefault(pid, set()).add(tag)
        labels = score_store.labels_of(conn, ids)
    else:
        for tag, t in thr.items():
            for pid in score_store.at_or_above(conn, tag, t):
                out.setdefault(pid, set()).add(tag)
        labels = score_store.all_labels(conn)
    for pid, tag, value in labels:
        if value:
            out.setdefault(pid, set()).add(tag)
        else:
            out.get(pid, set()).discard(tag)
    return out


def set_labels(library, labels, *, who: str = "me") -> int:
    """Store a person's labels: ``(photo_id, tag, value)`` rows (value 1: has the tag, 0: does not),
    or a DataFrame with those columns. Tags may be aliases; a later label replaces an earlier one.
    Returns the number stored."""
    lib = open_library(library)
    tax = load_taxonomy(lib)
    rows = labels[["photo_id", "tag", "value"]].itertuples(index=False) if hasattr(labels, "columns") else labels
    now, out = utcnow(), []
    for pid, tag, value in rows:
        name = tax.resolve(str(tag))
        if name is None:
            raise KeyError(f"unknown tag {tag!r} (not in the taxonomy or its aliases)")
        if int(value) not in (0, 1):
            raise ValueError(f"label value for {tag!r} must be 0 or 1, got {value!r}")
        out.append((int(pid), name, int(value), who, now))
    with lib.catalog.write() as db:
        score_store.set_labels(db, out)
    return len(out)


def export_csv(library, out: str | os.PathLike, *, chunk: int = 20000) -> Path:
    """Write ``path, captured_at, tags, score:<tag>..., confidence:<tag>...`` — one row per photo.

    A score is photolab's estimate of the probability that the photo has the tag (see
    :data:`SCORE_MEANING`); ``tags`` holds the tags at or above their thresholds, with a
    person's labels on top. Photos are written in path order, ``chunk`` at a time, from the
    score matrix (no pivot of every score), so memory stays flat however large the library."""
    from photolab.store import scores as store

    lib = open_library(library)
    tax = load_taxonomy(lib)
    names = tax.names
    conn = lib.catalog.conn
    matrix = store.score_matrix(lib)
    labels = store.all_labels(conn)
    header = ["path", "captured_at", "tags"] + [f"score:{t}" for t in names] + [f"confidence:{t}" for t in names]
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator=os.linesep)   # as pandas writes a CSV
            w.writerow(header)
            for rows in store.usable_photos_by_path(conn, chunk=chunk):
                ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                d = decision_arrays(lib, tax, ids, matrix=matrix, labels=labels)
                table = np.empty((len(rows), 3 + 2 * len(names)), dtype=object)
                table[:, 0] = [r[1] for r in rows]
                table[:, 1] = [r[2] for r in rows]
                table[:, 2] = joined_tags(d["accepted"], names)
                table[:, 3:3 + len(names)] = _four_places(d["scores"])
                table[:, 3 + len(names):] = _four_places(d["confidences"])
                w.writerows(table.tolist())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


_FOUR = np.array(["%.4f" % (k / 10000) for k in range(10001)] + [""], dtype=object)


def _four_places(x: np.ndarray) -> np.ndarray:
    """``"%.4f" % v`` of every value (values already rounded to 4 places), ``""`` for NaN: a table look-up
    for the values in [0, 1], the format itself for any other."""
    k = np.rint(np.nan_to_num(x, nan=-1.0) * 10000)
    ok = (k >= 0) & (k <= 10000) & ~np.signbit(x)
    idx = np.where(np.isnan(x), 10001, np.where(ok, k, 10001)).astype(np.int64)
    out = _FOUR[idx]
    odd = ~ok & ~np.isnan(x)
    if odd.any():
        out[odd] = ["%.4f" % v for v in x[odd]]
    return out


# -- the pass -----------------------------------------------------------------
def _second_try(lib, row, prep, error: str):
    """A photo that failed to decode: try again at the catalog's current path (another process may
    have moved it meanwhile) and tell a lasting failure from a passing one.

    Returns ``(row, prepared, error, lasting)``. Only a file that still has the size, time and
    content the index recorded and still fails is ``lasting`` (marked corrupt); a file that moved,
    vanished, changed or could not be read for the moment keeps its status and is tried again on
    the next pass (``index``, ``tag``, ``maintain``)."""
    from photolab.core.fileops import sha256_file
    from photolab.store.watch import rows_by_id

    cur = rows_by_id(lib.catalog.conn, [row["id"]], "id, path, kind, width, height, sha256, size, mtime_ns, status")
    if not cur or cur[0]["status"] not in USABLE:
        return row, None, f"{error} (no longer a usable photo in the catalog)", False
    cur = cur[0]
    _, prepared, again = prep(cur)
    if again is None:
        return cur, prepared, None, False
    p = lib.abs(cur["path"])
    try:
        st = p.stat()
    except OSError:
        return cur, None, f"{again} (not at {cur['path']} now: moved or removed meanwhile; tried again next pass)", False
    if st.st_size != cur["size"] or st.st_mtime_ns != cur["mtime_ns"]:
        return cur, None, f"{again} (changed since it was indexed; tried again after the next index)", False
    try:
        same = cur["sha256"] is None or sha256_file(p) == cur["sha256"]
    except OSError as exc:
        return cur, None, f"{again} (read error {exc.strerror or exc}; tried again next pass)", False
    if not same:
        return cur, None, f"{again} (content changed since it was indexed; tried again next pass)", False
    return cur, None, again, True


def _failed_photo(lib, report, row, prep, error: str):
    """A photo that did not decode: tried again here (:func:`_second_try`); ``(row, prepared)`` when it
    decodes now, else ``(row, None)`` with the failure in the report (and a lasting one marked corrupt)."""
    row, prepared, error, lasting = _second_try(lib, row, prep, error)
    if error is None:
        return row, prepared
    report.failed.append((row["path"], error))
    if lasting:   # the very bytes the index read do not decode
        with lib.catalog.write() as db:
            feature_store.mark_corrupt(db, row["id"], f"cannot decode: {error}")
    return row, None


def _tag_on_cluster(lib, todo, bb, report, prep, flush, *, cluster, worker_root, batch_size, runtime, device,
                    model_threads, progress, start) -> str:
    """The pass's pixel work on a Dask cluster (:mod:`photolab.features.cluster`); results are written here, batch by
    batch, through the same :func:`_flush` as the local pass. Returns what ran the model, for the run log."""
    from tqdm.auto import tqdm

    from photolab.features.backbone import GPU_BATCH_SIZE
    from photolab.features.cluster import check_root, connect, model_spec, probe_photo, run_batches, workers

    if not todo:   # nothing to send: no cluster started, none connected
        return "cluster (nothing to do)"
    with connect(cluster, progress=progress) as client:
        info = workers(client, runtime, device)
        devices = sorted({f"{i['runtime']}/{i['device']}" for i in info.values()})
        if batch_size is None:   # larger batches when every worker runs the model on a GPU
            gpu = bool(info) and all(i["device"] == "cuda" for i in info.values())
            batch_size = GPU_BATCH_SIZE if gpu else BATCH_SIZE
        used = f"cluster ({len(info)} worker{'s' if len(info) != 1 else ''}: {', '.join(devices)})"
        report.cluster = used
        root = str(worker_root) if worker_root is not None else str(lib.root)
        check_root(client, root, probe_photo(lib, (r["path"] for r in todo)))
        rows = {r["id"]: r for r in todo}
        plan = [[(r["id"], r["path"], r["kind"]) for r in todo[k:k + batch_size]]
                for k in range(0, len(todo), batch_size)]
        spec = model_spec(bb, runtime, device, model_threads)
        written: set[int] = set()
        bar = tqdm(total=len(todo), desc="tag", unit="img", disable=not progress)
        try:
            for planned, res in run_batches(client, tag_batch, plan, root, spec):
                batch, outputs = [], None
                keep = [k for k, (pid, *_rest) in enumerate(res["ok"]) if pid not in written]
                if len(keep) < len(res["ok"]):
                    log.warning("%d photos came back twice from the cluster; written once",
                                len(res["ok"]) - len(keep))
                if keep:
                    batch = [(rows[res["ok"][k][0]], (None, *res["ok"][k][1:])) for k in keep]
                    outputs = (res["embeddings"][keep], res["probs"][keep])
                    flush(batch, outputs)
                    written.update(row["id"] for row, _ in batch)
                    report.tagged += len(batch)
                for pid, error in res["failed"]:
                    if pid in written:
                        continue
                    row, prepared = _failed_photo(lib, report, rows[pid], prep, error)
                    if prepared is not None:   # decodes here (it moved meanwhile, a worker's mount hiccup)
                        flush([(row, prepared)])
                        written.add(pid)
                        report.tagged += 1
                bar.update(len(planned))
                bar.set_postfix(img_s=f"{report.tagged / (time.perf_counter() - start):.1f}")
        finally:
            bar.close()
        return used


def tag_library(library, *, model=None, batch_size: int | None = None, progress: bool = True,
                workers: int | None = None, model_threads: int = 1, runtime: str = "auto",
                force: bool = False, counts: bool = True,
                starter: bool | str | os.PathLike = True, device: str = "auto",
                cluster=None, worker_root: str | os.PathLike | None = None, photo_ids=None,
                crops: int | None = None, rescore: bool = True) -> TagReport:
    """Run the labeling pass over every usable photo not yet done with this model.

    Args:
        library: a :class:`~photolab.core.library.Library` or its folder.
        model: a loaded :class:`~photolab.features.backbone.Backbone` (default: the packaged one).
        batch_size: photos per model batch (default :data:`BATCH_SIZE`; on a GPU
            :data:`photolab.features.backbone.GPU_BATCH_SIZE`).
        device: where the model runs: ``"auto"`` (a GPU where ONNX Runtime's CUDA provider or torch CUDA is
            there, else the CPU), ``"cpu"`` or ``"cuda"``; decoding always runs on CPU threads.
        cluster: run the pixel work on a Dask cluster (:mod:`photolab.features.cluster`): a scheduler address
            (``tcp://host:8786``), ``local:N`` for N worker processes on this machine, or a
            ``distributed.Client``. This process plans the batches and stays the catalog's only writer.
        worker_root: where the library's folder is on the workers (default: the same path as here).
        progress: show a progress bar with images/s.
        workers: decoding threads (default: one more than the cores, so decoding never waits on the model).
        model_threads: threads the model runs on (decoding, not the model, is the bottleneck).
        runtime: ``"auto"``, ``"onnx"`` or ``"torch"`` (see :func:`photolab.features.backbone.engine`).
        force: redo photos already done with this model.
        counts: count the library's photos per tag into the report (a watched import, which
            does not show them, leaves this library-wide count out).
        photo_ids: only these photos (a watched import's), read by id rather than a look over the library.
        crops: views per photo its tags are scored from: 1, the centre view; 3, also both ends of the long side
            (cut from the same decoded image, run through the model in the same batch; a tag's score is the
            :data:`CROP_POOL` of the views' scores, for the starter's tags calibrated again for three views so
            that it means what a one-view score does), for small subjects off centre, at about 3 times the model's
            work. The stored features (embedding, ImageNet top-5) stay the centre view's. Default: the library's
            setting (:func:`set_crops`, 1 unless set). Photos already tagged keep their scores unless ``force``.
        starter: use the packaged starter head for the tags it knows (``False``: the prior only; a path:
            those starter weights). With another backbone, or a missing or damaged weights file, the
            prior scores those tags and the report's ``note`` says why.
        rescore: the active trained head, if any, scores the photos this pass tagged (``False``: a later
            step does, as the chain's ``rescore`` stage).
    """
    from tqdm.auto import tqdm

    from photolab.features.backbone import engine, load_backbone

    from photolab.core.fileops import recover

    lib = open_library(library)
    cat = lib.catalog
    crops = crops_setting(lib) if crops is None else crops
    if crops not in CROPS:
        raise ValueError(f"crops must be one of {', '.join(map(str, CROPS))}, got {crops!r}")
    if crops != 1 and cluster is not None:
        from photolab.features.cluster import ClusterError

        raise ClusterError(f"{lib.root}: scoring {crops} views per photo runs on this machine only; "
                           "tag with crops=1 (`photolab tag --crops 1`) to use a cluster")
    recover(lib)   # the catalog's paths are the files' paths before any is read
    tax = load_taxonomy(lib)
    bb = model or load_backbone(fallback_dir=lib.state / "models" / "backbone")
    # on a cluster the workers run the model; here only a photo tried again after a worker failed on it
    run = engine(bb, threads=model_threads, runtime=runtime, device=device) if cluster is None else None
    asked_batch = batch_size   # on a cluster, None lets the workers' devices decide
    if batch_size is None:
        from photolab.features.backbone import GPU_BATCH_SIZE

        batch_size = GPU_BATCH_SIZE if run is not None and run.device == "cuda" else BATCH_SIZE
        batch_size = max(1, batch_size // crops)   # the model's batch (photos x views) stays about as large
    run_id = cat.start_run("tag")
    prior_tags = [t for t in tax.names if tax[t].source in ("prior", "starter")]
    weights = prior_matrix(prior_tags)
    scorer, note = None, None
    if starter is not False:
        from photolab.features.starter import starter_for

        scorer, note = starter_for(bb, None if starter is True else starter)
    covered = [t for t in prior_tags if scorer is not None and t in scorer.tags]
    # a starter tag with no starter and no ImageNet class voting for it has no score yet
    unscored = [t for t in prior_tags if t not in covered and not weights[:, prior_tags.index(t)].any()]
    score = _FirstScores(prior_tags, weights, scorer, covered, unscored, bb.version)
    quality_tags = tax.by_source("measure")
    head_tags = tax.by_source("head")
    from photolab.features.backbone import imagenet_classes

    classes = imagenet_classes()
    from photolab.store.watch import to_tag

    # a watched import's photos: their rows only, by id; else every usable photo the model has not seen
    todo, total_usable = to_tag(cat.conn, photo_ids, USABLE, None if force else bb.version)
    report = TagReport(skipped=total_usable - len(todo), untrained=list(head_tags) + unscored,
                       by_faces=tax.by_source("faces"), by_starter=covered, note=note, crops=crops)
    thumbs_dir = lib.state / "features" / "thumbs"
    start = time.perf_counter()

    def prep(row):
        try:
            return row, _prepare(lib.abs(row["path"]), row["kind"], bb.input_size, bb.crop_pct, bb.mean, bb.std,
                                 crops), None
        except Exception as exc:  # noqa: BLE001 - a bad photo is recorded, never fatal
            return row, None, f"{type(exc).__name__}: {exc}"

    def flush(batch, outputs=None):
        nonlocal run
        if outputs is None and run is None:   # a cluster pass's photo that only decoded here, on a second try
            run = engine(bb, threads=model_threads, runtime=runtime, device=device)
        _flush(lib, batch, bb.version, run, score, quality_tags, head_tags, classes, thumbs_dir, outputs=outputs)

    runtime_used = None
    if cluster is not None:
        runtime_used = _tag_on_cluster(lib, todo, bb, report, prep, flush, cluster=cluster, worker_root=worker_root,
                                       batch_size=asked_batch, runtime=runtime, device=device,
                                       model_threads=model_threads, progress=progress, start=start)
    n_workers = workers or (os.cpu_count() or 1) + 1
    pool = cf.ThreadPoolExecutor(max_workers=n_workers)
    try:
        results = _ordered_prefetch(pool, prep, todo if cluster is None else [], ahead=batch_size * 2)
        bar = tqdm(total=len(todo), desc="tag", unit="img", disable=not progress or not todo or cluster is not None)
        batch: list = []
        for item in results:
            row, prepared, error = item
            if error:
                row, prepared = _failed_photo(lib, report, row, prep, error)
                if prepared is None:
                    bar.update(1)
                    continue
            batch.append((row, prepared))
            if len(batch) >= batch_size:
                flush(batch)
                report.tagged += len(batch)
                bar.update(len(batch))
                bar.set_postfix(img_s=f"{report.tagged / (time.perf_counter() - start):.1f}")
                batch = []
        if batch:
            flush(batch)
            report.tagged += len(batch)
            bar.update(len(batch))
        bar.close()
    finally:
        pool.shutdown(cancel_futures=True)
    report.seconds = time.perf_counter() - start
    if scorer is not None and covered:
        # once per starter head and backbone: a library-wide look for scores made without it
        # (in a library scored from several views, an older starter head's scores stay: redoing them from the
        # cached centre view would lose the views; the report says how to redo them)
        done = f"{scorer.version}|{bb.version}|{','.join(sorted(covered))}" + (f"|crops={crops}" if crops != 1 else "")
        if cat.get_meta(UPGRADED_KEY) != done:
            upgraded, kept = upgrade_prior_scores(lib, scorer.subset(covered), bb.version, keep_older=crops != 1)
            if upgraded:
                log.info("%d scores of photos tagged before this starter head now come from it", upgraded)
            if kept:
                line = (f"{kept} scores by an older starter head kept (they were scored from {crops} views); "
                        f"`photolab tag --force` redoes them with this one")
                report.note = f"{report.note}; {line}" if report.note else line
            cat.set_meta(UPGRADED_KEY, done)
    elif report.tagged:   # scores made without the starter head: the next pass with it looks again
        cat.del_meta(UPGRADED_KEY)
    if rescore and report.tagged and head_store.active(cat.conn) is not None:
        from photolab.stages.train import rescore as head_rescore   # the active head scores what was tagged

        failed = {p for p, _ in report.failed}
        head_rescore(lib, photo_ids=[r["id"] for r in todo if r["path"] not in failed])
    if report.tagged:
        _keep_score_matrix(lib, report.tagged)
    report.tag_counts = tag_counts(lib, tax) if counts else {}
    info = {"tagged": report.tagged, "skipped": report.skipped, "failed": report.failed,
            "seconds": report.seconds, "model": bb.version, "runtime": runtime_used or run.runtime}
    if crops != 1:   # which views scored the photos this pass tagged (a default pass's run info is as it was)
        info["crops"] = f"{crops} views, {CROP_POOL} of their scores"
    cat.finish_run(run_id, info)
    log.info("tag %s: %s", lib.root, report.summary())
    return report


UPGRADED_KEY = "starter_upgraded"   # meta: the starter head, backbone and tags the last upgrade was for
SCORE_MATRIX_AFTER = 1000   # a pass that tagged this many photos brings the score matrix up to date itself


def _keep_score_matrix(lib, tagged: int) -> None:
    """After a pass: the score matrix made (a library's first pass) or brought up to date (a large pass), so
    the next review queue or export does not read every score; a small pass leaves the patch to them."""
    from photolab.store import scores as store

    if tagged < SCORE_MATRIX_AFTER and (lib.state / "features" / store.CACHE).exists():
        return
    try:
        store.score_matrix(lib)
    except Exception as exc:   # noqa: BLE001 - only speed is lost: the next reader makes it
        log.warning("%s: score matrix not updated (%s)", lib.root, exc)


def upgrade_prior_scores(library, starter, version: str, *, chunk: int = 20000,
                         keep_older: bool = False) -> tuple[int, int]:
    """Photos a pass scored with the prior before the starter head was there (or used), or with an older
    starter head, get this starter's scores for its tags, from their cached features (the prior from the
    stored prior score, or, under an older starter, from the cached embedding through the backbone's own
    classifier); rows a trained head set aside (``scores_stash``) too, so a rollback returns the starter's.
    ``keep_older``: leave an older starter head's rows as they are (a library scored from several views,
    whose scores the cached centre view cannot redo). Returns (rows rewritten, older rows kept)."""
    from photolab.stages.train import _measures

    lib = open_library(library)
    conn = lib.catalog.conn
    tags = list(starter.tags)
    col = {t: j for j, t in enumerate(tags)}
    weights = None
    written = kept = 0
    which = "prior" if keep_older else "all"
    for table in ("scores", "scores_stash"):
        if keep_older:
            kept += score_store.count_stale_starter(conn, table, tags, starter.version, version, "older")
        # 'none': a starter tag no ImageNet class votes for (sunset), left unscored by a pass without the starter
        ids = score_store.stale_starter_photos(conn, table, tags, starter.version, version, which)
        for k in range(0, len(ids), chunk):
            part = ids[k:k + chunk]
            pos = {p: i for i, p in enumerate(part)}
            P = np.full((len(part), len(tags)), 0.5)
            have = np.zeros((len(part), len(tags)), dtype=bool)
            older = np.zeros((len(part), len(tags)), dtype=bool)   # scored by an older starter: prior not stored
            for pid, tag, score, source in score_store.stale_starter_rows(conn, table, part, tags, starter.version,
                                                                          version, which):
                have[pos[pid], col[tag]] = True
                if source == "starter":
                    older[pos[pid], col[tag]] = True
                elif score is not None:
                    P[pos[pid], col[tag]] = score
            E = feature_store.embeddings(conn, part)
            if older.any():
                from photolab.features.things import classifier, probabilities

                if weights is None:
                    weights = prior_matrix(tags)
                W, b = classifier(lib, version)
                P = np.where(older, prior_scores(probabilities(E, W, b), weights), P)
            S = starter.scores(E, _measures(lib, part), P)
            rows = [(round(float(S[i, j]), 6), pid, t) for j, t in enumerate(tags)
                    for i, pid in enumerate(part) if have[i, j]]
            with lib.catalog.write() as db:
                score_store.upgrade_to_starter(db, table, rows, starter.version)
            written += len(rows)
    return written, kept


def _ordered_prefetch(pool, fn, items, ahead: int):
    """``map`` that keeps at most ``ahead`` items in flight (bounded memory), in order."""
    from collections import deque

    pending: deque = deque()
    it = iter(items)
    for item in it:
        pending.append(pool.submit(fn, item))
        if len(pending) >= ahead:
            break
    while pending:
        yield pending.popleft().result()
        nxt = next(it, None)
        if nxt is not None:
            pending.append(pool.submit(fn, nxt))


class _FirstScores:
    """The scores before any correction: the starter head for the tags it covers, the prior for the rest."""

    def __init__(self, tags, weights, starter, covered, unscored, version):
        self.tags, self.weights, self.starter, self.version = tags, weights, starter, version
        self.covered, self.unscored = set(covered), set(unscored)
        if starter is not None:
            self._sub = starter.subset(list(covered))
            self._prior_cols = [tags.index(t) for t in covered]

    def __call__(self, emb16, probs, quality):
        """(N x T scores, source per tag, model per tag) for the pass's tags."""
        pri = prior_scores(probs, self.weights).astype(np.float64)
        sources = ["prior"] * len(self.tags)
        models = [self.version] * len(self.tags)
        if self.starter is not None and self.covered:
            from photolab.features.starter import measure_inputs

            s = self._sub.scores(emb16.astype(np.float32), measure_inputs(quality), pri[:, self._prior_cols])
            for k, j in enumerate(self._prior_cols):
                pri[:, j] = s[:, k]
                sources[j], models[j] = "starter", self.starter.version
        for j, t in enumerate(self.tags):
            if t in self.unscored:
                pri[:, j] = np.nan
                sources[j] = "none"
        return pri, sources, models

    def pool(self, views: np.ndarray) -> np.ndarray:
        """A photo's scores (N x T) from its views' (N x views x T): :data:`CROP_POOL` of them, and for the
        starter's tags its calibrated pooling (:meth:`Starter.pool`), so a three-view score means what a
        one-view score does."""
        out = pool_views(views)
        if self.starter is not None and self.covered:
            out[:, self._prior_cols] = self._sub.pool(views[:, :, self._prior_cols])
        return out


def _flush(lib, batch, version, run, score, quality_tags, head_tags, classes, thumbs_dir, outputs=None):
    """Score a batch of prepared photos and write their features, scores and thumbnails (the one writer).

    ``outputs``: the model's (embeddings, probabilities) for the batch when they were computed elsewhere
    (a cluster worker); otherwise ``run`` computes them from the prepared inputs."""
    from photolab.features.starter import QUALITY

    views = 1
    if outputs is None:
        xs = [p[0] for _, p in batch]
        views = 1 if xs[0].ndim == 3 else xs[0].shape[0]   # several views per photo: all in the one model run
        x = np.stack(xs) if views == 1 else np.concatenate(xs)
        emb, probs = run(x)
    else:
        emb, probs = (np.asarray(a, dtype=np.float32) for a in outputs)
    emb16 = emb.astype(np.float16)   # what the catalog keeps, so the scores equal a later rescoring's
    quality = np.array([[p[2][k] for k in QUALITY] for _, p in batch], dtype=np.float64)
    if views == 1:
        pri, sources, models = score(emb16, probs, quality)
    else:   # every view scored, the photo's score pooled over them; the features kept are the centre view's
        pri, sources, models = score(emb16, probs, np.repeat(quality, views, axis=0))
        pri = score.pool(pri.reshape(len(batch), views, -1))
        emb16, probs = emb16[::views], probs[::views]
    prior_tags = score.tags
    now = utcnow()
    feature_rows = []
    score_rows: dict[tuple[str, str], list] = {}   # (source, model): rows, one write each
    for i, (row, (_, hashes, q, thumb)) in enumerate(batch):
        pid = row["id"]
        rel_thumb = f"thumbs/{pid // 1000:04d}/{pid}.jpg"
        tpath = thumbs_dir.parent / rel_thumb
        tpath.parent.mkdir(parents=True, exist_ok=True)
        tmp = tpath.with_suffix(".tmp")
        tmp.write_bytes(thumb)
        os.replace(tmp, tpath)
        top = np.argsort(-probs[i])[:5]
        top5 = json.dumps([[classes[j], round(float(probs[i, j]), 5)] for j in top])
        feature_rows.append((pid, version, row["sha256"], emb16[i].tobytes(), top5, hashes[0],
                             hashes[1], hashes[2], hashes[3], q["sharpness"], q["brightness"], q["dark_frac"], q["clipped_frac"],
                             q["colorfulness"], *(q[k] for k in COLOR_MEASURES), rel_thumb, now))
        for j, tag in enumerate(prior_tags):
            value = None if np.isnan(pri[i, j]) else round(float(pri[i, j]), 6)
            score_rows.setdefault((sources[j], models[j]), []).append((pid, tag, value))
        qs = quality_scores(q, row["width"], row["height"])
        for tag in quality_tags:
            if tag in qs:
                score_rows.setdefault(("measure", "quality-v1"), []).append((pid, tag, round(float(qs[tag]), 5)))
        for tag in head_tags:
            score_rows.setdefault(("none", version), []).append((pid, tag, None))
    with lib.catalog.write() as db:
        feature_store.write(db, feature_rows)
        for (source, model), rows in score_rows.items():
            score_store.write(db, rows, source=source, model=model)


def tag_counts(library, taxonomy: Taxonomy | None = None) -> dict[str, int]:
    """Usable photos per accepted tag (as :func:`accepted_tags` decides), by indexed counts, not a full table:
    photos scoring at or above the threshold, less those a person said lack the tag, plus those a person
    gave it that score below."""
    lib = open_library(library)
    tax = taxonomy or load_taxonomy(lib)
    counts = {}
    for tag, t in thresholds(lib, tax).items():
        scored, removed, added = score_store.accepted_counts(lib.catalog.conn, tag, t, USABLE)
        counts[tag] = scored - removed + added
    return counts


def thumbnails_by_tag(library, *, per_tag: int = 12) -> tuple[list[str], list[str]]:
    """(thumbnail paths, tag labels) of the highest-scoring photos per accepted tag, for a grid.

    Bounded by ``per_tag``, so it stays small on a library of any size.
    """
    lib = open_library(library)
    thr = thresholds(lib)
    images, labels = [], []
    for tag, t in thr.items():
        for thumb in score_store.top_thumbnails(lib.catalog.conn, tag, t, per_tag):
            images.append(str(lib.state / "features" / thumb))
            labels.append(tag)
    return images, labels


def tag_batch(rows, root: str, spec: dict) -> dict:
    """The labeling pass's pixel work for a batch of ``(photo id, catalog path, kind)``: everything
    :func:`_flush` writes, as plain data. Nothing is written here."""
    import numpy as np

    from photolab.features.cluster import worker_model, worker_path

    bb, run = worker_model(spec)
    ok, xs, failed = [], [], []
    for pid, rel, kind in rows:
        try:
            x, hashes, q, thumb = _prepare(worker_path(root, rel), kind, bb.input_size, bb.crop_pct, bb.mean, bb.std)
        except Exception as exc:  # noqa: BLE001 - a photo that does not decode is reported by path, never fatal
            failed.append((pid, f"{type(exc).__name__}: {exc}"))
            continue
        ok.append((pid, hashes, q, thumb))
        xs.append(x)
    emb = probs = None
    if xs:
        emb, probs = run(np.stack(xs))
        emb, probs = np.asarray(emb, dtype=np.float32), np.asarray(probs, dtype=np.float32)
    return {"ok": ok, "embeddings": emb, "probs": probs, "failed": failed, "pid": os.getpid(),
            "device": run.device}
