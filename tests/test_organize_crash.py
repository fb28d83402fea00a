"""Kill `photolab organize --apply` at random moments; recovery and undo must lose nothing."""

from __future__ import annotations

import collections
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import photolab
from photolab.core.fileops import recover, undo

from conftest import SAMPLE, SHARED
from test_organize import catalog_matches_disk, tree

TRIALS = 100


def build_library(root: Path) -> None:
    """A few hundred real photos (sample and shared photos, several imports) with sidecars."""
    sources = sorted(p for p in SAMPLE.iterdir() if p.suffix.lower() != ".md")
    shared = SHARED / "photos"
    if shared.is_dir():
        sources += sorted(p for p in shared.iterdir() if p.suffix.lower() != ".md")
    n = 0
    for k in range(5 if shared.is_dir() else 14):
        folder = root / f"import{k}"
        folder.mkdir(parents=True)
        for src in sources:
            dst = folder / f"{src.stem}_{k}{src.suffix}"
            dst.write_bytes(src.read_bytes())
            if n % 5 == 0:
                (folder / f"{dst.name}.xmp").write_text(f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><!-- {n} --></x:xmpmeta>\n')
            n += 1


def indexed_library(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The library of :func:`build_library`, indexed; and its tree (path -> sha256) before any move."""
    root = tmp_path / "Photos"
    build_library(root)
    lib = photolab.init_library(root)
    photolab.index_library(lib, progress=False)
    lib.close()
    return root, tree(root)


def run_apply(root: Path):
    return subprocess.Popen([sys.executable, "-m", "photolab.cli", "-q", "organize", str(root), "--apply"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def undo_all(root: Path) -> None:
    with photolab.open_library(root) as lib:
        recover(lib)
        while lib.catalog.query("SELECT 1 FROM journal WHERE state = 'done' AND op = 'organize' LIMIT 1"):
            undo(lib)


@pytest.mark.slow
def test_sigkill_at_random_moments(tmp_path):
    root, original = indexed_library(tmp_path)
    assert len(original) >= 250
    counts = collections.Counter(original.values())

    t = time.perf_counter()                         # one full run sets the time scale
    proc = run_apply(root)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()
    full = time.perf_counter() - t
    assert tree(root) != original
    undo_all(root)
    assert tree(root) == original

    rng = random.Random(1234)
    outcomes = collections.Counter()
    for trial in range(TRIALS):
        proc = run_apply(root)
        time.sleep(rng.uniform(0.45, 1.05) * full)  # startup and planning take the first part
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        with photolab.open_library(root) as lib:
            moved = lib.catalog.query("SELECT count(*) FROM journal WHERE state = 'done' AND op = 'organize'")[0][0]
            planned = lib.catalog.query("SELECT count(*) FROM journal WHERE state = 'planned'")[0][0]
            outcomes["mid-batch" if planned else ("moved some" if moved else "before apply")] += 1
            recover(lib)
            now = tree(root)
            # every file present exactly once, bytes unchanged
            assert collections.Counter(now.values()) == counts, f"trial {trial}: files lost or doubled"
            assert not [p for p in now if p.rsplit("/", 1)[-1].startswith(".photolab-tmp-")]
            catalog_matches_disk(lib)
        undo_all(root)
        assert tree(root) == original, f"trial {trial}: undo did not restore the tree"
    print(f"\n{TRIALS} kills: {dict(outcomes)}")
    assert outcomes["mid-batch"] + outcomes["moved some"] >= TRIALS // 4, outcomes


def test_next_run_recovers_first(tmp_path):
    """A killed apply is recovered by the next photolab command before it does anything else."""
    root, original = indexed_library(tmp_path)
    proc = run_apply(root)
    deadline = time.time() + 60
    while time.time() < deadline:                   # kill once moves have started
        with photolab.open_library(root) as lib:
            if lib.catalog.query("SELECT 1 FROM journal WHERE state = 'done' LIMIT 1"):
                break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    out = subprocess.run([sys.executable, "-m", "photolab.cli", "-q", "organize", str(root), "--apply"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    with photolab.open_library(root) as lib:
        assert not lib.catalog.query("SELECT 1 FROM journal WHERE state = 'planned'")
        catalog_matches_disk(lib)
    assert sorted(tree(root).values()) == sorted(original.values())
    undo_all(root)
    assert tree(root) == original
