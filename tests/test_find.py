"""find: the query language on the bundled sample photos, tagged once (real model, real files)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

import photolab
from photolab.stages import query as Q
from photolab.stages.search import AlbumError, find, link_into
from photolab.stages.query import QueryError


def names(df) -> set[str]:
    return {Path(p).name for p in df["path"]}


@pytest.fixture(scope="module")
def backbone():
    """The packaged model, loaded once for this module (converted weights in the user cache)."""
    from photolab.features.backbone import load_backbone

    return load_backbone()


@pytest.fixture(scope="module")
def lib(tmp_path_factory, backbone):
    """sample_data as a library: indexed, tagged, places looked up, the astronaut's face named, two ratings."""
    from conftest import SAMPLE, copy_tree

    from photolab.stages.faces import name_faces, scan_faces
    from photolab.stages.metadata import set_rating
    from photolab.stages.places import suggest_places

    root = copy_tree(SAMPLE, tmp_path_factory.mktemp("find") / "lib")
    lib = photolab.init_library(root)
    photolab.index_library(lib, progress=False)
    photolab.tag_library(lib, model=backbone, progress=False)
    suggest_places(lib)
    ids = {r["path"]: r["id"] for r in lib.catalog.query("SELECT id, path FROM photos")}
    scan_faces(lib, [ids["astronaut.png"], ids["chelsea.png"]], progress=False)
    face = lib.catalog.query("SELECT id FROM faces WHERE photo_id = ?", (ids["astronaut.png"],))
    name_faces(lib, [face[0]["id"]], "Eileen Collins")
    set_rating(lib, ids["kde_Kite.jpg"], 5)
    set_rating(lib, ids["mate_Dune.jpg"], 3)
    set_rating(lib, ids["coffee.png"], 1)
    lib.ids = ids
    yield lib
    lib.close()


def expected_tag(lib, tag: str) -> set[str]:
    """Photos with ``tag`` accepted, as the tagging stage decides it (the reference find must agree with)."""
    from photolab.stages.tagging import accepted_tags

    acc = accepted_tags(lib)
    by_id = {v: k for k, v in lib.ids.items()}
    return {Path(by_id[pid]).name for pid, tags in acc.items() if tag in tags}


def test_tag_queries_match_the_accepted_tags(lib):
    dogs = expected_tag(lib, "dog")
    assert dogs == {"pug.heic", "empty_icc.heic"}           # the two pug photos of the sample
    assert names(find(lib, "dog")) == dogs
    assert names(find(lib, "tag:dogs")) == dogs             # an alias
    assert names(find(lib, "puppy")) == dogs                # another alias
    df = find(lib, "dog")
    assert list(df.columns) == ["photo_id", "path", "why", "score", "captured_at"]
    assert all(w.startswith("tag dog ") for w in df["why"])
    assert list(df["score"]) == sorted(df["score"], reverse=True)


def test_not_and_or(lib):
    everything = names(find(lib, "date:1900..", limit=None))
    cats, dogs = expected_tag(lib, "cat"), expected_tag(lib, "dog")
    assert cats == {"chelsea.png"}
    assert names(find(lib, "cat OR dog")) == cats | dogs
    assert names(find(lib, "-dog", limit=None)) == everything - dogs
    assert names(find(lib, "NOT dog", limit=None)) == everything - dogs
    assert names(find(lib, "(cat OR dog) -cat")) == dogs
    assert names(find(lib, "(cat OR dog) AND NOT tag:cat")) == dogs
    assert names(find(lib, "dog cat")) == set()


def test_person(lib):
    assert names(find(lib, "person:Eileen Collins")) == {"astronaut.png"}   # one known name, unquoted
    assert names(find(lib, 'person:"Eileen Collins"')) == {"astronaut.png"}
    assert names(find(lib, "Eileen Collins")) == {"astronaut.png"}    # adjacent bare words: one known name
    assert find(lib, '"eileen collins"')["why"].tolist() == ["person Eileen Collins 1.00"]
    with pytest.raises(QueryError, match='"person:Eilen"'):
        find(lib, "person:Eilen")


def test_place_at_every_level(lib):
    ukraine = {"pug.heic", "empty_icc.heic"}   # Sudak (Crimea) and Nova Kakhovka (Kherson)
    assert names(find(lib, "place:Ukraine")) == ukraine
    assert names(find(lib, "Ukraine")) == ukraine
    assert names(find(lib, "place:Kherson")) == {"empty_icc.heic"}
    assert names(find(lib, "Sudak")) == {"pug.heic"}
    assert names(find(lib, "place:Ukraine OR Denmark")) == ukraine | {"kde_ColorfulCups.jpg"}


def test_date_ranges(lib):
    # capture times of the sample photos (EXIF DateTimeOriginal)
    assert names(find(lib, "date:2015-06..2015-07")) == {"kde_DarkestHour.jpg", "kde_ColdRipple.jpg", "kde_Kite.jpg"}
    assert names(find(lib, "date:2015-06")) == {"kde_DarkestHour.jpg", "kde_ColdRipple.jpg"}
    assert names(find(lib, "date:2008-04-20")) == {"mate_Storm.jpg"}
    assert names(find(lib, "date:2021..2023-02")) == {"empty_icc.heic", "pug.heic"}
    assert names(find(lib, "date:..2007")) == {"mate_Dune.jpg"}
    df = find(lib, "date:2015", limit=None)
    assert list(df["captured_at"]) == sorted(df["captured_at"])    # no score: by capture time
    with pytest.raises(QueryError, match=r'"date:2015-13"'):
        find(lib, "date:2015-13")
    with pytest.raises(QueryError, match="ends before it starts"):
        find(lib, "date:2016..2015")


def test_rating_camera_kind_quality(lib):
    assert names(find(lib, "rating:>=3")) == {"kde_Kite.jpg", "mate_Dune.jpg"}
    assert names(find(lib, "rating:5")) == {"kde_Kite.jpg"}
    assert names(find(lib, "rating:<3")) == {"coffee.png"}
    assert names(find(lib, "rating:1..3")) == {"coffee.png", "mate_Dune.jpg"}
    assert names(find(lib, "camera:apple")) == {"arrow.heic", "empty_icc.heic", "pug.heic"}
    assert names(find(lib, "kind:raw")) == set()
    assert names(find(lib, "format:heif")) == {p for p in lib.ids if p.endswith(".heic")}
    assert names(find(lib, "quality:blurry")) == expected_tag(lib, "blurry")
    assert names(find(lib, "status:quarantined")) == set()


def test_things_beyond_the_taxonomy(lib):
    df = find(lib, "pug")                      # an ImageNet class, not a taxonomy tag
    assert set(df["path"]) <= {"pug.heic", "empty_icc.heic"} and len(df)
    assert df["why"].str.startswith("thing pug").all()
    assert names(find(lib, "thing:dog")) >= {"pug.heic", "empty_icc.heic"}
    assert names(find(lib, "thing:dogs")) == names(find(lib, "thing:dog"))   # plural
    with pytest.raises(QueryError) as e:
        find(lib, "thing:guitr")
    assert '"thing:guitr"' in str(e.value) and "guitar" in str(e.value)


def test_things_score_through_the_backbones_own_classifier(lib):
    """The classifier read with numpy from the converted weights gives the model's own top-5 back."""
    from photolab.features import things
    from photolab.features.backbone import imagenet_classes

    ids, probs = things.class_probabilities(lib)
    classes = imagenet_classes()
    for pid, top5 in lib.catalog.query("SELECT photo_id, top5 FROM features"):
        row = probs[int(np.searchsorted(ids, pid))].astype(np.float32)
        stored = json.loads(top5)
        assert [classes[j] for j in np.argsort(-row)[:3]] == [w for w, _ in stored[:3]]
        assert all(abs(row[classes.index(w)] - p) < 2e-3 for w, p in stored)


def test_like(lib):
    kite = lib.ids["kde_Kite.jpg"]
    by_id = find(lib, f"like:{kite}", limit=5)
    by_path = find(lib, f"like:{lib.root / 'kde_Kite.jpg'}", limit=5)
    assert list(by_id["photo_id"]) == list(by_path["photo_id"]) and kite not in set(by_id["photo_id"])
    assert list(by_id["score"]) == sorted(by_id["score"], reverse=True)
    rel = find(lib, "like:kde_Kite.jpg", limit=5)   # a path relative to the library works too
    assert list(rel["photo_id"]) == list(by_id["photo_id"])
    # every other photo, ranked by cosine of the cached unit embeddings
    from photolab.stages.search import unit_embeddings

    ids, emb, _ = unit_embeddings(lib)
    e = emb[:].astype(np.float32)   # a row view over the memory-mapped cache
    sims = e @ e[int(np.searchsorted(ids, kite))]
    want = [int(ids[i]) for i in np.argsort(-sims) if ids[i] != kite and sims[i] >= 0.1][:5]
    assert list(by_id["photo_id"]) == want
    with pytest.raises(QueryError, match="like:nowhere.jpg"):
        find(lib, "like:nowhere.jpg")


@pytest.mark.parametrize("query,named", [
    ("dgo", '"dgo"'), ("dog AND", '"AND"'), ("(dog", '"("'), ("dog)", '")"'), ("colour:red", '"colour:red"'),
    ('"dog', "quote"), ("rating:9", '"rating:9"'), ("kind:movie", '"kind:movie"'), ("tag:", '"tag:"'),
    ("OR dog", "OR"), ("", "empty query"),
])
def test_bad_queries_name_the_bad_term_in_one_line(lib, query, named):
    with pytest.raises(QueryError) as e:
        find(lib, query)
    msg = str(e.value)
    assert named in msg and "\n" not in msg


def test_unknown_word_suggests_the_nearest_known_words(lib):
    with pytest.raises(QueryError) as e:
        find(lib, "beech")
    assert "beach" in str(e.value)


def test_parser_tree():
    tree = Q.parse('dog -cat (beach OR "New York") date:2019-06..2019-08 place:"Costa Rica"')
    assert isinstance(tree, Q.And)
    kinds = [type(c).__name__ for c in tree.children]
    assert kinds == ["Term", "Not", "Or", "Term", "Term"]
    assert tree.children[2].children[1] == Q.Term(None, "New York", 20, '"New York"')
    assert tree.children[4].value == "Costa Rica"
    assert [t.value for t, neg in Q.terms(tree) if neg] == ["cat"]


def test_untagged_library_says_to_run_tag(library, sample_copy):
    photolab.gather([sample_copy], library, progress=False)
    photolab.index_library(library, progress=False)
    with pytest.raises(QueryError, match=r"run `photolab tag .*` first"):
        find(library, "dog")
    with pytest.raises(QueryError, match="photolab tag"):
        find(library, "thing:pizza")
    assert len(find(library, "date:2015"))     # catalog-only terms need no tagging pass


def test_cli_prints_paths_writes_csv_and_links(lib, tmp_path, capsys):
    from photolab.cli import main

    out = tmp_path / "dogs.csv"
    album = tmp_path / "album"
    assert main(["find", str(lib.root), "dog OR cat", "--csv", str(out), "--link-into", str(album)]) == 0
    printed = capsys.readouterr().out.split()
    assert {Path(p).name for p in printed} == {"pug.heic", "empty_icc.heic", "chelsea.png"}
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in printed)
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["photo_id", "path", "why", "score", "captured_at"] and len(rows) == 3
    links = sorted(p.name for p in album.iterdir() if not p.name.startswith("."))
    assert len(links) == 3 and links[0].startswith("0001_")
    assert main(["find", str(lib.root), "mug OR nothing-here"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_album_links_refresh_and_refusals(lib, tmp_path):
    album = tmp_path / "album"
    r = link_into(lib, find(lib, "dog OR cat"), album)
    assert r["linked"] == 3 and r["hard"] + r["symbolic"] == 3
    files = {p.name: p for p in album.iterdir() if not p.name.startswith(".")}
    for name, p in files.items():
        src = lib.root / name.split("_", 1)[1]
        assert p.read_bytes() == src.read_bytes()
        assert os.path.samefile(p, src)      # a link to the photo, never a copy
    before = {p: p.read_bytes() for p in lib.root.iterdir() if p.is_file()}
    r = link_into(lib, find(lib, "cat"), album)   # refresh: only the cat is left
    assert sorted(p.name for p in album.iterdir() if not p.name.startswith(".")) == ["0001_chelsea.png"]
    cat_was_first = "0001_chelsea.png" in files
    # the old names go (all three, unless the cat already was 0001), the cat is (or stays) 0001
    assert (r["removed"], r["linked"]) == ((2, 0) if cat_was_first else (3, 1))
    assert {p: p.read_bytes() for p in lib.root.iterdir() if p.is_file()} == before   # photos untouched
    (album / "notes.txt").write_text("mine")
    with pytest.raises(AlbumError, match="notes.txt"):
        link_into(lib, find(lib, "dog"), album)
    assert (album / "notes.txt").read_text() == "mine"
    with pytest.raises(AlbumError, match=r"\.photolab"):
        link_into(lib, find(lib, "dog"), lib.state / "album")
    with pytest.raises(AlbumError, match="inside the library"):
        link_into(lib, find(lib, "dog"), lib.root / "album")


def test_find_widget_search_select_more_like_this(lib):
    import ipywidgets as W

    from photolab.ui.find_widget import FindBrowser

    b = FindBrowser(lib, limit=6)
    df = b.search("dog OR cat")
    assert names(df) == {"pug.heic", "empty_icc.heic", "chelsea.png"}
    cards = b._grid.children
    assert len(cards) == 3
    img = cards[0].children[0]
    assert isinstance(img, W.Image) and img.value[:2] == b"\xff\xd8"     # inline JPEG bytes, no file URL
    thumb = lib.catalog.query("SELECT thumb FROM features WHERE photo_id = ?", (int(df.photo_id[0]),))[0][0]
    assert img.value == (lib.state / "features" / thumb).read_bytes()      # the cached thumbnail
    cat = lib.ids["chelsea.png"]
    info = b.select(cat)
    assert "cat" in info["tags"] and info["path"] == "chelsea.png" and "cat" in b._detail.value
    pug = b.select(lib.ids["pug.heic"])
    assert pug["place"]["country"] == "Ukraine" and pug["captured_at"].startswith("2023-02-21")
    assert b.select(lib.ids["astronaut.png"])["people"] == ["Eileen Collins"]
    like = b.more_like_this()
    assert b.query == f"like:{lib.ids['astronaut.png']}" and len(like) and b._box.value == b.query
    assert b.search("dog AND") is None and '"AND"' in b.error and b._grid.children == ()
    b._box.value = "cat"                                                    # typing in the box searches
    assert names(b.results) == {"chelsea.png"}


# -- on ../shared/data: 500 ImageNet photos, a near-duplicate set made from 20 of them, GPS photos ------------
WORDS = [   # 20 words across WordNet's hierarchy, each over at least 10 of the 500 labeled photos: WordNet sense
    ("dog", 1), ("bird", 1), ("musical instrument", 1), ("insect", 1), ("terrier", 1), ("hound", 1),
    ("working dog", 1), ("reptile", 1), ("furniture", 1), ("clothing", 1), ("arthropod", 1), ("vehicle", 1),
    ("wheeled vehicle", 1), ("container", 1), ("aquatic bird", 1), ("carnivore", 1), ("mammal", 1),
    ("equipment", 1), ("structure", 1), ("solid food", 1),
]
CLASS_WORDS = [   # narrower words, each over 2 to 9 of the labeled photos (precision at their count)
    ("guitar", 1), ("lizard", 1), ("truck", 1), ("beetle", 1), ("boat", 1), ("bear", 1), ("frog", 1),
    ("butterfly", 1), ("snake", 1), ("ball", 1),
]


@pytest.fixture(scope="module")
def wordnet():
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO / "scripts"))
    import wordnet as wn

    if not (wn.WORDNET_DIR / "data.noun").is_file():
        pytest.skip(f"WordNet not found at {wn.WORDNET_DIR} (Debian package wordnet-base): it judges the word queries")
    return wn, wn.load_nouns()[0], wn.load_index()


@pytest.fixture(scope="module")
def labeled_lib(tmp_path_factory, shared_data, backbone):
    """labeled/images plus the near-duplicates make_neardup.py makes from 20 of them, indexed and tagged once."""
    import shutil
    import subprocess
    import sys

    from conftest import copy_tree

    root = tmp_path_factory.mktemp("labeled") / "lib"
    copy_tree(shared_data / "labeled" / "images", root / "labeled")
    tool = shared_data.parent / "tools" / "make_neardup.py"
    if not tool.is_file():
        pytest.skip(f"{tool} not found")
    subprocess.run([sys.executable, str(tool), str(root / "labeled"), str(root / "neardup"), "20", "0", "0"],
                   check=True, capture_output=True)
    shutil.move(root / "neardup" / "groups.csv", root.parent / "groups.csv")
    lib = photolab.init_library(root)
    photolab.index_library(lib, progress=False)
    photolab.tag_library(lib, model=backbone, progress=False)
    yield lib
    lib.close()


def _relevant(wordnet, word: str, sense: int) -> set[str]:
    wn, hypernyms, senses = wordnet
    synset = senses[word.replace(" ", "_")][sense - 1]
    labels = csv.DictReader((REPO_SHARED() / "labeled" / "labels.csv").open())
    return {r["file"] for r in labels if synset in wn.ancestors(r["wnid"], hypernyms)}


def REPO_SHARED():
    from conftest import SHARED

    return SHARED


def _precision(lib, wordnet, word, sense, k=10):
    relevant = _relevant(wordnet, word, sense)
    df = find(lib, f'thing:"{word}"', limit=None)
    ranked = [Path(p).name for p in df["path"] if p.startswith("labeled/")]   # the 500 labeled photos only
    k = min(k, len(relevant))
    return sum(name in relevant for name in ranked[:k]) / k, len(relevant)


@pytest.mark.slow
@pytest.mark.shared
def test_word_queries_rank_photos_of_the_word_first(labeled_lib, wordnet):
    got = {w: _precision(labeled_lib, wordnet, w, s) for w, s in WORDS}
    print({w: f"P@10 {p:.2f} of {n}" for w, (p, n) in got.items()})
    assert all(n >= 10 for _, n in got.values())
    assert {w: p for w, (p, _) in got.items() if p < 0.9} == {}
    narrow = {w: _precision(labeled_lib, wordnet, w, s) for w, s in CLASS_WORDS}
    print({w: f"P@{n} {p:.2f}" for w, (p, n) in narrow.items()})
    assert np.mean([p for p, _ in narrow.values()]) >= 0.9


@pytest.mark.slow
@pytest.mark.shared
def test_like_finds_the_12_variants_in_the_top_15(labeled_lib):
    groups: dict[int, dict[str, str]] = {}
    for r in csv.DictReader((labeled_lib.root.parent / "groups.csv").open()):
        groups.setdefault(int(r["group"]), {})[r["file"]] = r["transform"]
    found = []
    for g, files in sorted(groups.items()):
        orig = next(f for f, t in files.items() if t == "original")
        pid = labeled_lib.catalog.query("SELECT id FROM photos WHERE path = ?", (f"neardup/{orig}",))[0][0]
        top = {Path(p).name for p in find(labeled_lib, f"like:{pid}", limit=15)["path"] if p.startswith("neardup/")}
        variants = {f for f, t in files.items() if t != "original"}
        assert len(variants) == 12
        found.append(variants <= top)
    print(f"like: all 12 variants in the top 15 for {sum(found)} of {len(found)} originals")
    assert len(found) == 20 and sum(found) / len(found) >= 0.9


@pytest.mark.shared
def test_places_from_gps_on_real_camera_photos(shared_data, tmp_path):
    from conftest import copy_tree

    from photolab.stages.places import suggest_places

    lib = photolab.init_library(copy_tree(shared_data / "photos", tmp_path / "photos"))
    photolab.index_library(lib, progress=False)
    suggest_places(lib)
    arezzo = {f"DSCN00{n}.jpg" for n in (10, 12, 21, 25, 27, 29, 38, 40, 42)}   # a Nikon walk through Arezzo
    assert names(find(lib, "Arezzo")) == arezzo
    assert names(find(lib, "place:Tuscany")) == arezzo
    assert names(find(lib, "Italy date:2008-10-22")) == arezzo
    assert names(find(lib, "Italy -date:2008")) == set()
    assert names(find(lib, '"United States" OR place:Denmark')) == {"iphone11_IMG_5195.heic", "kde_ColorfulCups.jpg"}
    assert names(find(lib, "camera:nikon Italy")) == arezzo
    with pytest.raises(QueryError, match="photolab tag"):   # indexed, never tagged
        find(lib, "Arezzo dog")
    lib.close()


def test_album_refresh_after_an_interrupted_run(lib, tmp_path):
    """A run killed between its planned manifest and its last link leaves a temporary link and names
    that were never made; the next run recognises both and finishes the album."""
    album = tmp_path / "album"
    link_into(lib, find(lib, "cat"), album)
    manifest = album / ".photolab-album.json"
    planned = json.loads(manifest.read_text())
    planned["links"]["0002_pug.heic"] = {"path": "pug.heic"}          # planned, never linked
    manifest.write_text(json.dumps(planned))
    links_before = (lib.root / "pug.heic").stat().st_nlink
    os.link(lib.root / "pug.heic", album / ".photolab-album.tmp.4242")   # the link being made when killed
    ranked = find(lib, "dog OR cat")
    r = link_into(lib, ranked, album)
    names = [Path(p).name for p in ranked["path"]]
    assert sorted(names) == ["chelsea.png", "empty_icc.heic", "pug.heic"]
    assert sorted(p.name for p in album.iterdir()) == [".photolab-album.json"] + [
        f"{k:04d}_{n}" for k, n in enumerate(names, 1)]   # named in rank order
    assert r["linked"] + r["kept"] == 3
    assert (lib.root / "pug.heic").stat().st_nlink == links_before + 1   # the album's one link, no leftover
