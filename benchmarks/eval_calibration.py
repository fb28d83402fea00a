"""How well the starter head's scores read as probabilities, one view against three.

    python benchmarks/eval_calibration.py [EVERYDAY_DIR] [--cache DIR]

On everyday/ val (the labels its sources state, plus the implied negatives the
build uses; never fitted on), for every (photo, tag) decision the starter head
scores: the expected calibration error (10 equal-width bins) and the Brier score
of

- one view (the default pass: the centre view),
- the plain max of three views' calibrated probabilities (``crops=3`` before the
  head carried a three-view calibration),
- the head's three-view calibration (``Starter.pool``, what ``crops=3`` uses),

over all tags and for person alone, with macro F1 at 0.5. The views are cut and
run exactly as the labeling pass does (``scripts/starter_features.py``);
``--cache`` keeps them between runs.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the mean |score - rate| over equal-width score bins, weighted by count."""
    idx = np.minimum((p * bins).astype(int), bins - 1)
    return float(sum((idx == b).sum() / len(p) * abs(p[idx == b].mean() - y[idx == b].mean())
                     for b in range(bins) if (idx == b).any()))


def main() -> int:
    from dataclasses import replace

    from sklearn.metrics import f1_score

    from build_starter_head import label_matrix
    from photolab.features.backbone import load_backbone
    from photolab.features.starter import load_starter, measure_inputs
    from photolab.stages.tagging import prior_matrix, prior_scores
    from starter_features import cached

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("everyday", nargs="?", type=Path, default=REPO.parent / "shared" / "data" / "everyday")
    ap.add_argument("--cache", type=Path, help="keep the three views' features here (an .npz per set)")
    args = ap.parse_args()
    with open(args.everyday / "labels.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    val = [r for r in rows if r["split"] == "val"]
    st = load_starter()
    if st.pooled is None:
        print(f"{st.path}: this starter head has no three-view calibration (built before it); rebuild it with "
              "`python scripts/build_starter_head.py ../shared/data/everyday`")
        return 1
    plain = replace(st, pooled=None)
    bb = load_backbone()
    emb3, probs3, quality = cached(args.everyday / "images", [r["file"] for r in val],
                                   args.cache / "everyday_val_c3.npz" if args.cache else None, bb, crops=3)
    M = measure_inputs(quality)
    W = prior_matrix(st.tags)
    views = np.stack([st.scores(emb3[:, v], M, prior_scores(probs3[:, v], W)) for v in range(emb3.shape[1])], 1)
    Y = label_matrix(val, st.tags)
    print(f"{len(val)} everyday val photos, {int((~np.isnan(Y)).sum())} stated decisions over {len(st.tags)} tags")
    print(f"{'scores':34s} {'ECE':>7s} {'Brier':>7s} {'macro F1':>8s} {'person ECE':>10s} {'person Brier':>12s}")
    for name, S in (("one view (default)", views[:, 0]), ("three views, plain max", plain.pool(views)),
                    ("three views, calibrated (crops=3)", st.pool(views))):
        known = ~np.isnan(Y)
        p, y = S[known], Y[known]
        f1 = [f1_score(Y[known[:, j], j], S[known[:, j], j] >= 0.5) for j in range(len(st.tags))
              if 0 < np.nansum(Y[:, j]) < known[:, j].sum()]
        j = st.tags.index("person")
        pp, yp = S[known[:, j], j], Y[known[:, j], j]
        print(f"{name:34s} {ece(p, y):7.4f} {np.mean((p - y) ** 2):7.4f} {np.mean(f1):8.3f} {ece(pp, yp):10.4f} "
              f"{np.mean((pp - yp) ** 2):12.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
