"""Labeling-pass speed on camera-sized JPEGs.

Builds N (default 300) 12-megapixel JPEGs (4032x3024, quality 92, upscaled from
the sample photos with sensor-like noise), then prints, from one run:
images/s of the full pass (decode, embedding, scores, hashes, quality,
thumbnail, catalog write); the same-run ceiling (per-image decode at the used
scale plus per-image model time at the used batch size, over the cores) and
the ratio to it; the ratio to a naive loop (full decode, PIL resize, one image
at a time through eager torch); peak RSS; what the starter head's scoring
costs per image. Targets: >= 25 images/s, >= 0.8 of the ceiling, >= 5x the
naive loop, peak RSS <= 1.5 GB.

    python benchmarks/bench_tagging.py [N]

The peak RSS is this process's (the pass, the ceiling and the naive loop); the
workload is built in a child process.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import photolab
from photolab.backbone import engine, load_backbone
from photolab.tagging import BATCH_SIZE, THUMB_SIZE, _prepare, decode

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def build(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    srcs = [p for p in sorted(SAMPLE.glob("*.jpg"))]
    folder.mkdir(parents=True)
    out = []
    for i in range(n):
        with Image.open(srcs[i % len(srcs)]) as im:
            big = im.convert("RGB").resize((4032, 3024), Image.BILINEAR)
        arr = np.asarray(big, dtype=np.int16) + rng.normal(0, 4, (3024, 4032, 1)).astype(np.int16)
        p = folder / f"IMG_{i:04d}.jpg"
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(p, quality=92)
        out.append(p)
    return out


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--build":  # the workload, built in a child so RSS is the pass's
        build(Path(sys.argv[2]), int(sys.argv[3]))
        return 0
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    with tempfile.TemporaryDirectory(prefix="photolab-bench-") as tmp:
        lib = photolab.init_library(Path(tmp) / "lib")
        t = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--build", str(lib.root / "camera"), str(n)], check=True)
        files = sorted((lib.root / "camera").glob("*.jpg"))
        print(f"built {n} 12 MP JPEGs in {time.perf_counter() - t:.0f} s")
        photolab.index_library(lib, progress=False)
        bb = load_backbone(cache_dir=lib.state / "models" / "backbone")

        # the ceiling: one core's time per image for decode (at the scale the pass uses) and model
        # (at the pass's batch size, on one thread), with every core busy on nothing else; measured
        # before and after the pass and averaged, since this machine is shared
        target = max(int(bb.input_size / bb.crop_pct), THUMB_SIZE)
        x = np.stack([_prepare(p, "photo", bb.input_size, bb.crop_pct, bb.mean, bb.std)[0] for p in files[:BATCH_SIZE]])
        run = engine(bb, threads=1)
        run(x)  # warm-up

        def per_image() -> tuple[float, float]:
            k = min(32, n)
            t = time.perf_counter()
            for p in files[:k]:
                decode(p, "photo", target)
            d = (time.perf_counter() - t) / k
            t = time.perf_counter()
            for _ in range(3):
                run(x)
            return d, (time.perf_counter() - t) / (3 * len(x))

        before = per_image()
        t = time.perf_counter()
        report = photolab.tag_library(lib, model=bb, progress=False)
        full = report.tagged / (time.perf_counter() - t)
        after = per_image()
        decode_s, model_s = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
        cores = os.cpu_count() or 1
        ceiling = cores / (decode_s + model_s)

        import torch

        torch.set_num_threads(cores)
        t = time.perf_counter()
        for p in files[:8]:
            with Image.open(p) as im:
                im = im.convert("RGB").resize((224, 224), Image.BICUBIC)
            arr = (np.asarray(im, dtype=np.float32) / 255 - 0.5) / 0.5
            with torch.no_grad():
                bb.model(torch.from_numpy(arr.transpose(2, 0, 1).copy())[None])
        naive = 8 / (time.perf_counter() - t)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        from photolab.starter import load_starter, measure_inputs

        st = load_starter()
        emb16 = np.zeros((BATCH_SIZE, bb.num_features), np.float16)
        t = time.perf_counter()
        for _ in range(200):
            st.scores(emb16.astype(np.float32), measure_inputs(np.ones((BATCH_SIZE, 5))), np.full((BATCH_SIZE, len(st.tags)), 0.5))
        starter_ms = (time.perf_counter() - t) / (200 * BATCH_SIZE) * 1000
        print(f"full pass        : {full:6.1f} images/s  (target >= 25); starter head on {len(report.by_starter)} tags "
              f"({report.note or 'in use'}), {starter_ms:.3f} ms per image")
        print(f"ceiling          : {ceiling:6.1f} images/s  (decode {decode_s * 1000:.1f} ms + model {model_s * 1000:.1f} ms "
              f"per image on one core ({run.runtime}, batch {BATCH_SIZE}), over {cores} cores); ratio {full / ceiling:.2f} (target >= 0.8)")
        print(f"naive loop       : {naive:6.1f} images/s; ratio {full / naive:.1f}x (target >= 5x)")
        print(f"peak RSS         : {rss:6.0f} MB (target <= 1536)")
        lib.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
