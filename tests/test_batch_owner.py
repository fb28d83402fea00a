"""Recovery only touches batches whose owner is gone: `write-metadata` running in a real process
while another process recovers over and over (as the watcher does before each pass) loses no
photo and keeps its temporary files."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import photolab
from photolab.core.fileops import Move, batch_owner, execute, recover
from photolab.stages.tagging import set_labels

from conftest import SAMPLE

TRIALS = 20
AT_ONCE = 4


def digest_tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and ".photolab" not in p.relative_to(root).parts}


def build(root: Path, n: int = 10) -> None:
    """``n`` real photos from sample_data/, indexed, each labeled with two tags to write."""
    folder = root / "import0"
    folder.mkdir(parents=True)
    for src in sorted(p for p in SAMPLE.iterdir() if p.suffix.lower() in (".jpg", ".png", ".heic"))[:n]:
        shutil.copyfile(src, folder / src.name)
    with photolab.init_library(root) as lib:
        photolab.index_library(lib, progress=False)
        ids = [r["id"] for r in lib.catalog.query("SELECT id FROM photos WHERE kind IN ('photo', 'raw')")]
        set_labels(lib, [(i, t, 1) for i in ids for t in ("dog", "beach")])


def clone(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, copy_function=os.link, ignore=shutil.ignore_patterns(".photolab"))
    shutil.copytree(src / ".photolab", dst / ".photolab")


def writer(root: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "photolab.cli", "-q", "write-metadata", str(root), "--both"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_recovery_leaves_a_live_write_metadata_alone(tmp_path):
    pristine = tmp_path / "pristine"
    build(pristine)
    ref = tmp_path / "ref"
    clone(pristine, ref)
    proc = writer(ref)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    expected = digest_tree(ref)
    before = digest_tree(pristine)
    assert sum(before.get(p) != v for p, v in expected.items()) >= 5

    overlapped = 0
    for start in range(0, TRIALS, AT_ONCE):
        roots = [tmp_path / f"t{k}" for k in range(start, start + AT_ONCE)]
        for r in roots:
            clone(pristine, r)
        procs = [writer(r) for r in roots]
        libs = [photolab.open_library(r) for r in roots]
        # this process is the other one: it recovers each library while its writer runs
        seen = [False] * len(roots)
        while any(p.poll() is None for p in procs):
            for k, (p, lib) in enumerate(zip(procs, libs)):
                if p.poll() is None:
                    if lib.catalog.query("SELECT 1 FROM journal WHERE state = 'planned' LIMIT 1"):
                        seen[k] = True
                    assert recover(lib) == {"finished": 0, "rolled_back": 0, "conflict": 0}
            time.sleep(0.003)
        overlapped += sum(seen)
        for r, p, lib in zip(roots, procs, libs):
            out, err = p.communicate()
            assert p.returncode == 0, f"{r.name}: {err[-2000:]}"
            assert digest_tree(r) == expected, f"{r.name}: a photo was skipped or written differently"
            states = {s[0] for s in lib.catalog.query("SELECT DISTINCT state FROM journal")}
            assert states == {"done"}, f"{r.name}: journal states {states}"
            lib.close()
    assert overlapped >= TRIALS // 2, f"only {overlapped} of {TRIALS} recoveries ran during a live batch"


def test_a_dead_owners_batch_is_recovered(tmp_path):
    """The owner lock goes with its process: a SIGKILLed owner's batch is settled at once."""
    root = tmp_path / "lib"
    build(root)
    with photolab.open_library(root) as lib:
        path = lib.catalog.query("SELECT path FROM photos ORDER BY path LIMIT 1")[0][0]
    code = (
        "import os, sys, photolab\n"
        "from photolab.core.fileops import batch_owner, _journal_planned\n"
        "lib = photolab.open_library(sys.argv[1])\n"
        "with batch_owner(lib, 'b-dead'):\n"
        "    _journal_planned(lib.catalog, 'b-dead', [('move', sys.argv[2], 'moved/x.jpg', None, {})])\n"
        "    os.makedirs(lib.abs('moved'), exist_ok=True)\n"
        "    os.link(lib.abs(sys.argv[2]), lib.abs('moved/x.jpg'))\n"
        "    print('linked', flush=True)\n"
        "    sys.stdin.read()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(root), path], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "linked"
    with photolab.open_library(root) as lib:
        assert recover(lib)["finished"] == 0            # alive: left alone, both names still there
        assert lib.abs(path).exists() and lib.abs("moved/x.jpg").exists()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert recover(lib)["finished"] == 1
        assert not lib.abs(path).exists() and lib.abs("moved/x.jpg").is_file()
        assert lib.catalog.query("SELECT 1 FROM photos WHERE path = 'moved/x.jpg'")


def test_own_interrupted_batch_is_recovered_in_the_same_process(tmp_path):
    """A batch this process gave up (an exception) is not 'live': its lock went with the batch."""
    root = tmp_path / "lib"
    build(root)
    with photolab.open_library(root) as lib:
        path = lib.catalog.query("SELECT path FROM photos ORDER BY path LIMIT 1")[0][0]
        try:
            with batch_owner(lib, "b-gave-up"):
                from photolab.core.fileops import _journal_planned

                _journal_planned(lib.catalog, "b-gave-up", [("move", path, "elsewhere/x.jpg", None, {})])
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            pass
        assert recover(lib)["rolled_back"] == 1
        report = execute(lib, [Move(src=path, dst="elsewhere/x.jpg")], batch="b-next")
        assert report.done == 1
