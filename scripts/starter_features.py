"""Features of a folder of photos through photolab's own decode and model path.

The same ``_prepare`` (decode, centre crop, quality measures) and the same
engine (ONNX Runtime, one thread) as the labeling pass, so the features equal
what a user's pass computes; the embedding is rounded to float16 as the
catalog stores it.

    python scripts/starter_features.py IMAGES_DIR FILES.txt OUT.npz
"""

from __future__ import annotations

import concurrent.futures as cf
import sys
from pathlib import Path

import numpy as np

from photolab.features.starter import QUALITY  # noqa: E402  the pass's image measures, in order


def extract(images: Path, files: list[str], bb=None, *, batch: int = 16, workers: int = 2, progress: bool = True,
            crops: int = 1):
    """(embeddings N x D float32 from float16, ImageNet probabilities N x 1000, raw measures N x 11); with
    ``crops=3`` the embeddings and probabilities of every view the labeling pass's ``crops=3`` scores
    (N x 3 x D and N x 3 x 1000, the centre view first)."""
    from tqdm.auto import tqdm

    from photolab.features.backbone import engine, load_backbone
    from photolab.stages.tagging import _prepare

    bb = bb or load_backbone()
    run = engine(bb, threads=1)

    def prep(f):
        x, _, q, _ = _prepare(images / f, "photo", bb.input_size, bb.crop_pct, bb.mean, bb.std, crops)
        return x, [q[k] for k in QUALITY]

    embs, probs, quals = [], [], []
    with cf.ThreadPoolExecutor(workers) as pool:
        bar = tqdm(total=len(files), unit="img", disable=not progress)
        for k in range(0, len(files), batch):
            got = list(pool.map(prep, files[k:k + batch]))
            x = np.stack([g[0] for g in got]) if crops == 1 else np.concatenate([g[0] for g in got])
            e, p = run(x)
            e, p = e.astype(np.float16).astype(np.float32), p.astype(np.float32)
            if crops != 1:
                e, p = e.reshape(len(got), crops, -1), p.reshape(len(got), crops, -1)
            embs.append(e)
            probs.append(p)
            quals.extend(g[1] for g in got)
            bar.update(len(got))
        bar.close()
    return np.concatenate(embs), np.concatenate(probs), np.asarray(quals, dtype=np.float64)


def cached(images: Path, files: list[str], cache: Path | None, bb=None, **kw):
    """:func:`extract`, kept in ``cache`` (an .npz) when given and reused while the file list, the model and
    the views match."""
    crops = kw.get("crops", 1)
    if cache is not None and cache.is_file():
        z = np.load(cache, allow_pickle=False)
        if (list(z["files"]) == list(files) and str(z["model"]) == (bb.version if bb else str(z["model"]))
                and z["quality"].shape[1] == len(QUALITY) and (z["emb"].ndim == 3) == (crops != 1)):
            return z["emb"], z["probs"], z["quality"]
    emb, probs, qual = extract(images, files, bb, **kw)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, files=np.array(files), emb=emb, probs=probs, quality=qual,
                 model=np.array(bb.version if bb else ""))
    return emb, probs, qual


if __name__ == "__main__":
    from photolab.features.backbone import load_backbone

    images, listing, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    names = [ln.strip() for ln in listing.read_text().splitlines() if ln.strip()]
    cached(images, names, out, load_backbone())
