import hashlib
import os
from pathlib import Path

import pytest

import photolab
from photolab.stages.gather import GatherError

from conftest import SAMPLE


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): (digest(p), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_gather_copies_verified_into_a_per_source_folder(sample_copy, library):
    before = snapshot(sample_copy)
    report = photolab.gather([sample_copy], library, progress=False)
    photos_in_source = [k for k in before if not k.endswith(".md")]
    assert report.copied == len(photos_in_source) == 19
    assert report.ignored == 1  # ATTRIBUTION.md is not a photo
    assert report.failed == []
    dest = library.root / report.sources[str(sample_copy.resolve())]
    for rel in photos_in_source:
        copy = dest / rel
        assert digest(copy) == before[rel][0]
        assert copy.stat().st_mtime_ns == before[rel][1]  # capture-time fallbacks rely on it
    assert snapshot(sample_copy) == before  # the source is only read
    logged = library.catalog.query("SELECT count(*) FROM gather_log")[0][0]
    assert logged == 19


def test_gather_again_is_idempotent(sample_copy, library):
    photolab.gather([sample_copy], library, progress=False)
    files_after_first = sorted(p for p in library.root.rglob("*") if p.is_file() and ".photolab" not in p.parts)
    again = photolab.gather([sample_copy], library, progress=False)
    assert again.copied == 0 and again.skipped == 19
    assert sorted(p for p in library.root.rglob("*") if p.is_file() and ".photolab" not in p.parts) == files_after_first


def test_changed_source_file_is_copied_again_without_overwriting(sample_copy, library):
    photolab.gather([sample_copy], library, progress=False)
    target = sample_copy / "coffee.png"
    old = digest(target)
    target.write_bytes(target.read_bytes() + b"\0")  # e.g. an edit on the phone
    report = photolab.gather([sample_copy], library, progress=False)
    assert report.copied == 1
    folder = library.root / "sample"
    assert digest(folder / "coffee.png") == old
    assert digest(folder / "coffee_1.png") == digest(target)


def test_two_cards_with_the_same_names_never_collide(tmp_path, library):
    cards = []
    for n in (1, 2):
        dcim = tmp_path / f"card{n}" / "DCIM"
        (dcim / "100CANON").mkdir(parents=True)
        src = SAMPLE / ("kde_Kite.jpg" if n == 1 else "mate_Dune.jpg")
        (dcim / "100CANON" / "IMG_0001.JPG").write_bytes(src.read_bytes())
        cards.append(dcim)
    report = photolab.gather(cards, library, progress=False)
    assert report.copied == 2
    labels = sorted(report.sources.values())
    assert labels == ["DCIM", "DCIM-2"]
    assert digest(library.root / "DCIM" / "100CANON" / "IMG_0001.JPG") == digest(SAMPLE / "kde_Kite.jpg")
    assert digest(library.root / "DCIM-2" / "100CANON" / "IMG_0001.JPG") == digest(SAMPLE / "mate_Dune.jpg")


def test_duplicates_are_kept_and_companions_travel(tmp_path, library):
    phone = tmp_path / "phone"
    phone.mkdir()
    jpg = (SAMPLE / "kde_Path.jpg").read_bytes()
    (phone / "IMG_0001.JPG").write_bytes(jpg)
    (phone / "IMG_0001 copy.JPG").write_bytes(jpg)            # same bytes, kept for dedupe
    (phone / "IMG_0001.JPG.xmp").write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    (phone / "IMG_0001.AAE").write_text("<plist/>")
    (phone / "IMG_0001.MOV").write_bytes(b"\x00\x00\x00\x14ftypqt  " + b"\0" * 64)  # live photo
    (phone / "IMG_0002.CR2").write_bytes(b"II*\x00\x10\x00\x00\x00CR\x02\x00" + b"\0" * 64)
    (phone / "IMG_0002.JPG").write_bytes((SAMPLE / "mate_Wood.jpg").read_bytes())   # RAW+JPEG pair
    (phone / "notes.txt").write_text("not a photo")
    (phone / "orphan.mov").write_bytes(b"\0" * 10)  # a video with no photo: gathered as a clip of its own
    report = photolab.gather([phone], library, progress=False)
    got = sorted(p.name for p in (library.root / "phone").iterdir())
    assert got == sorted(["IMG_0001.JPG", "IMG_0001 copy.JPG", "IMG_0001.JPG.xmp", "IMG_0001.AAE",
                          "IMG_0001.MOV", "IMG_0002.CR2", "IMG_0002.JPG", "orphan.mov"])
    assert report.companions == 3
    assert report.videos == 1
    assert report.ignored == 1


def test_read_only_source_is_only_read(tmp_path, library):
    src = tmp_path / "card"
    src.mkdir()
    (src / "a.jpg").write_bytes((SAMPLE / "kde_Kite.jpg").read_bytes())
    os.chmod(src / "a.jpg", 0o444)
    os.chmod(src, 0o555)
    try:
        before = snapshot(src)
        report = photolab.gather([src], library, progress=False)
        assert report.copied == 1
        assert snapshot(src) == before
        row = library.catalog.query("SELECT read_only FROM sources")[0]
        assert row["read_only"] == int(not os.access(src, os.W_OK))  # root can write anyway
        copy = library.root / "card" / "a.jpg"
        assert os.access(copy, os.W_OK)  # the library copy is ours to work on
    finally:
        os.chmod(src, 0o755)


def test_bad_sources_are_refused_clearly(tmp_path, library):
    with pytest.raises(GatherError, match="not a folder"):
        photolab.gather([tmp_path / "nope"], library, progress=False)
    with pytest.raises(GatherError, match="inside the library"):
        photolab.gather([library.root], library, progress=False)
