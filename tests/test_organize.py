"""Organize: rules, events, plan, journaled apply, undo — on real photos in tmp_path."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

import photolab
from photolab.stages import events as ev
from photolab.core import fileops
from photolab.stages import organize as org
from photolab.store.catalog import utcnow
from photolab.core.fileops import recover, undo

from conftest import SAMPLE


def tree(root: Path) -> dict[str, str]:
    """Every file outside .photolab: relative path -> sha256."""
    out = {}
    for p in root.rglob("*"):
        if p.is_file() and ".photolab" not in p.relative_to(root).parts:
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def catalog_matches_disk(lib) -> None:
    paths = {r["path"] for r in lib.catalog.query("SELECT path FROM photos")}
    assert paths == set(tree(lib.root)), "catalog paths differ from the files on disk"


def label(lib, path: str, tag: str, value: int = 1) -> None:
    pid = lib.catalog.query("SELECT id FROM photos WHERE path = ?", (path,))[0][0]
    with lib.catalog.write() as db:
        db.execute("INSERT OR REPLACE INTO labels(photo_id, tag, value, who, at) VALUES (?,?,?,?,?)",
                   (pid, tag, value, "test", utcnow()))


@pytest.fixture
def lib_with_photos(tmp_path):
    """A library holding the sample photos in one import folder, with companions beside one of them."""
    root = tmp_path / "Photos"
    shutil.copytree(SAMPLE, root / "import")
    (root / "import" / "ATTRIBUTION.md").unlink()
    (root / "import" / "kde_Kite.jpg.xmp").write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"/>\n')
    (root / "import" / "kde_Kite.xmp").write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"/>\n')
    (root / "import" / "kde_Kite.mov").write_bytes(b"\x00\x00\x00\x14ftypqt  " + b"\x00" * 32)
    lib = photolab.init_library(root)
    photolab.index_library(lib, progress=False)
    yield lib
    lib.close()


def test_rules_file_errors_name_the_line():
    good = "set unsorted = Misc\n# comment\ntag:bday -> {year}/Birthday\n* -> {year}/{month:02}\n"
    rules = org.parse_rules(good)
    assert rules.unsorted == "Misc" and rules.rules[0].terms[0].value == "birthday"  # alias resolved
    for bad, needle in [
        ("tag:birthday {year}/B\n", "CONDITION -> TARGET"),
        ("tag:nosuchtag -> {year}\n", "unknown tag"),
        ("colour:red -> {year}\n", "KEY:VALUE"),
        ("* -> /etc/{year}\n", "not an absolute path"),
        ("* -> {year}/../../x\n", "'..'"),
        ("* -> {year}/{secret}\n", "unknown field"),
        ("* -> {year!r}\n", "conversions"),
        ("date:last-week -> {year}\n", "a date is"),
        ("set gap_hours = soon\n* -> {year}\n", "positive number"),
        ("# only comments\n", "no rules"),
    ]:
        with pytest.raises(org.RulesError) as info:
            org.parse_rules("# header\n" + bad, path="rules.txt")
        assert needle in str(info.value)
        assert "rules.txt:2" in str(info.value) or "no rules" in needle


@pytest.mark.parametrize("hostile", ["../../etc", "..", "con", "CON.txt", "a/b", "a\\b", "x" * 300,
                                     "🎂🎉 party", "  ", "nul", ".photolab", "C:\\Windows", "a:b*c?"])
def test_hostile_values_never_leave_the_library(tmp_path, hostile):
    for pattern in ("{year}/{event}", "{tag}/{event}/{camera}", "{event}"):
        folder = org.render_target(pattern, {"year": 2025, "event": hostile, "tag": hostile, "camera": hostile})
        root = tmp_path / "lib"
        target = (root / folder / "IMG_1.jpg").resolve()
        assert root.resolve() in target.parents
        assert ".." not in folder.split("/") and not folder.startswith("/")
        assert folder.split("/")[0] != ".photolab"
        assert len(folder) <= org.MAX_FOLDER
        for part in folder.split("/"):
            assert part and part.split(".")[0].upper() not in fileops.WINDOWS_RESERVED
            assert not set(part) & fileops.ILLEGAL


def test_hostile_event_name_is_filed_inside(lib_with_photos):
    lib = lib_with_photos
    events = ev.detect_events(lib)
    eid = int(events.index[0])
    ev.rename_event(lib, eid, "../../../etc/passwd")
    plan = org.plan(lib)
    for t in plan["target"]:
        assert (lib.root / t).resolve().is_relative_to(lib.root)
        assert ".." not in t.split("/")


def test_plan_changes_nothing_and_apply_undo_round_trip(lib_with_photos, tmp_path):
    lib = lib_with_photos
    label(lib, "import/chelsea.png", "birthday")      # no capture date: still Unsorted (rule needs {year})
    label(lib, "import/kde_Kite.jpg", "birthday")     # dated 2015
    before = tree(lib.root)
    plan = org.plan(lib)
    assert tree(lib.root) == before                   # a plan moves nothing
    out = org.write_plan_csv(plan, tmp_path / "plan.csv")
    csv = pd.read_csv(out)
    assert list(csv.columns) == ["source", "target", "rule", "reason"]
    assert len(csv) == len(plan) > 0

    rows = plan.set_index("source")
    assert rows.loc["import/kde_Kite.jpg", "target"].startswith("2015/Birthday/")
    assert "tag birthday" in rows.loc["import/kde_Kite.jpg", "reason"]
    assert rows.loc["import/coffee.png", "target"] == "Unsorted/coffee.png"   # PNG without a date
    assert rows.loc["import/chelsea.png", "target"].startswith("Unsorted/")
    # companions travel with their photo and keep its stem
    for comp in ("kde_Kite.jpg.xmp", "kde_Kite.xmp", "kde_Kite.mov"):
        assert rows.loc[f"import/{comp}", "target"] == f"2015/Birthday/{comp}"
    assert (plan["role"] == "companion").sum() == 3

    report = org.apply(lib, plan, progress=False)
    assert report.done == len(plan) and not report.skipped
    after = tree(lib.root)
    assert sorted(after.values()) == sorted(before.values())      # same bytes, each exactly once
    assert "2015/Birthday/kde_Kite.mov" in after
    catalog_matches_disk(lib)
    assert not list((lib.root / "import").glob("*"))              # emptied folder removed or empty
    assert len(org.plan(lib)) == 0                                # re-running plans nothing

    undo(lib, report.batch)
    assert tree(lib.root) == before
    catalog_matches_disk(lib)


def test_collisions_get_a_suffix_and_identical_files_are_recognised(lib_with_photos):
    lib = lib_with_photos
    for folder in ("second", "third"):
        (lib.root / folder).mkdir()
    shutil.copy2(SAMPLE / "kde_Path.jpg", lib.root / "second" / "kde_Path.jpg")   # identical bytes, same name
    shutil.copy2(SAMPLE / "mate_Dune.jpg", lib.root / "third" / "kde_Path.jpg")   # another photo, same name
    photolab.index_library(lib, progress=False)
    plan = org.plan(lib, rules=org.parse_rules("* -> All\n"))
    kept = dict(plan.kept)
    targets = list(plan["target"])
    assert len(targets) == len({t.lower() for t in targets})      # no two files to one name
    # exactly one kde_Path.jpg is planned; the identical twin is left for dedupe
    assert sum(t.endswith("/kde_Path.jpg") for t in targets) == 1
    assert any("identical file already at" in why for why in kept.values())
    assert "All/kde_Path (1).jpg" in targets
    org.apply(lib, plan, progress=False)
    catalog_matches_disk(lib)


def test_a_move_never_overwrites(lib_with_photos):
    lib = lib_with_photos
    plan = org.plan(lib)
    first = plan[plan["role"] == "photo"].iloc[0]
    blocker = lib.root / first["target"]
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_bytes(b"somebody else's file")                  # appears after planning
    report = org.apply(lib, plan, progress=False)
    assert blocker.read_bytes() == b"somebody else's file"
    assert (lib.root / first["source"]).exists()
    assert any("not overwritten" in why for _, why in report.skipped)


def test_events_user_edits_survive_reruns(lib_with_photos):
    lib = lib_with_photos
    events = ev.detect_events(lib)
    assert events["photos"].sum() == 16 and len(events) >= 10     # the three PNGs have no date
    two = events[events["photos"] == 2]
    assert len(two) == 1 and two.iloc[0]["name"] == "2015-06-21"  # 01:43 and 02:05 the same night
    first, second = (int(i) for i in events.index[:2])
    ev.rename_event(lib, first, "Grandma's 80th")
    ev.merge_events(lib, first, second)
    again = ev.detect_events(lib)
    assert len(again) == len(events) - 1
    merged = again.loc[first]
    assert merged["name"] == "Grandma's 80th" and merged["photos"] == 2
    photos = ev.event_photos(lib, first)
    ev.split_event(lib, int(photos.index[1]))
    third = ev.detect_events(lib)
    assert len(third) == len(events)
    assert third.loc[first, "name"] == "Grandma's 80th" and third.loc[first, "photos"] == 1
    # the event name reaches the folder
    plan = org.plan(lib)
    assert any("Grandma's 80th" in t for t in plan["target"])


def test_dominant_tag_names_the_event(lib_with_photos):
    lib = lib_with_photos
    ev.detect_events(lib)
    pair = ev.events(lib).query("photos == 2").index[0]
    for path in ev.event_photos(lib, pair)["path"]:
        label(lib, path, "beach")
    again = ev.detect_events(lib)
    assert again.loc[pair, "name"] == "2015-06-21 Beach"


def test_raw_jpeg_pair_moves_together(shared_data, tmp_path):
    root = tmp_path / "Photos"
    (root / "card").mkdir(parents=True)
    shutil.copy(shared_data / "metadata_edge" / "exiftool" / "Nikon.nef", root / "card" / "DSC_0001.NEF")
    shutil.copy(shared_data / "photos" / "DSCN0010.jpg", root / "card" / "DSC_0001.JPG")
    (root / "card" / "DSC_0001.xmp").write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"/>\n')
    for p in (root / "card").iterdir():
        p.chmod(0o644)
    lib = photolab.init_library(root)
    photolab.index_library(lib, progress=False)
    plan = org.plan(lib)
    assert set(plan["role"]) == {"photo", "pair", "companion"}
    folders = {t.rsplit("/", 1)[0] for t in plan["target"]}
    assert len(folders) == 1                                       # the JPEG decides for the pair
    org.apply(lib, plan, progress=False)
    catalog_matches_disk(lib)
    lib.close()


def test_cli_organize_dry_run_apply_undo(lib_with_photos, tmp_path):
    import subprocess
    import sys

    lib = lib_with_photos
    before = tree(lib.root)

    def cli(*args):
        proc = subprocess.run([sys.executable, "-m", "photolab.cli", "-q", *map(str, args)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    out = cli("organize", lib.root, "--plan-csv", tmp_path / "p.csv")
    assert "dry run" in out and tree(lib.root) == before
    assert list(pd.read_csv(tmp_path / "p.csv").columns) == ["source", "target", "rule", "reason"]
    out = cli("organize", lib.root, "--apply")
    assert "moved" in out and tree(lib.root) != before
    out = cli("undo", lib.root)
    assert tree(lib.root) == before
    bad = tmp_path / "bad-rules.txt"
    bad.write_text("* -> ../outside\n")
    proc = subprocess.run([sys.executable, "-m", "photolab.cli", "organize", str(lib.root), "--rules", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "bad-rules.txt:1" in proc.stderr and "Traceback" not in proc.stderr


def test_recover_finishes_or_rolls_back(lib_with_photos):
    """Half-done moves as a killed process leaves them: linked but not unlinked, and not started."""
    lib = lib_with_photos
    before = tree(lib.root)
    cat = lib.catalog
    with cat.write() as db:
        for i, (src, dst) in enumerate([("import/kde_Path.jpg", "X/kde_Path.jpg"),
                                        ("import/kde_Kite.jpg", "X/kde_Kite.jpg"),
                                        ("import/coffee.png", "X/coffee.png")]):
            db.execute("INSERT INTO journal(batch, op, src, dst, sha256, state, created_at) "
                       "VALUES ('b1', 'organize', ?, ?, NULL, 'planned', ?)", (src, dst, utcnow()))
    (lib.root / "X").mkdir()
    os.link(lib.root / "import/kde_Path.jpg", lib.root / "X/kde_Path.jpg")        # link done, unlink not
    os.link(lib.root / "import/kde_Kite.jpg", lib.root / "X/kde_Kite.jpg")
    os.unlink(lib.root / "import/kde_Kite.jpg")                                   # file moved, catalog not
    (lib.root / "X" / ".photolab-tmp-4242-coffee.png").write_bytes(b"partial")    # a partial copy
    counts = recover(lib)
    assert counts == {"finished": 2, "rolled_back": 1, "conflict": 0}
    assert sorted(tree(lib.root).values()) == sorted(before.values())
    catalog_matches_disk(lib)
    undo(lib, "b1")
    assert tree(lib.root) == before


def test_moves_without_hard_links_copy_verify_and_keep_times(lib_with_photos, monkeypatch):
    """Across filesystems (link() fails with EXDEV) a move is a verified copy, then the original goes."""
    import errno

    from photolab.core import fileops

    lib = lib_with_photos
    before = tree(lib.root)
    src = lib.root / "import" / "kde_Kite.jpg"
    mtime = src.stat().st_mtime_ns

    def no_links(a, b):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(fileops.os, "link", no_links)
    plan = org.plan(lib)
    report = org.apply(lib, plan, progress=False)
    assert report.done == len(plan) and not report.skipped
    moved = lib.root / plan.set_index("source").loc["import/kde_Kite.jpg", "target"]
    assert moved.stat().st_mtime_ns == mtime and not src.exists()
    assert sorted(tree(lib.root).values()) == sorted(before.values())
    assert not [p for p in tree(lib.root) if ".photolab-tmp-" in p]
    catalog_matches_disk(lib)


def _dated_crop(src: Path, dest: Path, when: str) -> None:
    from PIL import Image

    with Image.open(src) as im:
        exif = Image.Exif()
        exif.get_ifd(0x8769)[0x9003] = when   # DateTimeOriginal
        im.convert("RGB").crop((0, 0, im.width // 2, im.height // 2)).save(dest, quality=90, exif=exif)


def test_scoped_plan_and_events_equal_the_library_wide_ones(lib_with_photos):
    """What the watcher asks for (the new photos only) is the library-wide plan restricted to them."""
    lib = lib_with_photos
    org.apply(lib, org.plan(lib), progress=False)   # the library in place
    dated = lib.catalog.query("SELECT captured_at FROM photos WHERE captured_source = 'DateTimeOriginal' "
                              "AND kind = 'photo' ORDER BY captured_at")
    assert dated, "the sample photos carry capture dates"
    t0 = pd.Timestamp(dated[0][0]).tz_localize(None)
    new_dir = lib.root / "import2"
    new_dir.mkdir()
    # one joins an existing event, one bridges nothing (a new event), one has no date at all
    _dated_crop(SAMPLE / "kde_Kite.jpg", new_dir / "near_event.jpg", (t0 + pd.Timedelta(hours=1)).strftime("%Y:%m:%d %H:%M:%S"))
    _dated_crop(SAMPLE / "mate_Dune.jpg", new_dir / "own_event.jpg", (t0 + pd.Timedelta(days=3)).strftime("%Y:%m:%d %H:%M:%S"))
    with_no_date = new_dir / "no_date.png"
    shutil.copy(SAMPLE / "coffee.png", with_no_date)
    photolab.index_library(lib, progress=False)
    new_ids = [r[0] for r in lib.catalog.query("SELECT id FROM photos WHERE path LIKE 'import2/%'")]
    assert len(new_ids) == 3

    scoped = org.plan(lib, photo_ids=new_ids)
    ev.apply(scoped.events)                          # the events a scoped plan grouped, stored
    scoped_events = ev.events(lib)
    members_scoped = lib.catalog.query("SELECT photo_id, event_id FROM photo_events ORDER BY photo_id")
    full = org.plan(lib)
    ev.apply(full.events)
    full_events = ev.events(lib)
    members_full = lib.catalog.query("SELECT photo_id, event_id FROM photo_events ORDER BY photo_id")

    pd.testing.assert_frame_equal(scoped_events, full_events)
    assert [tuple(r) for r in members_scoped] == [tuple(r) for r in members_full]
    assert set(full["photo_id"]) <= set(new_ids), "the rest of the library was in place"
    pd.testing.assert_frame_equal(scoped.rows.reset_index(drop=True), full.rows.reset_index(drop=True))
    assert set(scoped["source"]) == {"import2/near_event.jpg", "import2/own_event.jpg", "import2/no_date.png"}
    event_of = {r["path"]: r["event_id"] for r in lib.catalog.query(
        "SELECT p.path, pe.event_id FROM photos p JOIN photo_events pe ON pe.photo_id = p.id")}
    first = lib.catalog.query("SELECT path FROM photos WHERE captured_at = ?", (dated[0][0],))[0][0]
    assert event_of["import2/near_event.jpg"] == event_of[first]          # joined the event it falls in
    assert event_of["import2/own_event.jpg"] != event_of[first]
    assert "import2/no_date.png" not in event_of


def test_place_terms_and_field_file_the_tuscany_photos_once_confirmed(shared_data, tmp_path):
    """The nine Nikon photos with GPS near Arezzo: `place:*Arezzo*` and `{place}` file them once a person
    confirms their place (or, with `set places = suggested`, from the suggestion); the others are untouched
    by that rule, a rejected place never counts, and undo restores the tree."""
    from conftest import copy_tree

    from photolab.stages.places import confirm_places, suggest_places

    root = tmp_path / "lib"
    lib = photolab.init_library(root)
    copy_tree(shared_data / "photos", root / "photos")
    photolab.index_library(lib, progress=False)
    suggest_places(lib)
    ids = dict(lib.catalog.query("SELECT path, id FROM photos"))
    tuscany = {p for p in ids if p.startswith("photos/DSCN00")}
    gps_tuscany = {p for p, in lib.catalog.query("SELECT p.path FROM places pl JOIN photos p ON p.id = pl.photo_id "
                                                  "WHERE pl.city = 'Arezzo'")}
    assert len(gps_tuscany) == 9 and gps_tuscany <= tuscany
    text = "place:*Arezzo* and place:*italy* -> Trips/{place}/{year}\n* -> {year}/{month:02}\n"
    rules = org.parse_rules(text)

    def targets(r):
        df = org.plan(lib, rules=r)
        return {row.source: row.target for row in df.itertuples()}

    # suggested, not confirmed: the rule does not see the place, and {place} is not invented
    before = targets(rules)
    assert not any(t.startswith("Trips/") for t in before.values())
    confirm_places(lib, [ids[p] for p in sorted(gps_tuscany)[:6]])
    confirm_places(lib, [ids[sorted(gps_tuscany)[6]]], value=False)   # a person says this place is wrong
    got = targets(rules)
    trips = {s for s, t in got.items() if t.startswith("Trips/")}
    assert trips == set(sorted(gps_tuscany)[:6])
    assert all(got[s].startswith("Trips/Arezzo/2008/") for s in trips), got
    # with suggestions allowed, the unconfirmed ones join; the rejected one never does
    loose = org.parse_rules("set places = suggested\n" + text)
    got = targets(loose)
    assert {s for s, t in got.items() if t.startswith("Trips/")} == gps_tuscany - {sorted(gps_tuscany)[6]}
    # applied and undone, byte for byte
    start = tree(root)
    report = org.apply(lib, org.plan(lib, rules=rules), progress=False)
    assert report.done and (root / "Trips" / "Arezzo" / "2008").is_dir()
    undo(lib, report.batch)
    assert tree(root) == start
    with pytest.raises(org.RulesError, match="places is confirmed"):
        org.parse_rules("set places = maybe\n* -> {year}\n")
