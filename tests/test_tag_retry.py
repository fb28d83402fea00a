"""A read that fails for a moment (the file moved by a running organize, truncated and later put
back) never turns a good photo `corrupt` for good: the next pass tries it again."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import photolab
from photolab.features.backbone import load_backbone
from photolab.stages.tagging import tag_library

from test_crash_recovery import small_library, year_folders

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    return load_backbone()


def statuses(lib) -> dict[str, int]:
    return {r[0]: r[1] for r in lib.catalog.query("SELECT status, count(*) FROM photos GROUP BY status")}


def untagged(lib) -> int:
    return lib.catalog.query("SELECT count(*) FROM photos p LEFT JOIN features f ON f.photo_id = p.id "
                             "WHERE p.kind IN ('photo', 'raw') AND f.photo_id IS NULL")[0][0]


def test_organize_during_tag_marks_nothing_corrupt(tmp_path, backbone):
    root = tmp_path / "Photos"
    small_library(root, copies=3)
    with photolab.init_library(root) as lib:
        photolab.index_library(lib, progress=False)
        assert set(statuses(lib)) <= {"ok", "warning"}
        n = untagged(lib)
    # the labeling pass has its list of photos and is working through it when organize moves them
    tag = subprocess.Popen([sys.executable, "-m", "photolab.cli", "-q", "tag", str(root), "--batch-size", "2"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    with photolab.open_library(root) as lib:
        while untagged(lib) == n and tag.poll() is None and time.time() < deadline:
            time.sleep(0.01)
    out = subprocess.run([sys.executable, "-m", "photolab.cli", "-q", "organize", str(root), "--apply"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    raced = tag.poll() is None
    stdout, stderr = tag.communicate(timeout=300)
    assert tag.returncode == 0, stderr
    assert raced, "the labeling pass had finished before organize moved the photos; the race was not run"
    assert year_folders(root)
    with photolab.open_library(root) as lib:
        assert "corrupt" not in statuses(lib), (statuses(lib), stdout[-1500:])
        for line in stdout.splitlines():
            if line.strip().startswith("failed:"):
                assert "moved or removed meanwhile" in line or "changed since" in line, line
        # the next pass tags what the moves got in the way of
        photolab.index_library(lib, progress=False)
        tag_library(lib, model=backbone, progress=False)
        assert untagged(lib) == 0
        assert set(statuses(lib)) <= {"ok", "warning"}


def test_truncated_then_restored_photo_is_tagged_on_the_next_pass(tmp_path, backbone):
    root = tmp_path / "Photos"
    small_library(root, copies=1)
    with photolab.init_library(root) as lib:
        photolab.index_library(lib, progress=False)
        victim = lib.abs("import0/kde_Kite_0.jpg")
        good, st = victim.read_bytes(), victim.stat()
        victim.write_bytes(good[: len(good) // 3])            # a copy tool rewriting it, mid-way
        report = tag_library(lib, model=backbone, progress=False)
        assert [p for p, _ in report.failed] == ["import0/kde_Kite_0.jpg"]
        row = lib.catalog.query("SELECT status FROM photos WHERE path = 'import0/kde_Kite_0.jpg'")[0]
        assert row["status"] == "ok", "a passing failure must not mark the photo corrupt"
        victim.write_bytes(good)                               # put back, size and time as before
        os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
        photolab.index_library(lib, progress=False)
        again = tag_library(lib, model=backbone, progress=False)
        assert again.tagged == 1 and not again.failed
        assert untagged(lib) == 0


def test_photo_a_landed_pass_marked_corrupt_by_a_missing_file_is_read_again(tmp_path):
    root = tmp_path / "Photos"
    small_library(root, copies=1)
    with photolab.init_library(root) as lib:
        photolab.index_library(lib, progress=False)
        with lib.catalog.write() as db:
            db.execute("UPDATE photos SET status = 'corrupt', error = 'cannot decode: FileNotFoundError: [Errno 2] "
                       "No such file or directory' WHERE path = 'import0/kde_Path_0.jpg'")
        photolab.index_library(lib, progress=False)
        assert lib.catalog.query("SELECT status FROM photos WHERE path = 'import0/kde_Path_0.jpg'")[0][0] == "ok"
