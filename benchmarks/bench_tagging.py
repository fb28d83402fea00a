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
    python benchmarks/bench_tagging.py [N] --cluster local:2     # or tcp://host:8786
    python benchmarks/bench_tagging.py [N] --crops 3

The peak RSS is this process's (the pass, the ceiling and the naive loop); the
workload is built in a child process.

With ``--cluster ADDRESS`` it measures, in one run on the same photos, the local
pass and the pass on that Dask cluster (workers started and their model loaded
before the clock starts; the start-up is printed apart): images/s of each, their
ratio (target >= 0.8 on one machine with ``local:N``), the overhead per photo, the
CPU time per photo on the workers and on the client (which also runs a local
scheduler), and from those the expected rate on more machines.

With ``--crops 3`` it measures, on the same photos, the default pass and the
pass that scores tags from three views per photo (``tag_library(crops=3)``),
each in a process of its own (model exported beforehand and loaded before the
clock), in the order
default, three views, default (this machine's other load weighs on both alike):
images/s and peak RSS of each, and the three-view pass's cost relative to the
default (time per photo and RSS).
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
from photolab.features.backbone import engine, load_backbone
from photolab.stages.tagging import BATCH_SIZE, THUMB_SIZE, _prepare, decode

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


def bench_cluster(lib, bb, address: str) -> None:
    """The local pass and the cluster pass on the same photos, one after the other."""
    from photolab.features.cluster import connect, model_spec, warm

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def local_pass() -> tuple[int, float]:
        t = time.perf_counter()
        report = photolab.tag_library(lib, model=bb, progress=False, force=True, counts=False)
        return report.tagged, time.perf_counter() - t

    n, first = local_pass()   # local, cluster, local again: this machine's other load weighs on both alike
    t = time.perf_counter()
    with connect(address, progress=False) as client:
        client.run(warm, model_spec(bb))          # every worker loads its model once, before the clock
        startup = time.perf_counter() - t
        workers_cpu = sum(client.run(_worker_cpu).values())
        c0, t = cpu(), time.perf_counter()
        remote = photolab.tag_library(lib, model=bb, progress=False, force=True, counts=False, cluster=client)
        cluster_s = time.perf_counter() - t
        client_cpu = (cpu() - c0) / n
        workers_cpu = (sum(client.run(_worker_cpu).values()) - workers_cpu) / n
        threads = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values())
    assert remote.tagged == n and not remote.failed, remote.summary()
    _, second = local_pass()
    lr, cr = 2 * n / (first + second), n / cluster_s
    print(f"local pass       : {lr:6.1f} images/s ({n} photos, {os.cpu_count()} cores; before the cluster pass "
          f"{n / first:.1f}, after it {n / second:.1f})")
    print(f"cluster {address:9s}: {cr:6.1f} images/s; ratio {cr / lr:.2f} (target >= 0.8 on one machine); overhead "
          f"{(1 / cr - 1 / lr) * 1000:+.1f} ms per photo; start-up {startup:.1f} s (workers, model), not counted")
    print(f"cpu per photo    : {workers_cpu * 1000:.1f} ms on the workers ({threads} threads), {client_cpu * 1000:.1f} ms "
          f"on the client (catalog writes, scoring{', scheduler' if address.startswith('local:') else ''})")
    for machines, cores in ((2, 4), (4, 4), (8, 8)):
        expect = min(machines * cores / workers_cpu, 1 / client_cpu)
        print(f"expected         : {expect:6.0f} images/s with {machines} machines of {cores} cores "
              f"(min of cores / {workers_cpu * 1000:.0f} ms and 1 / {client_cpu * 1000:.1f} ms on the client)")


def one_pass(root: str, crops: int) -> None:
    """A forced pass over the library at ``root`` in this process: prints images/s and peak RSS (MB)."""
    import json

    lib = photolab.open_library(root)
    bb = load_backbone(cache_dir=lib.state / "models" / "backbone")
    t = time.perf_counter()
    report = photolab.tag_library(lib, model=bb, progress=False, force=True, counts=False, crops=crops)
    rate = report.tagged / (time.perf_counter() - t)
    assert not report.failed, report.summary()
    print(json.dumps({"rate": rate, "rss": _peak_rss_mb(), "tagged": report.tagged}))
    lib.close()


def _peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM, which starts afresh in a new program (ru_maxrss keeps the parent's
    RSS at the fork across the exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_crops(lib, crops: int) -> None:
    """The default pass and the ``crops`` pass on the same photos, each in a process of its own."""
    import json

    def child(c: int) -> dict:
        out = subprocess.run([sys.executable, __file__, "--pass", str(lib.root), str(c)], check=True,
                             capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    engine(load_backbone(cache_dir=lib.state / "models" / "backbone"), threads=1)   # the one-off export, done here
    first, multi, second = child(1), child(crops), child(1)
    rate1 = 2 / (1 / first["rate"] + 1 / second["rate"])
    rss1 = max(first["rss"], second["rss"])
    print(f"default pass     : {rate1:6.1f} images/s ({first['tagged']} photos, {os.cpu_count()} cores; before "
          f"{first['rate']:.1f}, after {second['rate']:.1f}); peak RSS {rss1:.0f} MB (before {first['rss']:.0f}, "
          f"after {second['rss']:.0f})")
    print(f"--crops {crops}        : {multi['rate']:6.1f} images/s ({multi['tagged']} photos); peak RSS "
          f"{multi['rss']:.0f} MB")
    print(f"cost of {crops} views  : {rate1 / multi['rate']:.2f}x the default pass's time per photo "
          f"({(1 / multi['rate'] - 1 / rate1) * 1000:+.0f} ms per photo); RSS {multi['rss'] - rss1:+.0f} MB")


def _worker_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--build":  # the workload, built in a child so RSS is the pass's
        build(Path(sys.argv[2]), int(sys.argv[3]))
        return 0
    if len(sys.argv) == 4 and sys.argv[1] == "--pass":  # one pass, in a child so RSS is that pass's
        one_pass(sys.argv[2], int(sys.argv[3]))
        return 0
    args = sys.argv[1:]
    cluster = None
    if "--cluster" in args:
        k = args.index("--cluster")
        cluster = args[k + 1]
        del args[k:k + 2]
    crops = 1
    if "--crops" in args:
        k = args.index("--crops")
        crops = int(args[k + 1])
        del args[k:k + 2]
    n = int(args[0]) if args else 300
    with tempfile.TemporaryDirectory(prefix="photolab-bench-") as tmp:
        lib = photolab.init_library(Path(tmp) / "lib")
        t = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--build", str(lib.root / "camera"), str(n)], check=True)
        files = sorted((lib.root / "camera").glob("*.jpg"))
        print(f"built {n} 12 MP JPEGs in {time.perf_counter() - t:.0f} s")
        photolab.index_library(lib, progress=False)
        if crops != 1:
            bench_crops(lib, crops)
            lib.close()
            return 0
        bb = load_backbone(cache_dir=lib.state / "models" / "backbone")
        if cluster:
            bench_cluster(lib, bb, cluster)
            lib.close()
            return 0

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
        from photolab.features.starter import QUALITY, load_starter, measure_inputs

        st = load_starter()
        emb16 = np.zeros((BATCH_SIZE, bb.num_features), np.float16)
        t = time.perf_counter()
        for _ in range(200):
            st.scores(emb16.astype(np.float32), measure_inputs(np.ones((BATCH_SIZE, len(QUALITY)))), np.full((BATCH_SIZE, len(st.tags)), 0.5))
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
