"""Duplicate detection quality: pairwise precision and recall per tier and per transform.

    python benchmarks/eval_dedupe.py IMAGES_DIR [GROUPS.csv]

IMAGES_DIR holds the photos and (unless given) ``groups.csv`` with the columns
``file, group`` and ``kind`` or ``transform`` — ``../shared/data/neardup/natural/``
or a set built with ``../shared/tools/make_neardup.py``. The photos are copied
into a temporary library, indexed and tagged (the features dedupe uses), then
planned. Truth: files sharing a group are duplicates, except the kinds
``hdr_pair`` and ``stereo_pair`` (similar scenes, never to be set aside) and
``singleton``/``distractor``; exact truth is same bytes or same decoded pixels.
"""

from __future__ import annotations

import itertools
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

import photolab
from photolab.stages import dedupe

SIMILAR_KINDS = {"hdr_pair", "stereo_pair"}
NOT_GROUPED = {"singleton", "distractor"}


def same_pixels(a: Path, b: Path) -> bool:
    try:
        with Image.open(a) as ia, Image.open(b) as ib:
            return ia.size == ib.size and np.array_equal(np.asarray(ia.convert("RGB")), np.asarray(ib.convert("RGB")))
    except Exception:  # noqa: BLE001
        return False


def main() -> int:
    images = Path(sys.argv[1])
    groups_csv = Path(sys.argv[2]) if len(sys.argv) > 2 else images / "groups.csv"
    truth = pd.read_csv(groups_csv)
    kind_col = "kind" if "kind" in truth else "transform"
    with tempfile.TemporaryDirectory(prefix="photolab-eval-") as tmp:
        root = Path(tmp) / "lib"
        (root / "photos").mkdir(parents=True)
        for f in truth["file"]:
            shutil.copy(images / f, root / "photos" / f)
        lib = photolab.init_library(root)
        photolab.index_library(lib, progress=False)
        photolab.tag_library(lib, progress=False)
        plan = dedupe.plan(lib)
        corrupt = {r["path"].split("/")[-1]: r["status"] for r in lib.catalog.query("SELECT path, status FROM photos")}

        name_of = lambda p: p.split("/")[-1]  # noqa: E731
        pred = {"exact": set(), "near": set(), "similar": set()}
        for g, sub in plan.groupby("group"):
            names = sorted(map(name_of, sub["path"]))
            if (sub["tier"] == "similar").all():
                pred["similar"].update(itertools.combinations(names, 2))
                continue
            pred["near"].update(itertools.combinations(names, 2))
            # exact pairs: clusters linked by copy_of on exact rows
            cluster = {}
            for r in sub[sub["tier"] == "exact"].itertuples():
                if not r.keep:
                    root = cluster.get(r.copy_of, r.copy_of)
                    cluster[r.path] = root
                    cluster.setdefault(r.copy_of, root)
            by_root = defaultdict(list)
            for path_, root in cluster.items():
                by_root[root].append(name_of(path_))
            for fs in by_root.values():
                pred["exact"].update(itertools.combinations(sorted(set(fs)), 2))
        pred["near"] -= pred["exact"]
        dup_pred = pred["exact"] | pred["near"]

        kind = dict(zip(truth["file"], truth[kind_col]))
        group = dict(zip(truth["file"], truth["group"].astype(str)))
        members = defaultdict(list)
        for f, g in group.items():
            members[g].append(f)
        true_dup, true_similar, true_exact, pair_kind = set(), set(), set(), {}
        for g, fs in members.items():
            for a, b in itertools.combinations(sorted(fs), 2):
                ka, kb = kind[a], kind[b]
                if ka in NOT_GROUPED or kb in NOT_GROUPED:
                    continue
                k = kb if ka == "original" else ka
                pair_kind[(a, b)] = k
                if ka in SIMILAR_KINDS or kb in SIMILAR_KINDS:
                    true_similar.add((a, b))
                    continue
                true_dup.add((a, b))
                if (images / a).read_bytes() == (images / b).read_bytes() or same_pixels(images / a, images / b):
                    true_exact.add((a, b))
        # pairs with a file that cannot be read at all cannot be found by any method: counted, listed
        unreadable = {f for f, s in corrupt.items() if s not in ("ok", "warning")}

        def pr(predicted, actual):
            tp = len(predicted & actual)
            p = tp / len(predicted) if predicted else 1.0
            r = tp / len(actual) if actual else 1.0
            return p, r, len(predicted), len(actual)

        print(f"{images}: {len(truth)} files, {len(true_dup)} duplicate pairs ({len(true_exact)} exact), "
              f"{len(true_similar)} similar-scene pairs; {len(unreadable)} unreadable file(s): {sorted(unreadable)}")
        p, r, n_p, n_t = pr(pred["exact"], true_exact)
        print(f"exact tier        : precision {p:.3f}  recall {r:.3f}  ({n_p} predicted, {n_t} true pairs)")
        p, r, n_p, n_t = pr(dup_pred, true_dup)
        readable_dup = {x for x in true_dup if not (set(x) & unreadable)}
        _, r2, _, _ = pr(dup_pred, readable_dup)
        print(f"exact + near tiers: precision {p:.3f}  recall {r:.3f}  (readable files: {r2:.3f}; "
              f"{n_p} predicted, {n_t} true pairs)")
        bad = [x for x in dup_pred if x in true_similar]
        print(f"similar scenes in exact/near: {len(bad)} {'(none, as required)' if not bad else bad}")
        in_sim = len(true_similar & pred["similar"])
        print(f"similar scenes grouped as similar: {in_sim} of {len(true_similar)}")
        print("per transform (pairs with the original, or within the kind):")
        by_kind = defaultdict(lambda: [0, 0])
        for x, k in pair_kind.items():
            if x in true_dup:
                by_kind[k][1] += 1
                by_kind[k][0] += x in dup_pred
        for k, (found, total) in sorted(by_kind.items()):
            print(f"  {k:18s} recall {found / total:.3f}  ({found}/{total})")
        wrong = sorted(dup_pred - true_dup)[:10]
        if wrong:
            print("false duplicate pairs (first 10):", wrong)
        if "corrupt_copy" in set(kind.values()):
            for g, fs in members.items():
                if any(kind[f] == "corrupt_copy" for f in fs):
                    sub = plan[plan["path"].map(name_of).isin(fs)]
                    kept = sorted(map(name_of, sub[sub["keep"]]["path"]))
                    statuses = {f: corrupt.get(f) for f in fs}
                    print(f"corrupt_copy group {g}: statuses {statuses}; kept {kept or 'all (not grouped)'}")
        lib.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
