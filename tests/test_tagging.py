"""The labeling pass with the real packaged model on the real sample photos."""

import csv
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import refused_connections
from PIL import Image, ImageFilter

import photolab
from photolab.features.backbone import BackboneError, load_backbone
from photolab.stages.tagging import confidence, decisions, export_csv, set_threshold, tag_library

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    return load_backbone()


@pytest.fixture(scope="module")
def tagged(tmp_path_factory, backbone):
    """The sample library, plus a deliberately blurred copy of a sharp photo, tagged once with no sockets."""
    from conftest import SAMPLE, copy_tree

    root = tmp_path_factory.mktemp("tagged")
    src = copy_tree(SAMPLE, root / "src")
    Image.open(src / "kde_Kite.jpg").filter(ImageFilter.GaussianBlur(6)).save(src / "kite_blurred.jpg", quality=92)
    lib = photolab.init_library(root / "lib")
    photolab.gather([src], lib, progress=False)
    photolab.index_library(lib, progress=False)
    with refused_connections() as opened:
        report = tag_library(lib, model=backbone, progress=False)
    assert opened == [], f"network connections attempted: {opened}"
    return lib, report


def test_sample_photos_get_the_right_tags(tagged):
    lib, report = tagged
    assert report.tagged == 20 and report.failed == []
    df = decisions(lib).set_index("path")
    row = lambda name: df.loc[f"src/{name}"]  # noqa: E731
    assert "food" in row("coffee.png").tags.split(";") and row("coffee.png")["confidence:food"] > 0.8
    assert "cat" in row("chelsea.png").tags.split(";") and row("chelsea.png")["confidence:cat"] > 0.5
    assert "dog" in row("pug.heic").tags.split(";")
    assert "blurry" in row("kite_blurred.jpg").tags.split(";")
    assert "blurry" not in row("kde_Kite.jpg").tags.split(";")
    assert row("kde_Kite.jpg")["score:blurry"] < 0.3 < 0.7 < row("kite_blurred.jpg")["score:blurry"]
    # tags nothing scores yet are reported, not invented
    assert set(report.untrained) == {"birthday", "wedding", "party"}
    assert set(report.by_faces) == {"portrait", "group"}
    assert df["score:birthday"].isna().all()
    # the report's counts are the accepted tags of the decisions table
    from_table = {t: int(df.tags.str.split(";").map(lambda ts, t=t: t in ts).sum()) for t in report.tag_counts}
    assert report.tag_counts == from_table and report.tag_counts["dog"] >= 1


def test_features_are_stored_once_for_later_stages(tagged):
    lib, _ = tagged
    rows = lib.catalog.query("SELECT f.*, p.path FROM features f JOIN photos p ON p.id = f.photo_id")
    assert len(rows) == 20
    for r in rows:
        emb = np.frombuffer(r["embedding"], dtype=np.float16)
        assert emb.shape == (1280,) and np.isfinite(emb).all()
        assert len(r["phash"]) == 16 and len(r["dhash"]) == 16
        thumb = lib.state / "features" / r["thumb"]
        with Image.open(thumb) as im:
            assert max(im.size) == 256
    top = {r["path"].split("/")[-1]: r["top5"] for r in rows}
    assert '"n02110958"' in top["pug.heic"]  # pug


def test_second_pass_skips_done_photos(tagged, backbone):
    lib, _ = tagged
    again = tag_library(lib, model=backbone, progress=False)
    assert again.tagged == 0 and again.skipped == 20


def test_export_csv_interface(tagged, tmp_path):
    lib, _ = tagged
    out = export_csv(lib, tmp_path / "tags.csv")
    tax = photolab.load_taxonomy(lib)
    with open(out, newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert header == (["path", "captured_at", "tags"] + [f"score:{t}" for t in tax.names]
                      + [f"confidence:{t}" for t in tax.names])
    df = pd.read_csv(out)
    assert len(df) == 20
    pug = df[df.path == "src/pug.heic"].iloc[0]
    assert pug.captured_at == "2023-02-21T14:33:08.302+03:00"
    assert "dog" in pug.tags.split(";")
    assert 0 <= df["score:dog"].min() and df["score:dog"].max() <= 1
    assert df["score:wedding"].isna().all()


def test_export_csv_streams_the_same_bytes_as_the_pivot(tagged, backbone, tmp_path):
    """The chunked export writes byte for byte what one pandas pivot of every score wrote: labels on top,
    a photo without a capture time, unscored tags, a name that needs quoting, chunks that split the library."""
    import shutil

    from photolab.store.catalog import utcnow

    lib, _ = tagged
    root = tmp_path / "lib"
    shutil.copytree(lib.root, root)
    odd = root / "odd"
    odd.mkdir()
    shutil.copy(root / "src" / "kde_Kite.jpg", odd / 'kite, "the red one".jpg')
    copy = photolab.open_library(root)
    photolab.index_library(copy, progress=False)
    tag_library(copy, model=backbone, progress=False)
    ids = {r["path"].split("/")[-1]: r["id"] for r in copy.catalog.query("SELECT id, path FROM photos")}
    with copy.catalog.write() as db:
        db.execute("UPDATE photos SET captured_at = NULL WHERE id = ?", (ids["pug.heic"],))
        db.execute("INSERT INTO labels VALUES (?, 'dog', 0, 'me', ?)", (ids["pug.heic"], utcnow()))
        db.execute("INSERT INTO labels VALUES (?, 'beach', 1, 'me', ?)", (ids["mate_Dune.jpg"], utcnow()))
        db.execute("UPDATE scores SET score = 0.45 WHERE photo_id = ? AND tag = 'city'", (ids["kde_Kite.jpg"],))
    set_threshold(copy, "city", 0.45)

    def by_pivot(out):
        tax = photolab.load_taxonomy(copy)
        cols = (["path", "captured_at", "tags"] + [f"score:{t}" for t in tax.names]
                + [f"confidence:{t}" for t in tax.names])
        decisions(copy)[cols].to_csv(out, index=False, float_format="%.4f", encoding="utf-8")
        return out

    want = by_pivot(tmp_path / "pivot.csv").read_bytes()
    assert b'"odd/kite, ""the red one"".jpg"' in want and len(want.splitlines()) == 22
    assert export_csv(copy, tmp_path / "one.csv").read_bytes() == want
    assert export_csv(copy, tmp_path / "chunked.csv", chunk=3).read_bytes() == want
    # a later change reaches the export through the score matrix's change log
    with copy.catalog.write() as db:
        db.execute("UPDATE scores SET score = 0.9731 WHERE photo_id = ? AND tag = 'dog'", (ids["kde_Kite.jpg"],))
        db.execute("DELETE FROM photos WHERE id = ?", (ids["kde_Path.jpg"],))
    assert export_csv(copy, tmp_path / "later.csv", chunk=7).read_bytes() == by_pivot(tmp_path / "p2.csv").read_bytes()
    copy.close()


def test_confidence_definition():
    assert confidence(0.5, 0.5) == 0
    assert confidence(1.0, 0.5) == 1 and confidence(0.0, 0.5) == 1
    assert confidence(0.75, 0.5) == pytest.approx(0.5)
    assert confidence(0.2, 0.4) == pytest.approx(0.5)


def test_user_checkpoint_file_is_loaded(tmp_path, backbone):
    import torch
    from safetensors.torch import save_file

    # a user's own fine-tuned checkpoint: the packaged weights with a changed classifier bias
    state = {k: v.clone().contiguous() for k, v in backbone.model.state_dict().items()}
    state["classifier.bias"][285] += 30.0  # Egyptian cat wins everything
    ckpt = tmp_path / "mine.safetensors"
    save_file(state, str(ckpt))
    mine = load_backbone(name="tf_efficientnet_lite0", checkpoint=ckpt)
    assert mine.version.startswith("tf_efficientnet_lite0:") and mine.version != backbone.version
    x = torch.zeros(1, 3, 224, 224)
    with torch.no_grad():
        assert int(mine.model(x).argmax()) == 285
    with pytest.raises(BackboneError, match="not found"):
        load_backbone(checkpoint=tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(BackboneError, match="junk.pth"):
        load_backbone(checkpoint=tmp_path / "junk.pth")
    with pytest.raises(BackboneError, match="never downloads|no packaged weights"):
        load_backbone(name="resnet18")


def test_onnx_engine_matches_torch_on_real_photos(backbone):
    from conftest import SAMPLE

    from photolab.features.backbone import engine
    from photolab.stages.tagging import _prepare

    x = np.stack([_prepare(SAMPLE / name, "photo", backbone.input_size, backbone.crop_pct, backbone.mean,
                           backbone.std)[0] for name in ("coffee.png", "chelsea.png", "kde_Kite.jpg")])
    onnx = engine(backbone, runtime="onnx")
    torch_run = engine(backbone, runtime="torch")
    assert onnx.runtime == "onnxruntime" and torch_run.runtime == "torch"
    (e1, p1), (e2, p2) = onnx(x), torch_run(x)
    assert e1.shape == (3, 1280) and p1.shape == (3, 1000)
    assert np.abs(e1 - e2).max() < 1e-3 and np.abs(p1 - p2).max() < 1e-4
    assert (p1.argmax(1) == p2.argmax(1)).all()
    with pytest.raises(ValueError, match="runtime"):
        engine(backbone, runtime="tensorrt")


def test_pass_records_runtime_and_hashes_of_every_orientation(tagged):
    import json

    lib, _ = tagged
    run = lib.catalog.query("SELECT report FROM runs WHERE stage = 'tag' ORDER BY id LIMIT 1")[0][0]
    assert json.loads(run)["runtime"] == "onnxruntime"
    for r in lib.catalog.query("SELECT phash, phash8, dhash8 FROM features"):
        p8, d8 = r["phash8"].split(","), r["dhash8"].split(",")
        assert len(p8) == len(d8) == 8 and p8[0] == r["phash"]
        assert all(len(h) == 16 for h in p8 + d8)


def test_a_persons_labels_decide_over_scores_everywhere(tagged):
    """decisions (the CSV), tag_counts and accepted_tags agree once a person has corrected tags."""
    from photolab.store.catalog import utcnow
    from photolab.stages.tagging import accepted_tags, tag_counts

    lib, _ = tagged
    ids = {r["path"].split("/")[-1]: r["id"] for r in lib.catalog.query("SELECT id, path FROM photos")}
    with lib.catalog.write() as db:
        db.execute("INSERT INTO labels VALUES (?, 'dog', 0, 'me', ?)", (ids["pug.heic"], utcnow()))
        db.execute("INSERT INTO labels VALUES (?, 'beach', 1, 'me', ?)", (ids["mate_Dune.jpg"], utcnow()))
    try:
        df = decisions(lib).set_index("path")
        assert "dog" not in df.loc["src/pug.heic", "tags"].split(";")
        assert "beach" in df.loc["src/mate_Dune.jpg", "tags"].split(";")
        from_table = {t: int(df.tags.str.split(";").map(lambda ts, t=t: t in ts).sum()) for t in tag_counts(lib)}
        assert tag_counts(lib) == from_table
        assert "dog" not in accepted_tags(lib).get(ids["pug.heic"], set())
    finally:
        with lib.catalog.write() as db:
            db.execute("DELETE FROM labels")


def test_libraries_share_the_user_model_cache(tmp_path, monkeypatch):
    """The converted weights and the checked ONNX export live in the per-user cache: a second library reuses
    them (nothing converted or exported again, nothing under its .photolab/models), a damaged export is made
    again, and a cache that cannot be written falls back to the library's own folder."""
    from conftest import SAMPLE

    from photolab.features.backbone import engine, user_cache_dir

    cache = tmp_path / "cache"
    monkeypatch.setenv("PHOTOLAB_CACHE_DIR", str(cache))
    assert user_cache_dir() == cache

    def fresh(name):
        lib = photolab.init_library(tmp_path / name)
        (lib.root / "photos").mkdir()
        shutil.copy(SAMPLE / "chelsea.png", lib.root / "photos" / "chelsea.png")
        photolab.index_library(lib, progress=False)
        return lib

    first = fresh("one")
    assert tag_library(first, progress=False).tagged == 1
    made = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert any(n.endswith(".safetensors") for n in made) and any(n.endswith(".onnx") for n in made)
    second = fresh("two")
    assert tag_library(second, progress=False).tagged == 1
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == made
    assert not (second.state / "models" / "backbone").exists()
    # a damaged export (a kill or a full disk while it was written) is made again, not fatal
    onnx = next(cache.glob("*.onnx"))
    onnx.write_bytes(b"not a model")
    bb = load_backbone()
    run = engine(bb)
    assert run.runtime == "onnxruntime" and onnx.stat().st_size > 1000
    # a cache that cannot be written: the library's own folder
    monkeypatch.setenv("PHOTOLAB_CACHE_DIR", str(SAMPLE / "chelsea.png" / "cache"))
    third = fresh("three")
    assert tag_library(third, progress=False).tagged == 1
    assert list((third.state / "models" / "backbone").glob("*.safetensors"))
