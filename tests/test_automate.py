"""Automation: passes over an import folder, the watcher as a real process (killed and restarted),
maintenance and the shipped systemd units."""

from __future__ import annotations

import configparser
import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import photolab
from photolab import automate
from photolab.stages.metadata import read_metadata

from conftest import SAMPLE

REPO = Path(__file__).resolve().parents[1]
UNITS = REPO / "photolab" / "data" / "systemd"


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def library_shas(root: Path) -> dict[str, str]:
    """sha -> path of every photo in the library (quarantine included); a photo whose metadata was
    written counts under its original bytes too, which are kept under .photolab/versions/."""
    out = {}
    for p in root.rglob("*"):
        if p.is_file() and p.suffix != ".xmp" and "versions" not in p.parts and "features" not in p.parts \
                and p.name not in ("catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"):
            out.setdefault(sha(p), p.relative_to(root).as_posix())
    with photolab.open_library(root) as lib:
        now = {r["id"]: r["path"] for r in lib.catalog.query("SELECT id, path FROM photos")}
        for r in lib.catalog.query("SELECT photo_id, sha256 FROM versions WHERE sha256 IS NOT NULL"):
            kept = root / ".photolab" / "versions" / r["sha256"][:2] / r["sha256"]
            if kept.is_file() and sha(kept) == r["sha256"] and r["photo_id"] in now:
                out.setdefault(r["sha256"], now[r["photo_id"]])
    return out


def slow_write(src: Path, dest: Path, seconds: float) -> threading.Thread:
    data = src.read_bytes()

    def run():
        with open(dest, "wb") as f:
            step = max(1, len(data) // 8)
            for i in range(0, len(data), step):
                f.write(data[i:i + step])
                f.flush()
                time.sleep(seconds / 8)

    t = threading.Thread(target=run)
    t.start()
    return t


def drop(imp: Path) -> dict[str, Path]:
    """The test drop: photos, a name clash, a corrupt file; returns name -> source."""
    (imp / "sub").mkdir(parents=True, exist_ok=True)
    files = {"kde_Kite.jpg": SAMPLE / "kde_Kite.jpg", "pug.heic": SAMPLE / "pug.heic",
             "mate_Dune.jpg": SAMPLE / "mate_Dune.jpg", "sub/mate_Dune.jpg": SAMPLE / "mate_Wood.jpg"}
    for name, src in files.items():
        shutil.copyfile(src, imp / name)
    (imp / "broken.jpg").write_bytes((SAMPLE / "mate_Storm.jpg").read_bytes()[:6000])
    return files


def test_passes_file_tag_quarantine_report_and_lose_nothing(tmp_path):
    lib = photolab.init_library(tmp_path / "lib")
    imp = tmp_path / "import"
    imp.mkdir()
    # the library already holds one photo; the drop brings a copy of it
    shutil.copyfile(SAMPLE / "coffee.png", imp / "coffee.png")
    first = automate.run_once(lib, imp, stable_seconds=0.5)
    assert first.gathered == 1 and first.organized == 1
    files = drop(imp)
    shutil.copyfile(SAMPLE / "coffee.png", imp / "coffee-again.png")
    writer = slow_write(SAMPLE / "mate_Blinds.jpg", imp / "slow.jpg", seconds=4)
    time.sleep(0.3)
    rep = automate.run_once(lib, imp, stable_seconds=1.0)
    assert rep.waiting >= 1, rep.summary()                  # the slow copy is not taken half-written
    writer.join()
    rep2 = automate.run_once(lib, imp, stable_seconds=1.0)
    assert rep2.gathered == 1 and rep2.tagged == 1
    log = automate.import_log(lib).set_index("path")
    assert log.loc[str(imp / "broken.jpg"), "state"] == "failed"
    assert "corrupt" in log.loc[str(imp / "broken.jpg"), "reason"]
    assert log.loc[str(imp / "coffee-again.png"), "library_path"].startswith(".photolab/quarantine/")
    assert rep.duplicates == 1
    # nothing lost: every dropped file's bytes are in the library (filed, or quarantined, or reported)
    have = library_shas(lib.root)
    for p in imp.rglob("*"):
        if p.is_file():
            assert sha(p) in have, p
    # filed where the rules say (year/month/date from the capture time); both clashing names kept
    filed = {p: have[sha(imp / p)] for p in ["kde_Kite.jpg", "pug.heic", "mate_Dune.jpg", "sub/mate_Dune.jpg", "slow.jpg"]}
    # the day's folder (the event's name after the date comes from the photo's tags)
    assert re.fullmatch(r"2015/07/2015-07-21( [^/]+)?/kde_Kite\.jpg", filed["kde_Kite.jpg"]), filed["kde_Kite.jpg"]
    assert "Sunset" not in filed["kde_Kite.jpg"]   # a kite in a blue sky is no sunset
    assert filed["mate_Dune.jpg"] != filed["sub/mate_Dune.jpg"]
    # tags went into the metadata (a sidecar beside the HEIC, where it now lives)
    assert "dog" in read_metadata(lib.root / filed["pug.heic"])["keywords"]
    assert (lib.root / (filed["pug.heic"] + ".xmp")).is_file()
    # a third pass finds nothing new
    again = automate.run_once(lib, imp, stable_seconds=0.5)
    assert again.ready == 0 and again.gathered == 0
    assert len(files) == 4


def _wait_for(root: Path, n: int, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with photolab.open_library(root) as lib:
                done = lib.catalog.query("SELECT count(*) FROM import_state WHERE state IN ('done', 'failed')")[0][0]
                busy = lib.catalog.query("SELECT count(*) FROM journal WHERE state = 'planned'")[0][0]
                filed = lib.catalog.query("SELECT count(*) FROM journal WHERE op = 'organize' AND state = 'done'")[0][0]
            if done >= n and not busy and filed:
                return
        except Exception:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the watcher did not take in {n} files within {timeout} s")


def _watcher(root: Path, imp: Path):
    return subprocess.Popen([sys.executable, "-m", "photolab.cli", "-q", "watch", str(root), "--import", str(imp),
                             "--stable-seconds", "1", "--rescan", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.timeout(900)
def test_watcher_process_killed_and_restarted_reaches_the_same_end_state(tmp_path):
    root = tmp_path / "lib"
    photolab.init_library(root).close()
    imp = tmp_path / "import"
    imp.mkdir()
    proc = _watcher(root, imp)
    try:
        drop(imp)
        _wait_for(root, 5)
        # a second drop; the watcher is killed in the middle of taking it in, then started again
        for name in ("astronaut.png", "chelsea.png", "mate_Storm.jpg", "kde_Path.jpg"):
            shutil.copyfile(SAMPLE / name, imp / f"later-{name}")
        time.sleep(3.0)
        proc.kill()
        proc.wait()
        proc = _watcher(root, imp)
        assert "watching" in proc.stdout.readline()       # started (its signal handlers are in place)
        _wait_for(root, 9)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0 and "stopped" in out, out
    finally:
        if proc.poll() is None:
            proc.kill()
    have = library_shas(root)
    for p in imp.rglob("*"):
        if p.is_file():
            assert sha(p) in have, p
    with photolab.open_library(root) as lib:
        assert not lib.catalog.query("SELECT 1 FROM journal WHERE state = 'planned'")
        states = {r[0]: r[1] for r in lib.catalog.query("SELECT path, state FROM import_state")}
        assert states[str(imp / "broken.jpg")] == "failed"
        assert sum(s == "done" for s in states.values()) == 8
        on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*")
                   if p.is_file() and ".photolab" not in p.parts}
        cataloged = {r[0] for r in lib.catalog.query("SELECT path FROM photos WHERE status != 'quarantined'")}
        assert cataloged <= on_disk
        later = [have[sha(imp / f"later-{n}")] for n in ("mate_Storm.jpg", "kde_Path.jpg")]
        assert all(p[:4].isdigit() for p in later), later     # filed into year folders


def test_one_watcher_per_library(tmp_path):
    lib = photolab.init_library(tmp_path / "lib")
    imp = tmp_path / "import"
    imp.mkdir()
    stop = threading.Event()
    t = threading.Thread(target=automate.watch, args=(lib.root, imp), kwargs={"stop_event": stop, "rescan": 1})
    t.start()
    try:
        time.sleep(1.0)
        with pytest.raises(automate.AutomationError, match="another photolab watcher"):
            automate.watch(lib.root, imp, stop_event=threading.Event())
    finally:
        stop.set()
        t.join(timeout=30)
    with pytest.raises(automate.AutomationError, match="outside the library"):
        automate.run_once(lib, lib.root)


def test_maintain_reports_what_changed_on_disk(tmp_path):
    lib = photolab.init_library(tmp_path / "lib")
    imp = tmp_path / "import"
    imp.mkdir()
    for name in ("kde_Kite.jpg", "coffee.png"):
        shutil.copyfile(SAMPLE / name, imp / name)
    automate.run_once(lib, imp, stable_seconds=0.2)
    victim = next(p for p in lib.root.rglob("coffee.png"))
    victim.unlink()                                     # another program deleted it
    out = automate.maintain(lib)
    assert any(m.endswith("coffee.png") for m in out["missing"])
    assert out["purged"] == 0 and "dedupe" in out


def _units():
    return sorted(UNITS.glob("*.service")) + sorted(UNITS.glob("*.timer")) + sorted(UNITS.glob("*.path"))


def test_systemd_units_are_valid_and_their_commands_parse(tmp_path):
    from photolab.cli import build_parser

    assert {u.name for u in _units()} >= {"photolab-watch.service", "photolab-run.service", "photolab-run.timer",
                                          "photolab-camera.path", "photolab-camera.service",
                                          "photolab-maintain.service", "photolab-maintain.timer",
                                          "photolab-backup.service", "photolab-backup.timer"}
    assert (UNITS / "99-photolab-camera.rules").is_file()
    for unit in _units():
        cp = configparser.ConfigParser(strict=False, interpolation=None)
        cp.optionxform = str
        cp.read(unit)
        if unit.suffix != ".service":
            continue
        env = dict(kv.split("=", 1) for kv in shlex.split(cp["Service"]["Environment"]))
        for line in cp["Service"]["ExecStart"].splitlines():
            argv = shlex.split(line.replace("%h", "/home/u").replace("%u", "u"))
            argv = [os.path.expandvars(a.replace("${", "$").replace("}", "")) if "$" in a else a for a in argv]
            argv = [env.get(a.lstrip("$"), a) if a.startswith("$") else a for a in argv]
            assert argv[:2] == ["/usr/bin/env", "photolab"], line
            build_parser().parse_args(argv[2:])          # a command photolab accepts
    if shutil.which("systemd-analyze"):
        xdg = tmp_path / "xdg"
        xdg.mkdir(mode=0o700)
        for unit in _units():
            res = subprocess.run(["systemd-analyze", "verify", "--user", str(unit)], capture_output=True, text=True,
                                 env={**os.environ, "XDG_RUNTIME_DIR": str(xdg)})
            problems = [ln for ln in res.stderr.splitlines() if unit.name in ln or "error" in ln.lower()]
            assert not problems, res.stderr


def test_cli_run_once(tmp_path, capsys):
    from photolab.cli import main

    lib = photolab.init_library(tmp_path / "lib")
    imp = tmp_path / "import"
    imp.mkdir()
    shutil.copyfile(SAMPLE / "kde_Kite.jpg", imp / "kite.jpg")
    (imp / "note.part").write_text("still downloading")
    assert main(["-q", "run", str(lib.root), "--import", str(imp), "--once", "--stable-seconds", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "1 new files: 1 gathered" in out
    assert main(["run", str(lib.root), "--import", str(tmp_path / "nowhere"), "--once"]) == 2


def test_units_and_model_data_ship_in_the_wheel(tmp_path):
    """An installed photolab (a wheel, not this checkout) still has its systemd units, the starter head and the
    taxonomy: notebook 08 reads the units through systemd_units(), never through the checkout's folders."""
    import subprocess
    import sys
    import zipfile

    assert set(automate.systemd_units()) == {p.name for p in UNITS.iterdir()}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(REPO)], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("photolab-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for unit in automate.systemd_units():
        assert f"photolab/data/systemd/{unit}" in names
    assert {"photolab/data/starter_head.safetensors", "photolab/data/starter_head.json",
            "photolab/data/taxonomy.txt", "photolab/data/rules.txt"} <= names


def test_a_pass_over_few_files_copies_no_catalog_and_a_bulk_pass_one(tmp_path, monkeypatch):
    """A pass that files and writes a few photos takes no catalog backup (its moves are journaled); a pass with a
    batch of PASS_BULK_FILES files or more takes exactly one, before that batch."""
    from photolab.store.catalog import list_backups

    lib = photolab.init_library(tmp_path / "lib")
    imp = tmp_path / "import"
    imp.mkdir()
    shutil.copyfile(SAMPLE / "kde_Kite.jpg", imp / "kde_Kite.jpg")
    photolab.index_library(lib, progress=False)          # the day's first backup, made outside any pass
    before = list_backups(lib.root)
    rep = automate.run_once(lib, imp, stable_seconds=0.2)
    assert rep.gathered == 1 and rep.organized == 1
    assert list_backups(lib.root) == before, "a pass over one photo copied the catalog"
    monkeypatch.setattr(automate, "PASS_BULK_FILES", 1)   # every batch counts as bulk: one copy, not more
    for name in ("coffee.png", "mate_Dune.jpg"):
        shutil.copyfile(SAMPLE / name, imp / name)
    rep = automate.run_once(lib, imp, stable_seconds=0.2)
    assert rep.gathered == 2 and rep.organized == 2
    made = [p for p in list_backups(lib.root) if p not in before]
    assert len(made) == 1 and "-before-" in made[0].name, made
