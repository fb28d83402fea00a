"""A full disk, a read-only library and a damaged, emptied or lost catalog give one line naming
the file and the next step, never a traceback; catalog backups are made and can be restored."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import photolab
from photolab.store.catalog import BACKUPS_DAILY, BACKUPS_RECENT, CatalogError, _rotate_backups, list_backups
from photolab.core.library import LibraryError
from photolab.core.repair import restore_catalog
from photolab.stages.tagging import set_labels

from test_crash_recovery import small_library
from test_organize import tree

CLI = [sys.executable, "-m", "photolab.cli", "-q"]


def cli(*args, ok: bool | None = None) -> subprocess.CompletedProcess:
    out = subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=300)
    assert "Traceback" not in out.stderr, out.stderr
    if ok is True:
        assert out.returncode == 0, out.stderr
    return out


def error_line(out: subprocess.CompletedProcess) -> str:
    """The one `photolab: error:` line (warnings logged before it aside)."""
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("photolab: error:")]
    assert len(lines) == 1, out.stderr
    return lines[0]


@pytest.fixture
def mount_point(tmp_path):
    """A folder for a test filesystem; skipped where mounting is not permitted."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def mount(args: list[str], mnt: Path) -> None:
    out = subprocess.run(["mount", *args, str(mnt)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a test filesystem here ({out.stderr.strip() or 'not permitted'})")


def test_full_disk_is_one_line_with_the_next_step(mount_point):
    mount(["-t", "tmpfs", "-o", "size=6m", "tmpfs"], mount_point)
    root = mount_point / "Photos"
    folder = root / "import0"
    folder.mkdir(parents=True)
    sample = Path(__file__).parents[1] / "sample_data"
    for src in sorted(sample.glob("kde_*.jpg"))[:3]:
        shutil.copyfile(src, folder / src.name)
    cli("init", root, ok=True)
    shutil.copyfile(Path(photolab.__file__).parent / "data" / "taxonomy.txt", root / ".photolab" / "taxonomy.txt")
    fd = os.open(mount_point / "filler", os.O_WRONLY | os.O_CREAT)   # the rest of the disk, to the last block
    for size in (1 << 16, 512, 1):
        try:
            while True:
                os.write(fd, b"\0" * size)
        except OSError:
            pass
    os.close(fd)
    line = error_line(cli("index", root))
    assert str(root / ".photolab" / "catalog.sqlite") in line and "full" in line and "free space" in line, line
    # the labeling pass converts the model weights into the library first (safetensors, ~19 MB)
    line = error_line(cli("tag", root))
    assert str(root) in line and ("full" in line or "no space left" in line) and "free space" in line, line
    (mount_point / "filler").unlink()
    out = cli("index", root, ok=True)                  # and once there is room, it just works
    assert "3 read" in out.stdout


def test_read_only_library_reads_and_refuses_changes_in_one_line(tmp_path, mount_point):
    root = tmp_path / "Photos"
    small_library(root, copies=1)
    cli("init", root, ok=True)
    cli("index", root, ok=True)
    mount(["--bind", "-o", "ro", str(root)], mount_point)
    if os.access(mount_point, os.W_OK):
        pytest.skip("the read-only bind mount is writable here")
    cli("export-csv", mount_point, tmp_path / "out.csv", ok=True)
    rows = (tmp_path / "out.csv").read_text().splitlines()
    assert rows[0].startswith("path,captured_at,tags,score:")
    assert cli("check", mount_point).returncode in (0, 1)
    for command in (["index", mount_point], ["organize", mount_point, "--apply"]):
        line = error_line(cli(*command))
        assert "read-only" in line and str(mount_point / ".photolab") in line and "remount it read-write" in line, line


def damage(catalog: Path) -> None:
    """Garbage over every page but the first (the header stays, so SQLite opens it)."""
    data = bytearray(catalog.read_bytes())
    page = 4096
    for at in range(page, len(data), page):
        data[at:at + page] = os.urandom(min(page, len(data) - at))
    catalog.write_bytes(bytes(data))


def test_damaged_catalog_is_reported_and_restored_from_a_backup(tmp_path):
    root = tmp_path / "Photos"
    small_library(root, copies=1)
    cli("init", root, ok=True)
    cli("index", root, ok=True)
    assert list_backups(root), "the first index makes the day's backup"
    cli("organize", root, "--apply", ok=True)        # one more backup, before the moves
    gens = list_backups(root)
    assert [g.name.split("-", 2)[2] for g in gens] == ["after-organize.sqlite", "before-organize.sqlite",
                                                       "daily.sqlite"]
    cat = root / ".photolab" / "catalog.sqlite"
    for suffix in ("-wal", "-shm"):
        assert not cat.with_name(cat.name + suffix).exists()
    damage(cat)
    line = error_line(cli("index", root))
    assert str(cat) in line and "damaged" in line and f"photolab repair {root} --restore-catalog" in line, line
    check = cli("check", root)
    assert check.returncode == 1 and "FAIL" in check.stdout
    out = cli("repair", root, "--list-backups", ok=True)
    assert gens[0].name in out.stdout
    out = cli("repair", root, "--restore-catalog", ok=True)
    assert gens[0].name in out.stdout
    assert list((root / ".photolab").glob("catalog.sqlite.replaced-*")), "the damaged catalog is kept aside"
    cli("index", root, ok=True)
    assert cli("check", root).returncode == 0
    cli("undo", root, ok=True)                        # the moves' journal came back with the backup
    assert {p.parent.name for p in root.rglob("*.jpg")} == {"import0"}


def test_emptied_catalog_is_refused_while_versions_exist(tmp_path):
    root = tmp_path / "Photos"
    small_library(root, copies=1)
    with photolab.init_library(root) as lib:
        photolab.index_library(lib, progress=False)
        ids = [r[0] for r in lib.catalog.query("SELECT id FROM photos")]
        set_labels(lib, [(i, "dog", 1) for i in ids])
    before = tree(root)
    cli("write-metadata", root, ok=True)                # in the files: their previous bytes are kept
    cat = root / ".photolab" / "catalog.sqlite"
    cat.write_bytes(b"")                              # emptied by accident
    src = tmp_path / "card"
    src.mkdir()
    for command in (["index", root], ["undo", root], ["gather", src, "--into", root], ["init", root]):
        line = error_line(cli(*command))
        assert "missing or empty" in line and "kept versions" in line and "--restore-catalog" in line, line
    assert cat.stat().st_size == 0, "nothing was recreated over it"
    cat.unlink()                                      # or lost altogether
    with pytest.raises(LibraryError, match="missing or empty"):
        photolab.open_library(root)
    used, kept = restore_catalog(root)
    assert used == list_backups(root)[0]
    out = cli("undo", root, ok=True)                  # the sidecars it wrote are taken back
    assert "rewritten" in out.stdout
    assert tree(root) == before, "undo put every file's previous bytes back"


def test_backups_rotate_and_a_damaged_generation_is_not_restored(tmp_path):
    root = tmp_path / "Photos"
    folder = root / ".photolab" / "backups"
    with photolab.init_library(root) as lib:
        lib.catalog.backup("manual")
    src = list_backups(root)[0]
    days = [f"202611{d:02d}" for d in range(1, 8)]
    for day in days:
        for t in ("010000", "020000"):
            shutil.copyfile(src, folder / f"catalog-{day}T{t}-before-organize.sqlite")
    src.unlink()
    _rotate_backups(folder)
    names = [p.name for p in list_backups(root)]
    # the 3 newest, and the newest of each of the last 3 days
    assert (BACKUPS_RECENT, BACKUPS_DAILY) == (3, 3)
    assert names == [f"catalog-{d}-before-organize.sqlite" for d in
                     (f"{days[-1]}T020000", f"{days[-1]}T010000", f"{days[-2]}T020000", f"{days[-3]}T020000")]
    damage(folder / names[0])
    with pytest.raises(CatalogError, match="damaged too"):
        restore_catalog(root, 1)
    used, _ = restore_catalog(root, 2)
    assert used.name == names[1]
    with sqlite3.connect(root / ".photolab" / "catalog.sqlite") as conn:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
