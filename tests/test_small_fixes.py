"""Small breakages found by a hostile test: rules values, non-UTF-8 settings files, the keeper a watch
pass chooses."""

from __future__ import annotations

import shutil
import subprocess
import sys
import os

import pytest

import photolab
from photolab.stages import organize
from photolab.stages import run_chain
from photolab.stages.organize import RulesError
from photolab.core.taxonomy import TaxonomyError, load_taxonomy

from conftest import REPO, SAMPLE


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "photolab.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)


def test_a_date_field_in_the_unsorted_folder_is_a_clear_rules_error(library):
    rules = library.state / "rules.txt"
    rules.write_text("set unsorted = Unsorted/{year}\n* -> {year}/{month:02}\n", encoding="utf-8")
    with pytest.raises(RulesError) as err:
        organize.load_rules(library)
    msg = str(err.value)
    assert f"{rules}:1:" in msg and "{year}" in msg and "{camera}" in msg
    out = _cli("organize", library.root)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(f"photolab: error: {rules}:1:")


def test_the_unsorted_folder_may_use_fields_that_need_no_date(tmp_path, library):
    src = tmp_path / "card"
    src.mkdir()
    shutil.copy2(SAMPLE / "chelsea.png", src / "chelsea.png")     # no capture date
    os.utime(src / "chelsea.png", (1e9, 1e9))
    photolab.gather([src], library, progress=False)
    photolab.index_library(library, progress=False)
    (library.state / "rules.txt").write_text("set unsorted = Unsorted/{kind}\n* -> {year}/{month:02}\n",
                                             encoding="utf-8")
    moves = organize.plan(library)
    assert list(moves.loc[moves["role"] == "photo", "target"]) == ["Unsorted/photo/chelsea.png"], moves.to_dict("records")


@pytest.mark.parametrize("which", ["taxonomy.txt", "rules.txt"])
def test_a_byte_that_is_not_utf8_in_a_settings_file_names_the_file_and_line(library, which):
    load_taxonomy(library)
    organize.load_rules(library)
    path = library.state / which
    lines = path.read_bytes().split(b"\n")
    at = next(i for i, l in enumerate(lines) if l.strip() and not l.startswith(b"#"))
    lines[at] = lines[at] + b"  # caf\xe9"
    path.write_bytes(b"\n".join(lines))
    error = TaxonomyError if which == "taxonomy.txt" else RulesError
    with pytest.raises(error) as err:
        load_taxonomy(library) if which == "taxonomy.txt" else organize.load_rules(library)
    msg = str(err.value)
    assert msg.startswith(f"{path}:{at + 1}:") and "0xe9" in msg and "UTF-8" in msg
    out = _cli("organize", library.root)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"{path}:{at + 1}:" in out.stderr


def test_a_watch_pass_keeps_the_library_copy_and_sets_the_new_import_aside(tmp_path, library):
    """The library's own copies sort after the import folder by path; the pass must still keep them."""
    own = tmp_path / "photos"
    own.mkdir()
    names = ["kde_Kite.jpg", "mate_Dune.jpg", "coffee.png"]
    for n in names:
        shutil.copy2(SAMPLE / n, own / n)
    photolab.gather([own], library, progress=False)
    photolab.index_library(library, progress=False)
    imp = tmp_path / "import"           # 'import/...' sorts before 'photos/...'
    imp.mkdir()
    for n in names[:2]:
        shutil.copy2(SAMPLE / n, imp / n)
    photolab.gather([imp], library, progress=False)
    photolab.index_library(library, progress=False)
    new_ids = [r[0] for r in library.catalog.query("SELECT id FROM photos WHERE path LIKE 'import/%'")]
    assert len(new_ids) == 2
    assert run_chain(library, ["dedupe"], ids=new_ids).results["dedupe"].done == 2
    status = {r[0]: r[1] for r in library.catalog.query("SELECT path, status FROM photos")}
    for n in names:
        assert status[f"photos/{n}"] == "ok"
    quarantined = [p for p, s in status.items() if s == "quarantined"]
    assert len(quarantined) == 2 and all(n in " ".join(quarantined) for n in names[:2])
    assert (library.root / "photos" / names[0]).is_file() and not (library.root / "import" / names[0]).exists()
