"""Notebooks: committed without outputs, and executed on a copy of sample_data/."""

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell

from conftest import SAMPLE

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def _tags_exported(lib_dir: Path) -> None:
    assert (lib_dir / ".photolab" / "exports" / "tags.csv").is_file()


def _organized_and_undone(lib_dir: Path) -> None:
    import photolab
    from photolab.core.fileops import batches

    with photolab.open_library(lib_dir) as lib:
        done = batches(lib)
        assert (done["op"] == "organize").any() and (done["op"] == "undo").any()
        paths = {r["path"] for r in lib.catalog.query("SELECT path FROM photos")}
    on_disk = {p.relative_to(lib_dir).as_posix() for p in lib_dir.rglob("*")
               if p.is_file() and ".photolab" not in p.parts}
    assert paths == on_disk


def _deduped_and_restored(lib_dir: Path) -> None:
    import photolab
    from photolab.core.fileops import batches

    with photolab.open_library(lib_dir) as lib:
        done = batches(lib)
        assert (done["op"] == "quarantine").any() and (done["op"] == "undo").any()
        assert not lib.catalog.query("SELECT 1 FROM photos WHERE status = 'quarantined'")


def _metadata_written_and_restored(lib_dir: Path) -> None:
    import photolab
    from photolab.stages.metadata import read_metadata

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
    from photolab.stages.metadata import read_metadata

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
    from photolab.stages.search import find

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


# what a person decides, table by table: no notebook cell may change any of it unless DEMO = True
DECISIONS = {
    "labels": "SELECT photo_id, tag, value, who, at FROM labels",
    "reviews": "SELECT photo_id, who, at FROM reviews",
    "faces": "SELECT photo_id, person, named_by, named_at, rejected FROM faces WHERE person IS NOT NULL OR rejected != 0",
    "places": "SELECT photo_id, confirmed FROM places WHERE confirmed != 0",
    "ratings": "SELECT photo_id, rating, source, at FROM ratings",
    "event_edits": "SELECT action, photo_id, other_id, value FROM event_edits",
    "thresholds": "SELECT * FROM thresholds",
}

# after Run All with DEMO = False, work waits for a person: photos to review, a face to name, and
# every bulk change behind a button nobody clicked (a button with work to do is enabled)
WAITING = {"02_tune_thresholds.ipynb": "assert grid.queue, 'the sample grid is empty'",
           "03_review.ipynb": "assert grid.queue, 'the review grid is empty'",
           "05_write_metadata.ipynb": "assert write.report is None and write.state == 'waiting' "
                                      "and not write.button.disabled, write.state",
           "06_dedupe.ipynb": "assert quarantine.report is None and quarantine.state in ('waiting', 'nothing')",
           "07_organize.ipynb": "assert move.report is None and move.state == 'waiting' and not move.button.disabled",
           "08_automation.ipynb": "assert one_pass.report is None and upkeep.report is None "
                                  "and one_pass.state == upkeep.state == 'waiting'",
           "09_people_and_places.ipynb": "assert namer.current is not None, 'no unnamed face'\n"
                                         "assert write.report is None and write.state == 'nothing'"}

# what each notebook must print, beyond its end state
SAYS = {"00_start_here.ipynb": ["Backup: no backup configured: `photolab backup {lib} --to "]}


def decisions_of(lib_dir: Path) -> dict:
    con = sqlite3.connect(f"file:{lib_dir / '.photolab' / 'catalog.sqlite'}?mode=ro", uri=True)
    try:
        return {name: sorted(map(tuple, con.execute(sql).fetchall()), key=repr) for name, sql in DECISIONS.items()}
    finally:
        con.close()


def files_of(lib_dir: Path) -> dict[str, str]:
    """Every file of the library outside .photolab/, by path, with its SHA-256: a moved, rewritten,
    added or quarantined file changes this."""
    return {p.relative_to(lib_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(lib_dir.rglob("*")) if p.is_file() and ".photolab" not in p.relative_to(lib_dir).parts}


def journal_of(lib_dir: Path) -> list[tuple]:
    """Every journaled file operation (a move undone in the same run leaves the files as they were, not this)."""
    con = sqlite3.connect(f"file:{lib_dir / '.photolab' / 'catalog.sqlite'}?mode=ro", uri=True)
    try:
        return con.execute("SELECT id, batch, op, src, dst, state FROM journal ORDER BY id").fetchall()
    finally:
        con.close()


def _client(nb, cwd: Path) -> NotebookClient:
    return NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})


def _errors(cells) -> list:
    return [o for c in cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_sample_data(path, tagged_sample, tmp_path):
    """Run All with DEMO = False on a copy of a library writes no label, review, name, confirmation,
    rating, event edit or threshold, and moves, rewrites, adds or quarantines no file (the bulk
    changes wait behind buttons); then the test plays the person: the same copy is declared a demo
    library and the notebook's ``if DEMO:`` cells (the clicks, and what follows them) run with DEMO = True."""
    from photolab.demo import DEMO_MARKER

    lib_dir = tmp_path / "library"
    shutil.copytree(tagged_sample, lib_dir)
    before, files_before, journal_before = decisions_of(lib_dir), files_of(lib_dir), journal_of(lib_dir)
    assert len(files_before) > 10
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].source += f"\nLIBRARY = {str(lib_dir)!r}\nGATHER_FROM = {str(SAMPLE)!r}\nDEMO = False"
    client = _client(nb, tmp_path)
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                client.execute_cell(cell, i)
        assert not _errors(nb.cells)
        assert decisions_of(lib_dir) == before, "a notebook cell decided for the user"
        files_after = files_of(lib_dir)
        changed = sorted(k for k in files_before.keys() | files_after.keys() if files_before.get(k) != files_after.get(k))
        assert not changed, f"Run All moved, rewrote, added or quarantined files: {changed[:10]}"
        assert journal_of(lib_dir) == journal_before, "Run All moved or rewrote files (and put them back)"
        said = "\n".join(_outputs_text(nb.cells))
        for text in SAYS.get(path.name, []):
            assert text.format(lib=lib_dir.resolve()) in said, (text, said[-2000:])
        extra = []
        if path.name in WAITING:
            extra.append(new_code_cell(WAITING[path.name]))
        if path.name == "00_start_here.ipynb":   # the person sets up a backup; the same cell says so
            repo = tmp_path / "backup-drive" / "photolab-backup"
            extra.append(new_code_cell(f"backup.configure(lib, repository={str(repo)!r})"))
            extra += [new_code_cell(c.source) for c in nb.cells if "backup.status(lib)" in c.source]
        demo = [i for i, c in enumerate(nb.cells) if i > 1 and c.cell_type == "code" and "if DEMO:" in c.source]
        if demo:
            (lib_dir / ".photolab" / DEMO_MARKER).write_text("declared a demo library by the test\n")
            extra.append(new_code_cell("DEMO = True"))
            extra += [new_code_cell(c.source) for c in nb.cells[demo[0]:] if c.cell_type == "code"]
        for cell in extra:
            nb.cells.append(cell)
            client.execute_cell(cell, len(nb.cells) - 1)
        assert not _errors(extra)
        if path.name == "00_start_here.ipynb":
            assert f"Backup: backups go to {repo}; no snapshot yet: run `photolab backup " in \
                "\n".join(_outputs_text(extra)), _outputs_text(extra)
    AFTER.get(path.name, _checked)(lib_dir)


def _outputs_text(cells) -> list[str]:
    out = []
    for c in cells:
        for o in c.get("outputs", []):
            out.append(o.get("text", "") or o.get("data", {}).get("text/plain", "") or
                       "\n".join(o.get("traceback", [])))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_empty_library_and_mistyped_folder_give_one_line(path, tmp_path):
    """Run All stops at the set-up cell with one line that names the folder and the next step."""
    import photolab

    empty = tmp_path / "empty-library"
    photolab.init_library(empty).close()
    typo = tmp_path / "Photos-with-a-typo"
    scenarios = {"empty library": (empty, None), "mistyped library": (typo, None),
                 "mistyped source": (tmp_path / "new-library", tmp_path / "no-such-card")}
    nb = nbformat.read(path, as_version=4)
    params, code = nb.cells[1].source, [c.source for c in nb.cells[2:] if c.cell_type == "code"]
    nb.cells = []
    client = _client(nb, tmp_path)
    with client.setup_kernel():
        for what, (library, source) in scenarios.items():
            cells = [new_code_cell(params + f"\nLIBRARY = {str(library)!r}\nGATHER_FROM = "
                                   f"{str(source) if source else None!r}\nDEMO = False")]
            cells += [new_code_cell(source) for source in code]
            ran = []
            for cell in cells:
                ran.append(cell)
                nb.cells.append(cell)
                try:
                    client.execute_cell(cell, len(nb.cells) - 1)
                except CellExecutionError:
                    break
            else:
                pytest.fail(f"{what}: the notebook ran to its end")
            texts = [t for t in _outputs_text(ran) if t.strip()]
            messages = [t for t in texts if t.startswith("photolab: ")]
            assert len(messages) == 1 and "\n" not in messages[0].strip(), (what, texts)
            assert not any("Traceback" in t or "Error" in t.split(":")[0] for t in texts), (what, texts)
            assert not _errors(ran), what
            named = source if what == "mistyped source" else library
            assert str(Path(named).resolve()) in messages[0], (what, messages)
    assert not typo.exists() and not (tmp_path / "new-library").exists(), "a mistyped folder was created"
