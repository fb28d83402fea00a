"""Face identification quality on a labeled set: name the faces of the training photos, then check
the suggestions on the test photos.

    python benchmarks/eval_faces.py [FACES_DIR]

FACES_DIR (default ``../shared/data/faces``) holds ``images/`` and ``labels.csv`` with the
columns ``file, split, people`` (``;``-separated names, ``unknown`` for a person no training
photo shows). The photos are copied into a temporary library, scanned, and the face of each
training photo is named as a person would (the largest face, where the detector found more).
Targets: at least 0.9 of the labeled people in the test photos identified; the unknown
person reported unknown; no face given a wrong name with confidence. The last line is
``RESULT {json}``; the exit code is 1 when a target is missed.
"""

from __future__ import annotations

import json
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

import photolab
from photolab.stages import faces as F

REPO = Path(__file__).resolve().parents[1]


def evaluate(faces_dir: Path, work: Path) -> dict:
    labels = pd.read_csv(faces_dir / "labels.csv")
    dest = work / "library" / "people"
    shutil.copytree(faces_dir / "images", dest)
    for p in dest.iterdir():
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    lib = photolab.init_library(work / "library")
    photolab.index_library(lib, progress=False)
    t0 = time.perf_counter()
    scan = F.scan_faces(lib, progress=False)
    scan_s = time.perf_counter() - t0
    F.cluster_faces(lib)
    df = F.faces(lib)
    df["file"] = [Path(p).name for p in df["path"]]
    clusters = df.groupby("cluster")["file"].apply(list)

    # a person names the face in each training photo
    train = labels[labels["split"] == "train"]
    for _, row in train.iterrows():
        mine = df[df["file"] == row["file"]]
        if mine.empty:
            print(f"  no face found in training photo {row['file']}")
            continue
        largest = (mine["w"] * mine["h"]).idxmax()
        F.name_faces(lib, [largest], row["people"], refresh=False)
    F.identify(lib)
    df = F.faces(lib)
    df["file"] = [Path(p).name for p in df["path"]]

    rows, wanted, found, unknown_ok, wrong_conf, wrong_any = [], 0, 0, True, 0, 0
    for _, row in labels[labels["split"] == "test"].iterrows():
        people = set(str(row["people"]).split(";"))
        mine = df[df["file"] == row["file"]]
        said = {r.suggestion: r.status for r in mine.itertuples() if isinstance(r.suggestion, str)}
        for r in mine.itertuples():
            if isinstance(r.suggestion, str) and r.suggestion not in people:
                wrong_any += 1
                wrong_conf += r.status == "confident"
        if people == {"unknown"}:
            ok = not said
            unknown_ok &= ok
        else:
            wanted += len(people)
            found += len(people & set(said))
            ok = people <= set(said)
        rows.append({"file": row["file"], "people": ";".join(sorted(people)), "faces": len(mine),
                     "suggested": "; ".join(f"{k} ({v}, {mine.loc[mine['suggestion'] == k, 'distance'].min():.2f})"
                                            for k, v in said.items()) or "-", "ok": ok})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    recall = found / wanted if wanted else 0.0
    result = {"photos": int(scan.scanned), "faces": int(scan.faces), "scan_s": round(scan_s, 2),
              "clusters_before_naming": int(len(clusters)), "identified": found, "labeled": wanted,
              "recall": round(recall, 3), "unknown_reported_unknown": bool(unknown_ok),
              "wrong_confident": int(wrong_conf), "wrong_any": int(wrong_any)}
    result["targets_met"] = bool(recall >= 0.9 and unknown_ok and wrong_conf == 0)
    lib.close()
    return result


def main(argv: list[str]) -> int:
    faces_dir = Path(argv[1]) if len(argv) > 1 else REPO.parent / "shared" / "data" / "faces"
    if not (faces_dir / "labels.csv").is_file():
        print(f"{faces_dir}: no labels.csv (expected ../shared/data/faces)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        r = evaluate(faces_dir, Path(tmp))
    print(f"\nidentified {r['identified']} of {r['labeled']} labeled people in the test photos "
          f"({r['recall']:.0%}; target >= 90%)")
    print(f"unknown person reported unknown: {r['unknown_reported_unknown']}")
    print(f"faces given a wrong name: {r['wrong_any']} ({r['wrong_confident']} with confidence; target 0)")
    print(f"{r['faces']} faces in {r['photos']} photos, scanned in {r['scan_s']} s")
    print("RESULT " + json.dumps(r))
    return 0 if r["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
