"""The starter head: tag scores that are right on everyday photos from the first pass.

Shipped as ``photolab/data/starter_head.safetensors`` with its provenance in
``photolab/data/starter_head.json`` (data sources and licences, build date,
backbone fingerprint, per-tag validation figures), built by
``scripts/build_starter_head.py`` from real everyday photos (PASCAL VOC, COCO,
Open Images, SUN, Intel and MIML scenes) with partial labels.

Per tag it is a calibrated logistic regression over what the labeling pass
already computes: the 1,280-d embedding, the eleven image measures and the
ImageNet prior's log-odds for the tag. Calibration (Platt scaling, fitted on
out-of-fold predictions) is folded into the weights, so a score is a
probability: of the photos scored 0.8, about 8 in 10 have the tag.

The head is tied to the backbone it was trained on (its version, which carries
a fingerprint of the weights). With another backbone, or a missing or damaged
weights file, :func:`starter_for` says so in one line and the labeling pass
falls back to the prior.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from photolab.core.errors import PhotolabError

log = logging.getLogger(__name__)

WEIGHTS_FILE = "starter_head.safetensors"
BASE_MEASURES = ("sharpness", "brightness", "dark_frac", "clipped_frac", "colorfulness")
# where the warm and the blue light is (photolab.stages.tagging.color_measures): sunset, golden hour, grey skies
COLOR_MEASURES = ("warm_frac", "warm_top_frac", "blue_frac", "blue_top_frac", "saturation", "top_lift")
QUALITY = BASE_MEASURES + COLOR_MEASURES   # the image measures the heads take, in order
PROVENANCE_FILE = "starter_head.json"
# the tags the everyday photos carry (everyday/README.md), in the default taxonomy's order
_EVERYDAY_TAGS = ("person", "beach", "mountain", "landscape", "city", "indoor", "dog", "cat", "bird", "horse",
                  "food", "flower", "car", "vehicle", "boat", "building", "sunset")


class StarterError(PhotolabError, RuntimeError):
    """The starter head's weights cannot be used; the message names the file and what to do."""


def starter_tags() -> list[str]:
    """The tags a starter head can be trained for (the everyday photos' tags)."""
    return list(_EVERYDAY_TAGS)


def measure_inputs(quality) -> np.ndarray:
    """The image measures as the heads take them, from the raw :data:`QUALITY` values (N x 11):
    sharpness and colorfulness on a log scale, the colour measures as they are."""
    m = np.asarray(quality, dtype=np.float32).reshape(-1, len(QUALITY)).copy()
    m[:, 0] = np.log1p(1000 * m[:, 0])   # sharpness spans orders of magnitude
    m[:, 4] = np.log1p(m[:, 4])
    return m


def prior_logodds(p) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


@dataclass
class Starter:
    """Loaded starter weights: ``score = sigmoid(weight . embedding + measure_weight . measures
    + prior_weight * logodds(prior) + bias)``, one row per tag."""

    tags: list[str]
    weight: np.ndarray          # T x D
    measure_weight: np.ndarray  # T x 11 (QUALITY)
    prior_weight: np.ndarray    # T
    bias: np.ndarray            # T
    backbone: str               # the backbone version it was trained on
    path: Path | None = None
    version: str = "starter"    # "starter:" and the first 12 hex digits of the weights file's SHA-256
    # T x 2 (a, b): the three-view score is sigmoid(a * max over the views of logit(score) + b), calibrated as
    # the one-view score is (Platt on out-of-fold train predictions); None (a head built before): the plain max
    pooled: np.ndarray | None = None

    def scores(self, emb, measures, prior) -> np.ndarray:
        """Calibrated scores N x T from embeddings (N x D), :func:`measure_inputs` (N x 11) and the
        prior's scores for :attr:`tags` (N x T)."""
        z = (np.asarray(emb, dtype=np.float64) @ self.weight.T.astype(np.float64)
             + np.asarray(measures, dtype=np.float64) @ self.measure_weight.T.astype(np.float64)
             + prior_logodds(prior) * self.prior_weight.astype(np.float64) + self.bias.astype(np.float64))
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def pool(self, view_scores) -> np.ndarray:
        """A photo's calibrated scores (N x T) from its views' (N x views x T, from :meth:`scores`): the
        highest view's log-odds, put back on the probability scale by :attr:`pooled` (the highest of several
        calibrated probabilities runs higher than the photo's chance of having the tag)."""
        s = np.asarray(view_scores, dtype=np.float64)
        if self.pooled is None:
            return s.max(axis=1)
        s = np.clip(s, 1e-15, 1 - 1e-15)
        z = (np.log(s) - np.log1p(-s)).max(axis=1)   # the views' log-odds; monotone, so the max commutes
        a, b = self.pooled[:, 0].astype(np.float64), self.pooled[:, 1].astype(np.float64)
        return 1.0 / (1.0 + np.exp(-np.clip(a * z + b, -50, 50)))

    def subset(self, tags: list[str]) -> "Starter":
        """The same head restricted to ``tags`` (in that order)."""
        k = [self.tags.index(t) for t in tags]
        return Starter(tags=list(tags), weight=self.weight[k], measure_weight=self.measure_weight[k],
                       prior_weight=self.prior_weight[k], bias=self.bias[k], backbone=self.backbone, path=self.path,
                       version=self.version, pooled=None if self.pooled is None else self.pooled[k])

    def provenance(self) -> dict:
        p = (self.path.with_name(PROVENANCE_FILE) if self.path else
             resources.files("photolab").joinpath("data", PROVENANCE_FILE))
        return json.loads(Path(str(p)).read_text(encoding="utf-8"))


def default_path() -> Path:
    return Path(str(resources.files("photolab").joinpath("data", WEIGHTS_FILE)))


def load_starter(path: str | Path | None = None) -> Starter:
    """Load the starter weights (default: the packaged ones); raise :class:`StarterError` naming the
    file when it is missing or damaged."""
    from safetensors import SafetensorError, safe_open

    p = Path(path) if path is not None else default_path()
    fix = "reinstall photolab, or rebuild it with `python scripts/build_starter_head.py`"
    if not p.is_file():
        raise StarterError(f"{p}: starter head weights not found; {fix}")
    try:
        with safe_open(str(p), framework="numpy") as f:
            meta = json.loads((f.metadata() or {})["starter"])   # one key: the header is then byte-stable
            st = Starter(tags=list(meta["tags"]), weight=f.get_tensor("weight"),
                         measure_weight=f.get_tensor("measure_weight"), prior_weight=f.get_tensor("prior_weight"),
                         bias=f.get_tensor("bias"), backbone=meta["backbone"], path=p)
            if "pooled" in f.keys():
                st.pooled = f.get_tensor("pooled")
        import hashlib

        st.version = "starter:" + hashlib.sha256(p.read_bytes()).hexdigest()[:12]
    except (SafetensorError, OSError, KeyError, ValueError, TypeError) as exc:
        raise StarterError(f"{p}: starter head weights are damaged ({type(exc).__name__}: {exc}); {fix}") from exc
    t = len(st.tags)
    if st.measure_weight.shape == (t, len(BASE_MEASURES)):   # built before the colour measures: it weighs them 0
        st.measure_weight = np.hstack([st.measure_weight, np.zeros((t, len(COLOR_MEASURES)), st.measure_weight.dtype)])
    if not (st.weight.ndim == 2 and st.weight.shape[0] == t and st.measure_weight.shape == (t, len(QUALITY))
            and st.prior_weight.shape == (t,) and st.bias.shape == (t,)
            and (st.pooled is None or st.pooled.shape == (t, 2))) or not all(
            np.isfinite(a).all() for a in (st.weight, st.measure_weight, st.prior_weight, st.bias)
            if a is not None) or (st.pooled is not None and not (np.isfinite(st.pooled).all()
                                                                  and (st.pooled[:, 0] > 0).all())):
        raise StarterError(f"{p}: starter head weights are damaged (shapes or values do not fit its {t} tags); {fix}")
    return st


def starter_for(backbone, path: str | Path | None = None) -> tuple[Starter | None, str | None]:
    """(the starter head for ``backbone``, None) or (None, one line saying why the prior scores instead)."""
    try:
        st = load_starter(path)
    except StarterError as exc:
        note = f"{exc}; the ImageNet prior scores its tags"
        log.warning("%s", note)
        return None, note
    if st.weight.shape[1] != backbone.num_features or st.backbone != backbone.version:
        note = (f"the starter head was trained on {st.backbone}, not {backbone.version}: "
                f"the ImageNet prior scores its tags")
        log.warning("%s", note)
        return None, note
    return st, None


__all__ = ["Starter", "StarterError", "load_starter", "measure_inputs", "starter_for", "starter_tags"]
