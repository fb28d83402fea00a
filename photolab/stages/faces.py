"""People: a local face model that learns names from a handful of faces a person labels.

Everything runs on this machine, with weights that install from PyPI:

- **Detection**: dlib's HOG frontal face detector (built into ``dlib-bin``), run on the
  photo upright at :data:`DETECT_SIDE` px on its long side and upsampled once, so faces
  from about 2% of the long side up are found. A detection is kept when its score is at
  least :data:`MIN_SCORE` and it is at least :data:`MIN_FACE_PX` wide.
- **Landmarks and identity**: dlib's 5-point landmark model aligns each face and dlib's
  ResNet face descriptor (``face-recognition-models``, CC0; 99.38% on LFW) turns it into a
  128-number embedding. Two faces whose embeddings are closer than :data:`TOLERANCE`
  (0.6, dlib's documented threshold) are the same person.

Stored per face (table ``faces``): the box and landmarks as fractions of the upright photo,
detector score, embedding, a 150-px aligned crop under ``.photolab/stages/faces/``, cluster,
the name a person gave it, or a suggestion with its distance.

The workflow: :func:`scan_faces` finds faces; :func:`cluster_faces` groups unnamed faces
(DBSCAN) so a person names a whole cluster at once (:func:`name_cluster`, or the
:class:`photolab.ui.widgets.FaceNamer` grid), merges, splits and rejects; :func:`identify`
suggests a name for every other face from the nearest named faces: below
:data:`CONFIDENT` a confident suggestion, below :data:`TOLERANCE` a tentative one,
farther than that ``unknown``. Every name a person gives makes the next suggestions
better. Suggestions stay suggestions until a person confirms them
(:func:`confirm_faces`: :func:`plan_confirm` shows what it would name, :func:`apply` names them);
only named faces become ``People|Anna`` tags and MWG face
regions in the files. Face counts score the ``portrait`` and ``group`` tags (source
``faces`` in the taxonomy); those, as every people tag, are written once confirmed.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import importlib.util
import io
import json
import logging
import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from photolab.core.errors import PhotolabError
from photolab.store.catalog import utcnow
from photolab.stages.index import USABLE
from photolab.core.library import open_library
from photolab.plans import Applied, Plan, library_and_plan
from photolab.store import faces as store

log = logging.getLogger(__name__)

MODEL = "dlib-hog+resnet-v1"
DETECT_SIDE = 1024          # long side the detector sees (then upsampled once)
MIN_SCORE = 0.25            # HOG detection score; below it most hits are not faces (a badge, a pattern)
MIN_FACE_PX = 32            # at the detection scale
TOLERANCE = 0.6             # dlib: same person below this distance (99.38% on LFW)
CONFIDENT = 0.45            # a suggestion this close is called confident
AMBIGUOUS = 0.05            # a second person this much farther or closer: not confident
CLUSTER_EPS = 0.45          # DBSCAN radius for grouping unnamed faces
CROP_PX = 150
PEOPLE_ROOT = "People"
MODEL_FILES = {
    "landmarks": "shape_predictor_5_face_landmarks.dat",
    "descriptor": "dlib_face_recognition_resnet_model_v1.dat",
}


class FaceModelError(PhotolabError, RuntimeError):
    """The face model's weights are missing or cannot be loaded."""


def model_files() -> dict[str, Path]:
    """Where the packaged weights are (``face-recognition-models``), found without importing it
    (its ``__init__`` needs setuptools' ``pkg_resources``)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelError("the face model needs the face-recognition-models package "
                             "(pip install face-recognition-models); nothing is downloaded at run time")
    base = Path(list(spec.submodule_search_locations)[0]) / "models"
    out = {k: base / v for k, v in MODEL_FILES.items()}
    for k, p in out.items():
        if not p.is_file():
            raise FaceModelError(f"{p}: the {k} weights are missing; reinstall face-recognition-models")
    return out


_MODELS = None


def _models():
    global _MODELS
    if _MODELS is None:
        try:
            import dlib
        except ImportError as exc:
            raise FaceModelError("the face model needs dlib (pip install dlib-bin)") from exc
        files = model_files()
        _MODELS = (dlib.get_frontal_face_detector(), dlib.shape_predictor(str(files["landmarks"])),
                   dlib.face_recognition_model_v1(str(files["descriptor"])))
    return _MODELS


# -- detection and embedding ----------------------------------------------------------------------
def detect(image) -> list[dict]:
    """Faces in a PIL image (upright RGB): ``box`` (x, y, w, h as fractions), ``score``,
    ``landmarks`` (5 points as fractions), ``embedding`` (128 float32) and ``crop`` (JPEG bytes,
    aligned, :data:`CROP_PX` square)."""
    import dlib
    from PIL import Image

    detector, landmarks, descriptor = _models()
    W, H = image.size
    scale = min(1.0, DETECT_SIDE / max(W, H))
    if scale < 1.0:
        image = image.resize((max(1, round(W * scale)), max(1, round(H * scale))), Image.BILINEAR)
    a = np.asarray(image.convert("RGB"))
    h, w = a.shape[:2]
    rects, scores, _ = detector.run(a, 1, MIN_SCORE)
    out = []
    for r, s in sorted(zip(rects, scores), key=lambda rs: -rs[1]):
        left, top = max(0, r.left()), max(0, r.top())
        right, bottom = min(w, r.right()), min(h, r.bottom())
        if right - left < MIN_FACE_PX or bottom - top < MIN_FACE_PX:
            continue
        shape = landmarks(a, r)
        emb = np.asarray(descriptor.compute_face_descriptor(a, shape), dtype=np.float32)
        chip = dlib.get_face_chip(a, shape, size=CROP_PX, padding=0.3)
        buf = io.BytesIO()
        Image.fromarray(chip).save(buf, "JPEG", quality=85)
        out.append({
            "box": (left / w, top / h, (right - left) / w, (bottom - top) / h),
            "score": float(s),
            "landmarks": [(round(shape.part(i).x / w, 5), round(shape.part(i).y / h, 5)) for i in range(shape.num_parts)],
            "embedding": emb,
            "crop": buf.getvalue(),
        })
    return out


def _scan_one(args) -> tuple[int, list[dict] | None, str | None]:
    pid, path, kind = args
    from photolab.features.imaging import decode

    try:
        im = decode(Path(path), kind, target=DETECT_SIDE * 3 // 4)
        return pid, detect(im), None
    except FaceModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - a photo that does not decode is reported, never fatal
        return pid, None, f"{type(exc).__name__}: {exc}"


@dataclass
class FaceScanReport:
    scanned: int = 0
    faces: int = 0
    skipped: int = 0
    failed: list = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        rate = self.scanned / self.seconds if self.seconds else 0.0
        out = f"{self.scanned} photos scanned ({rate:.1f}/s), {self.faces} faces found, {self.skipped} already scanned"
        if self.failed:
            out += f", {len(self.failed)} failed"
        return out


def scan_faces(library, photo_ids=None, *, workers: int | None = None, progress: bool = True,
               force: bool = False, cluster=None, worker_root: str | os.PathLike | None = None) -> FaceScanReport:
    """Find and embed the faces of every usable photo not scanned yet (or of ``photo_ids``);
    then :func:`identify` suggests names and scores ``portrait``/``group``.

    Args:
        workers: processes (default: the cores; 1 runs in this process).
        force: scan again; each new face that overlaps an old one (box IoU >= 0.5) keeps the
            name or rejection a person gave the old one.
        cluster: detect and describe on a Dask cluster (:mod:`photolab.features.cluster`): a scheduler address
            (``tcp://host:8786``), ``local:N`` or a ``distributed.Client``; this process stays the
            catalog's only writer.
        worker_root: where the library's folder is on the workers (default: the same path as here).
    """
    from tqdm.auto import tqdm

    from photolab.store.watch import not_face_scanned

    lib = open_library(library)
    rows = not_face_scanned(lib.catalog.conn, photo_ids, USABLE, None if force else MODEL)
    report = FaceScanReport()
    report.skipped = store.scanned_count(lib.catalog.conn, MODEL)
    if not rows:
        return report
    if cluster is None:
        _models()   # fail early, here, when the weights are missing (on a cluster: on the workers)
    start = time.perf_counter()
    jobs = [(r["id"], str(lib.abs(r["path"])), r["kind"]) for r in rows]
    path_of = {r["id"]: r["path"] for r in rows}
    n = workers or min(os.cpu_count() or 1, 4)
    crops = lib.state / "faces"
    bar = tqdm(total=len(jobs), desc="faces", unit="img", disable=not progress)
    pending: list = []

    def flush():
        _store(lib, pending, crops)
        pending.clear()

    stack = contextlib.ExitStack()   # the cluster's client, closed when the scan ends either way
    pool = None
    if cluster is not None:
        from photolab.features.cluster import FACE_CHUNK, check_root, connect, probe_photo, run_batches

        client = stack.enter_context(connect(cluster, progress=progress))
        root = str(worker_root) if worker_root is not None else str(lib.root)
        plan = [[(r["id"], r["path"], r["kind"]) for r in rows[k:k + FACE_CHUNK]]
                for k in range(0, len(rows), FACE_CHUNK)]

        def on_cluster():
            check_root(client, root, probe_photo(lib, (r["path"] for r in rows)))
            for _, found in run_batches(client, scan_batch, plan, root):
                yield from found

        results = on_cluster()
    elif n <= 1 or len(jobs) < 8:
        results = map(_scan_one, jobs)
    else:
        # fork: the workers only run dlib and Pillow, and a script needs no __main__ guard
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        pool = cf.ProcessPoolExecutor(max_workers=n, mp_context=ctx)
        results = pool.map(_scan_one, jobs, chunksize=4)
    try:
        for pid, found, error in results:
            bar.update(1)
            if error:
                report.failed.append((path_of[pid], error))
                continue
            report.scanned += 1
            report.faces += len(found)
            pending.append((pid, found))
            if len(pending) >= 64:
                flush()
        flush()
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        stack.close()
    report.seconds = time.perf_counter() - start
    identify(lib)
    _score_counts(lib)
    return report


def _store(lib, batch, crops: Path) -> None:
    now = utcnow()
    stale: set[str] = set()
    with lib.catalog.write() as db:
        for pid, found in batch:
            old = store.faces_of(db, pid)
            stale |= {r["crop"] for r in old if r["crop"]}
            rows = []
            for i, f in enumerate(found):
                x, y, w, h = f["box"]
                keep = _same_face(old, f["box"])   # a rescan keeps what a person said about the face
                rel = f"faces/{pid // 1000:04d}/{pid}-{i}.jpg"
                stale.discard(rel)
                path = lib.state / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(f["crop"])
                os.replace(tmp, path)
                rows.append((x, y, w, h, round(f["score"], 4), json.dumps(f["landmarks"]),
                             f["embedding"].astype(np.float32).tobytes(), rel,
                             keep["person"] if keep else None, keep["named_by"] if keep else None,
                             keep["named_at"] if keep else None, keep["rejected"] if keep else 0))
            store.replace_faces(db, pid, rows, MODEL, now)
    # crops of faces a rescan no longer finds: a cache of ours, removed once the catalog no longer names them
    for rel in stale:
        (lib.state / rel).unlink(missing_ok=True)


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def _same_face(old_rows, box):
    best = max(old_rows, key=lambda r: _iou((r["x"], r["y"], r["w"], r["h"]), box), default=None)
    if best is not None and _iou((best["x"], best["y"], best["w"], best["h"]), box) >= 0.5:
        return best
    return None


# -- reading --------------------------------------------------------------------------------------
def _embeddings(rows) -> np.ndarray:
    if not rows:
        return np.zeros((0, 128), np.float32)
    return np.stack([np.frombuffer(r["embedding"], dtype=np.float32) for r in rows])


def faces(library, photo_ids=None):
    """Every face: ``photo_id``, ``path``, box ``x, y, w, h`` (fractions of the upright photo),
    ``score``, ``cluster``, ``person`` (named by a person), ``suggestion`` and ``distance``,
    ``status`` (named, confident, tentative, unknown, rejected) and ``crop`` (absolute path)."""
    lib = open_library(library)
    df = store.faces_table(lib.catalog.conn)
    if photo_ids is not None:
        df = df[df["photo_id"].isin([int(i) for i in photo_ids])]
    df["status"] = [_status(r) for r in df.itertuples()]
    df["crop"] = [str(lib.state / c) for c in df["crop"]]
    return df


def _status(r) -> str:
    if r.rejected:
        return "rejected"
    if isinstance(r.person, str):
        return "named"
    if isinstance(r.suggestion, str):
        return "confident" if r.distance is not None and r.distance < CONFIDENT else "tentative"
    return "unknown"


def people(library):
    """Named people: ``faces`` a person named, ``suggested`` faces waiting for confirmation, ``photos``."""
    import pandas as pd

    df = faces(library)
    named = df[df["status"] == "named"]
    sugg = df[df["status"].isin(["confident", "tentative"])]
    names = sorted(set(named["person"]) | set(sugg["suggestion"]))
    return pd.DataFrame({
        "faces": [int((named["person"] == n).sum()) for n in names],
        "suggested": [int((sugg["suggestion"] == n).sum()) for n in names],
        "photos": [int(named.loc[named["person"] == n, "photo_id"].nunique()) for n in names],
    }, index=pd.Index(names, name="person"))


def clusters(library, *, include_named: bool = False, table=None):
    """Clusters of unnamed faces, largest first: ``size``, ``faces`` (ids), ``suggestion`` (the name
    most of its faces are suggested) and ``photos``. ``table``: a :func:`faces` table already read."""
    return _clusters_of(faces(library) if table is None else table, include_named=include_named)


def _clusters_of(df, *, include_named: bool = False):
    import pandas as pd

    df = df[df["status"] != "rejected"]
    if not include_named:
        df = df[df["status"] != "named"]
    df = df[df["cluster"].notna()]
    rows = []
    for c, g in df.groupby("cluster"):
        s = g["suggestion"].dropna()
        rows.append({"cluster": int(c), "size": len(g), "faces": list(map(int, g.index)),
                     "suggestion": s.mode().iloc[0] if len(s) else None, "photos": int(g["photo_id"].nunique())})
    out = pd.DataFrame(rows, columns=["cluster", "size", "faces", "suggestion", "photos"])
    return out.sort_values(["size", "cluster"], ascending=[False, True]).set_index("cluster")


# -- grouping and naming --------------------------------------------------------------------------
def cluster_faces(library, *, eps: float = CLUSTER_EPS, min_samples: int = 2) -> int:
    """Group the unnamed, unrejected faces (DBSCAN over embeddings, radius ``eps``): each group gets a
    cluster number, and a face like no other gets one of its own. Returns the number of clusters."""
    from sklearn.cluster import DBSCAN

    lib = open_library(library)
    rows = store.unnamed(lib.catalog.conn)
    if not rows:
        return 0
    X = _embeddings(rows)
    labels = DBSCAN(eps=eps, min_samples=min_samples, metric="euclidean").fit_predict(X)
    nxt = int(labels.max()) + 1
    out = []
    for r, lab in zip(rows, labels):
        if lab < 0:
            lab, nxt = nxt, nxt + 1
        out.append(int(lab))
    # number clusters by size, largest first, so cluster 0 is the one worth naming first
    sizes = {c: out.count(c) for c in set(out)}
    order = {c: i for i, c in enumerate(sorted(sizes, key=lambda c: (-sizes[c], c)))}
    with lib.catalog.write() as db:
        store.set_clusters(db, [(order[c], r["id"]) for r, c in zip(rows, out)])
    return len(sizes)


def _check_name(name: str) -> str:
    name = " ".join(str(name).split())
    if not name:
        raise ValueError("a person's name cannot be empty")
    if any(ch in name for ch in "|/\\;,"):
        raise ValueError(f"name {name!r}: | / \\ ; and , are not allowed (they separate keywords and levels)")
    return name


def _ids(face_ids) -> list[int]:
    return [int(i) for i in (face_ids if face_ids is not None else [])]


def name_faces(library, face_ids, name: str, *, who: str = "me", refresh: bool = True) -> int:
    """A person names these faces (``name``; an earlier name is replaced). Then the suggestions for
    every other face are made again with it. Returns how many faces were named."""
    lib = open_library(library)
    name = _check_name(name)
    with lib.catalog.write() as db:
        n = store.name(db, _ids(face_ids), name, who, utcnow())
    if refresh:
        identify(lib)
    return n


def name_cluster(library, cluster: int, name: str, *, who: str = "me", except_faces=()) -> int:
    """Name every unnamed face of ``cluster`` (less ``except_faces``, the ones a person took out)."""
    lib = open_library(library)
    skip = {int(i) for i in except_faces}
    ids = [i for i in store.unnamed_in_cluster(lib.catalog.conn, cluster) if i not in skip]
    return name_faces(lib, ids, name, who=who)


def unname_faces(library, face_ids) -> int:
    """Take a person's name (or rejection) off these faces; they get suggestions again."""
    return _change_faces(library, store.unname, face_ids)


def reject_faces(library, face_ids) -> int:
    """Not a face, or a face nobody wants tagged (a stranger in the background): never suggested,
    never written."""
    return _change_faces(library, store.reject, face_ids)


def _change_faces(library, change, face_ids) -> int:
    """Apply ``change`` (a store function) to these faces, then suggest names and count people again."""
    lib = open_library(library)
    with lib.catalog.write() as db:
        n = change(db, _ids(face_ids))
    identify(lib)
    _score_counts(lib)
    return n


def merge_clusters(library, cluster_ids) -> int | None:
    """Put the faces of several clusters into the first one; returns it."""
    lib = open_library(library)
    ids = [int(c) for c in cluster_ids]
    if not ids:
        return None
    with lib.catalog.write() as db:
        store.move_clusters(db, ids[1:], ids[0])
    return ids[0]


def split_faces(library, face_ids) -> int:
    """Move these faces out of their cluster into a new one; returns its number."""
    lib = open_library(library)
    top = store.top_cluster(lib.catalog.conn)
    with lib.catalog.write() as db:
        store.move_faces(db, _ids(face_ids), top + 1)
    return top + 1


def plan_confirm(library, face_ids=None, *, photo_ids=None, confident_only: bool = True,
                 who: str = "me") -> Plan:
    """What accepting the suggested names of ``face_ids`` (or of every face in ``photo_ids``; with neither,
    of every suggested face) would change; changes nothing (:func:`apply` does). ``confident_only``: only
    suggestions closer than :data:`CONFIDENT`.

    Returns:
        A :class:`~photolab.plans.Plan` whose ``rows`` are the faces whose suggestion becomes their name
        (as :func:`faces` has them); ``kept``: ``(path, reason)`` of the other faces asked about that carry
        a suggestion (tentative ones under ``confident_only``); ``detail["who"]``: who confirms.
    """
    lib = open_library(library)
    df = faces(lib, photo_ids=photo_ids)
    if face_ids is not None:
        df = df[df.index.isin(_ids(face_ids))]
    ok = ["confident"] if confident_only else ["confident", "tentative"]
    kept = [(r.path, f"face {i}: {r.status} suggestion {r.suggestion!r} (distance {r.distance:.2f}) not confirmed")
            for i, r in zip(df.index, df.itertuples()) if r.status == "tentative" and r.status not in ok]
    df = df[df["status"].isin(ok)]
    return Plan("faces", df, kept=kept, library=lib, detail={"who": who, "confident_only": confident_only},
                why="the suggested names become the names a person gave (People| tags and face regions "
                    "once written)")


def apply(library, plan: Plan | None = None, **_) -> Applied:
    """Accept the suggested names of a :func:`plan_confirm`, then suggest again for the other faces; returns
    how many faces were named (an int whose ``skipped`` lists ``(face id, reason)`` of the faces left as they
    are: their suggestion changed since the plan, or is no longer confident under ``confident_only``).

    Called as ``apply(plan)`` or ``apply(library, plan)`` (the library the plan was made for)."""
    library, plan = library_and_plan(library, plan)
    if plan.stage != "faces":
        raise ValueError(f"faces.apply takes a faces plan, not a {plan.stage} plan")
    lib = open_library(library)
    confident = CONFIDENT if plan.detail.get("confident_only", False) else None
    planned = [(int(i), s) for i, s in zip(plan.rows.index, plan.rows["suggestion"]) if isinstance(s, str)]
    with lib.catalog.write() as db:
        done = store.accept_suggestions(db, planned, plan.detail.get("who", "me"), utcnow(), confident=confident)
    skipped = [(i, f"face {i}: its suggestion {s!r} changed since the plan was made"
                   + (" (or is no longer confident)" if confident is not None else "") + "; left unnamed")
               for i, s in planned if i not in done]
    for _, why in skipped:
        log.warning("%s", why)
    identify(lib)
    return Applied(len(done), skipped)


def confirm_faces(library, face_ids=None, *, photo_ids=None, confident_only: bool = True,
                  who: str = "me") -> int:
    """A person accepts the suggested names of ``face_ids`` (or of every face in ``photo_ids``;
    with neither, of every suggested face): :func:`plan_confirm`, then :func:`apply`. ``confident_only``:
    only suggestions closer than :data:`CONFIDENT`. Returns how many faces were named."""
    return apply(plan_confirm(library, face_ids, photo_ids=photo_ids, confident_only=confident_only, who=who))


# -- suggestions ----------------------------------------------------------------------------------
def identify(library) -> dict[str, int]:
    """Suggest a name for every unnamed face from the faces a person named: the nearest named face's
    person when it is closer than :data:`TOLERANCE`, else none (``unknown``). Returns counts by status."""
    lib = open_library(library)
    named = store.named(lib.catalog.conn)
    todo = store.unnamed(lib.catalog.conn)
    updates = []
    if todo:
        X = _embeddings(todo)
        if named:
            R = _embeddings(named)
            who = np.array([r["person"] for r in named])
            people_ = sorted(set(who))
            for k in range(0, len(X), 2048):
                D = np.sqrt(np.maximum(0.0, ((X[k:k + 2048, None, :] - R[None, :, :]) ** 2).sum(-1)))
                # per person, the nearest of their named faces
                P = np.stack([D[:, who == p].min(axis=1) for p in people_], axis=1)
                order = np.argsort(P, axis=1)
                for i in range(len(P)):
                    best = order[i, 0]
                    d = float(P[i, best])
                    second = float(P[i, order[i, 1]]) if P.shape[1] > 1 else np.inf
                    if d < TOLERANCE:
                        # a close second person makes the call uncertain: report it as tentative
                        if second - d < AMBIGUOUS and d < CONFIDENT:
                            d = CONFIDENT
                        updates.append((people_[best], round(d, 4), todo[k + i]["id"]))
                    else:
                        updates.append((None, round(d, 4), todo[k + i]["id"]))
        else:
            updates = [(None, None, r["id"]) for r in todo]
    with lib.catalog.write() as db:
        store.set_suggestions(db, updates)
    return store.status_counts(lib.catalog.conn, CONFIDENT)


def count_scores(boxes: list[tuple[float, float, float, float]]) -> dict[str, float]:
    """``portrait`` and ``group`` scores from a photo's face boxes (fractions of the photo).

    Faces at least 40% the height of the largest face (and 3% of the photo's height) count;
    portrait: exactly one such face, scored by its height (0.5 at 12% of the photo's height);
    group: three such faces or more (0.9), two (0.3).
    """
    if not boxes:
        return {"portrait": 0.0, "group": 0.0}
    top = max(h for _, _, _, h in boxes)
    main = [b for b in boxes if b[3] >= 0.4 * top and b[3] >= 0.03]
    if len(main) == 1:
        portrait = 1.0 / (1.0 + np.exp(-(main[0][3] - 0.12) / 0.03))
    else:
        portrait = 0.05
    group = 0.9 if len(main) >= 3 else 0.3 if len(main) == 2 else 0.0
    return {"portrait": round(float(portrait), 4), "group": group}


def _score_counts(lib) -> None:
    from photolab.core.taxonomy import load_taxonomy

    tags = load_taxonomy(lib).by_source("faces")
    if not tags:
        return
    boxes: dict[int, list] = {}
    for r in store.boxes(lib.catalog.conn):
        lst = boxes.setdefault(r[0], [])
        if r[1] is not None:
            lst.append((r[1], r[2], r[3], r[4]))
    rows = []
    for pid, bx in boxes.items():
        sc = count_scores(bx)
        rows += [(pid, t, sc[t]) for t in tags if t in sc]
    from photolab.store import scores as score_store

    with lib.catalog.write() as db:   # a trained head or the starter that scores these tags keeps them
        score_store.write(db, rows, source="faces", model=MODEL)


# -- what goes into the files ---------------------------------------------------------------------
def person_path(name: str) -> str:
    return f"{PEOPLE_ROOT}|{name}"


def to_stored(box, orientation: int | None):
    """A box (x, y, w, h as fractions of the upright photo) in the stored image's frame, which MWG
    regions use: the reader applies the EXIF orientation to regions as to the pixels."""
    x, y, w, h = box
    o = orientation or 1

    def back(u, v):
        return {1: (u, v), 2: (1 - u, v), 3: (1 - u, 1 - v), 4: (u, 1 - v), 5: (v, u),
                6: (v, 1 - u), 7: (1 - v, 1 - u), 8: (1 - v, u)}.get(o, (u, v))

    (s1, t1), (s2, t2) = back(x, y), back(x + w, y + h)
    return min(s1, s2), min(t1, t2), abs(s2 - s1), abs(t2 - t1)


def named_faces(library, photo_ids=None, *, include_suggestions: bool = False) -> dict[int, list[dict]]:
    """photo id -> its named faces (``name`` and MWG ``area``: centre x, y, w, h as fractions of the
    stored image) and the stored ``size`` (w, h px). ``include_suggestions``: confident
    suggestions too (only when a person opted people tags in without review)."""
    lib = open_library(library)
    rows = store.named_with_photos(lib.catalog.conn, photo_ids, confident=CONFIDENT if include_suggestions else None)
    out: dict[int, list[dict]] = {}
    for r in rows:
        sx, sy, sw, sh = to_stored((r["x"], r["y"], r["w"], r["h"]), r["orientation"])
        out.setdefault(r["photo_id"], []).append({
            "name": r["name"], "area": (round(sx + sw / 2, 5), round(sy + sh / 2, 5), round(sw, 5), round(sh, 5)),
            "size": (r["width"], r["height"])})
    return out


__all__ = ["CONFIDENT", "TOLERANCE", "FaceModelError", "apply", "clusters", "cluster_faces", "confirm_faces",
           "count_scores", "detect", "faces", "identify", "merge_clusters", "name_cluster", "name_faces", "named_faces",
           "people", "person_path", "plan_confirm", "reject_faces", "scan_faces", "split_faces", "to_stored",
           "scan_batch", "unname_faces"]


def scan_batch(rows, root: str) -> list:
    """The face scan's work for a batch of ``(photo id, catalog path, kind)``: ``(id, faces, error)`` each."""
    from photolab.features.cluster import worker_path

    return [_scan_one((pid, str(worker_path(root, rel)), kind)) for pid, rel, kind in rows]
