"""Index on the shared real-photo sets: every file gets a status, real EXIF values come out."""

from collections import Counter

import pytest

import photolab
from photolab.stages.index import STATUSES

from conftest import copy_tree

pytestmark = pytest.mark.shared


def test_photos_capture_time_and_gps(shared_data, tmp_path):
    lib = photolab.init_library(tmp_path / "lib")
    copy_tree(shared_data / "photos", lib.root / "photos")
    report = photolab.index_library(lib, progress=False)
    assert report.by_status["ok"] == 48
    df = photolab.photos(lib)
    by_name = df.set_index(df.path.str.rsplit("/", n=1).str[-1])
    assert (df.captured_source == "DateTimeOriginal").sum() == 39
    assert df.gps_lat.notna().sum() == 14
    # values checked by hand against exiftool
    d = by_name.loc["DSCN0010.jpg"]
    assert d.captured_at == "2008-10-22T16:28:39"
    assert (d.gps_lat, d.gps_lon) == pytest.approx((43.467448, 11.885127), abs=1e-5)
    i = by_name.loc["iphone11_IMG_5195.heic"]
    assert i.captured_at == "2021-04-11T15:47:53.054-05:00"
    assert (i.gps_lat, i.gps_lon) == pytest.approx((39.051344, -94.288772), abs=1e-5)
    assert by_name.loc["orient_portrait_6.jpg"].orientation == 6
    assert by_name.loc["orient_portrait_8.jpg"].orientation == 8
    assert by_name.loc["canon-ixus.jpg"].camera_make.startswith("Canon")
    assert (by_name.loc["arrow.heic"].width, by_name.loc["arrow.heic"].height) == (3024, 4032)


def test_metadata_edge_every_file_gets_a_status(shared_data, tmp_path):
    lib = photolab.init_library(tmp_path / "lib")
    copy_tree(shared_data / "metadata_edge", lib.root / "edge")
    n_files = sum(1 for p in (lib.root / "edge").rglob("*") if p.is_file())
    report = photolab.index_library(lib, progress=False)
    rows = {r["path"]: dict(r) for r in lib.catalog.query("SELECT path, kind, format, status, error FROM photos")}
    assert len(rows) == n_files == report.read
    assert Counter(r["status"] for r in rows.values()) == report.by_status
    assert all(r["status"] in STATUSES for r in rows.values())
    assert all(r["error"] for r in rows.values() if r["status"] not in ("ok",))
    g = {p.rsplit("/", 1)[1]: r for p, r in rows.items() if "/generated/" in p}
    assert g["empty.jpg"]["status"] == "empty"
    assert g["truncated_half.jpg"]["status"] == "corrupt"
    assert (g["png_named_as.jpg"]["status"], g["png_named_as.jpg"]["format"]) == ("warning", "PNG")
    assert (g["jpeg_named_as.heic"]["status"], g["jpeg_named_as.heic"]["format"]) == ("warning", "JPEG")
    # RAW files are recognised by content and measured
    raws = {p.rsplit("/", 1)[1]: r for p, r in rows.items() if r["kind"] == "raw"}
    assert {k: raws[k]["format"] for k in ("Nikon.nef", "DNG.dng", "Canon-R6-pruned.CR3", "Panasonic.rw2")} == {
        "Nikon.nef": "NEF", "DNG.dng": "DNG", "Canon-R6-pruned.CR3": "CR3", "Panasonic.rw2": "RW2"}
    assert raws["Nikon.nef"]["status"] == "ok"
    cr3 = lib.catalog.query("SELECT * FROM photos WHERE path LIKE '%Canon-R6-pruned.CR3'")[0]
    assert (cr3["width"], cr3["height"], cr3["captured_at"]) == (3584, 2386, "2021-05-12T12:21:21.920+02:00")
    # ExifTool's test CR2 has its image data stripped: metadata readable, pixels not
    assert raws["CanonRaw.cr2"]["status"] == "warning" and "LibRaw" in raws["CanonRaw.cr2"]["error"]
    bombs = [p for p, r in rows.items() if r["status"] == "too_large"]
    assert any("decompression_bomb" in p for p in bombs)
    print("metadata_edge by status:", dict(report.by_status))
