"""Plans change nothing: organize, dedupe, events and the confirmation of places and faces make their plan
on a real library (tagged sample photos, GPS photos near Arezzo, face photos, an exact copy) without
changing a byte of the catalog (its SQL dump) or of the library's files; apply then does what the plan says."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest

import photolab
from photolab import dedupe, events, organize, places, plans
from photolab import faces as F
from photolab.catalog import CATALOG_FILE, STATE_DIR

from conftest import copy_tree

GPS = ["DSCN0010.jpg", "DSCN0012.jpg", "DSCN0021.jpg", "DSCN0042.jpg"]      # near Arezzo
FACES = ["train__obama__obama.jpg", "test__obama1.jpg", "two_people.jpg", "train__biden__biden.jpg"]
CACHES = ("features",)   # .photolab/features holds caches that reading paths keep current (not the catalog)


def _writable(p: Path) -> None:
    p.chmod(p.stat().st_mode | stat.S_IWUSR)


@pytest.fixture(scope="module")
def built(tagged_sample, shared_data, tmp_path_factory) -> Path:
    """The tagged sample, plus GPS photos (places suggested), face photos (scanned, one named, the others
    suggested) and an exact copy of a photo; no events stored, so a plan that stored them would show."""
    root = copy_tree(tagged_sample, tmp_path_factory.mktemp("plans") / "lib")
    (root / "trip").mkdir()
    (root / "people").mkdir()
    for name in GPS:
        shutil.copyfile(shared_data / "photos" / name, root / "trip" / name)
        _writable(root / "trip" / name)
    for name in FACES:
        shutil.copyfile(shared_data / "faces" / "images" / name, root / "people" / name)
        _writable(root / "people" / name)
    first = sorted(p for p in root.rglob("*.jpg") if STATE_DIR not in p.parts)[0]
    shutil.copyfile(first, root / "trip" / "copy.jpg")                     # same bytes: an exact duplicate
    lib = photolab.open_library(root)
    photolab.index_library(lib, progress=False)
    places.suggest_places(lib)
    F.scan_faces(lib, progress=False, workers=1)
    obama = F.faces(lib)
    obama = obama[obama["path"] == "people/train__obama__obama.jpg"]
    F.name_faces(lib, list(obama.index), "Barack Obama")
    with lib.catalog.write() as db:
        db.execute("DELETE FROM photo_events")
        db.execute("DELETE FROM events")
    organize.load_rules(lib)                    # the rules file, created from the default on first use
    lib.close()
    return root


@pytest.fixture
def lib(built):
    library = photolab.open_library(built)
    yield library
    library.close()


def snapshot(root: Path) -> tuple[list[str], dict[str, str]]:
    """(the catalog's SQL dump, relative path -> SHA-256 of every file but the catalog and the caches)."""
    conn = sqlite3.connect(root / STATE_DIR / CATALOG_FILE)
    try:
        dump = list(conn.iterdump())
    finally:
        conn.close()
    files = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if not p.is_file() or p.name.startswith(CATALOG_FILE) or p.suffix == ".lock":
            continue
        if rel.parts[0] == STATE_DIR and len(rel.parts) > 1 and rel.parts[1] in CACHES:
            continue
        files[rel.as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return dump, files


def _ids(lib, prefix: str) -> list[int]:
    return [r[0] for r in lib.catalog.query("SELECT id FROM photos WHERE path LIKE ? ORDER BY id", (prefix + "%",))]


def _gps(lib) -> list[int]:
    """The photos near Arezzo (each with a suggested place)."""
    return _ids(lib, "trip/DSCN")


PLANS = {
    "organize": lambda lib: organize.plan(lib),
    "organize, new photos only": lambda lib: organize.plan(lib, photo_ids=_ids(lib, "trip/")),
    "events": lambda lib: events.plan(lib),
    "dedupe": lambda lib: dedupe.plan(lib),
    "dedupe, new photos only": lambda lib: dedupe.plan(lib, only=_ids(lib, "trip/")),
    "confirm places": lambda lib: places.plan_confirm(lib, _gps(lib)),
    "reject places": lambda lib: places.plan_confirm(lib, _gps(lib)[:1], value=False),
    "confirm faces": lambda lib: F.plan_confirm(lib),
    "confirm faces, tentative too": lambda lib: F.plan_confirm(lib, confident_only=False),
}


@pytest.mark.parametrize("name", list(PLANS))
def test_a_plan_changes_no_byte_of_the_catalog_nor_of_the_files(lib, name):
    before = snapshot(lib.root)
    assert any("INSERT INTO \"places\"" in line for line in before[0])    # the dump holds the rows
    plan = PLANS[name](lib)
    assert isinstance(plan, plans.Plan) and len(plan.rows) > 0, "a plan with something to do"
    after = snapshot(lib.root)
    assert after[1] == before[1], "a plan changed a file"
    assert after[0] == before[0], "a plan changed the catalog"


def test_plans_carry_what_was_on_the_side(lib):
    p = organize.plan(lib)
    assert p.stage == "organize" and p.library is lib and p.why
    assert isinstance(p.kept, list) and all(len(k) == 2 for k in p.kept)
    assert p.events is not None and p.events.stage == "events" and len(p.events.rows) > 0
    d = dedupe.plan(lib)
    assert d.unchecked >= len(GPS) + len(FACES) + 1          # the new photos have no features yet
    assert (~d.rows["keep"]).sum() >= 1
    assert "trip/copy.jpg" in set(d["path"])                  # the rows answer as the DataFrame did
    assert len(d) == len(d.rows) and list(d) == list(d.rows.columns)
    assert "unchecked" not in d.rows.attrs and "kept" not in p.rows.attrs   # no side channels


def test_apply_does_what_the_plan_says(lib, tmp_path):
    root = copy_tree(lib.root, tmp_path / "copy")
    other = photolab.open_library(root)
    try:
        gps = _gps(other)
        p = organize.plan(other)
        assert len(events.events(other)) == 0                 # the plan stored nothing
        report = plans.apply(p, progress=False)               # apply(plan): the plan knows its library
        assert report.done == len(p.rows) and not report.skipped
        stored = events.events(other)
        assert sorted(stored["name"]) == sorted(p.events.rows["name"])
        assert set(stored.index) == set(p.events.rows.index)
        for src, dst in zip(p.rows["source"], p.rows["target"]):
            assert (root / dst).is_file() and not (root / src).exists()

        conf = places.plan_confirm(other, gps + [10 ** 9])
        assert conf.kept and conf.kept[0][0] == 10 ** 9       # no place for a photo that has none
        assert places.apply(conf) == len(conf.rows) > 0
        assert (places.places(other).loc[list(conf.rows["photo_id"]), "confirmed"] == 1).all()

        fp = F.plan_confirm(other)
        named = set(fp.rows.index)
        assert plans.apply(fp) == len(named) > 0
        now = F.faces(other)
        assert (now.loc[list(named), "status"] == "named").all()
        assert list(now.loc[list(named), "person"]) == list(fp.rows["suggestion"])
    finally:
        other.close()


def test_apply_takes_the_library_and_the_rows_as_before(lib, tmp_path):
    root = copy_tree(lib.root, tmp_path / "copy")
    other = photolab.open_library(root)
    try:
        d = dedupe.plan(other)
        report = dedupe.apply(other, d.rows, progress=False)   # edited rows (a DataFrame) are accepted
        assert report.done >= 1
        with pytest.raises(TypeError, match="Plan"):
            plans.apply(d.rows)
    finally:
        other.close()
