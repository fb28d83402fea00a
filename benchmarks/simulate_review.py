"""Simulated review sessions: rounds of reviews answered from ground truth, retraining after each.

    python benchmarks/simulate_review.py labeled  [ROUND_SIZE] [ROUNDS]   # ../shared/data/labeled (500 photos)
    python benchmarks/simulate_review.py personal [ROUND_SIZE] [ROUNDS]   # ../shared/data/personal (108 photos)

The photos are copied into a fresh library and tagged. A seeded 30 % (labeled) or
50 % (personal) are held out; reviews are drawn from the rest, either in the
review queue's order (least confident first, spread over clusters) or at random,
and answered from ``labels.csv`` (a confirmation labels every ground-truth tag:
1 for the photo's tags, 0 for the others). After each round ``train`` runs and
every photo not reviewed yet (the held-out share and the rest of the pool) is
scored with whatever is active (the prior, or the head on the tags it replaces);
the script prints per-tag average precision on those photos per round.

On ``labeled`` two tags are changed to show what the head learns that the prior
cannot: ``bird`` is taken away from the prior (scored by the head only), and
``black_and_white`` is a new tag, true for a grayscale-converted fifth of the
photos, defined only by the person's examples.
"""

from __future__ import annotations

import csv
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import photolab
from photolab import review, train

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
BW = "black_and_white"


def build(dataset: str, root: Path) -> tuple[dict[str, set[str]], list[str]]:
    """The library with its photos tagged; ground truth path -> tags, and the tags it covers."""
    src = SHARED / dataset
    rows = list(csv.DictReader(open(src / "labels.csv", encoding="utf-8")))
    truth: dict[str, set[str]] = {}
    (root / "photos").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for r in rows:
        dst = root / "photos" / r["file"]
        tags = {t for t in r["tags"].split(";") if t}
        if dataset == "labeled" and rng.random() < 0.2:
            with Image.open(src / "images" / r["file"]) as im:
                im.convert("L").convert("RGB").save(dst.with_suffix(".jpg"), quality=92)
            dst = dst.with_suffix(".jpg")
            tags.add(BW)
        else:
            shutil.copyfile(src / "images" / r["file"], dst)
        truth[f"photos/{dst.name}"] = tags
    lib = photolab.init_library(root)
    photolab.load_taxonomy(lib)          # writes the default taxonomy file on first use
    tax = lib.state / "taxonomy.txt"
    text = tax.read_text()
    if dataset == "labeled":
        text = text.replace("objects  bird            prior    birds", "objects  bird            head     birds")
        text += f"quality  {BW}  head  bw, monochrome, grayscale\n"
    tax.write_text(text)
    photolab.index_library(lib, progress=False)
    t = time.perf_counter()
    photolab.tag_library(lib, progress=False)
    print(f"{dataset}: {len(truth)} photos tagged in {time.perf_counter() - t:.0f} s")
    vocab = sorted({t for tags in truth.values() for t in tags} | ({"bird", BW} if dataset == "labeled" else set()))
    lib.close()
    return truth, vocab


def held_out_ap(lib, ids_to_path, held, truth, vocab) -> dict[str, float]:
    from sklearn.metrics import average_precision_score

    scores = {}
    for pid, tag, score in lib.catalog.conn.execute("SELECT photo_id, tag, score FROM scores"):
        scores[(pid, tag)] = score
    out = {}
    for tag in vocab:
        y = np.array([tag in truth[ids_to_path[p]] for p in held], dtype=int)
        s = np.array([scores.get((p, tag)) if scores.get((p, tag)) is not None else -1.0 for p in held])
        out[tag] = float(average_precision_score(y, s)) if 0 < y.sum() < len(y) else float("nan")
    return out


def reset(lib) -> None:
    train.use_head(lib, None)
    with lib.catalog.write() as db:
        for table in ("labels", "reviews", "heads", "scores_stash"):
            db.execute(f"DELETE FROM {table}")


def run(dataset: str, round_size: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="photolab-sim-") as tmp:
        root = Path(tmp) / "lib"
        truth, vocab = build(dataset, root)
        lib = photolab.open_library(root)
        ids_to_path = {r["id"]: r["path"] for r in lib.catalog.query("SELECT id, path FROM photos")}
        all_ids = sorted(p for p in ids_to_path if ids_to_path[p] in truth)
        rng = np.random.default_rng(1)
        perm = rng.permutation(all_ids)
        n_held = int(len(all_ids) * (0.3 if dataset == "labeled" else 0.5))
        held, pool = sorted(int(x) for x in perm[:n_held]), [int(x) for x in perm[n_held:]]
        prior = held_out_ap(lib, ids_to_path, all_ids, truth, vocab)
        print(f"held out {len(held)}, pool {len(pool)}; tags {', '.join(vocab)}")
        print("prior AP on all photos: " + ", ".join(f"{t} {v:.2f}" for t, v in prior.items()))
        results = {}
        for order in ("queue", "random"):
            reset(lib)
            reviewed: list[int] = []
            rand = list(np.random.default_rng(2).permutation(pool))
            history = []
            for rnd in range(1, rounds + 1):
                if order == "queue":
                    q = review.review_queue(lib, cut=1.01)
                    picks = [int(p) for p in q.index if int(p) in set(pool)][:round_size]
                else:
                    done = set(reviewed)
                    picks = [int(p) for p in rand if int(p) not in done][:round_size]
                if not picks:
                    break
                for pid in picks:
                    review.confirm(lib, pid, truth[ids_to_path[pid]] & set(vocab), scope=vocab, who="simulation")
                reviewed += picks
                t = time.perf_counter()
                rep = train.train(lib)
                secs = time.perf_counter() - t
                unseen = sorted(set(all_ids) - set(reviewed))   # held-out photos and the pool not reviewed yet
                ap = held_out_ap(lib, ids_to_path, unseen, truth, vocab)
                pos = {t: sum(t in truth[ids_to_path[p]] for p in reviewed) for t in ("bird", BW) if t in vocab}
                macro = np.nanmean([ap[t] for t in vocab])
                history.append((len(reviewed), ap, pos, rep))
                print(f"[{order:6s}] round {rnd}: {len(reviewed):4d} reviewed, macro AP {macro:.3f}, train {secs:4.1f} s, "
                      f"head {'active' if rep.activated else 'not used'} on {', '.join(rep.replaces) or '-'}; "
                      + ", ".join(f"{t} {ap[t]:.2f} ({pos[t]} pos)" for t in pos))
            results[order] = history
            print(f"[{order:6s}] per-tag AP by round: " + "; ".join(
                f"{t}: " + " ".join(f"{h[1][t]:.2f}" for h in history) for t in vocab))
        # targets
        print("\ntargets")
        for order, history in results.items():
            if dataset == "labeled":
                for t in ("bird", BW):
                    hit = next((h for h in history if h[1][t] >= 0.9), None)
                    print(f"  {order:6s}: {t} AP >= 0.9 " + (f"after {hit[0]} reviews with {hit[2][t]} positives"
                                                              if hit else "not reached"))
                at200 = next((h for h in history if h[0] >= 200), history[-1])
                worse = [t for t in at200[3].replaces if t in prior and prior[t] == prior[t]
                         and at200[1][t] < prior[t] - 0.005]
                print(f"  {order:6s}: after {at200[0]} reviews the head replaces {len(at200[3].replaces)} tags; "
                      f"worse than the prior on held-out: {', '.join(worse) or 'none'}")
            else:
                half = next((h for h in history if h[0] >= len(pool)), history[-1])
                counts = {t: sum(t in tags for tags in truth.values()) for t in vocab}
                common = [t for t in vocab if counts[t] >= 10]
                macro = np.nanmean([half[1][t] for t in common])
                print(f"  {order:6s}: after {half[0]} reviews, macro AP {macro:.3f} over {', '.join(common)} "
                      f"(target >= 0.85; prior {np.nanmean([prior[t] for t in common]):.3f})")
        lib.close()


if __name__ == "__main__":
    ds = sys.argv[1] if len(sys.argv) > 1 else "labeled"
    size = int(sys.argv[2]) if len(sys.argv) > 2 else (50 if ds == "labeled" else 18)
    n = int(sys.argv[3]) if len(sys.argv) > 3 else (6 if ds == "labeled" else 3)
    run(ds, size, n)
