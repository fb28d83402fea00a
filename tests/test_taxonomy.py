import re

import pytest

from photolab.core.taxonomy import CATEGORIES, TaxonomyError, load_taxonomy, parse_taxonomy, rename_tag


def test_default_taxonomy_is_sensible():
    tax = load_taxonomy()
    assert 10 <= len(tax) <= 25
    assert {t.category for t in tax.tags} == set(CATEGORIES)
    for name in ("person", "beach", "birthday", "dog", "cat", "food", "blurry", "indoor", "vehicle", "building"):
        assert name in tax.names
    assert tax.resolve("bday") == "birthday"
    assert tax.resolve("  BDay ") == "birthday"
    assert tax.resolve("Birthday   Party") == "birthday"
    assert tax.resolve("sunsets") == "sunset" and tax["sunset"].source == "starter"
    assert "low_resolution" not in tax.names   # a pixel count, which a find query expresses
    assert tax.resolve("unknown thing") is None
    assert "birthday" in tax.complete("bi")


@pytest.mark.parametrize("text, message", [
    ("people person prior\nanimals dog prior\n", ":2: unknown category 'animals'"),
    ("people person\n", ":1: expected 'CATEGORY TAG SCORED-BY"),
    ("people Person! prior\n", ":1: bad tag name"),
    ("people person guess\n", ":1: unknown SCORED-BY 'guess'"),
    ("people person prior people\nobjects crowd prior People\n", ":2: 'People' is already used on line 1"),
    ("# only comments\n", "no tags defined"),
])
def test_malformed_taxonomy_names_the_line(text, message):
    with pytest.raises(TaxonomyError, match=re.escape(message)):
        parse_taxonomy(text, path="tax.txt")


def test_library_copy_rename_and_merge_keep_history(library):
    tax = load_taxonomy(library)
    assert (library.state / "taxonomy.txt").is_file() and tax.names == load_taxonomy().names
    with library.catalog.write() as db:
        db.execute("INSERT INTO photos(path, kind, size, mtime_ns, status, indexed_at) VALUES ('a.jpg','photo',1,1,'ok','x')")
        db.execute("INSERT INTO labels(photo_id, tag, value, who, at) VALUES (1, 'party', 1, 'me', 'now')")
        db.execute("INSERT INTO scores_stash(photo_id, tag, score, source, model) VALUES (1, 'party', 0.2, 'prior', 'm')")
    renamed = rename_tag(library, "party", "celebration")
    # the scores a head set aside follow the rename, so a rollback puts them back under the new name
    assert library.catalog.query("SELECT tag FROM scores_stash")[0][0] == "celebration"
    assert "celebration" in renamed.names and "party" not in renamed.names
    assert renamed.resolve("party") == "celebration"  # the old name is an alias now
    assert library.catalog.query("SELECT tag FROM labels")[0][0] == "celebration"
    merged = rename_tag(library, "landscape", "mountain", merge=True)
    assert "landscape" not in merged.names and merged.resolve("landscape") == "mountain"
    assert merged.resolve("scenery") == "mountain"
    history = [tuple(r) for r in library.catalog.query("SELECT old, new, action FROM tag_history ORDER BY id")]
    assert history == [("party", "celebration", "rename"), ("landscape", "mountain", "merge")]
    text = (library.state / "taxonomy.txt").read_text()
    assert text.startswith("# photolab taxonomy") and "# merged into mountain" in text
    with pytest.raises(TaxonomyError, match="already exists"):
        rename_tag(library, "dog", "cat")
