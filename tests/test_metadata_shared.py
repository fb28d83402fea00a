"""Metadata writing over ../shared/data: every format checked by ExifTool, the ~1,700 edge-case files."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

import photolab
from photolab.stages import metadata as md
from photolab.stages.index import USABLE
from photolab.stages.tagging import set_labels

from conftest import copy_tree
from test_metadata import EXIFTOOL, as_list, exiftool, needs_exiftool

pytestmark = needs_exiftool

FORMATS = {   # library name -> (source under shared data, where the tags must land)
    "nikon.jpg": ("photos/DSCN0010.jpg", "file"),
    "tiff.tif": ("metadata_edge/pillow/hopper.tif", "file"),
    "png.png": ("photos/chelsea.png", "file"),
    "webp.webp": ("metadata_edge/pillow/flower.webp", "file"),
    "iphone.heic": ("photos/iphone11_IMG_5195.heic", "sidecar"),
    "camera.nef": ("metadata_edge/exiftool/Nikon.nef", "sidecar"),
    "camera.dng": ("metadata_edge/exiv2/IMG_1361.dng", "sidecar"),
}


def test_exiftool_reads_exactly_what_photolab_wrote_in_every_format(tmp_path, shared_data):
    root = tmp_path / "lib"
    root.mkdir()
    for name, (src, _) in FORMATS.items():
        shutil.copyfile(shared_data / src, root / name)
    lib = photolab.init_library(root)
    photolab.index_library(lib, progress=False)
    ids = {r["path"]: r["id"] for r in lib.catalog.query("SELECT id, path FROM photos")}
    assert set(ids) == set(FORMATS)
    set_labels(lib, [(pid, t, 1) for pid in ids.values() for t in ("dog", "birthday", "beach")])
    md.set_rating(lib, ids["png.png"], 3)
    makernotes_before = exiftool("-MakerNotes:all", root / "nikon.jpg")[0]
    report = md.write_metadata(lib, progress=False)
    df = report.frame()
    assert set(df["status"]) == {"written"}, df[df["status"] != "written"].to_string()
    for name, (_, where) in FORMATS.items():
        target = root / name if where == "file" else root / f"{name}.xmp"
        assert target.is_file(), name
        t = exiftool(target)[0]
        assert as_list(t.get("XMP-dc:Subject")) == ["beach", "birthday", "dog"], name
        assert as_list(t.get("XMP-lr:HierarchicalSubject")) == ["places|beach", "events|birthday", "objects|dog"], name
        assert as_list(t.get("XMP-digiKam:TagsList")) == ["places/beach", "events/birthday", "objects/dog"], name
        if where == "file" and not name.endswith(".webp"):
            assert as_list(t.get("IPTC:Keywords")) == ["beach", "birthday", "dog"], name
            assert t.get("IPTC:CodedCharacterSet") == "UTF8", name
        if name == "png.png":
            assert t["XMP-xmp:Rating"] == 3 and t["XMP-microsoft:RatingPercent"] == 50
    assert exiftool("-MakerNotes:all", root / "nikon.jpg")[0] == {**makernotes_before, "SourceFile": str(root / "nikon.jpg")}
    # the RAW files themselves are never touched
    for name in ("camera.nef", "camera.dng", "iphone.heic"):
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == \
            hashlib.sha256((shared_data / FORMATS[name][0]).read_bytes()).hexdigest()


def _pixels(path: Path) -> str | None:
    try:
        return md._pixel_digest(path.read_bytes())
    except Exception:
        return None


def _validate(paths: list[Path]) -> dict[str, set[str]]:
    """ExifTool -validate: per file, its errors and (non-minor) warnings."""
    out = {}
    for i in range(0, len(paths), 200):
        chunk = paths[i:i + 200]
        res = subprocess.run([EXIFTOOL, "-j", "-validate", "-error", "-warning", "-a", *map(str, chunk)],
                             capture_output=True, text=True)
        for rec in json.loads(res.stdout or "[]"):
            msgs = set()
            for key in ("Error", "Warning"):
                for m in as_list(rec.get(key)):
                    if not str(m).startswith("[minor]"):
                        msgs.add(f"{key}: {m}")
            out[rec["SourceFile"]] = msgs
    return out


@pytest.mark.timeout(1800)
def test_every_edge_case_file_is_written_or_refused_and_never_damaged(tmp_path, shared_data):
    root = copy_tree(shared_data / "metadata_edge", tmp_path / "lib")
    files = [p for p in root.rglob("*") if p.is_file()]
    pixels = {p: _pixels(p) for p in files}
    lib = photolab.init_library(root)
    photolab.index_library(lib, progress=False)
    rows = lib.catalog.query("SELECT id, path, kind, status, error FROM photos")
    usable = [r for r in rows if r["kind"] in ("photo", "raw") and r["status"] in USABLE]
    set_labels(lib, [(r["id"], "dog", 1) for r in usable] + [(r["id"], "blurry", 1) for r in usable])
    before_sha = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    report = md.write_metadata(lib, progress=False)
    df = report.frame()
    # every usable photo got an answer; refusals say why
    assert set(df["photo_id"]) == {r["id"] for r in usable}
    skipped = df[df["status"] == "skipped"]
    assert skipped["reason"].str.len().gt(5).all()
    answered = set(df.loc[df["status"] != "skipped", "photo_id"])
    assert len(answered) >= 0.9 * len(usable), skipped.to_string()
    # files the index refused carry its reason
    assert all(r["error"] for r in rows if r["kind"] in ("photo", "raw") and r["status"] not in USABLE)
    written_files = {lib.abs(p) for p in df.loc[(df["status"] == "written") & (df["target"] == "file"), "path"]}
    assert len(written_files) > 300
    # no file's decoded pixels changed; files not written are byte-identical
    for p in files:
        if p in written_files:
            assert _pixels(p) == pixels[p], p
        else:
            assert hashlib.sha256(p.read_bytes()).hexdigest() == before_sha[p], p
    # ExifTool finds no new error or warning in any written file
    after = _validate(sorted(written_files))
    originals = {shared_data / "metadata_edge" / p.relative_to(root): p for p in written_files}
    before = {str(originals[Path(k)]): v for k, v in _validate(sorted(originals)).items()}
    new_problems = {str(p): after[str(p)] - before.get(str(p), set()) for p in written_files}
    new_problems = {k: v for k, v in new_problems.items() if v}
    assert not new_problems, new_problems
    # and everything written reads back
    for p in list(written_files)[:50]:
        assert "dog" in md.read_metadata(p)["keywords"]
