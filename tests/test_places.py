"""Places from GPS, offline: the shared photos' positions (looked up by hand on a map) get their
country and city; nothing without GPS gets a place; only confirmed places reach the files."""

from __future__ import annotations

import shutil

import pytest

import photolab
from photolab.stages import metadata, places
from photolab.stages.events import detect_events

from conftest import SAMPLE
from test_metadata import as_list, exiftool, needs_exiftool

# positions read with exiftool and checked by hand on a map
EXPECTED = {
    "DSCN0010.jpg": ("Italy", "Tuscany", "Arezzo"),          # 43.467 N 11.885 E: Arezzo's old town
    "DSCN0042.jpg": ("Italy", "Tuscany", "Arezzo"),
    "kde_ColorfulCups.jpg": ("Denmark", "Central Jutland", "Århus"),   # 56.156 N 10.208 E: Aarhus centre
    "iphone11_IMG_5195.heic": ("United States", "Missouri", "Blue Springs"),  # 39.05 N 94.29 W, east of Kansas City
}


def test_lookup_offline_and_no_guess_far_from_any_place():
    got = places.lookup([(43.4674, 11.8851), (0.0, -30.0), (None, None), (95.0, 0.0)])
    assert got[0]["country"] == "Italy" and got[0]["city"] == "Arezzo" and got[0]["km"] < 2
    assert got[1:] == [None, None, None]                       # mid-Atlantic, no GPS, nonsense
    assert places.path(got[0]) == "Places|Italy|Tuscany|Arezzo"


def test_shared_gps_photos_get_the_right_places(tmp_path, shared_data):
    root = tmp_path / "lib"
    root.mkdir()
    for name in list(EXPECTED) + ["kde_Kite.jpg"]:          # the kite has no GPS
        shutil.copyfile(shared_data / "photos" / name, root / name)
    lib = photolab.init_library(root)
    photolab.index_library(lib, progress=False)
    df = places.suggest_places(lib).set_index("path")
    for name, (country, region, city) in EXPECTED.items():
        assert tuple(df.loc[name, ["country", "region", "city"]]) == (country, region, city), name
    assert "kde_Kite.jpg" not in df.index
    assert not df["confirmed"].any()


@needs_exiftool
def test_only_confirmed_places_are_written_and_events_take_the_city(tmp_path):
    root = tmp_path / "lib"
    root.mkdir()
    shutil.copyfile(SAMPLE / "kde_ColorfulCups.jpg", root / "cups.jpg")   # has GPS (Aarhus)
    lib = photolab.init_library(root)
    photolab.index_library(lib, progress=False)
    pid = lib.catalog.query("SELECT id FROM photos")[0][0]
    places.suggest_places(lib)
    metadata.write_metadata(lib, progress=False)
    assert not any(k == "Århus" for k in metadata.read_metadata(root / "cups.jpg")["keywords"])   # a suggestion
    ev = detect_events(lib)
    assert ev.iloc[0]["name"].endswith("Århus")
    places.confirm_places(lib, event=int(ev.index[0]))
    metadata.write_metadata(lib, progress=False)
    target = root / "cups.jpg.xmp" if (root / "cups.jpg.xmp").exists() else root / "cups.jpg"
    t = exiftool(target)[0]
    assert "Places|Denmark|Central Jutland|Århus" in as_list(t.get("XMP-lr:HierarchicalSubject"))
    assert {"Denmark", "Århus"} <= set(as_list(t.get("XMP-dc:Subject")))
    assert places.places(lib).loc[pid, "confirmed"] == 1
    # rejected: taken out of the file again
    places.confirm_places(lib, [pid], value=False)
    metadata.write_metadata(lib, progress=False)
    assert "Århus" not in metadata.read_metadata(root / "cups.jpg")["keywords"]


def test_cli_places(tmp_path, capsys):
    from photolab.cli import main

    root = tmp_path / "lib"
    root.mkdir()
    shutil.copyfile(SAMPLE / "kde_ColorfulCups.jpg", root / "cups.jpg")
    photolab.init_library(root)
    photolab.index_library(root, progress=False)
    assert main(["places", str(root), "--confirm-all"]) == 0
    out = capsys.readouterr().out
    assert "confirmed 1 places" in out and "Places|Denmark" in out
    with pytest.raises(SystemExit):
        main(["places"])
