"""The whole `photolab tag` command against the labeling pass's own rate, on a fresh library.

Builds N (default 300) 12-megapixel JPEGs (as bench_tagging does), makes a fresh library of them
(`photolab init` + `photolab index`, not timed), warms the per-user model cache on a one-photo
library (the state every run after photolab's first one is in), then times the command
`photolab --quiet tag LIBRARY` as a new process, from exec to exit. Prints:

- the pass's own images/s (the rate `tag:` reports, from its first photo to its last),
- the command's images/s (photos / the command's wall time, start-up and import included),
- their ratio (target >= 0.85) and the start-up: wall time minus the pass (target <= 2 s),
- the start-up with a cold model cache (the first run of photolab for a user), for reference.

    python benchmarks/bench_tag_command.py [N]
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tagging import build  # noqa: E402  (the same 12 MP photos)

PHOTOLAB = [sys.executable, "-m", "photolab.cli"]
RATE = re.compile(r"tag: (\d+) tagged \(([\d.]+) images/s\)")


def run(args: list[str], env: dict) -> str:
    done = subprocess.run(PHOTOLAB + args, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"photolab {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def timed_tag(lib: Path, env: dict) -> tuple[int, float, float]:
    t = time.perf_counter()
    out = run(["--quiet", "tag", str(lib)], env)
    wall = time.perf_counter() - t
    m = RATE.search(out)
    if not m:
        sys.exit(f"could not read the pass's rate from: {out!r}")
    return int(m.group(1)), float(m.group(2)), wall


def fresh_library(root: Path, photos: list[Path], name: str, env: dict) -> Path:
    lib = root / name
    lib.mkdir()
    for p in photos:
        os.link(p, lib / p.name)
    run(["init", str(lib)], env)
    run(["index", str(lib)], env)
    return lib


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 300
    with tempfile.TemporaryDirectory(prefix="photolab-bench-") as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        photos = build(tmp / "photos", n)
        print(f"built {n} 12 MP JPEGs in {time.perf_counter() - t:.0f} s")
        env = dict(os.environ, PHOTOLAB_CACHE_DIR=str(tmp / "user-cache"))
        cold = fresh_library(tmp, photos[:1], "cold", env)
        t = time.perf_counter()
        run(["--quiet", "tag", str(cold)], env)
        cold_s = time.perf_counter() - t
        lib = fresh_library(tmp, photos, "library", env)
        tagged, pass_rate, wall = timed_tag(lib, env)
        if tagged != n:
            sys.exit(f"expected {n} photos tagged, the command tagged {tagged}")
        command_rate = tagged / wall
        startup = wall - tagged / pass_rate
        print(f"pass             : {pass_rate:6.1f} images/s ({tagged} photos, the rate the pass reports)")
        print(f"command          : {command_rate:6.1f} images/s ({wall:.1f} s from exec to exit)")
        print(f"ratio            : {command_rate / pass_rate:6.2f} (target >= 0.85)")
        print(f"start-up         : {startup:6.1f} s with the user's model cache (target <= 2 s)")
        print(f"first run        : {cold_s:6.1f} s for one photo with an empty model cache (converts and checks "
              "the model once per user)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
