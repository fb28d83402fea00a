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
from photolab.stages import dedupe, events, organize, places
from photolab import plans
from photolab.stages import faces as F
from photolab.store.catalog import CATALOG_FILE, STATE_DIR

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


# -- plans applied later: what changed since is not undone ----------------------------------------------------
@pytest.fixture
def other(lib, tmp_path):
    """A writable copy of the built library, open."""
    library = photolab.open_library(copy_tree(lib.root, tmp_path / "copy"))
    yield library
    library.close()


def _file_new_photo(lib, shared_data, days: int) -> int:
    """A new dated photo in ``import9/`` (``days`` after the library's first capture), indexed and filed by the
    watcher's step; its id."""
    import pandas as pd
    from PIL import Image

    from photolab import stages

    first = lib.catalog.query("SELECT min(captured_at) FROM photos WHERE captured_source = 'DateTimeOriginal'")[0][0]
    when = pd.Timestamp(first).tz_localize(None) + pd.Timedelta(days=days)
    (lib.root / "import9").mkdir()
    with Image.open(shared_data / "photos" / GPS[0]) as im:
        exif = Image.Exif()
        exif.get_ifd(0x8769)[0x9003] = when.strftime("%Y:%m:%d %H:%M:%S")
        im.convert("RGB").crop((0, 0, 200, 200)).save(lib.root / "import9" / "new.jpg", exif=exif)
    photolab.index_library(lib, progress=False)
    nid = lib.catalog.query("SELECT id FROM photos WHERE path = 'import9/new.jpg'")[0][0]
    stages.run_chain(lib, ["organize"], ids=[nid])      # the watcher pass's organize stage
    return nid


def _event_of(lib, photo_id: int):
    got = lib.catalog.query("SELECT event_id FROM photo_events WHERE photo_id = ?", (photo_id,))
    return got[0][0] if got else None


def test_an_older_organize_plan_keeps_the_events_stored_since(other, shared_data):
    organize.apply(other, organize.plan(other), progress=False)     # the library in place
    older = organize.plan(other)                                     # a plan left open ...
    nid = _file_new_photo(other, shared_data, days=400)                           # ... while the watcher files a photo
    eid = _event_of(other, nid)
    assert eid is not None
    biggest = int(events.events(other)["photos"].idxmax())
    events.rename_event(other, biggest, "Night walk")                # ... and a person renames an event
    organize.apply(other, older, progress=False)                     # then the older plan is applied
    assert _event_of(other, nid) == eid, "the photo filed since lost its event"
    assert events.events(other).loc[biggest, "name"] == "Night walk", "the rename since was lost"


def test_an_events_plan_is_stored_as_planned_when_nothing_changed(other, caplog):
    p = events.plan(other)
    with caplog.at_level("WARNING", logger="photolab.stages.events"):
        assert events.apply(p) == len(p.rows)
    assert not [r for r in caplog.records if "grouped again" in r.getMessage()]
    stored = events.events(other)
    assert list(stored.index) == list(p.rows.index) and list(stored["name"]) == list(p.rows["name"])
    # merged since the plan: the older plan is grouped again, the merge kept
    older = events.plan(other)
    a, b = list(stored.index)[:2]
    events.merge_events(other, a, b)
    merged = len(events.events(other))
    with caplog.at_level("WARNING", logger="photolab.stages.events"):
        events.apply(other, older)
    assert len(events.events(other)) == merged < len(older.rows)
    assert [r for r in caplog.records if "grouped again" in r.getMessage()]


def test_places_and_faces_confirm_what_the_plan_showed(other):
    gps = _gps(other)
    conf = places.plan_confirm(other, gps)
    assert len(conf.rows) == len(gps)
    changed, rejected = gps[0], gps[1]
    with other.catalog.write() as db:                 # a new look-up names another city for one photo
        db.execute("UPDATE places SET city = 'Elsewhere' WHERE photo_id = ?", (changed,))
    places.confirm_places(other, [rejected], value=False)   # and a person rejects another one
    n = places.apply(conf)
    assert n == len(gps) - 2
    now = places.places(other)
    assert now.loc[changed, "confirmed"] == 0 and now.loc[rejected, "confirmed"] == -1
    skipped = {p for p, _ in n.skipped}
    assert skipped == set(now.loc[[changed, rejected], "path"])

    fp = F.plan_confirm(other, confident_only=False)
    planned = fp.rows[fp.rows["suggestion"] == "Barack Obama"]
    assert len(planned) > 0
    named = F.faces(other)
    named = list(named[named["person"] == "Barack Obama"].index)
    F.name_faces(other, named, "Obama")              # a rename: identify suggests "Obama" now
    got = F.apply(fp)
    now = F.faces(other)
    assert not (now["person"] == "Barack Obama").any(), "a suggestion changed since the plan was accepted"
    assert {i for i, _ in got.skipped} >= set(planned.index)


def test_faces_confident_only_needs_a_suggestion_still_confident(other):
    fp = F.plan_confirm(other)
    assert len(fp.rows) > 0
    face = int(fp.rows.index[0])
    with other.catalog.write() as db:
        db.execute("UPDATE faces SET distance = ? WHERE id = ?", (F.CONFIDENT + 0.05, face))
    got = F.apply(fp)
    assert got == len(fp.rows) - 1 and [i for i, _ in got.skipped] == [face]
    assert F.faces(other).loc[face, "status"] != "named"


def test_confirm_all_leaves_rejected_and_confirmed_places(other):
    gps = _gps(other)
    places.confirm_places(other, [gps[0]])
    places.confirm_places(other, [gps[1]], value=False)
    every = list(places.places(other).index)
    p = places.plan_confirm(other, every)
    assert gps[0] not in set(p.rows["photo_id"]) and gps[1] not in set(p.rows["photo_id"])
    reasons = dict(p.kept)
    path0, path1 = (places.places(other).loc[i, "path"] for i in gps[:2])
    assert "already confirmed" in reasons[path0] and "rejected by a person" in reasons[path1]
    assert places.apply(p) == len(every) - 2
    assert places.places(other).loc[gps[1], "confirmed"] == -1, "confirm-all overturned a rejection"


def test_choosing_rows_of_a_plan_gives_a_plan(other):
    p = organize.plan(other)
    photos = p[p["role"] == "photo"]
    assert isinstance(photos, plans.Plan) and photos.events is p.events and len(photos) == (p["role"] == "photo").sum()
    for chosen in (p.head(2), p.tail(2), p.query("role == 'photo'"), p.copy(), p.loc[p["role"] == "photo"],
                   p.iloc[:2], p.sort_values("target")):
        assert isinstance(chosen, plans.Plan) and chosen.stage == "organize" and chosen.events is p.events
    assert not isinstance(p["source"], plans.Plan) and list(p["source"]) == list(p.rows["source"])
    assert not isinstance(p[["source", "target"]], plans.Plan)
    assert p.attrs == {"kept": p.kept, "unchecked": p.unchecked}
    first = p.head(1)
    report = organize.apply(other, first, progress=False)
    assert report.done == 1
    assert len(events.events(other)) == len(p.events.rows), "a chosen part of the plan stored no events"


def test_a_plan_is_applied_to_its_own_library_only(other, tmp_path):
    second = photolab.open_library(copy_tree(other.root, tmp_path / "second"))
    try:
        p = organize.plan(other)
        before = snapshot(second.root)
        with pytest.raises(plans.PlanLibraryError, match="made for the library at"):
            organize.apply(second, p, progress=False)
        for stage_plan, apply_ in ((events.plan(other), events.apply), (places.plan_confirm(other, _gps(other)),
                                                                      places.apply),
                                   (F.plan_confirm(other), F.apply), (dedupe.plan(other), dedupe.apply)):
            with pytest.raises(plans.PlanLibraryError):
                apply_(second, stage_plan)
        assert snapshot(second.root) == before
        assert len(events.events(other)) == 0
    finally:
        second.close()
    # the library the plan was made with closed: apply opens it again by its root
    p = organize.plan(other)
    other.close()
    report = plans.apply(p, progress=False)
    assert report.done == len(p.rows)
    with photolab.open_library(p.library.root) as again:
        assert len(events.events(again)) == len(p.events.rows)


def test_a_plan_pickles_and_copies_with_its_library_root(other):
    import copy
    import pickle

    p = organize.plan(other)
    for q in (pickle.loads(pickle.dumps(p)), copy.deepcopy(p)):
        assert q.library == other.root and q.events.library == other.root
        assert list(q["target"]) == list(p["target"]) and len(q.events.rows) == len(p.events.rows)
    q = pickle.loads(pickle.dumps(p))
    q["reason"] = "chosen"                               # assignment goes to the rows
    assert set(q.rows["reason"]) == {"chosen"} and "chosen" not in set(p.rows["reason"])
    report = plans.apply(q, progress=False)
    assert report.done == len(p.rows)
    assert len(events.events(other)) == len(p.events.rows)


def test_a_stale_dedupe_plan_never_sets_aside_a_groups_last_file(other):
    d = dedupe.plan(other)
    group = int(d.rows.loc[d.rows["path"] == "trip/copy.jpg", "group"].iloc[0])
    members = d.rows[d.rows["group"] == group]
    keeper = members.loc[members["keep"], "path"].iloc[0]
    assert keeper != "trip/copy.jpg"
    flipped = dedupe.set_keeper(d, "trip/copy.jpg")      # a person keeps the copy instead ...
    assert dedupe.apply(other, flipped, progress=False).done >= 1
    assert not (other.root / keeper).exists()
    report = dedupe.apply(d, progress=False)             # ... then the first plan is applied too
    assert (other.root / "trip" / "copy.jpg").is_file(), "both files of the group were set aside"
    assert any(p == "trip/copy.jpg" and "no longer in the library" in why for p, why in report.skipped)


def test_a_dedupe_copy_changed_since_the_plan_stays(other):
    d = dedupe.plan(other)
    assert "sha256" in d.rows.columns
    copy_file = other.root / "trip" / "copy.jpg"
    copy_file.write_bytes(copy_file.read_bytes() + b"\0")   # edited after the plan (not indexed again)
    report = dedupe.apply(d, progress=False)
    assert copy_file.is_file()
    assert any(p == "trip/copy.jpg" and "bytes changed" in why for p, why in report.skipped)
