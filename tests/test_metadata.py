"""Metadata writing: real files, read back with ExifTool as an independent reader."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

import photolab
from photolab.stages import metadata as md
from photolab.core.fileops import FileOpError, undo
from photolab.stages.tagging import set_labels

from conftest import SAMPLE

EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="ExifTool not installed (Debian: libimage-exiftool-perl)")


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def exiftool(*args) -> list[dict]:
    out = subprocess.run([EXIFTOOL, "-j", "-struct", "-G1", *map(str, args)], capture_output=True, text=True)
    return json.loads(out.stdout or "[]")


def as_list(v) -> list:
    return [] if v is None else v if isinstance(v, list) else [v]


def make_library(root: Path, files: dict[str, Path]):
    root.mkdir(parents=True, exist_ok=True)
    for name, src in files.items():
        (root / name).write_bytes(src.read_bytes())
    lib = photolab.init_library(root)
    photolab.index_library(lib, progress=False)
    return lib


def ids(lib) -> dict[str, int]:
    return {r["path"]: r["id"] for r in lib.catalog.query("SELECT id, path FROM photos")}


def label_all(lib, tags=("dog", "beach")) -> None:
    set_labels(lib, [(pid, t, 1) for pid in ids(lib).values() for t in tags])


def test_bag_keywords_merged_ratings_and_second_run_identical(tmp_path):
    lib = make_library(tmp_path / "lib", {"a.jpg": SAMPLE / "mate_Blinds.jpg", "b.png": SAMPLE / "astronaut.png",
                                          "c.heic": SAMPLE / "pug.heic"})
    i = ids(lib)
    label_all(lib)
    md.set_rating(lib, i["b.png"], 4)
    before = {p: sha(lib.abs(p)) for p in i}
    report = md.write_metadata(lib, progress=False)
    df = report.frame().set_index("path")
    assert df.loc["a.jpg", "status"] == "written" and df.loc["a.jpg", "target"] == "file"
    assert df.loc["c.heic.xmp", "target"] == "sidecar"          # Exiv2 cannot write HEIC in place
    assert sha(lib.abs("c.heic")) == before["c.heic"]
    m = md.read_metadata(lib.abs("a.jpg"))
    assert m["keywords"] == ["beach", "dog"] and m["hierarchical"] == ["places|beach", "objects|dog"]
    assert m["iptc_keywords"] == ["beach", "dog"] and m["reviewed"] == ["beach", "dog"]
    assert md.read_metadata(lib.abs("b.png"))["rating"] == 4
    raw = lib.abs("a.jpg").read_bytes()
    assert b"<dc:subject> <rdf:Bag>" in raw or b"<dc:subject>\n    <rdf:Bag>" in raw
    # catalog follows the new bytes, features stay valid
    assert lib.catalog.query("SELECT sha256 FROM photos WHERE path = 'a.jpg'")[0][0] == sha(lib.abs("a.jpg"))
    # a second run changes nothing, byte for byte
    after = {p: sha(lib.abs(p)) for p in ["a.jpg", "b.png", "c.heic.xmp"]}
    again = md.write_metadata(lib, progress=False)
    assert again.counts().get("written", 0) == 0
    assert {p: sha(lib.abs(p)) for p in after} == after
    # even when the catalog's record of what was written is gone
    with lib.catalog.write() as db:
        db.execute("DELETE FROM metadata_written")
    md.write_metadata(lib, progress=False)
    assert {p: sha(lib.abs(p)) for p in after} == after


@needs_exiftool
def test_user_keywords_and_rating_survive_and_only_our_tags_are_removed(tmp_path):
    root = tmp_path / "lib"
    root.mkdir()
    photo = root / "a.jpg"
    photo.write_bytes((SAMPLE / "mate_Dune.jpg").read_bytes())
    subprocess.run([EXIFTOOL, "-q", "-overwrite_original", "-XMP-dc:Subject=Holiday", "-XMP-dc:Subject=Doe, John",
                    "-IPTC:Keywords=Holiday", "-XMP-xmp:Rating=5", "-HierarchicalSubject=Trips|Holiday", str(photo)],
                   check=True)
    lib = photolab.init_library(root)
    photolab.index_library(lib, progress=False)
    pid = ids(lib)["a.jpg"]
    set_labels(lib, [(pid, "dog", 1), (pid, "blurry", 1)])     # blurry would suggest rating 1
    md.write_metadata(lib, progress=False)
    t = exiftool(photo)[0]
    assert as_list(t["XMP-dc:Subject"]) == ["Holiday", "Doe, John", "dog", "blurry"]
    assert as_list(t["IPTC:Keywords"]) == ["Holiday", "dog", "blurry"]
    assert as_list(t["XMP-lr:HierarchicalSubject"]) == ["Trips|Holiday", "objects|dog", "quality|blurry"]
    assert t["XMP-xmp:Rating"] == 5                                 # the user's rating stays
    set_labels(lib, [(pid, "dog", 0)])
    md.write_metadata(lib, progress=False)
    t = exiftool(photo)[0]
    assert as_list(t["XMP-dc:Subject"]) == ["Holiday", "Doe, John", "blurry"]
    assert as_list(t["XMP-lr:HierarchicalSubject"]) == ["Trips|Holiday", "quality|blurry"]
    assert as_list(t["IPTC:Keywords"]) == ["Holiday", "blurry"]


def test_auto_rating_only_where_none_and_withdrawn_with_its_reason(tmp_path):
    lib = make_library(tmp_path / "lib", {"a.jpg": SAMPLE / "mate_Storm.jpg"})
    pid = ids(lib)["a.jpg"]
    set_labels(lib, [(pid, "dark", 1)])
    md.write_metadata(lib, progress=False)
    assert md.read_metadata(lib.abs("a.jpg"))["rating"] == 1
    set_labels(lib, [(pid, "dark", 0)])
    md.write_metadata(lib, progress=False)
    m = md.read_metadata(lib.abs("a.jpg"))
    assert m["rating"] is None and m["keywords"] == []


def test_people_and_places_wait_for_a_person(tmp_path):
    lib = make_library(tmp_path / "lib", {"a.jpg": SAMPLE / "mate_Storm.jpg"})
    pid = ids(lib)["a.jpg"]
    with lib.catalog.write() as db:
        for tag in ("person", "beach", "dog"):
            db.execute("INSERT INTO scores(photo_id, tag, score, source, model) VALUES (?,?,0.95,'prior','m')",
                       (pid, tag))
    md.write_metadata(lib, progress=False)
    assert md.read_metadata(lib.abs("a.jpg"))["keywords"] == ["dog"]
    set_labels(lib, [(pid, "beach", 1)])
    md.write_metadata(lib, progress=False)
    assert md.read_metadata(lib.abs("a.jpg"))["keywords"] == ["dog", "beach"]
    md.write_metadata(lib, progress=False, options=md.WriteOptions(write_unreviewed=("people",)))
    assert md.read_metadata(lib.abs("a.jpg"))["keywords"] == ["dog", "beach", "person"]
    with pytest.raises(ValueError, match="write_unreviewed"):
        md.WriteOptions(write_unreviewed=("objects",))


def test_restore_and_undo_are_byte_identical(tmp_path):
    lib = make_library(tmp_path / "lib", {"a.jpg": SAMPLE / "mate_Storm.jpg", "b.png": SAMPLE / "coffee.png"})
    label_all(lib)
    orig = {p: sha(lib.abs(p)) for p in ("a.jpg", "b.png")}
    r1 = md.write_metadata(lib, progress=False)
    written = {p: sha(lib.abs(p)) for p in orig}
    assert all(written[p] != orig[p] for p in orig)
    md.restore(lib, "a.jpg")
    assert sha(lib.abs("a.jpg")) == orig["a.jpg"]
    undo(lib)                                         # undoing the restore brings the written bytes back
    assert sha(lib.abs("a.jpg")) == written["a.jpg"]
    undo(lib, r1.batch)                               # undoing the write brings both originals back
    assert {p: sha(lib.abs(p)) for p in orig} == orig
    assert {r["path"]: r["sha256"] for r in lib.catalog.query("SELECT path, sha256 FROM photos")} == orig
    with pytest.raises(FileOpError, match="no earlier version"):
        md.restore(lib, "nothing.jpg")


def test_sidecar_naming_existing_sidecar_updated_and_read_only_files(tmp_path):
    lib = make_library(tmp_path / "lib", {"a.jpg": SAMPLE / "mate_Storm.jpg", "b.jpg": SAMPLE / "mate_Dune.jpg",
                                          "c.jpg": SAMPLE / "mate_Wood.jpg"})
    # b has a Lightroom-style sidecar of its own with another app's data
    (lib.root / "b.xmp").write_bytes(md.EMPTY_PACKET)
    from photolab.stages.metadata import _pyexiv2
    with _pyexiv2().ImageData((lib.root / "b.xmp").read_bytes()) as img:
        img.modify_xmp({"Xmp.dc.title": {'lang="x-default"': "Dunes"}, "Xmp.dc.subject": ["sand"]})
        (lib.root / "b.xmp").write_bytes(img.get_bytes())
    os.chmod(lib.abs("c.jpg"), stat.S_IRUSR)            # read-only photo: a sidecar instead
    label_all(lib)
    originals = {p: sha(lib.abs(p)) for p in ("a.jpg", "b.jpg", "c.jpg")}
    rep = md.write_metadata(lib, progress=False, options=md.WriteOptions(where="sidecar", sidecar_naming="stem"))
    df = rep.frame().set_index("path")
    assert set(df.index) == {"a.xmp", "b.xmp", "c.xmp"} and set(df["status"]) == {"written"}
    assert {p: sha(lib.abs(p)) for p in originals} == originals
    assert not (lib.root / "b.jpg.xmp").exists()
    m = md.read_metadata(lib.abs("b.jpg"))
    assert m["keywords"] == ["sand", "beach", "dog"] and m["sidecar"].endswith("b.xmp")
    with md._pyexiv2().ImageData((lib.root / "b.xmp").read_bytes()) as img:
        assert img.read_xmp()["Xmp.dc.title"] == {'lang="x-default"': "Dunes"}
    rep = md.write_metadata(lib, progress=False)     # in-file now: c stays read-only, its sidecar is current
    df = rep.frame().set_index(["path", "target"])
    assert df.loc[("a.jpg", "file"), "status"] == "written"
    assert df.loc[("c.xmp", "sidecar"), "status"] == "unchanged"
    assert sha(lib.abs("c.jpg")) == originals["c.jpg"]


def test_read_back_other_apps_keywords_and_ratings(tmp_path):
    lib = make_library(tmp_path / "lib", {"a.jpg": SAMPLE / "mate_Storm.jpg", "b.jpg": SAMPLE / "mate_Dune.jpg"})
    i = ids(lib)
    with md._pyexiv2().ImageData(lib.abs("a.jpg").read_bytes()) as img:   # as digiKam would write it
        img.modify_xmp({"Xmp.digiKam.TagsList": ["Events/bday", "People/Anna"], "Xmp.xmp.Rating": "4",
                        "Xmp.lr.hierarchicalSubject": ["Places|Seaside"]})
        data = img.get_bytes()
    lib.abs("a.jpg").write_bytes(data)
    photolab.index_library(lib, progress=False)
    set_labels(lib, [(i["b.jpg"], "dog", 1)])
    md.write_metadata(lib, progress=False)          # photolab's own keywords are not read back as labels
    df = md.import_metadata(lib, progress=False)
    assert df.loc[i["a.jpg"], "tags"] == "beach;birthday"           # taxonomy order
    assert df.loc[i["a.jpg"], "unknown"] == "Anna"
    assert df.loc[i["a.jpg"], "rating"] == 4
    labels = {(r["photo_id"], r["tag"]): r["who"] for r in lib.catalog.query("SELECT * FROM labels")}
    assert labels == {(i["a.jpg"], "birthday"): "metadata", (i["a.jpg"], "beach"): "metadata",
                      (i["b.jpg"], "dog"): "me"}
    assert lib.catalog.query("SELECT rating, source FROM ratings")[0][:] == (4, "file")


def test_unparsable_xmp_is_never_rewritten_in_place_a_sidecar_carries_the_tags(tmp_path):
    # kde_Kite.jpg's XMP repeats properties, which Exiv2 refuses to parse: rewriting would drop it
    lib = make_library(tmp_path / "lib", {"a.jpg": SAMPLE / "kde_Kite.jpg"})
    label_all(lib)
    before = sha(lib.abs("a.jpg"))
    df = md.write_metadata(lib, progress=False).frame().set_index("target")
    assert df.loc["file", "status"] == "skipped" and "XMP cannot be parsed" in df.loc["file", "reason"]
    assert df.loc["sidecar", "status"] == "written" and df.loc["sidecar", "path"] == "a.jpg.xmp"
    assert sha(lib.abs("a.jpg")) == before
    assert md.read_metadata(lib.abs("a.jpg"))["keywords"] == ["beach", "dog"]


def test_refusals_name_the_reason_and_change_nothing(tmp_path):
    from photolab.core.fileops import Rewrite, rewrite

    lib = make_library(tmp_path / "lib", {"a.jpg": SAMPLE / "mate_Dune.jpg"})
    pid = ids(lib)["a.jpg"]
    label_all(lib)
    data = lib.abs("a.jpg").read_bytes()
    decision = md.decisions_for_writing(lib)[pid]
    new, changes = md.render(data, decision, fmt="JPEG", sidecar=False, options=md.WriteOptions())
    assert new is not None and {"Xmp.dc.subject", "Iptc.Application2.Keywords"} <= set(changes)
    with pytest.raises(md.MetadataError, match="Exiv2 cannot write"):
        md.render(b"not an image at all", decision, fmt="JPEG", sidecar=False, options=md.WriteOptions())
    # the file changed after it was read (another app saved it): not overwritten
    lib.abs("a.jpg").write_bytes(data + b"\0")
    rep = rewrite(lib, [Rewrite("a.jpg", new, hashlib.sha256(data).hexdigest(), pid)], batch="t")
    assert rep.done == 0 and "changed since it was read" in rep.skipped[0][1]
    assert lib.abs("a.jpg").read_bytes() == data + b"\0"


def test_cli_write_metadata_dry_run_and_restore(tmp_path, capsys):
    from photolab.cli import main

    lib = make_library(tmp_path / "lib", {"a.jpg": SAMPLE / "mate_Storm.jpg"})
    label_all(lib)
    before = sha(lib.abs("a.jpg"))
    assert main(["-q", "write-metadata", str(lib.root), "--dry-run"]) == 0
    assert "1 would write" in capsys.readouterr().out and sha(lib.abs("a.jpg")) == before
    assert main(["-q", "write-metadata", str(lib.root), "--both"]) == 0
    out = capsys.readouterr().out
    assert "2 written" in out and (lib.root / "a.jpg.xmp").is_file()
    assert main(["restore", str(lib.root), "a.jpg"]) == 0
    assert sha(lib.abs("a.jpg")) == before
    assert main(["restore", str(lib.root), "missing.jpg"]) == 2
    assert "no earlier version" in capsys.readouterr().err


def test_versions_pruned_to_retention_but_never_below_two(tmp_path):
    from photolab.core.fileops import prune_versions

    lib = make_library(tmp_path / "lib", {"a.jpg": SAMPLE / "mate_Storm.jpg"})
    pid = ids(lib)["a.jpg"]
    for tag in ("dog", "cat", "bird", "horse"):
        set_labels(lib, [(pid, tag, 1)])
        md.write_metadata(lib, progress=False)
    assert len(md.versions(lib, "a.jpg")) == 4
    with lib.catalog.write() as db:
        db.execute("UPDATE versions SET saved_at = '2020-01-01T00:00:00+00:00'")
    assert prune_versions(lib) == 2
    kept = md.versions(lib, "a.jpg")
    assert len(kept) == 2
    assert len(list((lib.state / "versions").glob("*/*"))) == 2
    with pytest.raises(ValueError):
        prune_versions(lib, keep=1)
