"""The previous bytes photolab kept of the files it rewrote, and putting them back."""

from __future__ import annotations

import os
from pathlib import Path

from photolab.core.fileops import FileOpError, Rewrite, new_batch, rewrite, sha256_file, version_bytes
from photolab.core.library import open_library
from photolab.store import metadata as q


def versions(library, path: str | os.PathLike | None = None):
    """Kept versions, newest first: id, photo_id, path (when kept), sha256 (None: the file did not
    exist yet), batch, saved_at. For a photo, its own versions wherever it has been moved since."""
    lib = open_library(library)
    conn = lib.catalog.conn
    if path is None:
        return q.all_versions(conn)
    p = Path(path)
    rel = lib.rel(p.resolve()) if p.is_absolute() else lib.rel(p)
    pid = q.photo_id_at(conn, rel)
    if pid is not None:
        return q.photo_versions(conn, pid)
    return q.path_versions(conn, rel)


def restore(library, path: str | os.PathLike, *, version: int | None = None):
    """Put a file back as it was before photolab last rewrote it (or as kept ``version``), byte-identical.

    The current bytes are kept as a version first, so a restore can itself be undone
    (``photolab undo``). Returns the :class:`~photolab.core.fileops.BatchReport`.
    """
    lib = open_library(library)
    df = versions(lib, path)
    if df.empty:
        raise FileOpError(f"{path}: photolab has kept no earlier version of it")
    if version is not None:
        if int(version) not in df.index:
            raise FileOpError(f"{path}: no kept version {version} (kept: {', '.join(map(str, df.index))})")
        v = df.loc[int(version)]
    else:
        v = df.iloc[0]
    pid = v["photo_id"]
    pid = None if pid is None or pid != pid else int(pid)
    rel = v["path"]
    if pid is not None:   # the photo may have been moved since: restore it where it is now
        rel = q.photo_path(lib.catalog.conn, pid) or rel
    cur = lib.abs(rel)
    cur_sha = sha256_file(cur) if cur.is_file() else None
    want = v["sha256"] if isinstance(v["sha256"], str) else None
    if cur_sha == want:
        raise FileOpError(f"{rel}: already holds that version")
    data = version_bytes(lib, want)
    report = rewrite(lib, [Rewrite(path=rel, data=data, old_sha256=cur_sha, photo_id=pid,
                                   detail={"restores": int(v.name)})], batch=new_batch("restore"))
    if report.skipped:
        raise FileOpError(f"{rel}: {report.skipped[0][1]}")
    with lib.catalog.write() as db:
        q.forget_written(db, rel)
    return report
