"""Backups with a real BorgBackup repository on local disk: snapshots of real photos, restore byte for byte,
deduplication, encryption, retention at simulated ages, SIGKILL mid-run, the guard before bulk changes,
and one clear line for each thing that can go wrong."""

from __future__ import annotations

import datetime as dt
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
from photolab import automate
from photolab.core import backup as bk
from photolab.cli import main

from conftest import SAMPLE

REPO_ROOT = Path(__file__).resolve().parents[1]
PASS = "correct horse battery staple"
JPEGS = sorted(SAMPLE.glob("*.jpg"))

pytestmark = pytest.mark.skipif(shutil.which("borg") is None,
                                reason="BorgBackup not installed (sudo apt install borgbackup)")


@pytest.fixture(autouse=True)
def borg_env(tmp_path, monkeypatch):
    """borg's own cache and security folders in tmp_path; the passphrase in the environment."""
    monkeypatch.setenv("BORG_BASE_DIR", str(tmp_path / "borg-home"))
    monkeypatch.setenv(bk.PASS_ENV, PASS)
    for k in ("BORG_PASSPHRASE", "BORG_PASSCOMMAND", "BORG_REPO"):
        monkeypatch.delenv(k, raising=False)


def make_library(root: Path, photos=JPEGS) -> Path:
    src = root.parent / (root.name + "-camera")
    src.mkdir(parents=True)
    for p in photos:
        shutil.copyfile(p, src / p.name)
    lib = photolab.init_library(root)
    from photolab.stages.gather import gather
    from photolab.stages.index import index_library

    gather([src], lib, progress=False)
    index_library(lib, workers=1, progress=False)
    lib.close()
    return root


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def state(root: Path) -> dict:
    """Every file outside .photolab/ by content, and the catalog's photos rows: what 'unchanged' means."""
    files = {p.relative_to(root).as_posix(): sha(p) for p in root.rglob("*")
             if p.is_file() and ".photolab" not in p.relative_to(root).parts}
    with photolab.open_library(root) as lib:
        rows = [tuple(r) for r in lib.catalog.query("SELECT path, size, sha256, status FROM photos ORDER BY path")]
    return {"files": files, "photos": rows}


def photos_of(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg") if ".photolab" not in p.parts)


def borg_list(repo: Path, env_extra: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BORG_PASS") and k != bk.PASS_ENV}
    return subprocess.run(["borg", "list", str(repo)], env={**env, **env_extra}, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


def test_backup_restore_dedupe_and_encryption(tmp_path, capsys):
    root = make_library(tmp_path / "lib")
    repo = tmp_path / "drive" / "photolab-backup"
    repo.parent.mkdir()
    before = {p: sha(root / p) for p in photos_of(root)}
    assert len(before) >= 10

    assert main(["-q", "backup", str(root), "--to", str(repo)]) == 0
    out = capsys.readouterr().out
    assert "new encrypted repository" in out and f"{len(before)} photos" in out
    with photolab.open_library(root) as lib:
        assert bk.settings(lib).repository == str(repo)           # --to remembered
    # the live catalog was not read by borg: the consistent copy stands in for it
    st = bk.status(root)
    assert st.configured and st.fresh and st.age_hours < 1

    # a second snapshot of the unchanged library: deduplicated, < 1 MB added
    second = bk.backup(root)
    assert second.added < 1_000_000, second.summary()
    assert second.photos == len(before) and second.size > 5_000_000
    print(f"second snapshot added {second.added} bytes of {second.size}")

    # delete one photo (as another program would) and rewrite another's metadata with photolab
    gone = next(p for p in sorted(before) if "kde_" in p)
    rewritten = next(p for p in sorted(before) if "mate_" in p)      # (the kde_ photos' XMP is malformed: skipped)
    (root / gone).unlink()
    with photolab.open_library(root) as lib:
        pid = lib.catalog.query("SELECT id FROM photos WHERE path = ?", (rewritten,))[0][0]
    from photolab.stages.metadata import set_rating

    set_rating(root, pid, 4)
    assert main(["-q", "write-metadata", str(root)]) == 0
    assert "warning: write-metadata: no backup snapshot since" in capsys.readouterr().out
    assert sha(root / rewritten) != before[rewritten]

    # restore both from the latest snapshot, byte-identical, into a new folder
    dest = tmp_path / "restored"
    assert main(["-q", "backup", str(root), "--restore", "latest", gone, str(root / rewritten),
                 "--into", str(dest)]) == 0
    assert sha(dest / gone) == before[gone] and sha(dest / rewritten) == before[rewritten]
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == sorted([gone, rewritten])
    # never over the live library, never over files
    assert main(["-q", "backup", str(root), "--restore", "latest", "--into", str(root / "sub")]) == 2
    assert main(["-q", "backup", str(root), "--restore", "latest", "--into", str(dest)]) == 2
    err = capsys.readouterr().err
    assert "inside the live library" in err and "not an empty folder" in err
    # a whole snapshot restored is a working library: its catalog is the consistent copy
    full = tmp_path / "full"
    rep = bk.restore(root, "latest", into=full)
    assert rep.files >= len(before) + 1
    with photolab.open_library(full) as lib2:
        assert lib2.catalog.query("SELECT count(*) FROM photos")[0][0] == len(before)
        assert lib2.catalog.query("PRAGMA integrity_check")[0][0] == "ok"
    assert {p: sha(full / p) for p in photos_of(full)} == before
    assert not (full / ".photolab" / "backup").exists()

    # --list: date, photos, size
    assert main(["backup", str(root), "--list"]) == 0
    listing = capsys.readouterr().out
    assert listing.count("  photolab-") == 2 and "2 snapshots" in listing
    assert f"{len(before)} photos" in listing and "MB" in listing
    df = bk.snapshots(root)
    assert list(df["photos"]) == [len(before)] * 2 and (df["size"] > 5_000_000).all()

    # --verify: borg's check and a byte-for-byte sample (the rewritten and the deleted file changed since)
    v = bk.verify(root, sample=50, seed=1)
    assert v.ok and v.compared == len(before) - 2 and len(v.changed_since) == 2, v.summary()

    # the repository cannot be read without the key: borg's own list fails without or with a wrong passphrase
    assert borg_list(repo, {}).returncode != 0
    bad = borg_list(repo, {"BORG_PASSPHRASE": "wrong"})
    assert bad.returncode != 0 and "incorrect" in bad.stderr
    assert borg_list(repo, {"BORG_PASSPHRASE": PASS}).returncode == 0
    # ... and no photo's bytes are there in the clear
    probe = (dest / gone).read_bytes()[20000:20064]
    assert len(probe) == 64
    assert not any(probe in p.read_bytes() for p in repo.rglob("*") if p.is_file())


def test_passphrase_never_on_a_command_line_or_in_logs(tmp_path):
    root = make_library(tmp_path / "lib", JPEGS[:2])
    pw = tmp_path / "secret.txt"
    pw.write_text("s3cret-phrase-of-the-test\n")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop(bk.PASS_ENV)
    res = subprocess.run([sys.executable, "-m", "photolab.cli", "-v", "backup", str(root), "--to",
                          str(tmp_path / "repo"), "--password-file", str(pw)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "s3cret" not in res.stdout + res.stderr
    with photolab.open_library(root) as lib:
        meta = {r[0]: r[1] for r in lib.catalog.query("SELECT key, value FROM meta")}
    assert meta["backup_password_file"] == str(pw) and not any("s3cret" in v for v in meta.values())
    # the remembered file is used next time; the environment variable wins over it when set
    assert subprocess.run([sys.executable, "-m", "photolab.cli", "-q", "backup", str(root)], env=env,
                          capture_output=True, text=True, timeout=300).returncode == 0


def test_retention_at_simulated_ages(tmp_path, capsys):
    root = make_library(tmp_path / "lib", JPEGS[:2])
    repo = tmp_path / "repo"
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    ages = [90, 25, 12, 0]
    for i, days in enumerate(ages):
        bk.backup(root, to=str(repo) if i == 0 else None, timestamp=now - dt.timedelta(days=days, minutes=5))
    rep = bk.prune(root)                                     # the defaults: 30 days, at least 2
    assert len(rep.kept) + len(rep.pruned) == len(ages)
    left = bk.snapshots(root)
    age_days = [(now - dt.datetime.fromisoformat(d)).total_seconds() / 86400 for d in left["date"]]
    assert len(left) >= 2 and all(a < 30 for a in age_days)
    assert len(left) == 3 and len(rep.pruned) == 1              # 25, 12 and 0 days old remain
    assert sorted(rep.kept) == sorted(left["name"])

    # fewer than 2 in the window: the 2 newest remain, whatever their age
    capsys.readouterr()
    assert main(["-q", "backup", str(root), "--keep-days", "5", "--keep-last", "2", "--prune"]) == 0
    assert "prune: 1 snapshots removed, 2 kept" in capsys.readouterr().out       # 12 and 0 days old
    assert bk.settings(root).keep_days == 5 and bk.settings(root).keep_last == 2


def test_sigkill_mid_backup_leaves_the_library_and_next_backup_works(tmp_path):
    root = make_library(tmp_path / "lib")
    # a large file makes the run long enough to be killed in the middle (borg writes ~150 MB/s here)
    with open(root / "holiday.mp4", "wb") as f:
        for _ in range(24):
            f.write(os.urandom(8 << 20))
    from photolab.stages.index import index_library

    index_library(root, workers=1, progress=False)
    repo = tmp_path / "repo"
    before = state(root)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    def start():
        return subprocess.Popen([sys.executable, "-m", "photolab.cli", "-q", "backup", str(root), "--to", str(repo)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)

    def borg_running(proc) -> bool:
        out = subprocess.run(["pgrep", "-g", str(proc.pid), "-f", "borg.* create"], capture_output=True, text=True)
        return bool(out.stdout.strip())

    # 1) the whole process group (photolab and borg) killed while borg writes: a stale lock is left behind
    for how in ("group", "photolab"):
        proc = start()
        deadline = time.time() + 120
        while not ((repo / "lock.exclusive").is_dir() and borg_running(proc)):
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline
            time.sleep(0.05)
        time.sleep(0.1)
        if how == "group":
            os.killpg(proc.pid, signal.SIGKILL)
        else:                                   # only photolab: borg ends with it (SIGTERM, rolls back)
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if how == "group":
            assert (repo / "lock.exclusive").is_dir()            # the dead process's lock is still there
        else:
            for _ in range(200):
                if not borg_running(proc):
                    break
                time.sleep(0.1)
            assert not borg_running(proc)
        assert state(root) == before                              # the library is untouched
        assert bk.status(root).last_snapshot is None
    # the next backup breaks the stale lock (borg: same host, process gone) and succeeds
    rep = bk.backup(root, to=str(repo))
    assert rep.size > 50_000_000
    assert not (repo / "lock.exclusive").exists()
    assert [r["name"] for r in bk.Borg(str(repo), PASS.encode()).archives()] == [rep.name]   # only whole snapshots
    assert state(root) == before


def test_guard_before_organize(tmp_path, capsys):
    root = make_library(tmp_path / "lib", JPEGS[:4])
    # no snapshot yet: organize --apply says so in one line and proceeds
    assert main(["-q", "organize", str(root), "--apply"]) == 0
    out = capsys.readouterr().out
    warn = [ln for ln in out.splitlines() if "warning" in ln]
    assert len(warn) == 1 and "no backup of" in warn[0] and "photolab backup" in warn[0]
    assert "moved" in out

    # require_backup = yes: refused, nothing moved
    root2 = make_library(tmp_path / "lib2", JPEGS[:4])
    assert main(["-q", "backup", str(root2), "--require-backup", "yes"]) == 0
    capsys.readouterr()
    files = photos_of(root2)
    assert main(["-q", "organize", str(root2), "--apply"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "require_backup = yes" in err[0] and "refused" in err[0]
    assert photos_of(root2) == files
    from photolab.stages import organize

    with pytest.raises(bk.BackupRequiredError):               # the Python API asks the same question
        organize.apply(root2, organize.plan(root2), progress=False)
    assert photos_of(root2) == files
    with pytest.raises(bk.BackupRequiredError):
        automate.maintain(root2)
    from photolab.stages import dedupe

    with pytest.raises(bk.BackupRequiredError):
        dedupe.apply(root2, dedupe.plan(root2), progress=False)
    assert dedupe.purge(root2) == 0            # nothing due for deletion: nothing to check
    assert photos_of(root2) == files

    # after a snapshot it runs, without a warning
    assert main(["-q", "backup", str(root2), "--to", str(tmp_path / "repo")]) == 0
    capsys.readouterr()
    assert main(["-q", "organize", str(root2), "--apply"]) == 0
    out = capsys.readouterr().out
    assert "warning" not in out and photos_of(root2) != files
    # that move is a change: the next bulk action asks for a new snapshot
    assert not bk.status(root2).fresh
    with pytest.raises(bk.BackupRequiredError):
        from photolab.stages.metadata import write_metadata

        write_metadata(root2, progress=False)
    write_metadata(root2, progress=False, dry_run=True)          # a dry run changes nothing: no check


def test_status_check_and_the_watchers_scheduled_snapshot(tmp_path):
    from photolab.core.health import check

    root = make_library(tmp_path / "lib", JPEGS[:2])
    st = bk.status(root)
    assert not st.configured and "--to" in st.summary() and bk.PASS_ENV in st.summary()
    row = check(root).set_index("check").loc["backup"]
    assert row["ok"] and "no backup configured" in row["detail"]
    imp = tmp_path / "import"
    imp.mkdir()
    assert automate.run_once(root, imp, stable_seconds=0).snapshot == ""        # no repository configured
    bk.backup(root, to=str(tmp_path / "repo"))
    st = bk.status(root)
    assert st.fresh and st.last_snapshot.startswith("photolab-") and "up to date" in st.summary()
    row = check(root).set_index("check").loc["backup"]
    assert row["ok"] and "last snapshot" in row["detail"] and "minutes ago" in row["detail"]
    assert automate.run_once(root, imp, stable_seconds=0).snapshot == ""        # nothing changed since
    from photolab.stages.metadata import set_rating

    set_rating(root, 1, 3)
    assert automate.run_once(root, imp, stable_seconds=0).snapshot == ""        # changed, but not due yet
    bk.configure(root, every_hours=0.0001)
    report = automate.run_once(root, imp, stable_seconds=0)
    assert report.snapshot.startswith("photolab-") and "backup snapshot" in report.summary()
    assert bk.status(root).fresh and len(bk.snapshots(root)) == 2


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("photolab: error: ") and "Traceback" not in cap.err, cap.err
    return lines[0]


def test_clear_errors_and_nothing_changes(tmp_path, capsys, monkeypatch):
    root = make_library(tmp_path / "lib", JPEGS[:6])
    before = state(root)

    line = _one_line_error(capsys, ["-q", "backup", str(root), "--to", str(tmp_path / "no" / "such" / "drive")])
    assert "no/such/drive" in line and "does not exist" in line and "mounted" in line
    (tmp_path / "full-of-stuff").mkdir()
    (tmp_path / "full-of-stuff" / "letter.txt").write_text("not a repository")
    line = _one_line_error(capsys, ["-q", "backup", str(root), "--to", str(tmp_path / "full-of-stuff")])
    assert "not a borg repository" in line and "empty or new folder" in line
    assert bk.settings(root).repository is None                 # nothing remembered from a failed first run

    repo = tmp_path / "repo"
    assert main(["-q", "backup", str(root), "--to", str(repo)]) == 0
    capsys.readouterr()
    before = state(root)
    monkeypatch.setenv(bk.PASS_ENV, "not the passphrase")
    line = _one_line_error(capsys, ["-q", "backup", str(root)])
    assert "wrong passphrase" in line and str(repo) in line and "not the passphrase" not in line
    line = _one_line_error(capsys, ["-q", "backup", str(root), "--list"])
    assert "wrong passphrase" in line
    monkeypatch.delenv(bk.PASS_ENV)
    line = _one_line_error(capsys, ["-q", "backup", str(root)])
    assert "--password-file" in line and bk.PASS_ENV in line
    line = _one_line_error(capsys, ["-q", "backup", str(root), "--password-file", str(tmp_path / "nope.txt")])
    assert "nope.txt" in line
    monkeypatch.setenv(bk.PASS_ENV, PASS)
    shutil.move(repo, tmp_path / "unplugged")                   # the drive is not mounted
    line = _one_line_error(capsys, ["-q", "backup", str(root)])
    assert "no backup repository there" in line and "mounted" in line
    assert not repo.exists()                                    # no new repository made behind the user's back
    shutil.move(tmp_path / "unplugged", repo)
    # a lock held by a live borg process is waited for, then reported, never broken
    monkeypatch.setattr(bk, "LOCK_WAIT", 1)
    holder = subprocess.Popen(["borg", "with-lock", str(repo), "sleep", "60"], stdin=subprocess.DEVNULL,
                              env={**os.environ, "BORG_PASSPHRASE": PASS}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not (repo / "lock.exclusive").is_dir():
            assert time.time() < deadline and holder.poll() is None
            time.sleep(0.05)
        line = _one_line_error(capsys, ["-q", "backup", str(root)])
        assert "locked by another borg process" in line and "borg break-lock" in line
        assert holder.poll() is None and (repo / "lock.exclusive").is_dir()
    finally:
        holder.terminate()
        holder.wait()
    line = _one_line_error(capsys, ["-q", "backup", str(root), "--restore", "photolab-1999-01-01T00:00:00",
                                    "--into", str(tmp_path / "r")])
    assert "no snapshot" in line and "--list" in line
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    line = _one_line_error(capsys, ["-q", "backup", str(root)])
    assert "sudo apt install borgbackup" in line
    monkeypatch.undo()
    monkeypatch.setenv("BORG_BASE_DIR", str(tmp_path / "borg-home"))
    monkeypatch.setenv(bk.PASS_ENV, PASS)
    assert state(root) == before


def test_full_target_disk(tmp_path, capsys):
    root = make_library(tmp_path / "lib")
    before = state(root)
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill ({res.stderr.strip() or 'not permitted'}; needs root)")
    try:
        line = _one_line_error(capsys, ["-q", "backup", str(root), "--to", str(mnt / "repo")])
        assert "backup disk is full" in line and "MB free" in line and str(mnt) in line
        assert state(root) == before
        assert bk.status(root).last_snapshot is None
        assert borg_list(mnt / "repo", {"BORG_PASSPHRASE": PASS}).returncode == 0   # the repository is still sound
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
