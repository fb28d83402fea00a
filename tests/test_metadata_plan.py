"""Metadata plan -> apply: a plan makes and verifies every file's new bytes and changes no byte of the
catalog nor of the files; applying it writes exactly what write_metadata writes."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import photolab
from photolab.stages import metadata as md
from photolab.stages.metadata import write as md_write
from photolab.stages.tagging import set_labels

from conftest import SAMPLE

FILES = {"a.jpg": SAMPLE / "mate_Blinds.jpg", "b.png": SAMPLE / "astronaut.png", "c.heic": SAMPLE / "pug.heic",
         "d.jpg": SAMPLE / "mate_Storm.jpg"}


def make_library(root: Path):
    root.mkdir(parents=True)
    for name, src in FILES.items():
        (root / name).write_bytes(src.read_bytes())
    lib = photolab.init_library(root)
    photolab.index_library(lib, progress=False)
    pids = {r["path"]: r["id"] for r in lib.catalog.query("SELECT id, path FROM photos")}
    set_labels(lib, [(pid, t, 1) for pid in pids.values() for t in ("dog", "beach")] + [(pids["d.jpg"], "dark", 1)])
    md.set_rating(lib, pids["b.png"], 4)
    return lib, pids


def files_of(root: Path) -> dict[str, str]:
    """SHA-256 of every file of the library (the catalog's own files aside: they are compared by dump)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith("catalog.")}


def dump(lib) -> list[str]:
    return list(lib.catalog.conn.iterdump())


def unchanged_by(lib, fn):
    """Run ``fn``; assert it changed no byte of the catalog nor of any file; return its result."""
    cat, files = dump(lib), files_of(lib.root)
    out = fn()
    assert dump(lib) == cat
    assert files_of(lib.root) == files
    return out


def test_a_plan_changes_no_byte_of_the_catalog_nor_of_the_files(tmp_path):
    lib, pids = make_library(tmp_path / "lib")
    opts = md.WriteOptions(where="both")
    p = unchanged_by(lib, lambda: md.plan(lib, options=opts, progress=False))
    assert isinstance(p, md.MetadataPlan)
    rows = p.rows.set_index("path")
    assert set(rows["status"]) == {"write"} and len(rows) == 7     # 3 files and 4 sidecars
    assert rows.loc["c.heic.xmp", "target"] == "sidecar" and "c.heic.xmp" in p.why
    assert p.kept == [] and p.unchecked == 0
    # the dry run is the plan: nothing written either
    rep = unchanged_by(lib, lambda: md.write_metadata(lib, options=opts, dry_run=True, progress=False))
    assert rep.dry_run and rep.counts() == {"written": 7} and "7 would write" in rep.summary()

    written = md.apply(lib, p, progress=False)
    assert written.counts() == {"written": 7} and written.batch
    assert md.read_metadata(lib.abs("a.jpg"))["keywords"] == ["beach", "dog"]
    assert md.read_metadata(lib.abs("b.png"))["rating"] == 4

    # once written: the plan finds everything up to date, from the catalog's record, and still writes nothing
    again = unchanged_by(lib, lambda: md.plan(lib, options=opts, progress=False))
    assert set(again.rows["status"]) == {"unchanged"} and again.unchecked == 7
    assert sorted(again.kept) == sorted((path, md_write.UP_TO_DATE) for path in rows.index)
    # without that record every file is read and checked again, and found up to date: still nothing written
    # (write_metadata would record them; the plan does not)
    with lib.catalog.write() as db:
        db.execute("DELETE FROM metadata_written")
    third = unchanged_by(lib, lambda: md.plan(lib, options=opts, progress=False))
    assert set(third.rows["status"]) == {"unchanged"} and third.unchecked == 0
    assert md.apply(lib, third, progress=False).counts() == {"unchanged": 7}
    assert len(lib.catalog.query("SELECT * FROM metadata_written")) == 7


def test_a_plan_past_its_memory_budget_is_made_again_on_apply_byte_for_byte(tmp_path, monkeypatch):
    a, _ = make_library(tmp_path / "a")
    b, _ = make_library(tmp_path / "b")
    md.write_metadata(a, progress=False)
    monkeypatch.setattr(md_write, "KEEP_BYTES", 0)     # the plan keeps no new bytes: apply makes them again
    p = md.plan(b, progress=False)
    assert p._writes and all(w.item.data is None for w in p._writes)
    rep = md.apply(b, p, progress=False)
    assert rep.counts() == {"written": 4}

    def photos(root):
        return {k: v for k, v in files_of(root).items() if not k.startswith(".photolab/")}

    assert photos(a.root) == photos(b.root) and "c.heic.xmp" in photos(b.root)


def test_a_file_changed_after_the_plan_is_skipped_and_the_rest_written(tmp_path, monkeypatch):
    lib, _ = make_library(tmp_path / "lib")
    for keep in (None, 0):      # new bytes held by the plan, then made again on apply
        if keep is not None:
            shutil.rmtree(tmp_path / "lib")
            lib, _ = make_library(tmp_path / "lib")
            monkeypatch.setattr(md_write, "KEEP_BYTES", keep)
        p = md.plan(lib, progress=False)
        data = lib.abs("a.jpg").read_bytes()
        lib.abs("a.jpg").write_bytes(data + b"\0")          # another app saved it meanwhile
        rep = md.apply(lib, p, progress=False).frame().set_index("path")
        assert rep.loc["a.jpg", "status"] == "skipped" and "changed since" in rep.loc["a.jpg", "reason"]
        assert lib.abs("a.jpg").read_bytes() == data + b"\0"
        assert (rep.drop(index="a.jpg")["status"] == "written").all()


def test_a_metadata_plan_is_a_plan_that_plans_apply_carries_out(tmp_path):
    from photolab import plans

    lib, pids = make_library(tmp_path / "lib")
    p = md.plan(lib, options=md.WriteOptions(where="both"), progress=False)
    assert isinstance(p, plans.Plan) and p.stage == "metadata" and p.library is not None
    report = plans.apply(p, progress=False)
    assert len(report.rows) == 7
    assert md.plan(lib, options=md.WriteOptions(where="both"), progress=False).counts() == {"unchanged": 7}
