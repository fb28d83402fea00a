"""Train a multi-label head on a person's labels, over the cached embeddings, and use it.

The head is the backbone's own classifier slot (timm ``reset_classifier`` with one
output per tag) over the frozen backbone's cached embeddings, plus a linear term
over the labeling pass's image measures (sharpness, exposure, colorfulness: what
an ImageNet embedding mostly drops, so "black and white" or "blurry" are
learnable too), trained on the cached features: binary
cross-entropy with per-tag class balance and an L2 penalty, run to convergence.
It learns tags the ImageNet prior cannot score (birthday, wedding, your dog's
name) from a handful of examples, and replaces the starter head or the prior on
tags where it does better. Where the starter head (:mod:`photolab.features.starter`)
scores a tag, training starts from the starter's weights for it and the L2
penalty pulls toward them rather than toward zero, and the starter's scores are
the baseline the new head must beat: a few corrections adjust what the starter
knows and never throw it away.

Training data: every labeled example (:mod:`photolab.stages.review` corrections and
confirmations), and photos whose metadata carry taxonomy keywords another app
wrote (``read-metadata``): those tags positive and the taxonomy's other tags
negative, unless ``use_metadata=False``.

Each run cross-validates (5 folds) and reports, per tag, the out-of-fold average
precision beside the prior's on the same photos. The head replaces a tag's
scores only where it is at least as good as the prior (or where nothing else
scores the tag). A new head is saved as a version under
``.photolab/models/heads/`` and compared with the active one tag by tag: on each
tag's corrections made since the active head was trained (its held-out set), or
on cross-validation where those hold no positive or no negative. A tag keeps the
active head's weights where the new ones do worse, and takes the new ones where
they do at least as well or where the active head does not score it; the new
version is made active when at least one tag gained, or when forced (then with
the new weights on every tag). :func:`use_head` rolls back to any version, or to
the prior alone.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import dataclass, field

import numpy as np

from photolab.store.catalog import utcnow
from photolab.core.errors import PhotolabError
from photolab.core.library import open_library
from photolab.features.starter import BASE_MEASURES, COLOR_MEASURES, QUALITY
from photolab.store import features as feature_store
from photolab.store import heads as head_store
from photolab.store import scores as score_store
from photolab.core.taxonomy import load_taxonomy

log = logging.getLogger(__name__)

HEADS_DIR = ("models", "heads")
MIN_POSITIVES = 3
MIN_NEGATIVES = 3
FOLDS = 5
# replacing a tag the prior already scores needs more evidence: enough examples on both sides and
# a cross-validated AP clearly above the prior's on the same photos
MIN_EXAMPLES_OVER_PRIOR = 8
MARGIN_OVER_PRIOR = 0.01


@dataclass
class TrainReport:
    """What a training run produced."""

    version: str | None = None
    examples: int = 0
    metrics: object = None           # DataFrame indexed by tag
    activated: bool = False
    why: str = ""
    seconds: float = 0.0
    replaces: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.version is None:
            return self.why
        state = "active" if self.activated else "kept, not active"
        return (f"{self.version} from {self.examples} labeled photos in {self.seconds:.1f} s: {state} ({self.why}); "
                f"scores {', '.join(self.replaces) or 'no tag'}")


# -- data ------------------------------------------------------------------------------------
def _raw_embeddings(lib, ids: list[int]) -> np.ndarray:
    """The stored embeddings of ``ids``, N x D float32 (what heads take)."""
    return feature_store.embeddings(lib.catalog.conn, ids)


MEASURES = QUALITY   # the pass's image measures, in the order heads take them (photolab.features.starter)


def _measures(lib, ids: list[int]) -> np.ndarray:
    """The labeling pass's image measures of ``ids`` (N x 11), the inputs beside the embedding that
    carry what an ImageNet embedding mostly drops (colour vs black and white, exposure, blur, where the
    warm and the blue light is). Measures missing from features made before they were measured
    (colorfulness, the colour measures) are taken from the thumbnail once and stored."""
    from PIL import Image

    from photolab.features.imaging import color_measures, colorfulness

    n = len(MEASURES)
    got, filled = {}, []
    for r in feature_store.measures(lib.catalog.conn, ids, MEASURES):
        vals = list(r[1:1 + n])
        if vals[4] is None or any(v is None for v in vals[5:]):
            try:
                with Image.open(lib.state / "features" / r[1 + n]) as im:
                    im = im.convert("RGB")
                    if vals[4] is None:
                        vals[4] = colorfulness(im)
                    c = color_measures(im)
                    vals[5:] = [c[key] if v is None else v for key, v in zip(COLOR_MEASURES, vals[5:])]
                filled.append((*vals[4:], r[0]))
            except (OSError, TypeError):
                pass
        got[r[0]] = [float(v) if v is not None else 0.0 for v in vals]
    if filled:
        try:
            with lib.catalog.write() as db:
                # only rows still without them: a pass that wrote fresh features meanwhile keeps its own values
                feature_store.fill_colour_measures(db, filled)
        except (PhotolabError, sqlite3.Error) as exc:   # a read-only library still scores; taken again next time
            log.info("colour measures of %d photos not stored: %s", len(filled), exc)
    m = np.array([got[i] for i in ids], dtype=np.float32).reshape(len(ids), n)
    m[:, 0] = np.log1p(1000 * m[:, 0])   # sharpness spans orders of magnitude
    m[:, 4] = np.log1p(m[:, 4])
    return m


def training_data(library, *, use_metadata: bool = True):
    """(photo ids, embeddings N x D, measures N x 11, labels N x T with NaN where unknown, tag names)."""
    lib = open_library(library)
    tax = load_taxonomy(lib)
    tags = tax.names
    col = {t: k for k, t in enumerate(tags)}
    rows = score_store.labeled_examples(lib.catalog.conn)
    by_photo: dict[int, dict] = {}
    from_meta: set[int] = set()
    for pid, tag, value, who in rows:
        if tag not in col:
            continue
        if who == "metadata":
            if not use_metadata:
                continue
            from_meta.add(pid)
        by_photo.setdefault(pid, {})[tag] = value
    ids = sorted(by_photo)
    Y = np.full((len(ids), len(tags)), np.nan, dtype=np.float32)
    for i, pid in enumerate(ids):
        if pid in from_meta:
            Y[i, :] = 0.0   # another app's keywords: the photo's tags, and none of the others
        for tag, value in by_photo[pid].items():
            Y[i, col[tag]] = value
    return np.array(ids, dtype=np.int64), _raw_embeddings(lib, ids), _measures(lib, ids), Y, tags


# -- the model ---------------------------------------------------------------------------------
def _arch(lib) -> str:
    model = feature_store.any_model(lib.catalog.conn)
    return model.split(":")[0] if model else "tf_efficientnet_lite0"


def _new_head(arch: str, n_tags: int, dim: int, n_measures: int):
    """The backbone's classifier slot reset to ``n_tags`` outputs (timm ``reset_classifier``) over
    the embedding, plus a linear term over the image measures."""
    import timm
    import torch

    classifier = None
    try:
        model = timm.create_model(arch, pretrained=False)
        model.reset_classifier(n_tags)
        classifier = model.get_classifier()
        if getattr(classifier, "in_features", None) != dim:
            classifier = None
    except Exception as exc:  # noqa: BLE001 - an architecture timm does not know here: a plain linear layer
        log.info("%s: %s; using a linear layer", arch, exc)
    if classifier is None:
        classifier = torch.nn.Linear(dim, n_tags)

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.classifier = classifier
            self.measures = torch.nn.Linear(n_measures, n_tags, bias=False)

        def forward(self, emb, meas):
            return self.classifier(emb) + self.measures(meas)

    return Head()


L2 = 0.01   # on the standardized embedding weights; chosen by cross-validation on the labeled photos


def _fit(X: np.ndarray, M: np.ndarray, Y: np.ndarray, arch: str, *, l2: float = L2, max_iter: int = 300,
         seed: int = 0, start=None):
    """Train a head to convergence (L-BFGS, full batch) on the masked, class-balanced binary cross-entropy
    with an L2 penalty; returns (W T x D, Wm T x 11, b T) that take raw embeddings and measures.

    ``start``: (W0, Wm0, b0) in the same form (the starter head's weights, zero rows for tags it does
    not know): training starts there and the L2 penalty pulls toward them instead of toward zero, so a
    few corrections adjust what the starter knows rather than throw it away.

    (Measured on the labeled photos: early-stopped Adam left the small measure term untrained and
    reached AP 0.55 for black-and-white; the regularised optimum reaches 0.96.)"""
    import torch

    torch.manual_seed(seed)
    n, d = X.shape
    t = Y.shape[1]
    mean, std = X.mean(axis=0), X.std(axis=0) + 1e-4
    mmean, mstd = M.mean(axis=0), M.std(axis=0) + 1e-4
    Xs = torch.from_numpy((X - mean) / std)
    Ms = torch.from_numpy((M - mmean) / mstd)
    mask = torch.from_numpy(~np.isnan(Y)).float()
    Yt = torch.from_numpy(np.nan_to_num(Y, nan=0.0))
    pos = (Yt * mask).sum(0)
    neg = mask.sum(0) - pos
    pos_weight = (neg / pos.clamp(min=1)).clamp(1.0, 50.0)   # class balance per tag
    count = mask.sum(0).clamp(min=1)
    head = _new_head(arch, t, d, M.shape[1])
    W0s = torch.zeros((t, d))
    Wm0s = torch.zeros((t, M.shape[1]))
    b0 = torch.zeros(t)
    if start is not None:   # the same weights over standardized inputs
        W0, Wm0, sb0 = (np.asarray(a, dtype=np.float64) for a in start)
        W0s = torch.from_numpy((W0 * std[None, :]).astype(np.float32))
        Wm0s = torch.from_numpy((Wm0 * mstd[None, :]).astype(np.float32))
        b0 = torch.from_numpy((sb0 + W0 @ mean + Wm0 @ mmean).astype(np.float32))
    with torch.no_grad():
        head.classifier.weight.copy_(W0s)
        head.classifier.bias.copy_(b0)
        head.measures.weight.copy_(Wm0s)
    # the five base measures are barely penalised (black and white lives there); the colour measures as much
    # as the embedding, so a few corrections cannot swing a tag on the colour of a handful of photos
    mpen = torch.full((M.shape[1],), l2)
    mpen[:len(BASE_MEASURES)] = 1e-3
    lossf = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight, reduction="none")
    opt = torch.optim.LBFGS(head.parameters(), lr=1, max_iter=max_iter, history_size=20,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = ((lossf(head(Xs, Ms), Yt) * mask).sum(0) / count).sum() \
            + l2 * ((head.classifier.weight - W0s) ** 2).sum() + (mpen * (head.measures.weight - Wm0s) ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    W = head.classifier.weight.detach().numpy().astype(np.float32) / std[None, :]
    Wm = head.measures.weight.detach().numpy().astype(np.float32) / mstd[None, :]
    b = head.classifier.bias.detach().numpy().astype(np.float32) - W @ mean - Wm @ mmean
    return W, Wm, b


def _starter_start(lib, tags: list[str], dim: int):
    """(W0, Wm0, b0) from the starter head for the tags it scores in this library (zero rows for the
    others), or None when it cannot be used with these features (another backbone, a damaged file)."""
    from photolab.features.starter import StarterError, load_starter

    model = feature_store.any_model(lib.catalog.conn)
    try:
        st = load_starter()
    except StarterError as exc:
        log.warning("%s", exc)
        return None
    if not model or model != st.backbone or st.weight.shape[1] != dim:
        return None
    scored = score_store.starter_scored_tags(lib.catalog.conn)
    W0 = np.zeros((len(tags), dim), np.float32)
    Wm0 = np.zeros((len(tags), len(MEASURES)), np.float32)
    b0 = np.zeros(len(tags), np.float32)
    for j, t in enumerate(tags):
        if t in st.tags and t in scored:
            k = st.tags.index(t)
            W0[j], Wm0[j], b0[j] = st.weight[k], st.measure_weight[k], st.bias[k]
    return (W0, Wm0, b0) if b0.any() or W0.any() else None


def _predict(X: np.ndarray, M: np.ndarray, W: np.ndarray, Wm: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(X @ W.T + M @ Wm.T + b, -50, 50)))


def _ap(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    ok = ~np.isnan(y)
    y, s = y[ok], s[ok]
    if y.sum() < 1 or (1 - y).sum() < 1:
        return float("nan")
    return float(average_precision_score(y, s))


def _baseline_scores(lib, ids: np.ndarray, tags: list[str]) -> np.ndarray:
    """The scores the head would replace (the prior / measures), N x T, NaN where none."""
    out = np.full((len(ids), len(tags)), np.nan)
    pos = {int(p): i for i, p in enumerate(ids)}
    col = {t: k for k, t in enumerate(tags)}
    for pid, tag, score in score_store.baseline_rows(lib.catalog.conn):   # the set-aside ones last: they stand
        if pid in pos and tag in col and score is not None:
            out[pos[pid], col[tag]] = score
    return out


# -- training --------------------------------------------------------------------------------
def train(library, *, force: bool = False, use_metadata: bool = True, seed: int = 0, folds: int = FOLDS,
          activate: bool = True, progress: bool = True) -> TrainReport:
    """Train a head on every labeled example, cross-validate it, save it as a version, and make
    it active when it beats the active one on at least one tag, keeping the active head's weights
    on the tags where it does not (see the module text); returns a :class:`TrainReport`."""
    import pandas as pd
    from safetensors.numpy import save_file
    from sklearn.model_selection import KFold

    lib = open_library(library)
    start = time.perf_counter()
    ids, X, M, Y, tags = training_data(lib, use_metadata=use_metadata)
    report = TrainReport(examples=len(ids))
    known = ~np.isnan(Y)
    n_pos = np.nansum(Y, axis=0)
    n_neg = known.sum(axis=0) - n_pos
    trainable = (n_pos >= MIN_POSITIVES) & (n_neg >= MIN_NEGATIVES)
    if len(ids) < 2 * MIN_POSITIVES or not trainable.any():
        report.why = (f"not enough labeled photos to train ({len(ids)} photos; each tag needs {MIN_POSITIVES} "
                      f"photos with it and {MIN_NEGATIVES} without)")
        return report
    arch = _arch(lib)
    begin = _starter_start(lib, tags, X.shape[1])   # the starter's weights: where training starts
    oof = np.full(Y.shape, np.nan)
    k = min(folds, len(ids))
    from tqdm.auto import tqdm

    with tqdm(total=k + 1, desc="train (folds, then all)", unit="fit", disable=not progress) as bar:
        for tr, te in KFold(k, shuffle=True, random_state=seed).split(X):
            W, Wm, b = _fit(X[tr], M[tr], Y[tr], arch, seed=seed, start=begin)
            oof[te] = _predict(X[te], M[te], W, Wm, b)
            bar.update()
        W, Wm, b = _fit(X, M, Y, arch, seed=seed, start=begin)
        bar.update()
    base = _baseline_scores(lib, ids, tags)
    rows = []
    for j, tag in enumerate(tags):
        cv, prior = _ap(Y[:, j], oof[:, j]), _ap(Y[:, j], np.where(np.isnan(base[:, j]), -1, base[:, j]))
        has_prior = not np.isnan(base[known[:, j], j]).all() if known[:, j].any() else False
        enough = n_pos[j] >= MIN_EXAMPLES_OVER_PRIOR and n_neg[j] >= MIN_EXAMPLES_OVER_PRIOR
        replaces = bool(trainable[j] and cv == cv and (
            not has_prior or (enough and (prior != prior or cv >= prior + MARGIN_OVER_PRIOR))))
        rows.append({"tag": tag, "positives": int(n_pos[j]), "negatives": int(n_neg[j]), "cv_ap": cv,
                     "prior_ap": prior if has_prior else float("nan"), "replaces": replaces})
    metrics = pd.DataFrame(rows).set_index("tag")
    report.metrics = metrics
    report.replaces = [t for t in tags if metrics.at[t, "replaces"]]
    version = "head-" + time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{int(time.time() * 1000) % 1000:03d}"
    # compare with the active head, tag by tag, on what it has not seen: labels made after it was trained
    active = _active(lib)
    better, why, mixed = True, "first head", None
    if active is not None:
        mixed, better, why = _against_active(lib, active, ids, X, M, Y, tags, oof, metrics, report.replaces,
                                             (W, Wm, b))
        metrics["weights"] = [mixed[3].get(t, "new") for t in tags]
    chosen = (W, Wm, b) if (force or mixed is None) else mixed[:3]
    folder = lib.state.joinpath(*HEADS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"weight": chosen[0], "measure_weight": chosen[1], "bias": chosen[2]},
              str(folder / f"{version}.safetensors"), metadata={"tags": json.dumps(tags), "arch": arch})
    with lib.catalog.write() as db:
        head_store.add(db, version, utcnow(), len(ids), json.dumps(tags), json.dumps(report.replaces),
                       metrics.reset_index().to_json(orient="records"))
    report.version = version
    report.why = why + ("" if better else "; not better on any tag, so not used") + \
        ("; forced: the new weights on every tag" if force and mixed is not None else "")
    if activate and (better or force):
        use_head(lib, version)
        report.activated = True
    report.seconds = time.perf_counter() - start
    log.info("train %s: %s", lib.root, report.summary())
    return report


def _against_active(lib, active, ids, X, M, Y, tags, oof, metrics, replaces, new):
    """Tag by tag, the new weights or the active head's: a tag the active head does not score
    takes the new ones; otherwise the new ones (out of fold) must do at least as well on the
    tag's labels made since the active head was trained (its held-out set), or, where those
    hold no positive or no negative, on cross-validation. One tag's noise then neither blocks
    another tag's gain nor lets a worse tag in.

    Returns ((W, Wm, b, {tag: version kept}), any tag better or new, why)."""
    import pandas as pd

    W, Wm, b = (a.copy() for a in new)
    oW, oWm, ob, otags = _load_head(lib, active["version"])
    old_replaces = set(json.loads(active["replaces"]))
    if oW.shape[1:] != W.shape[1:] or oWm.shape[1:] != Wm.shape[1:]:   # made over another backbone's embedding
        return (W, Wm, b, {}), True, "the active head was made for other embeddings: the new one replaces it"
    # per tag, the photos whose label for it was made after the active head was trained
    fresh = score_store.labels_since(lib.catalog.conn, active["created"])
    pos = {int(pid): i for i, pid in enumerate(ids)}
    held_of = {t: sorted(pos[p] for p, tag in fresh if tag == t and p in pos) for t in replaces}
    rows_any = sorted({i for h in held_of.values() for i in h})
    old_all = dict(zip(rows_any, _predict(X[rows_any], M[rows_any], oW, oWm, ob))) if rows_any else {}
    old_metrics = pd.DataFrame(json.loads(active["metrics"])).set_index("tag")
    kept, gains, notes = {}, 0, []
    for t in replaces:
        j = tags.index(t)
        if t not in old_replaces or t not in otags:
            gains += 1
            notes.append(f"{t} new")
            continue
        o = otags.index(t)
        held = held_of[t]
        y = Y[held, j]
        if np.nansum(y) >= 1 and np.nansum(1 - y) >= 1:
            old_s = np.array([old_all[i][o] for i in held])
            new_ap, old_ap, on = _ap(y, oof[held, j]), _ap(y, old_s), f"{len(held)} new labels"
        else:
            new_ap = float(metrics.at[t, "cv_ap"])
            old_ap = float(old_metrics.at[t, "cv_ap"]) if t in old_metrics.index else float("nan")
            on = "cross-validation"
        if old_ap == old_ap and not new_ap >= old_ap - 1e-9:
            W[j], Wm[j], b[j] = oW[o], oWm[o], ob[o]
            kept[t] = active["version"]
            notes.append(f"{t} kept {old_ap:.2f} > {new_ap:.2f} on {on}")
        else:
            gains += 1
            notes.append(f"{t} {new_ap:.2f} vs {old_ap:.2f} on {on}")
    why = "per tag against the active head: " + ("; ".join(notes) if notes else "nothing to compare")
    return (W, Wm, b, kept), gains > 0 or not replaces, why


def _active(lib):
    return head_store.active(lib.catalog.conn)


def _load_head(lib, version: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    from safetensors import safe_open

    path = lib.state.joinpath(*HEADS_DIR, f"{version}.safetensors")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: head file missing")
    with safe_open(str(path), framework="numpy") as f:
        W, Wm, b, tags = (f.get_tensor("weight"), f.get_tensor("measure_weight"), f.get_tensor("bias"),
                          json.loads(f.metadata()["tags"]))
    if Wm.shape[1] < len(MEASURES):   # a head made before the colour measures: it weighs them 0
        Wm = np.hstack([Wm, np.zeros((Wm.shape[0], len(MEASURES) - Wm.shape[1]), Wm.dtype)])
    return W, Wm, b, tags


def heads(library):
    """Trained head versions, newest first: created, examples, the tags each replaces, active."""
    lib = open_library(library)
    return head_store.listing(lib.catalog.conn)


def use_head(library, version: str | None) -> int:
    """Make ``version`` the active head (``None``: the prior alone) and re-score every photo with it.
    Returns the number of scores written."""
    lib = open_library(library)
    if version is not None and not head_store.exists(lib.catalog.conn, version):
        raise KeyError(f"no head {version!r}; see `photolab train --list`")
    with lib.catalog.write() as db:
        head_store.activate(db, version)
    return rescore(lib)


def rescore(library, *, photo_ids=None, chunk: int = 20000) -> int:
    """Scores from the active head for the tags it replaces (all photos, or ``photo_ids``); the
    replaced scores are kept aside (:func:`photolab.store.scores.write`) and put back for tags no active
    head replaces."""
    lib = open_library(library)
    active = _active(lib)
    replaces = json.loads(active["replaces"]) if active else []
    with lib.catalog.write() as db:
        # tags no longer replaced: their own scores come back
        score_store.restore(db, [t for t in score_store.stashed_tags(db) if t not in replaces])
    if not active or not replaces:
        return 0
    W, Wm, b, tags = _load_head(lib, active["version"])
    cols = [tags.index(t) for t in replaces]
    W, Wm, b = W[cols], Wm[cols], b[cols]
    ids = feature_store.photo_ids(lib.catalog.conn, photo_ids)   # a photo the pass could not tag has no features
    written = 0
    for k in range(0, len(ids), chunk):
        part = ids[k:k + chunk]
        P = np.round(_predict(_raw_embeddings(lib, part), _measures(lib, part), W, Wm, b), 5)
        version = active["version"]
        # tag by tag: the inserts then walk the (tag, score) index in long runs
        rows = [(pid, tag, float(P[i, j])) for j, tag in enumerate(replaces) for i, pid in enumerate(part)]
        with lib.catalog.write() as db:   # the scores it replaces set aside in the same step
            written += score_store.write(db, rows, source="head", model=version)
    return written


__all__ = ["TrainReport", "heads", "rescore", "train", "training_data", "use_head"]
