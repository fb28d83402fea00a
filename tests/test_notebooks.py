"""Notebooks: committed without outputs, and executed on a copy of sample_data/."""

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import SAMPLE

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def _tags_exported(lib_dir: Path) -> None:
    assert (lib_dir / ".photolab" / "exports" / "tags.csv").is_file()


def _organized_and_undone(lib_dir: Path) -> None:
    import photolab
    from photolab.fileops import batches

    with photolab.open_library(lib_dir) as lib:
        done = batches(lib)
        assert (done["op"] == "organize").any() and (done["op"] == "undo").any()
        paths = {r["path"] for r in lib.catalog.query("SELECT path FROM photos")}
    on_disk = {p.relative_to(lib_dir).as_posix() for p in lib_dir.rglob("*")
               if p.is_file() and ".photolab" not in p.parts}
    assert paths == on_disk


def _deduped_and_restored(lib_dir: Path) -> None:
    import photolab
    from photolab.fileops import batches

    with photolab.open_library(lib_dir) as lib:
        done = batches(lib)
        assert (done["op"] == "quarantine").any() and (done["op"] == "undo").any()
        assert not lib.catalog.query("SELECT 1 FROM photos WHERE status = 'quarantined'")


def _metadata_written_and_restored(lib_dir: Path) -> None:
    import photolab
    from photolab.metadata import read_metadata

    with photolab.open_library(lib_dir) as lib:
        ops = {r["batch"].split("-")[1] for r in lib.catalog.query("SELECT DISTINCT batch FROM journal")}
        assert {"metadata", "restore"} <= ops
        written = lib.catalog.query("SELECT path FROM metadata_written WHERE target = 'file'")
        assert written and any(read_metadata(lib_dir / r["path"])["keywords"] for r in written)


def _sampled_reviewed_tuned(lib_dir: Path) -> None:
    import photolab

    with photolab.open_library(lib_dir) as lib:
        assert lib.catalog.query("SELECT count(*) FROM samples")[0][0] > 0
        assert lib.catalog.query("SELECT count(*) FROM reviews")[0][0] > 0
        assert lib.catalog.query("SELECT count(*) FROM thresholds")[0][0] > 0


def _reviewed(lib_dir: Path) -> None:
    import photolab

    with photolab.open_library(lib_dir) as lib:
        assert lib.catalog.query("SELECT count(*) FROM reviews")[0][0] > 0
        assert lib.catalog.query("SELECT count(*) FROM labels WHERE tag = 'birthday' AND value = 1")[0][0] == 1


def _trained(lib_dir: Path) -> None:
    import photolab

    with photolab.open_library(lib_dir) as lib:
        assert lib.catalog.query("SELECT count(*) FROM heads WHERE active = 1")[0][0] == 1
        assert lib.catalog.query("SELECT count(*) FROM scores WHERE source = 'head'")[0][0] > 0


def _passed(lib_dir: Path) -> None:
    import photolab

    with photolab.open_library(lib_dir) as lib:
        assert lib.catalog.query("SELECT count(*) FROM import_state WHERE state = 'done'")[0][0] >= 5
        assert lib.catalog.query("SELECT count(*) FROM runs WHERE stage = 'maintain'")[0][0] == 1


def _people_named_and_written(lib_dir: Path) -> None:
    import photolab
    from photolab.metadata import read_metadata

    with photolab.open_library(lib_dir) as lib:
        named = lib.catalog.query("SELECT p.path FROM faces f JOIN photos p ON p.id = f.photo_id "
                                  "WHERE f.person = 'Eileen Collins'")
        assert named, "the notebook names the astronaut's cluster"
        assert "People|Eileen Collins" in read_metadata(lib_dir / named[0]["path"])["hierarchical"]


def _checked(lib_dir: Path) -> None:
    import photolab

    with photolab.open_library(lib_dir) as lib:
        assert lib.catalog.query("SELECT count(*) FROM photos")[0][0] > 0


def _found(lib_dir: Path) -> None:
    import photolab
    from photolab.search import find

    with photolab.open_library(lib_dir) as lib:
        assert {Path(p).name for p in find(lib, "dog OR cat")["path"]} >= {"pug.heic", "chelsea.png"}


def test_start_here_links_every_notebook():
    text = (NOTEBOOKS[0].parent / "00_start_here.ipynb").read_text()
    for nb in NOTEBOOKS:
        if nb.name != "00_start_here.ipynb":
            assert f"({nb.stem}.ipynb)" in text, nb.name


# what each notebook must leave behind, beyond running without an error
AFTER = {"00_start_here.ipynb": _checked, "01_tag_library.ipynb": _tags_exported, "02_tune_thresholds.ipynb": _sampled_reviewed_tuned,
         "03_review.ipynb": _reviewed, "04_retrain.ipynb": _trained, "05_write_metadata.ipynb": _metadata_written_and_restored,
         "06_dedupe.ipynb": _deduped_and_restored,
         "07_organize.ipynb": _organized_and_undone, "08_automation.ipynb": _passed,
         "09_people_and_places.ipynb": _people_named_and_written, "10_find.ipynb": _found}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"
    assert "parameters" in nb["cells"][1]["metadata"].get("tags", []), f"{path.name}: the first code cell must be the parameters cell"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_sample_data(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    params = nb.cells[1]
    params.source += f"\nLIBRARY = {str(tmp_path / 'library')!r}\nGATHER_FROM = {str(SAMPLE)!r}"
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    AFTER[path.name](tmp_path / "library")
