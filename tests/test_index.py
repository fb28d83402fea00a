import os
import struct
import zlib
from pathlib import Path

import pytest

import photolab
from photolab.features.exif import parse_exif_datetime, parse_filename_datetime
from photolab.stages.index import STATUSES

from conftest import SAMPLE


def index_rows(lib):
    return {r["path"]: dict(r) for r in lib.catalog.query("SELECT * FROM photos")}


def test_sample_values(sample_copy, library):
    photolab.gather([sample_copy], library, progress=False)
    report = photolab.index_library(library, progress=False)
    assert report.by_status == {"ok": 19}
    rows = index_rows(library)
    pug = rows["sample/pug.heic"]
    assert (pug["format"], pug["width"], pug["height"]) == ("HEIF", 4032, 3024)
    assert pug["captured_at"] == "2023-02-21T14:33:08.302+03:00"
    assert pug["captured_source"] == "DateTimeOriginal"
    assert pug["camera_model"] == "iPhone 13 Pro"
    assert pug["gps_lat"] == pytest.approx(44.850478, abs=1e-5)
    assert pug["gps_lon"] == pytest.approx(34.976647, abs=1e-5)
    cups = rows["sample/kde_ColorfulCups.jpg"]
    assert (cups["format"], cups["width"], cups["height"]) == ("JPEG", 2560, 1600)
    assert cups["captured_at"] == "2014-04-29T14:25:26"
    assert cups["gps_lat"] == pytest.approx(56.155995, abs=1e-5)
    coffee = rows["sample/coffee.png"]
    assert (coffee["format"], coffee["width"], coffee["height"]) == ("PNG", 600, 400)
    assert coffee["captured_source"] == "FileModifyDate"  # no EXIF at all
    sha = __import__("hashlib").sha256((SAMPLE / "coffee.png").read_bytes()).hexdigest()
    assert coffee["sha256"] == sha
    df = photolab.photos(library)
    assert len(df) == 19 and df.index.name == "id"


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (a decompression-bomb sized file)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_bad_input_never_stops_a_batch(library):
    root = library.root / "bad"
    root.mkdir()
    kite = (SAMPLE / "kde_Kite.jpg").read_bytes()
    (root / "empty.jpg").write_bytes(b"")
    (root / "truncated.jpg").write_bytes(kite[: len(kite) // 2])
    (root / "garbage.jpg").write_bytes(os.urandom(5000))
    (root / "png named.jpg").write_bytes((SAMPLE / "coffee.png").read_bytes())
    (root / "bomb.png").write_bytes(_png_header(40000, 40000))
    (root / "notes.txt").write_text("shopping list")
    (root / "Ünïcödé ✓ photo with spaces.jpg").write_bytes(kite)
    long_name = "a" * 200 + ".jpg"
    (root / long_name).write_bytes(kite)
    (root / "IMG_20160915_123456.png").write_bytes((SAMPLE / "chelsea.png").read_bytes())
    report = photolab.index_library(library, progress=False)
    rows = index_rows(library)
    status = {p.split("/", 1)[1]: (r["status"], r["error"]) for p, r in rows.items()}
    assert status["empty.jpg"][0] == "empty"
    assert status["truncated.jpg"][0] == "corrupt" and "truncated" in status["truncated.jpg"][1].lower()
    assert status["garbage.jpg"][0] == "corrupt"
    assert status["png named.jpg"] == ("warning", "content is PNG but the name ends in .jpg")
    assert status["bomb.png"][0] == "too_large"
    assert status["notes.txt"][0] == "unsupported"
    assert status["Ünïcödé ✓ photo with spaces.jpg"] == ("ok", None)
    assert status[long_name] == ("ok", None)
    stamped = rows["bad/IMG_20160915_123456.png"]
    assert (stamped["captured_at"], stamped["captured_source"]) == ("2016-09-15T12:34:56", "FileName")
    assert sum(report.by_status.values()) == 9
    assert all(r["status"] in STATUSES for r in rows.values())
    assert {p for p, s, _ in report.problems} == {f"bad/{n}" for n in (
        "empty.jpg", "truncated.jpg", "garbage.jpg", "png named.jpg", "bomb.png", "notes.txt")}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_permission(library):
    p = library.root / "locked.jpg"
    p.write_bytes((SAMPLE / "kde_Kite.jpg").read_bytes())
    p.chmod(0)
    photolab.index_library(library, progress=False)
    row = index_rows(library)["locked.jpg"]
    assert row["status"] == "unreadable" and "permission" in row["error"]


def test_reindex_is_incremental(sample_copy, library, monkeypatch):
    photolab.gather([sample_copy], library, progress=False)
    photolab.index_library(library, progress=False)
    import photolab.stages.index as index_mod

    opened = []
    real = index_mod.inspect_file
    monkeypatch.setattr(index_mod, "inspect_file", lambda p, **kw: opened.append(p) or real(p, **kw))
    again = photolab.index_library(library, progress=False)
    assert (again.read, again.unchanged, again.missing) == (0, 19, 0)
    assert opened == []
    # change one file, delete one, add one
    folder = library.root / "sample"
    changed = folder / "kde_Kite.jpg"
    changed.write_bytes((SAMPLE / "mate_Dune.jpg").read_bytes())
    (folder / "coffee.png").unlink()
    (folder / "new.png").write_bytes((SAMPLE / "chelsea.png").read_bytes())
    third = photolab.index_library(library, progress=False)
    assert (third.read, third.unchanged, third.missing) == (2, 17, 1)
    rows = index_rows(library)
    assert rows["sample/coffee.png"]["status"] == "missing"
    assert (rows["sample/kde_Kite.jpg"]["width"], rows["sample/kde_Kite.jpg"]["height"]) == (1680, 1050)
    assert rows["sample/new.png"]["status"] == "ok"


@pytest.mark.parametrize("value, offset, subsec, expected", [
    ("2008:10:22 16:28:39", None, None, "2008-10-22T16:28:39"),
    ("2021:04:11 15:47:53", "-05:00", "054", "2021-04-11T15:47:53.054000-05:00"),
    ("0000:00:00 00:00:00", None, None, None),
    ("    :  :     :  :  ", None, None, None),
    ("2019:02:30 10:00:00", None, None, None),
    (b"2001:06:09 15:17:32\x00", None, None, "2001-06-09T15:17:32"),
])
def test_exif_datetime_parsing(value, offset, subsec, expected):
    got = parse_exif_datetime(value, offset, subsec)
    assert (got.isoformat() if got else None) == expected


@pytest.mark.parametrize("name, expected", [
    ("IMG_20160915_123456.jpg", "2016-09-15T12:34:56"),
    ("PXL_20210101_235959123.jpg", "2021-01-01T23:59:59"),
    ("Screenshot_2019-01-02-10-11-12.png", "2019-01-02T10:11:12"),
    ("IMG-20190102-WA0001.jpg", "2019-01-02T00:00:00"),
    ("2019-01-02 10.11.12.jpg", "2019-01-02T10:11:12"),
    ("DSC_0001.JPG", None),
    ("IMG_99999999.jpg", None),
])
def test_filename_dates(name, expected):
    got = parse_filename_datetime(name)
    assert (got.isoformat() if got else None) == expected


def test_permission_error_is_recorded_not_raised(library, monkeypatch):
    # As root (CI) chmod cannot make a file unreadable, so the OS error is injected.
    p = library.root / "locked.jpg"
    p.write_bytes((SAMPLE / "kde_Kite.jpg").read_bytes())
    real = Path.read_bytes

    def read_bytes(self):
        if self.name == "locked.jpg":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    photolab.index_library(library, progress=False, workers=1)
    row = index_rows(library)["locked.jpg"]
    assert row["status"] == "unreadable" and "permission denied" in row["error"]
