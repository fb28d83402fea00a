"""Phone and camera videos: gathered, indexed from their containers, tagged from a poster frame,
de-duplicated, organized beside their photos, with keywords in sidecars. Every clip here is a real
file made by a real encoder (FFmpeg, through PyAV), plus ExifTool's QuickTime.mov sample."""

from __future__ import annotations

import datetime as _dt
import hashlib
import shutil
from pathlib import Path

import pytest

import photolab
from photolab.features.video import parse_iso6709

from conftest import SAMPLE, SHARED
from videos import make_clip, reencode

QUICKTIME_MOV = SHARED / "metadata_edge" / "exiftool" / "QuickTime.mov"
ROME = {"location": "+41.8902+012.4922/"}


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def tree(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): digest(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and ".photolab" not in p.relative_to(folder).parts}


def phone_dump(root: Path, *, with_shared: bool = True) -> Path:
    """A phone's DCIM as a user copies it: photos, live-photo pairs, standalone clips (with and
    without their own dates), a clip's sidecar, a damaged clip and a text file named .mp4."""
    cam = root / "phone" / "DCIM" / "100APPLE"
    cam.mkdir(parents=True)
    shutil.copy(SAMPLE / "kde_ColorfulCups.jpg", cam / "IMG_0001.JPG")         # taken 2014-04-29 14:25:26
    shutil.copy(SAMPLE / "pug.heic", cam / "IMG_0002.HEIC")                     # a live photo ...
    make_clip(cam / "IMG_0002.MOV", seconds=1.5, image=SAMPLE / "pug.heic",    # ... and its motion half
              metadata={"com.apple.quicktime.creationdate": "2023-02-21T14:33:07+0300"})
    shutil.copy(SAMPLE / "kde_Kite.jpg", cam / "IMG_0003.JPG")
    (cam / "IMG_0003.JPG.xmp").write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    # an iPhone clip the same afternoon as IMG_0001: local time with its offset, GPS in ISO 6709
    make_clip(cam / "IMG_0004.MOV", image=SAMPLE / "kde_ColorfulCups.jpg",
              metadata={"com.apple.quicktime.creationdate": "2014-04-29T15:10:00+0200",
                        "com.apple.quicktime.location.ISO6709": "+43.4633+011.8807+120.000/",
                        "com.apple.quicktime.make": "Apple", "com.apple.quicktime.model": "iPhone 5s"})
    # an Android/camera clip: MP4 creation_time (UTC) and the ©xyz location
    make_clip(cam / "VID_20200705_101500.mp4", image=SAMPLE / "kde_Kite.jpg",
              metadata={"creation_time": "2020-07-05T08:15:00Z", **ROME})
    (cam / "VID_20200705_101500.xmp").write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    # a clip with no date of its own: the file name's date is used
    make_clip(cam / "VID_20190102_101112.3gp", image=SAMPLE / "mate_Dune.jpg", size=(176, 144))
    # a camera's Matroska clip
    make_clip(cam / "MVI_0007.mkv", image=SAMPLE / "mate_Wood.jpg",
              metadata={"creation_time": "2018-03-04T12:00:00Z"})
    # damaged: a clip cut off by an interrupted copy; a text file named as a video
    good = make_clip(root / "whole.mp4", seconds=3, image=SAMPLE / "mate_Storm.jpg",
                     metadata={"creation_time": "2021-01-01T10:00:00Z"})
    (cam / "IMG_0009.MP4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    good.unlink()
    (cam / "fake.mp4").write_text("this is a text file, not a video\n" * 20)
    if with_shared and QUICKTIME_MOV.is_file():
        shutil.copy(QUICKTIME_MOV, cam / "QuickTime.mov")
        (cam / "QuickTime.mov").chmod(0o644)
    (cam / "notes.txt").write_text("not a photo")
    return root / "phone"


STANDALONE = ["IMG_0004.MOV", "VID_20200705_101500.mp4", "VID_20190102_101112.3gp", "MVI_0007.mkv",
              "IMG_0009.MP4", "fake.mp4"]


def rows_by_name(lib) -> dict:
    return {r["path"].rsplit("/", 1)[-1]: dict(r) for r in lib.catalog.query("SELECT * FROM photos")}


# -- gather -------------------------------------------------------------------
def test_phone_dump_gathers_completely_and_idempotently(tmp_path, library):
    src = phone_dump(tmp_path)              # with ExifTool's QuickTime.mov when ../shared is there
    clips = len(STANDALONE) + (src / "DCIM" / "100APPLE" / "QuickTime.mov").is_file()
    before = tree(src)
    report = photolab.gather([src], library, progress=False)
    assert report.failed == []
    assert report.videos == clips
    assert report.companions == 3           # the live photo's .MOV, two sidecars
    assert report.ignored == 1              # notes.txt
    assert report.copied == 3 + clips + 3
    dest = library.root / report.sources[str(src.resolve())]
    assert tree(dest) == {k: v for k, v in before.items() if not k.endswith("notes.txt")}
    assert tree(src) == before              # the source is only read
    again = photolab.gather([src], library, progress=False)
    assert (again.copied, again.skipped) == (0, report.copied)
    assert f"{clips} videos" in report.summary()


def test_gather_keeps_a_live_photo_movie_a_companion(tmp_path, library):
    src = tmp_path / "card"
    src.mkdir()
    shutil.copy(SAMPLE / "pug.heic", src / "IMG_0002.HEIC")
    make_clip(src / "IMG_0002.MOV", seconds=1)
    make_clip(src / "IMG_0003.MOV", seconds=1)        # no photo of that name: a clip of its own
    report = photolab.gather([src], library, progress=False)
    assert (report.copied, report.companions, report.videos) == (3, 1, 1)
    photolab.index_library(library, progress=False)
    kinds = {n: r["kind"] for n, r in rows_by_name(library).items()}
    assert kinds == {"IMG_0002.HEIC": "photo", "IMG_0002.MOV": "live", "IMG_0003.MOV": "video"}
    # a catalog from before live companions were told apart: the motion half was a clip, and a pass gave it
    # features and scores; the next index makes it a companion again and drops what the pass made of it
    mov = rows_by_name(library)["IMG_0002.MOV"]["id"]
    with library.catalog.write() as db:
        db.execute("UPDATE photos SET kind = 'video' WHERE id = ?", (mov,))
        db.execute("INSERT INTO features(photo_id, model, embedding, top5, computed_at) VALUES (?, 'm', x'00', '[]', 'x')",
                   (mov,))
        db.execute("INSERT INTO scores(photo_id, tag, score, source, model) VALUES (?, 'dog', 0.9, 'prior', 'm')",
                   (mov,))
    photolab.index_library(library, progress=False)
    assert rows_by_name(library)["IMG_0002.MOV"]["kind"] == "live"
    assert not library.catalog.query("SELECT 1 FROM features WHERE photo_id = ?", (mov,))
    # an index of a few named files (a watched import's) leaves the companions of other folders as they are,
    # and tells a new live pair apart from the photos already beside it
    other = library.root / "later"
    other.mkdir()
    make_clip(other / "IMG_0002.MOV", seconds=1)   # no photo beside it in this folder: a clip
    photolab.index_library(library, progress=False, paths=["later/IMG_0002.MOV"])
    kinds = {r["path"]: r["kind"] for r in library.catalog.query("SELECT path, kind FROM photos")}
    assert kinds["later/IMG_0002.MOV"] == "video" and kinds[rows_by_name(library)["IMG_0002.HEIC"]["path"]
                                                               .replace(".HEIC", ".MOV")] == "live"
    shutil.copy(SAMPLE / "pug.heic", other / "IMG_0002.HEIC")   # its photo arrives: the clip is its motion half
    photolab.index_library(library, progress=False, paths=["later/IMG_0002.HEIC"])
    assert {r["path"]: r["kind"] for r in library.catalog.query("SELECT path, kind FROM photos")}[
        "later/IMG_0002.MOV"] == "live"
    assert not library.catalog.query("SELECT 1 FROM scores WHERE photo_id = ?", (mov,))


# -- index --------------------------------------------------------------------
def test_each_clip_gets_its_capture_time_source_and_facts(tmp_path, library):
    src = phone_dump(tmp_path, with_shared=False)
    photolab.gather([src], library, progress=False)
    report = photolab.index_library(library, progress=False)
    rows = rows_by_name(library)

    ip = rows["IMG_0004.MOV"]
    assert (ip["kind"], ip["status"], ip["format"], ip["codec"]) == ("video", "ok", "MOV", "h264")
    assert (ip["width"], ip["height"]) == (160, 120)
    assert ip["duration"] == pytest.approx(2.0, abs=0.11)
    assert (ip["captured_at"], ip["captured_source"]) == ("2014-04-29T15:10:00+02:00", "CreationDate")
    assert (ip["gps_lat"], ip["gps_lon"], ip["gps_alt"]) == (43.4633, 11.8807, 120.0)
    assert (ip["camera_make"], ip["camera_model"]) == ("Apple", "iPhone 5s")

    vid = rows["VID_20200705_101500.mp4"]
    utc = _dt.datetime(2020, 7, 5, 8, 15, tzinfo=_dt.timezone.utc).astimezone()
    assert (vid["kind"], vid["status"], vid["format"]) == ("video", "ok", "MP4")
    assert vid["captured_at"] == utc.isoformat(timespec="seconds")
    assert vid["captured_source"] == "CreateDate"
    assert (vid["gps_lat"], vid["gps_lon"]) == (41.8902, 12.4922)

    gp = rows["VID_20190102_101112.3gp"]
    assert (gp["status"], gp["format"], gp["width"], gp["height"]) == ("ok", "3GP", 176, 144)
    assert (gp["captured_at"], gp["captured_source"]) == ("2019-01-02T10:11:12", "FileName")

    mkv = rows["MVI_0007.mkv"]
    assert (mkv["status"], mkv["format"], mkv["captured_source"]) == ("ok", "MATROSKA", "CreateDate")
    assert mkv["captured_at"].startswith(
        _dt.datetime(2018, 3, 4, 12, tzinfo=_dt.timezone.utc).astimezone().isoformat()[:10])

    cut = rows["IMG_0009.MP4"]
    assert cut["status"] == "corrupt" and "not a readable video" in cut["error"]
    assert cut["captured_source"] == "FileModifyDate"
    fake = rows["fake.mp4"]
    assert (fake["kind"], fake["status"]) == ("video", "corrupt")
    assert fake["error"].startswith("named as video (.mp4) but content is text")
    live = rows["IMG_0002.MOV"]
    assert (live["kind"], live["captured_source"]) == ("live", "CreationDate")
    assert report.by_status["corrupt"] == 2
    assert {p for p, _, _ in report.problems} >= {r["path"] for r in (cut, fake)}


def test_exiftool_quicktime_sample(tmp_path, library, shared_data):
    src = tmp_path / "cam"
    src.mkdir()
    shutil.copy(shared_data / "metadata_edge" / "exiftool" / "QuickTime.mov", src / "QuickTime.mov")
    (src / "QuickTime.mov").chmod(0o644)
    photolab.gather([src], library, progress=False)
    photolab.index_library(library, progress=False)
    row = rows_by_name(library)["QuickTime.mov"]
    # a Pentax movie header (2005-08-11 14:03:54, UTC) with 320x240 Motion JPEG and no frame data
    assert (row["kind"], row["format"], row["codec"], row["width"], row["height"]) == (
        "video", "MOV", "mjpeg", 320, 240)
    assert row["captured_source"] == "CreateDate"
    assert row["captured_at"] == _dt.datetime(2005, 8, 11, 14, 3, 54, tzinfo=_dt.timezone.utc
                                              ).astimezone().isoformat(timespec="seconds")
    assert row["status"] == "corrupt" and "no video data" in row["error"]


def test_reindex_is_incremental_for_videos(tmp_path, library):
    src = tmp_path / "cam"
    src.mkdir()
    make_clip(src / "a.mp4", metadata={"creation_time": "2020-07-05T08:15:00Z"})
    photolab.gather([src], library, progress=False)
    first = photolab.index_library(library, progress=False)
    again = photolab.index_library(library, progress=False)
    assert (first.read, again.read, again.unchanged) == (1, 0, 1)


def test_a_gathered_clip_is_not_read_again_for_its_checksum(tmp_path, library, monkeypatch):
    """gather's verified copy already knows the clip's SHA-256: the index reads only its header then. A clip
    changed after the copy (newer than it), or placed in the library by hand, is hashed as before."""
    import os

    from photolab.stages import index as index_mod

    src = tmp_path / "cam"
    src.mkdir()
    for name in ("a.mp4", "b.mp4"):
        make_clip(src / name, metadata={"creation_time": "2020-07-05T08:15:00Z"})
        os.utime(src / name, ns=(1_600_000_000 * 10**9, 1_600_000_000 * 10**9))   # as a camera's file: older
    photolab.gather([src], library, progress=False)
    hand = library.root / "by-hand.mp4"
    shutil.copy(src / "a.mp4", hand)
    os.utime(hand, ns=(1_600_000_000 * 10**9, 1_600_000_000 * 10**9))
    edited = next(library.root.rglob("b.mp4"))
    with edited.open("r+b") as fh:   # changed after the copy, same size: gather's checksum no longer holds
        fh.seek(-64, os.SEEK_END)
        fh.write(bytes(64))
    hashed = []
    real = index_mod.sha256_file
    monkeypatch.setattr(index_mod, "sha256_file", lambda p, *a, **k: hashed.append(Path(p).name) or real(p, *a, **k))
    photolab.index_library(library, progress=False)
    assert sorted(hashed) == ["b.mp4", "by-hand.mp4"]
    rows = {Path(r["path"]).name: r["sha256"] for r in library.catalog.query("SELECT path, sha256 FROM photos")}
    assert rows["a.mp4"] == digest(next(library.root.rglob("a.mp4"))) == rows["by-hand.mp4"]
    assert rows["b.mp4"] == digest(edited)


@pytest.mark.parametrize("ext", ["mts", "m2ts", "mkv", "mp4"])
@pytest.mark.parametrize("seconds, gop", [(1, None), (5, 25), (20, 50)])
def test_poster_frame_at_a_tenth_in_every_container(tmp_path, ext, seconds, gop):
    """MPEG-TS has no index: a seek can land past the keyframe before the moment (nothing decodes) or on a
    later one. The poster still comes from 10 % of the clip, never a 'corrupt' verdict for a good clip."""
    from photolab.features.video import poster_frame

    clip = make_clip(tmp_path / f"clip.{ext}", seconds=seconds, fps=10, gop=gop)
    stats: dict = {}
    im = poster_frame(clip, stats=stats)
    assert im.size == (160, 120)
    assert abs(stats["time"] - 0.1 * seconds) <= 0.11, stats


def test_iso6709():
    assert parse_iso6709("+43.4633+011.8807+120.000/") == (43.4633, 11.8807, 120.0)
    assert parse_iso6709("-33.8688+151.2093/") == (-33.8688, 151.2093, None)
    assert parse_iso6709("+00.0000+000.0000/") is None
    assert parse_iso6709("garbage") is None


# -- poster frame: thumbnail, embedding, hashes, tags -------------------------
def test_poster_frame_is_one_seek_and_a_few_frames(tmp_path):
    from photolab.features.video import poster_frame

    clip = make_clip(tmp_path / "long.mp4", seconds=60, fps=10, gop=20, image=SAMPLE / "kde_Kite.jpg")
    stats: dict = {}
    im = poster_frame(clip, stats=stats)
    assert im.mode == "RGB" and im.size == (160, 120)
    assert stats["time"] == pytest.approx(6.0, abs=0.11)      # 10 % of 60 s
    assert stats["decoded"] <= 20                              # from the keyframe before it: never all 600
    assert stats["bytes"] < clip.stat().st_size / 5


def test_poster_frame_of_a_clip_held_upright_is_upright(tmp_path):
    import numpy as np
    from PIL import Image

    from photolab.features.video import poster_frame

    # the sensor's frame is landscape with a bright band on its left; the display matrix turns it
    # 90° counter-clockwise (ExifTool: Rotation 270), so the band is at the bottom when shown
    still = tmp_path / "band.png"
    arr = np.full((120, 160, 3), 30, np.uint8)
    arr[:, :40] = 230
    Image.fromarray(arr).save(still)
    clip = make_clip(tmp_path / "portrait.mp4", seconds=1, image=still, pan=0.0, rotation=90)
    im = np.asarray(poster_frame(clip).convert("L"), dtype=float)
    assert im.shape == (160, 120)                       # portrait, as a player shows it
    assert im[-30:].mean() > 180 and im[:100].mean() < 60


@pytest.mark.slow
def test_videos_get_features_tags_and_show_with_the_photos(tmp_path, library):
    from photolab.stages.tagging import decisions

    src = phone_dump(tmp_path, with_shared=False)
    photolab.gather([src], library, progress=False)
    photolab.index_library(library, progress=False)
    report = photolab.tag_library(library, progress=False)
    rows = library.catalog.query(
        "SELECT p.path, p.kind, f.phash, f.phash8, f.thumb, f.embedding FROM photos p "
        "JOIN features f ON f.photo_id = p.id")
    got = {r["path"].rsplit("/", 1)[-1]: r for r in rows}
    clips = {"IMG_0004.MOV", "VID_20200705_101500.mp4", "VID_20190102_101112.3gp", "MVI_0007.mkv"}
    assert clips <= set(got)
    assert "IMG_0002.MOV" not in got          # a live photo's motion half is not a clip of its own
    for name in clips:
        r = got[name]
        assert r["kind"] == "video" and len(r["phash"]) == 16 and len(r["phash8"].split(",")) == 8
        assert (library.state / "features" / r["thumb"]).is_file()
    assert report.failed == []                 # damaged clips were never usable: not tried
    dec = decisions(library)
    assert clips <= {p.rsplit("/", 1)[-1] for p in dec["path"]}
    scored = library.catalog.query("SELECT count(*) FROM scores s JOIN photos p ON p.id = s.photo_id "
                                   "WHERE p.kind = 'video'")[0][0]
    assert scored > 0


# -- dedupe -------------------------------------------------------------------
@pytest.mark.slow
def test_clips_deduplicated_among_themselves_never_against_photos(tmp_path, library):
    from photolab.stages import dedupe
    from photolab.features.video import poster_frame

    src = tmp_path / "cam"
    src.mkdir()
    meta = {"creation_time": "2021-06-14T09:30:00Z", **ROME}
    a = make_clip(src / "VID_A.mp4", seconds=5, size=(320, 240), image=SAMPLE / "kde_Kite.jpg", metadata=meta)
    reencode(a, src / "VID_A whatsapp.mp4", size=(192, 144), crf=34)            # a messenger's re-encode
    reencode(a, src / "VID_A trimmed.mp4", crf=23, trim_end=0.09)              # a trimmed export (-1.8 %)
    shutil.copy(a, src / "VID_A copy.mp4")                                      # the same bytes
    reencode(a, src / "VID_A cut.mp4", crf=23, trim_end=1.0)                   # cut by a fifth: another clip
    make_clip(src / "VID_B.mp4", seconds=5, size=(320, 240), image=SAMPLE / "mate_Dune.jpg", metadata=meta)
    poster_frame(a).save(src / "VID_A poster.jpg", quality=92)                 # a still of the same frame
    photolab.gather([src], library, progress=False)
    photolab.index_library(library, progress=False)
    photolab.tag_library(library, progress=False)
    plan = dedupe.plan(library)
    groups = {g: set(p.rsplit("/", 1)[-1] for p in sub["path"]) for g, sub in plan.groupby("group")}
    assert list(groups.values()) == [{"VID_A.mp4", "VID_A whatsapp.mp4", "VID_A trimmed.mp4", "VID_A copy.mp4"}]
    by_name = {p.rsplit("/", 1)[-1]: r for p, r in zip(plan["path"], plan.to_dict("records"))}
    same = [by_name[n] for n in ("VID_A.mp4", "VID_A copy.mp4")]
    assert sorted((r["keep"], r["tier"]) for r in same)[0] == (False, "exact")   # the same bytes as the keeper
    assert by_name["VID_A whatsapp.mp4"]["tier"] == "near" and "poster pHash" in by_name["VID_A whatsapp.mp4"]["reason"]
    assert by_name["VID_A trimmed.mp4"]["tier"] == "near"
    keeper = plan[plan["keep"]]["path"].iloc[0].rsplit("/", 1)[-1]
    assert keeper in ("VID_A.mp4", "VID_A copy.mp4")                            # full size, full length
    assert "320x240 MP4 H264 5.0 s" in plan[plan["keep"]]["reason"].iloc[0]
    # the check of one new clip against the library (as a watched import makes it) names the same tiers
    ids = {p.rsplit("/", 1)[-1]: i for i, p in library.catalog.query("SELECT id, path FROM photos")}
    scoped = dedupe.plan(library, only=[ids["VID_A whatsapp.mp4"]])
    tiers = {p.rsplit("/", 1)[-1]: t for p, t in zip(scoped["path"], scoped["tier"])}
    assert sorted(tiers[n] for n in ("VID_A.mp4", "VID_A copy.mp4"))[0] == "exact"
    before = tree(library.root)
    report = dedupe.apply(library, plan, progress=False)
    assert report.done == 3
    assert not (library.root / "cam" / "VID_A whatsapp.mp4").exists()
    dedupe.restore(library, report.batch)
    assert tree(library.root) == before


# -- organize -----------------------------------------------------------------
def _organized_library(tmp_path, library):
    src = phone_dump(tmp_path, with_shared=False)
    photolab.gather([src], library, progress=False)
    photolab.index_library(library, progress=False)
    return library


def test_organize_files_clips_beside_the_photos_of_the_same_day_and_undo(tmp_path, library):
    from photolab.stages import organize

    lib = _organized_library(tmp_path, library)
    before = tree(lib.root)
    plan = organize.plan(lib)
    target = {s.rsplit("/", 1)[-1]: t for s, t in zip(plan["source"], plan["target"])}
    folder = {n: t.rsplit("/", 1)[0] for n, t in target.items()}
    # the iPhone clip of that afternoon (15:10+02:00 wall clock) joins the photo of 14:25
    assert folder["IMG_0004.MOV"] == folder["IMG_0001.JPG"]
    assert folder["IMG_0004.MOV"].startswith("2014/04/2014-04-29")
    # a live photo's motion half stays with its photo; a clip's sidecar travels with the clip
    assert target["IMG_0002.MOV"] == folder["IMG_0002.HEIC"] + "/IMG_0002.MOV"
    assert folder["VID_20200705_101500.xmp"] == folder["VID_20200705_101500.mp4"]
    assert folder["VID_20190102_101112.3gp"].startswith("2019/01/2019-01-02")
    roles = dict(zip(plan["source"].str.rsplit("/", n=1).str[-1], plan["role"]))
    assert roles["IMG_0004.MOV"] == "photo" and roles["IMG_0002.MOV"] == "companion"
    kept = dict(plan.kept)
    assert all(kept[p].startswith("not organized: status corrupt") for p in kept if p.endswith((".MP4", "fake.mp4")))
    report = organize.apply(lib, plan, progress=False)
    assert report.done == len(plan) and not report.skipped
    assert (lib.root / folder["IMG_0004.MOV"] / "IMG_0004.MOV").is_file()
    organize.undo(lib, report.batch)
    assert tree(lib.root) == before


def test_kind_video_rule(tmp_path, library):
    from photolab.stages import organize

    lib = _organized_library(tmp_path, library)
    rules = organize.parse_rules("kind:video -> Videos/{year}\n* -> {year}/{month:02}")
    plan = organize.plan(lib, rules=rules)
    target = {s.rsplit("/", 1)[-1]: t for s, t in zip(plan["source"], plan["target"])}
    assert target["IMG_0004.MOV"] == "Videos/2014/IMG_0004.MOV"
    assert target["VID_20200705_101500.xmp"] == "Videos/2020/VID_20200705_101500.xmp"
    assert target["IMG_0002.MOV"] == "2023/02/IMG_0002.MOV"        # a live photo's half goes with its photo
    assert target["IMG_0001.JPG"] == "2014/04/IMG_0001.JPG"
    with pytest.raises(organize.RulesError, match="kind is one of photo, raw, video"):
        organize.parse_rules("kind:movie -> Movies")
    organize.parse_rules("kind:sidecar -> Sidecars\n* -> {year}")   # rules files from before videos still load


# -- metadata -----------------------------------------------------------------
LIGHTROOM_SIDECAR = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
   <dc:subject><rdf:Bag><rdf:li>holiday</rdf:li></rdf:Bag></dc:subject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
"""


def test_keywords_of_a_clip_go_only_into_its_sidecar(tmp_path, library):
    from photolab.stages.metadata import read_metadata, write_metadata
    from photolab.stages.tagging import set_labels

    src = tmp_path / "cam"
    src.mkdir()
    make_clip(src / "VID_20200705_101500.mp4", image=SAMPLE / "kde_Kite.jpg",
              metadata={"creation_time": "2020-07-05T08:15:00Z", **ROME})
    make_clip(src / "beach.mov", image=SAMPLE / "mate_Dune.jpg")
    (src / "beach.xmp").write_text(LIGHTROOM_SIDECAR)                              # keyword "holiday" already
    photolab.gather([src], library, progress=False)
    photolab.index_library(library, progress=False)
    ids = {r["path"].rsplit("/", 1)[-1]: r["id"] for r in library.catalog.query("SELECT id, path FROM photos")}
    set_labels(library, [(ids["VID_20200705_101500.mp4"], "beach", 1), (ids["beach.mov"], "beach", 1)])
    clips = {n: digest(library.root / "cam" / n) for n in ("VID_20200705_101500.mp4", "beach.mov")}
    report = write_metadata(library, progress=False)
    df = report.frame()
    assert set(df["target"]) == {"sidecar"}
    assert set(df["status"]) == {"written"}
    assert {p.rsplit("/", 1)[-1] for p in df["path"]} == {"VID_20200705_101500.mp4.xmp", "beach.xmp"}
    for name, sha in clips.items():
        assert digest(library.root / "cam" / name) == sha          # the containers are untouched
        assert "beach" in read_metadata(library.root / "cam" / name)["keywords"]
    assert not (library.root / "cam" / "beach.mov.xmp").exists()    # the existing sidecar was updated
    assert "holiday" in read_metadata(library.root / "cam" / "beach.mov")["keywords"]
    # asked to write into the files too: a video still gets its sidecar only
    from photolab.stages.metadata import WriteOptions

    set_labels(library, [(ids["beach.mov"], "sunset", 1)])
    again = write_metadata(library, options=WriteOptions(where="both"), progress=False).frame()
    assert set(again["target"]) == {"sidecar"}
    assert digest(library.root / "cam" / "beach.mov") == clips["beach.mov"]
    assert "sunset" in read_metadata(library.root / "cam" / "beach.mov")["keywords"]
