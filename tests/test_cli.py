"""The command line reaches the same functions as the Python API."""

import subprocess
import sys

import photolab

from conftest import SAMPLE


def run(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "photolab.cli", "-q", *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def test_init_gather_index(tmp_path, sample_copy):
    lib_dir = tmp_path / "Photos"
    out = run("init", lib_dir).stdout
    assert "library ready" in out and (lib_dir / ".photolab" / "catalog.sqlite").is_file()
    out = run("gather", sample_copy, "--into", lib_dir).stdout
    assert "19 copied" in out
    out = run("index", lib_dir).stdout
    assert "19 files scanned: 19 read" in out and "ok 19" in out
    out = run("index", lib_dir).stdout
    assert "0 read, 19 unchanged" in out
    with photolab.open_library(lib_dir) as lib:
        stages = [r["stage"] for r in lib.catalog.query("SELECT stage FROM runs ORDER BY id")]
    assert stages == ["gather", "index", "index"]


def test_errors_are_one_clear_line(tmp_path):
    proc = run("index", tmp_path / "nowhere", check=False)
    assert proc.returncode == 2
    assert "not a photolab library" in proc.stderr and "photolab init" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run("gather", tmp_path / "missing", "--into", tmp_path / "lib", check=False)
    assert proc.returncode == 2 and "not a folder" in proc.stderr


def test_demo_prints_the_summary(tmp_path):
    proc = run("demo", "--library", tmp_path / "demo", "--sample", SAMPLE)
    out = proc.stdout
    assert "summary" in out
    assert "photos          : 19 usable" in out
    # the demo's phone clip: gathered, dated from its container, filed beside the photo of that afternoon
    assert "videos          : 1 usable" in out
    clip_line = out.split("videos          :")[1].splitlines()[1].strip()
    assert clip_line.startswith("2014/04/2014-04-29") and "/IMG_0100.MOV: " in clip_line
    assert "captured 2014-04-29T14:40:00+02:00 (CreationDate)" in out
    assert "19 photos and 1 video moved" in out
    assert "errors          : 0" in out
    # a second run starts fresh; a folder that is not a demo library is never removed
    run("demo", "--library", tmp_path / "demo", "--sample", SAMPLE)
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "a.jpg").write_bytes(b"x")
    proc = run("demo", "--library", tmp_path / "precious", "--sample", SAMPLE, check=False)
    assert proc.returncode == 2 and "not a photolab demo library" in proc.stderr
    assert (tmp_path / "precious" / "a.jpg").read_bytes() == b"x"
