"""A kill during organize must never wedge the library: SIGKILL `organize --apply` at random
moments after its first folder appears, then `photolab index`, then every later command."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import photolab
from photolab.stages import dedupe, organize
from photolab.core.fileops import recover, undo
from photolab.core.health import check
from photolab.stages.tagging import set_labels

from conftest import SAMPLE
from test_organize import catalog_matches_disk, tree

TRIALS = 20
CLI = [sys.executable, "-m", "photolab.cli", "-q"]


def small_library(root: Path, copies: int = 3) -> None:
    """About 60 real photos from sample_data/, in import folders (nothing is in its final place)."""
    photos = sorted(p for p in SAMPLE.iterdir() if p.suffix.lower() != ".md")
    for k in range(copies):
        folder = root / f"import{k}"
        folder.mkdir(parents=True)
        for src in photos:
            (folder / f"{src.stem}_{k}{src.suffix}").write_bytes(src.read_bytes())


def year_folders(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.is_dir() and p.name[:2] in ("19", "20")]


def undo_all(root: Path) -> None:
    with photolab.open_library(root) as lib:
        while lib.catalog.query("SELECT 1 FROM journal WHERE state = 'done' AND op = 'organize' LIMIT 1"):
            undo(lib)


def assert_consistent(root: Path, counts: collections.Counter, what: str) -> None:
    """Every file once with its bytes, no second links, the catalog matching the disk, check all ok."""
    now = tree(root)
    assert collections.Counter(now.values()) == counts, f"{what}: files lost or doubled"
    linked = [p for p in now if os.stat(root / p).st_nlink > 1]
    assert not linked, f"{what}: files under two names: {linked[:4]}"
    with photolab.open_library(root) as lib:
        assert not lib.catalog.query("SELECT 1 FROM journal WHERE state = 'planned'"), f"{what}: planned rows left"
        catalog_matches_disk(lib)
    df = check(root)
    bad = df[~df["ok"] & df["check"].isin(["catalog", "journal", "hard links", "temp files", "catalog paths"])]
    assert bad.empty, f"{what}: check reports {bad.to_dict('records')}"


@pytest.mark.slow
def test_kill_organize_then_index_never_wedges(tmp_path):
    root = tmp_path / "Photos"
    small_library(root)
    photolab.init_library(root).close()
    out = subprocess.run(CLI + ["index", str(root)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    original = tree(root)
    counts = collections.Counter(original.values())
    assert len(original) >= 50

    rng = random.Random(2024)
    late = 0.4
    outcomes = collections.Counter()
    t0 = time.perf_counter()
    for trial in range(TRIALS):
        proc = subprocess.Popen(CLI + ["organize", str(root), "--apply"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while not year_folders(root) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, late))      # a random moment once moving has started
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        with photolab.open_library(root) as lib:
            planned = lib.catalog.query("SELECT count(*) FROM journal WHERE state = 'planned'")[0][0]
        outcomes["mid-batch" if planned else "between chunks or done"] += 1
        # aim the next kill at the moves themselves, however fast this machine applies them
        late = min(0.4, late * 1.25) if planned else max(0.005, late * 0.6)

        # the plain `photolab index` a user runs next
        out = subprocess.run(CLI + ["index", str(root)], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"trial {trial}: index failed: {out.stderr[-2000:]}"
        assert "Traceback" not in out.stderr, out.stderr
        assert_consistent(root, counts, f"trial {trial} after index")

        # every later command works: organize (dry run and apply), dedupe plan, undo back to the start
        with photolab.open_library(root) as lib:
            organize.plan(lib)
            dedupe.plan(lib)
        if trial % 5 == 0:
            out = subprocess.run(CLI + ["organize", str(root), "--apply"], capture_output=True, text=True,
                                 timeout=120)
            assert out.returncode == 0, f"trial {trial}: organize after the kill failed: {out.stderr[-2000:]}"
        undo_all(root)
        assert tree(root) == original, f"trial {trial}: undo did not restore the tree"
        assert_consistent(root, counts, f"trial {trial} after undo")
    print(f"\n{TRIALS} kills in {time.perf_counter() - t0:.0f} s: {dict(outcomes)}")
    assert outcomes["mid-batch"] >= TRIALS // 4, outcomes


def test_landed_wedge_is_repaired(tmp_path):
    """A library an older photolab left wedged (planned moves, both names indexed) is settled by
    the next index, and `photolab repair` reports nothing left to fix."""
    root = tmp_path / "Photos"
    small_library(root, copies=1)
    with photolab.init_library(root) as lib:
        photolab.index_library(lib, progress=False)
        rows = lib.catalog.query("SELECT path, sha256 FROM photos ORDER BY path")
        # a kill after the link and before the unlink, as a landed organize left it
        with lib.catalog.write() as db:
            for r in rows:
                dst = "2020/" + r["path"].rsplit("/", 1)[1]
                db.execute("INSERT INTO journal(batch, op, src, dst, sha256, state, created_at, detail) "
                           "VALUES ('20200101T000000-organize-dead', 'organize', ?, ?, ?, 'planned', '', '{}')",
                           (r["path"], dst, r["sha256"]))
                lib.abs(dst).parent.mkdir(exist_ok=True)
                os.link(lib.abs(r["path"]), lib.abs(dst))
            # and the rows an index of the landed code then made for the second names
            db.execute("INSERT INTO photos(path, kind, size, mtime_ns, sha256, status, indexed_at) "
                       "SELECT '2020/' || substr(path, 9), kind, size, mtime_ns, sha256, status, indexed_at "
                       "FROM photos")
    before = check(root)
    assert not before.set_index("check").loc["journal", "ok"]
    assert not before.set_index("check").loc["hard links", "ok"]
    out = subprocess.run(CLI + ["repair", str(root)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    out = subprocess.run(CLI + ["organize", str(root)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    photos = sorted(p for p in SAMPLE.iterdir() if p.suffix.lower() != ".md")
    assert_consistent(root, collections.Counter(tree(root).values()), "after repair")
    assert len(tree(root)) == len(photos)
    with photolab.open_library(root) as lib:
        assert recover(lib) == {"finished": 0, "rolled_back": 0, "conflict": 0}


def test_check_and_repair_handle_temp_files_and_leave_a_persons_links(tmp_path):
    root = tmp_path / "Photos"
    small_library(root, copies=1)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()                                       # a process id that has ended
    dead = root / "import0" / f".photolab-tmp-{gone.pid}-kde_Kite_0.jpg"
    dead.write_bytes(b"partial copy")
    live = root / "import0" / f".photolab-tmp-{os.getppid()}-kde_Path_0.jpg"
    live.write_bytes(b"being written")
    os.link(root / "import0" / "mate_Dune_0.jpg", root / "dune-link.jpg")   # a person's own hard link
    with photolab.init_library(root) as lib:
        photolab.index_library(lib, progress=False)
    rows = check(root).set_index("check")
    assert not rows.loc["temp files", "ok"] and dead.name in rows.loc["temp files", "detail"]
    assert rows.loc["hard links", "ok"] and "did not make" in rows.loc["hard links", "detail"]
    out = subprocess.run(CLI + ["repair", str(root)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "temporary file removed: import0/" + dead.name in out.stdout
    assert not dead.exists() and live.exists(), "only a stopped process's temporary file goes"
    assert (root / "dune-link.jpg").exists() and (root / "import0" / "mate_Dune_0.jpg").exists()
    live.unlink()
    assert check(root).set_index("check").loc["temp files", "ok"]


def test_index_follows_a_file_moved_outside_photolab(tmp_path):
    """A file moved by another program (or after a catalog backup was put back) keeps its row,
    and with it what a person added; a deleted file is still `missing`."""
    root = tmp_path / "Photos"
    small_library(root, copies=1)
    with photolab.init_library(root) as lib:
        photolab.index_library(lib, progress=False)
        pid = lib.catalog.query("SELECT id FROM photos WHERE path = 'import0/kde_Kite_0.jpg'")[0][0]
        set_labels(lib, [(pid, "dog", 1)])
        (root / "elsewhere").mkdir()
        os.rename(root / "import0" / "kde_Kite_0.jpg", root / "elsewhere" / "kite.jpg")
        (root / "import0" / "kde_Path_0.jpg").unlink()
        report = photolab.index_library(lib, progress=False)
        assert report.missing == 1                      # the deleted one; the moved one was followed
        row = lib.catalog.query("SELECT id, status FROM photos WHERE path = 'elsewhere/kite.jpg'")[0]
        assert (row["id"], row["status"]) == (pid, "ok")
        assert lib.catalog.query("SELECT value FROM labels WHERE photo_id = ?", (pid,))[0][0] == 1
        assert lib.catalog.query("SELECT status FROM photos WHERE path = 'import0/kde_Path_0.jpg'")[0][0] == "missing"
        catalog_matches_disk_but_missing(lib)


def catalog_matches_disk_but_missing(lib) -> None:
    paths = {r["path"] for r in lib.catalog.query("SELECT path FROM photos WHERE status != 'missing'")}
    assert paths == set(tree(lib.root))
