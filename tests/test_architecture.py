"""The shape of the code: what the notebooks may hold, and the one stage chain every runner shares."""

from __future__ import annotations

import ast
import importlib
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
SQL = re.compile(r"(?is)\bselect\b.+\bfrom\b|\binsert\s+(or\s+\w+\s+)?into\b|\bupdate\s+\w+\s+set\b|\bdelete\s+from\b"
                 r"|\bpragma\b|\b(create|drop|alter)\s+(table|index|trigger|view)\b")


def _cells(path: Path) -> list[tuple[int, ast.Module]]:
    nb = json.loads(path.read_text())
    out = []
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] != "code":
            continue
        text = "".join(c["source"])
        code = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in text.splitlines())
        out.append((i, ast.parse(code)))
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and name != "_" and not (name.startswith("__") and name.endswith("__"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_cells_hold_no_sql(path):
    """No SQL in a cell: the catalog is read through photolab's functions, not queried."""
    found = []
    for i, tree in _cells(path):
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                found.append((i, node.value[:60]))
            if isinstance(node, ast.Attribute) and node.attr in ("execute", "executemany", "executescript",
                                                                   "read_sql", "read_sql_query", "conn"):
                found.append((i, node.attr))
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(n.split(".")[0] == "sqlite3" for n in names):
                    found.append((i, "sqlite3"))
    assert not found, f"{path.name}: cells with SQL: {found}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_cells_use_no_private_names(path):
    """Only photolab's public API: no ``._name`` attribute, no ``_name`` imported or used."""
    found = []
    for i, tree in _cells(path):
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                found.append((i, node.attr))
            elif isinstance(node, ast.Name) and _private(node.id):
                found.append((i, node.id))
            elif isinstance(node, ast.ImportFrom):
                parts = (node.module or "").split(".") + [a.name for a in node.names]
                found += [(i, p) for p in parts if _private(p)]
            elif isinstance(node, ast.Import):
                found += [(i, a.name) for a in node.names if any(_private(p) for p in a.name.split("."))]
    assert not found, f"{path.name}: private names in cells: {found}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_cells_have_no_loops(path):
    """No loop of a cell's own (over photos, rows or anything else): for and while statements and
    comprehensions live in photolab's functions, which the cells call."""
    loops = (ast.For, ast.AsyncFor, ast.While, ast.comprehension)
    found = [(i, type(node).__name__, getattr(node, "lineno", None))
             for i, tree in _cells(path) for node in ast.walk(tree) if isinstance(node, loops)]
    assert not found, f"{path.name}: loops in cells (cell, node, line): {found}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_set_up_through_prepare_and_reach_no_source_paths(path):
    """Every notebook sets up with ``photolab.prepare`` and reads shipped files (the systemd units) as package
    data, never through the source checkout's folders (``contrib/``, ``__file__``), which a wheel lacks."""
    text = "\n".join(ast.unparse(tree) for _, tree in _cells(path))
    assert "photolab.prepare(" in text, f"{path.name}: no photolab.prepare set-up cell"
    assert "contrib" not in text and "__file__" not in text and "site-packages" not in text, path.name
    if path.name == "08_automation.ipynb":
        assert "systemd_units()" in text


def test_every_runner_runs_the_one_stage_chain(monkeypatch, tmp_path):
    """run_once, maintain, run_demo and prepare run their stages through photolab.stages.run_chain, in the
    registry's order; rescoring with the active head is a stage of its own."""
    from photolab import stages

    names = list(stages.STAGES)
    assert names == ["gather", "index", "tag", "rescore", "dedupe", "places", "faces", "organize", "metadata"]
    for chain in (stages.WATCH_PASS, stages.MAINTAIN, stages.DEMO, stages.PREPARE):
        assert [s.name for s in stages.chain(chain)] == [n for n in names if n in chain]
    for item in stages.STAGES.values():
        assert item.doc and item.writes, item.name
    sources = {m: Path(importlib.import_module(name).__file__).read_text()
               for m, name in (("automate", "photolab.automate"), ("demo", "photolab.demo"),
                               ("notebook", "photolab.ui.notebook"))}
    assert sources["automate"].count("run_chain(") == 2   # the watcher pass and maintenance
    assert "run_chain(" in sources["demo"] and "run_chain(" in sources["notebook"]
    for m, text in sources.items():   # no stage is called directly any more
        for call in ("tag_library(", "index_library(", "write_metadata(", "scan_faces(", "dedupe.plan(",
                     "rescore("):
            assert call not in text.replace("def " + call, ""), (m, call)


def test_run_chain_scopes_orders_and_stops(tmp_path):
    """A registered stage runs in chain order whatever order the names come in; an empty scope ends the chain;
    should_stop is asked before each stage."""
    import photolab
    from photolab import stages

    lib = photolab.init_library(tmp_path / "lib")
    seen = []
    try:
        @stages.stage("probe_a", after="index", reads=("photos",), writes=("nothing",))
        def probe_a(run):
            """A test stage."""
            seen.append(("a", run.ids))
            if run.ids is not None:
                run.ids = []   # every photo left the scope
            return 1

        @stages.stage("probe_b", after="probe_a", reads=("photos",), writes=("nothing",))
        def probe_b(run):
            """A test stage."""
            seen.append(("b", run.ids))
            return 2

        assert list(stages.STAGES)[2:4] == ["probe_a", "probe_b"]
        run = stages.run_chain(lib, ["probe_b", "probe_a"], ids=[3, 1])
        assert seen == [("a", [3, 1])] and run.results == {"probe_a": 1}
        run = stages.run_chain(lib, ["probe_b", "probe_a"], should_stop=lambda: bool(seen[1:]))
        assert seen[1:] == [("a", None)] and run.stopped and "probe_b" not in run.results
        with pytest.raises(KeyError, match="no stage named nowhere"):
            stages.chain(["nowhere"])
    finally:
        stages.STAGES.pop("probe_a", None)
        stages.STAGES.pop("probe_b", None)
        lib.close()
