"""Per-tag precision, recall and average precision of photolab's tags against a labeled set.

    python benchmarks/eval_tags.py LABELS.csv IMAGES_DIR [--library DIR]

LABELS.csv has a ``file`` column and a ``tags`` column (';'-separated). Only
taxonomy tags that occur in the labels are scored. The photos are copied into
a temporary library, indexed and tagged with the current thresholds.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_score, recall_score

import photolab
from photolab.tagging import decisions, thresholds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labels", type=Path)
    ap.add_argument("images", type=Path)
    ap.add_argument("--library", type=Path, help="keep the evaluation library here")
    args = ap.parse_args()
    labels = pd.read_csv(args.labels).fillna({"tags": ""})
    tmp = None
    root = args.library
    if root is None:
        tmp = tempfile.TemporaryDirectory(prefix="photolab-eval-")
        root = Path(tmp.name) / "lib"
    lib = photolab.init_library(root)
    dest = lib.root / "eval"
    if not dest.exists():
        dest.mkdir()
        for f in labels.file:
            shutil.copy(args.images / f, dest / f)
    photolab.index_library(lib, progress=False)
    report = photolab.tag_library(lib, progress=False)
    print(f"tagging: {report.summary()}")
    df = decisions(lib)
    df["file"] = df.path.str.split("/").str[-1]
    merged = labels.rename(columns={"tags": "truth"}).merge(df, on="file", how="inner")
    tax = photolab.load_taxonomy(lib)
    thr = thresholds(lib, tax)
    truth_tags = sorted({t for ts in labels.tags for t in ts.split(";") if t})
    print(f"{len(merged)} photos; tags in the labels: {', '.join(truth_tags)}")
    print(f"{'tag':16s} {'pos':>4s} {'thr':>5s} {'prec':>6s} {'recall':>6s} {'AP':>6s}  source")
    aps = []
    for tag in truth_tags:
        name = tax.resolve(tag)
        if name is None:
            print(f"{tag:16s} not in the taxonomy")
            continue
        y = merged.truth.str.split(";").map(lambda ts: tag in ts).to_numpy()
        s = merged[f"score:{name}"].to_numpy(dtype=float)
        if np.isnan(s).all():
            print(f"{tag:16s} {y.sum():4d}   untrained (no score until a head is trained)")
            continue
        s = np.nan_to_num(s)
        pred = s >= thr[name]
        ap_ = average_precision_score(y, s) if y.any() else float("nan")
        p = precision_score(y, pred, zero_division=0)
        r = recall_score(y, pred, zero_division=0)
        aps.append(ap_)
        print(f"{tag:16s} {y.sum():4d} {thr[name]:5.2f} {p:6.3f} {r:6.3f} {ap_:6.3f}  {tax[name].source}")
    print(f"macro average precision: {np.nanmean(aps):.3f} over {len(aps)} tags")
    lib.close()
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
