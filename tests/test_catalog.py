import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import photolab
from photolab.store.catalog import MIGRATIONS, SCHEMA_VERSION, Catalog, CatalogError


def test_init_creates_state_and_current_schema(tmp_path):
    lib = photolab.init_library(tmp_path / "lib")
    for sub in ("features", "models", "quarantine", "versions"):
        assert (lib.state / sub).is_dir()
    assert lib.catalog.version == SCHEMA_VERSION
    assert lib.catalog.query("PRAGMA journal_mode")[0][0] == "wal"
    assert lib.catalog.get_meta("created_at")
    tables = {r[0] for r in lib.catalog.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"photos", "sources", "gather_log", "runs", "journal", "meta"} <= tables
    created = lib.catalog.get_meta("created_at")
    lib.close()
    # Re-initialising keeps what is there.
    again = photolab.init_library(tmp_path / "lib")
    assert again.catalog.get_meta("created_at") == created
    again.close()


def test_open_non_library_says_how_to_fix(tmp_path):
    with pytest.raises(photolab.LibraryError, match="photolab init"):
        photolab.open_library(tmp_path)


def test_migrates_an_old_catalog_forward(tmp_path, monkeypatch):
    path = tmp_path / "catalog.sqlite"
    conn = sqlite3.connect(path)  # an empty, version-0 file
    conn.execute("PRAGMA user_version=0")
    conn.close()
    cat = Catalog(path)
    assert cat.version == SCHEMA_VERSION
    cat.close()
    # A catalog from a newer photolab is refused, not damaged.
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(CatalogError, match="newer"):
        Catalog(path)


def test_migration_applies_in_steps(tmp_path, monkeypatch):
    import photolab.store.catalog as catalog_mod

    path = tmp_path / "catalog.sqlite"
    Catalog(path).close()
    extra = "CREATE TABLE later_stage (id INTEGER PRIMARY KEY, note TEXT);"
    monkeypatch.setattr(catalog_mod, "MIGRATIONS", MIGRATIONS + [extra])
    monkeypatch.setattr(catalog_mod, "SCHEMA_VERSION", len(MIGRATIONS) + 1)
    cat = Catalog(path)
    assert cat.version == len(MIGRATIONS) + 1
    assert cat.query("SELECT count(*) FROM later_stage")[0][0] == 0


def test_one_writer_at_a_time_across_processes(tmp_path):
    lib = photolab.init_library(tmp_path / "lib")
    holder = textwrap.dedent(f"""
        import time, photolab
        lib = photolab.open_library({str(lib.root)!r})
        with lib.catalog.write() as db:
            db.execute("INSERT INTO meta(key, value) VALUES ('holder', 'other process')")
            print("holding", flush=True)
            time.sleep(3)
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    impatient = Catalog(lib.catalog.path, lock_timeout=0.5)
    with pytest.raises(CatalogError, match="another photolab process"):
        with impatient.write() as db:
            db.execute("INSERT INTO meta(key, value) VALUES ('me', 'x')")
    # A patient writer waits its turn and then succeeds.
    patient = Catalog(lib.catalog.path, lock_timeout=30)
    with patient.write() as db:
        db.execute("INSERT INTO meta(key, value) VALUES ('me', 'after')")
    assert proc.wait(timeout=30) == 0
    assert patient.get_meta("holder") == "other process"
    assert patient.get_meta("me") == "after"


def test_failed_write_rolls_back(tmp_path):
    lib = photolab.init_library(tmp_path / "lib")
    with pytest.raises(ZeroDivisionError):
        with lib.catalog.write() as db:
            db.execute("INSERT INTO meta(key, value) VALUES ('half', 'done')")
            1 / 0
    assert lib.catalog.get_meta("half") is None
    # The lock was released: a thread can write at once.
    done = []
    t = threading.Thread(target=lambda: done.append(lib.catalog.set_meta("k", "v")))
    start = time.time()
    t.start()
    t.join(5)
    assert done and time.time() - start < 5
