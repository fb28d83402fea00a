"""Per-tag precision, recall and average precision of photolab's tags against a labeled set,
beside the plain ImageNet prior's.

    python benchmarks/eval_tags.py LABELS.csv IMAGES_DIR [--split val] [--no-prior] [--library DIR] [--crops 3]

    python benchmarks/eval_tags.py ../shared/data/everyday/labels.csv ../shared/data/everyday/images --split val
    python benchmarks/eval_tags.py ../shared/data/personal/labels.csv ../shared/data/personal/images
    python benchmarks/eval_tags.py ../shared/data/labeled/labels.csv ../shared/data/labeled/images

LABELS.csv has a ``file`` column and a ``tags`` column (';'-separated); with a
``known`` column (everyday/) a tag counts only on the photos whose source states
it, plus the negatives the starter head's build implies where no source states
any (``scripts/build_starter_head.py``), and ``--split`` keeps one split. Only
taxonomy tags that occur in the labels are scored. The photos are copied into a
temporary library, indexed and tagged by the real labeling pass with the stored
thresholds (default 0.5): once as photolab tags by default (starter head, prior
for the rest), once with the prior alone (``starter=False``) for comparison.
With ``--crops 3`` both passes score every photo from three views (the labeling
pass's ``crops=3``: the centre and both ends of the long side, scores pooled).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

import photolab
from photolab.stages.tagging import decisions, thresholds

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))


def scored(labels: pd.DataFrame, images: Path, root: Path, *, starter: bool, crops: int = 1):
    lib = photolab.init_library(root)
    dest = lib.root / "eval"
    if not dest.exists():
        dest.mkdir()
        for f in labels.file:
            shutil.copy(images / f, dest / f)
    photolab.index_library(lib, progress=False)
    report = photolab.tag_library(lib, progress=False, starter=starter, crops=crops)
    df = decisions(lib)
    df["file"] = df.path.str.split("/").str[-1]
    tax = photolab.load_taxonomy(lib)
    thr = thresholds(lib, tax)
    src = dict(lib.catalog.query("SELECT tag, max(source) FROM scores GROUP BY tag"))
    lib.close()
    return report, df.set_index("file").reindex(labels.file), tax, thr, src


def truth_matrix(labels: pd.DataFrame, tags: list[str]) -> np.ndarray:
    if "known" in labels.columns:
        from build_starter_head import label_matrix

        return label_matrix(labels.to_dict("records"), tags)
    return np.array([[float(t in set(ts.split(";"))) for t in tags] for ts in labels.tags])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labels", type=Path)
    ap.add_argument("images", type=Path)
    ap.add_argument("--split", help="only the rows of this split (a labels file with a split column)")
    ap.add_argument("--no-prior", action="store_true", help="skip the prior-only comparison pass")
    ap.add_argument("--library", type=Path, help="keep the evaluation libraries here")
    ap.add_argument("--min-positives", type=int, default=10, help="for the second macro figure (default 10)")
    ap.add_argument("--crops", type=int, choices=[1, 3], default=1,
                    help="views per photo the pass scores tags from (default 1, the centre)")
    args = ap.parse_args()
    labels = pd.read_csv(args.labels, dtype=str).fillna("")
    if args.split:
        labels = labels[labels.split == args.split].reset_index(drop=True)
    tmp = tempfile.TemporaryDirectory(prefix="photolab-eval-")
    base = args.library or Path(tmp.name)
    suffix = "" if args.crops == 1 else f"-crops{args.crops}"   # a kept library per crop mode
    t = time.perf_counter()
    report, df, tax, thr, src = scored(labels, args.images, base / f"lib{suffix}", starter=True, crops=args.crops)
    print(f"tagging: {report.summary()} (index and tag {time.perf_counter() - t:.0f} s)")
    prior = None
    if not args.no_prior:
        _, prior, _, _, _ = scored(labels, args.images, base / f"prior{suffix}", starter=False, crops=args.crops)
    truth_tags = sorted({t for ts in labels.tags for t in ts.split(";") if t})
    names = [tax.resolve(t) for t in truth_tags]
    Y = truth_matrix(labels, truth_tags)
    print(f"{len(labels)} photos{f' ({args.split})' if args.split else ''}; tags in the labels: {', '.join(truth_tags)}")
    print(f"{'tag':12s} {'pos':>4s} {'neg':>5s} {'thr':>5s} {'prec':>6s} {'recall':>6s} {'F1':>6s} {'AP':>6s}"
          f"   {'prior':>6s} {'p.prec':>6s} {'p.rec':>6s}  source")
    rows = []
    for j, (tag, name) in enumerate(zip(truth_tags, names)):
        if name is None:
            print(f"{tag:12s} not in the taxonomy")
            continue
        ok = ~np.isnan(Y[:, j])
        y = Y[ok, j].astype(bool)
        s = df[f"score:{name}"].to_numpy(dtype=float)[ok]
        if np.isnan(s).all():
            print(f"{tag:12s} {y.sum():4d}   untrained (no score until a head is trained)")
            continue
        s = np.nan_to_num(s)
        if y.sum() == 0 or y.all():
            print(f"{tag:12s} {y.sum():4d} {(~y).sum():5d}   no AP: needs photos with and without the tag")
            continue
        pred = s >= thr[name]
        r = {"tag": tag, "pos": int(y.sum()), "ap": average_precision_score(y, s),
             "p": precision_score(y, pred, zero_division=0), "r": recall_score(y, pred, zero_division=0),
             "f1": f1_score(y, pred, zero_division=0), "prior_ap": np.nan, "prior_p": np.nan, "prior_r": np.nan}
        if prior is not None:
            ps = prior[f"score:{name}"].to_numpy(dtype=float)[ok]
            if not np.isnan(ps).all():
                ps = np.nan_to_num(ps)
                r.update(prior_ap=average_precision_score(y, ps),
                         prior_p=precision_score(y, ps >= thr[name], zero_division=0),
                         prior_r=recall_score(y, ps >= thr[name], zero_division=0))
        rows.append(r)
        print(f"{tag:12s} {r['pos']:4d} {(~y).sum():5d} {thr[name]:5.2f} {r['p']:6.3f} {r['r']:6.3f} {r['f1']:6.3f} "
              f"{r['ap']:6.3f}   {r['prior_ap']:6.3f} {r['prior_p']:6.3f} {r['prior_r']:6.3f}  {src.get(name, '')}")
    res = pd.DataFrame(rows)
    if len(res):
        print(f"macro average precision: {res.ap.mean():.3f} over {len(res)} tags "
              f"(prior alone: {res.prior_ap.mean():.3f}); macro F1 at the thresholds {res.f1.mean():.3f}")
        big = res[res.pos >= args.min_positives]
        if len(big):
            print(f"over the {len(big)} tags with >= {args.min_positives} positives: macro AP {big.ap.mean():.3f} "
                  f"(prior alone: {big.prior_ap.mean():.3f}); macro F1 {big.f1.mean():.3f}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
