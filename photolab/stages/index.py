"""Index: one catalog row per file in the library.

Every file gets a row with its size, modification time, SHA-256, format (by
content), pixel size, EXIF facts and a status with a one-line reason. A video
gets its duration, frame size, codec, capture time and GPS from its container's
header (:mod:`photolab.features.video`; no frame is decoded); a video beside a photo of
the same name is that live photo's companion (kind ``live``). Bad
files never stop a run. Re-indexing is incremental: a file whose size and
modification time are unchanged is not opened again; changed files are read
again and files that disappeared are marked ``missing``.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import logging
import os
import stat
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from photolab.store.catalog import STATE_DIR, utcnow
from photolab.features.exif import PhotoInfo, finish_capture_time, open_image, read_pillow_info, read_raw_info
from photolab.core.fileops import TMP_PREFIX, live_moves, recover, sha256_file
from photolab.core.library import open_library
from photolab.features.media import PHOTO_EXTS, RAW_EXTS, kind_by_extension, live_companion, photo_stems, sniff_other, sniff_raw
from photolab.core.names import is_clean, library_name, shown
from photolab.store import photos as photo_store
from photolab.store import watch as store

log = logging.getLogger(__name__)

STATUSES = ("ok", "warning", "empty", "corrupt", "unsupported", "too_large", "unreadable", "missing", "quarantined")
USABLE = ("ok", "warning")  # statuses later stages process

#: Pillow formats that photolab treats as photos, with the extensions they normally carry.
PHOTO_FORMATS = {
    "JPEG": {".jpg", ".jpeg", ".jpe", ".jfif"},
    "MPO": {".jpg", ".jpeg", ".mpo"},
    "PNG": {".png"},
    "HEIF": {".heic", ".heif", ".hif"},
    "AVIF": {".avif", ".heic", ".heif"},
    "WEBP": {".webp"},
    "TIFF": {".tif", ".tiff"},
    "GIF": {".gif"},
    "BMP": {".bmp", ".dib"},
}
DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's own decompression-bomb limit; above any single-shot camera
_IN_MEMORY_LIMIT = 512 * 1024 * 1024
_COLUMNS = (
    "path", "kind", "size", "mtime_ns", "sha256", "format", "width", "height", "orientation",
    "captured_at", "captured_source", "camera_make", "camera_model", "lens", "gps_lat", "gps_lon",
    "gps_alt", "status", "error", "duration", "codec",
)


@dataclass
class IndexReport:
    """What an index run did: counts, and every file that is not ``ok`` with its reason."""

    scanned: int = 0
    read: int = 0
    unchanged: int = 0
    missing: int = 0
    by_status: Counter = field(default_factory=Counter)
    problems: list[tuple[str, str, str]] = field(default_factory=list)

    def summary(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.by_status.items()))
        return (f"{self.scanned} files scanned: {self.read} read, {self.unchanged} unchanged, "
                f"{self.missing} missing; by status: {counts or 'none'}")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["by_status"] = dict(self.by_status)
        return d


def walk_library(root: Path, odd: list | None = None) -> list[tuple[str, int, int]]:
    """All files under ``root`` except photolab's own state: (relative path, size, mtime_ns).

    A file or folder whose name is not valid UTF-8 cannot be cataloged: it is left out, with a
    warning, and ``(shown path, reason)`` is added to ``odd`` if given."""
    out: list[tuple[str, int, int]] = []
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            log.warning("%s: folder cannot be listed (%s); its files are not indexed", folder, exc)
            continue
        for entry in entries:
            name = entry.name
            if not prefix and name == STATE_DIR:
                continue
            if name.startswith(TMP_PREFIX):
                continue
            rel = prefix + name
            if not is_clean(name):
                why = ("name is not valid UTF-8; not cataloged (rename it, e.g. "
                       f"to {library_name(name)!r}, or gather it from outside the library)")
                log.warning("%s: %s", shown(rel), why)
                if odd is not None:
                    odd.append((shown(rel), why))
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), rel + "/"))
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    out.append((rel, st.st_size, st.st_mtime_ns))
            except OSError as exc:
                log.warning("%s: cannot stat (%s)", entry.path, exc)
    out.sort()
    return out


def _stat_paths(lib, paths) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime_ns) of those of ``paths`` that are files on disk, sorted."""
    out = []
    for rel in sorted(set(paths)):
        try:
            st = os.stat(lib.abs(rel), follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and is_clean(Path(rel).name):
            out.append((rel, st.st_size, st.st_mtime_ns))
    return out


def _jpeg_complete(data: bytes) -> bool:
    tail = data[-4096:].rstrip(b"\x00\r\n ")
    return tail.endswith(b"\xff\xd9")


def inspect_file(path: str | os.PathLike, *, name: str | None = None, size: int | None = None,
                 mtime_ns: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS, sha256: str | None = None) -> dict:
    """Read one file and return its catalog row (without ``path``); never raises for bad input.

    Args:
        path: the file.
        name: name used for file-name date patterns and extension checks (default: the file's).
        size, mtime_ns: the stat values already known (read from disk if not given).
        sha256: a video's checksum already verified by gather's copy (the video is then not read again).
        max_pixels: images with more pixels are refused as ``too_large``.
    """
    from PIL import Image

    path = Path(path)
    name = name or path.name
    ext = Path(name).suffix.lower()
    row: dict = {"kind": "other", "sha256": None, "format": None, "status": "ok", "error": None}
    try:
        st = path.stat()
    except OSError as exc:
        return {**row, "size": size or 0, "mtime_ns": mtime_ns or 0, "status": "missing",
                "error": f"cannot stat: {exc.strerror or exc}"}
    row["size"] = st.st_size if size is None else size
    row["mtime_ns"] = st.st_mtime_ns if mtime_ns is None else mtime_ns
    row["kind"] = kind_by_extension(name)
    if row["kind"] == "sidecar":
        row["format"] = ext[1:].upper()
    if row["size"] == 0:
        return {**row, "status": "empty", "error": "zero-byte file (an interrupted copy?)"}
    if row["kind"] == "video":
        video = _inspect_video(path, name, row, sha256)
        if video is not None:   # None: a photo named .mp4, read below as the photo it is
            return video

    data: bytes | None = None
    try:
        if row["size"] <= _IN_MEMORY_LIMIT:
            data = path.read_bytes()
            row["sha256"] = hashlib.sha256(data).hexdigest()
        else:
            row["sha256"] = sha256_file(path)
    except PermissionError as exc:
        return {**row, "status": "unreadable", "error": f"permission denied ({exc.strerror}); fix its permissions"}
    except OSError as exc:
        return {**row, "status": "unreadable", "error": f"read error: {exc.strerror or exc}"}
    if row["kind"] == "sidecar":
        return row
    if data is None:
        with path.open("rb") as fh:
            head = fh.read(64)
    else:
        head = data[:64]

    info = PhotoInfo()
    moment = None
    raw_format = sniff_raw(head, ext)
    if raw_format:
        row["kind"], row["format"] = "raw", raw_format
        if data is None:
            data = path.read_bytes()
        moment = read_raw_info(data, raw_format, info)
        if info.width is None:
            row["status"], row["error"] = "corrupt", "; ".join(info.warnings) or "RAW data unreadable"
    else:
        try:
            im = open_image(data, path)
        except Image.DecompressionBombError as exc:
            return {**row, "kind": "photo", "status": "too_large", "error": f"decompression-bomb sized image: {exc}"}
        except Exception as exc:  # noqa: BLE001 - any decoder error is this file's problem
            return _not_an_image(row, head, ext, exc)
        with im:
            fmt = im.format or "unknown"
            row["format"] = fmt
            if fmt not in PHOTO_FORMATS:
                return {**row, "status": "unsupported", "width": im.size[0], "height": im.size[1],
                        "error": f"{fmt} image: not a photo format photolab handles"}
            row["kind"] = "photo"
            w, h = im.size
            if w * h > max_pixels:
                return {**row, "width": w, "height": h, "status": "too_large",
                        "error": f"{w}x{h} = {w * h / 1e6:.0f} MP exceeds the {max_pixels / 1e6:.0f} MP limit "
                                 "(decompression-bomb guard); raise max_pixels if it is a real photo"}
            moment = read_pillow_info(im, info)
            problem = _integrity_problem(im, fmt, data)
        if problem:
            row["status"], row["error"] = "corrupt", problem
        elif ext and ext not in PHOTO_FORMATS[fmt] and ext not in RAW_EXTS:
            row["status"] = "warning"
            info.warnings.insert(0, f"content is {fmt} but the name ends in {ext}")
        elif ext and ext in RAW_EXTS:
            row["status"] = "warning"
            info.warnings.insert(0, f"named as RAW ({ext}) but the content is {fmt}")

    return _finish(row, info, moment, name)


def _finish(row: dict, info: PhotoInfo, moment, name: str) -> dict:
    """The capture time through its fallback chain and what the reader found, into the row."""
    finish_capture_time(info, moment, name, row["mtime_ns"])
    for key in ("width", "height", "orientation", "captured_at", "captured_source", "camera_make",
                "camera_model", "lens", "gps_lat", "gps_lon", "gps_alt"):
        row[key] = getattr(info, key)
    if info.warnings and row["status"] == "ok":
        row["status"] = "warning"
    if info.warnings and not row["error"]:
        row["error"] = "; ".join(info.warnings)
    return row


def _inspect_video(path: Path, name: str, row: dict, sha256: str | None = None) -> dict | None:
    """A video's row: SHA-256 of its bytes (streamed; or the one gather's verified copy recorded), then
    only what its container's header says (duration, frame size, codec, capture time, GPS); no frame
    is decoded here. None when the first bytes say the file is an image (whatever its name says)."""
    import filetype

    from photolab.features.video import VideoError, read_video_info

    try:
        with path.open("rb") as fh:
            head = fh.read(262)
        sniffed = filetype.guess(head)
        if sniffed and sniffed.mime.startswith("image/"):
            return None
        row["sha256"] = sha256 or sha256_file(path)
    except PermissionError as exc:
        return {**row, "status": "unreadable", "error": f"permission denied ({exc.strerror}); fix its permissions"}
    except OSError as exc:
        return {**row, "status": "unreadable", "error": f"read error: {exc.strerror or exc}"}
    info = PhotoInfo()
    moment = None
    try:
        moment, extra = read_video_info(path, info)
    except VideoError as exc:
        mime = sniff_other(head[:64])
        if mime is None and _looks_like_text(head[:64]):
            mime = "text"
        what = (f"named as video ({Path(name).suffix.lower()}) but content is {mime}; {exc}"
                if mime and not mime.startswith("video/") else str(exc))
        row.update(status="corrupt", error=what, format=mime.split("/")[-1].upper() if mime else None)
    except Exception as exc:  # noqa: BLE001 - any reader error is this file's problem
        row.update(status="corrupt", error=f"not a readable video ({type(exc).__name__}: {exc})")
    else:
        row.update(format=extra["format"], duration=extra["duration"], codec=extra["codec"])
        if extra.get("problem"):
            row.update(status="corrupt", error=extra["problem"])
    return _finish(row, info, moment, name)


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return bool(text) and all(c.isprintable() or c in "\r\n\t" for c in text)


def _integrity_problem(im, fmt: str, data: bytes | None) -> str | None:
    """Cheap checks that catch truncated files without a full decode."""
    try:
        if fmt in ("JPEG", "MPO") and data is not None and not _jpeg_complete(data):
            # No end marker at the end: a truncated file, or data appended after
            # the image (motion photos). A reduced-scale decode tells which.
            im.draft("RGB", (max(1, im.size[0] // 8), max(1, im.size[1] // 8)))
            im.load()
        elif fmt == "PNG" and data is not None:
            from PIL import Image
            import io

            with Image.open(io.BytesIO(data)) as fresh:
                fresh.verify()
    except Exception as exc:  # noqa: BLE001
        return f"damaged or truncated {fmt} data ({type(exc).__name__}: {exc})"
    return None


def _not_an_image(row: dict, head: bytes, ext: str, exc: Exception) -> dict:
    mime = sniff_other(head)
    if row["kind"] == "video":
        if mime and mime.startswith("video/"):
            return {**row, "format": mime.split("/")[1].upper()}
        return {**row, "status": "corrupt", "error": f"named as video ({ext}) but content is {mime or 'unrecognised'}"}
    if ext in PHOTO_EXTS or ext in RAW_EXTS:
        expected = mime and mime.split("/")[1].replace("jpeg", "jpg") in ext
        if mime and not expected:
            what = f"content is {mime}"
        else:
            what = f"image data unreadable ({type(exc).__name__}: {str(exc)[:200]})"
        return {**row, "kind": "photo", "status": "corrupt", "error": f"not a readable {ext[1:].upper()}: {what}"}
    return {**row, "status": "unsupported", "format": mime,
            "error": f"not an image ({mime or 'unrecognised content'})"}


def _inspect_task(args: tuple) -> tuple[str, dict]:
    abs_path, rel, size, mtime_ns, max_pixels, sha256 = args
    try:
        return rel, inspect_file(abs_path, name=Path(rel).name, size=size, mtime_ns=mtime_ns,
                                 max_pixels=max_pixels, sha256=sha256)
    except Exception as exc:  # noqa: BLE001 - last line of defence: record, never stop the batch
        log.exception("%s: unexpected error while indexing", abs_path)
        return rel, {"kind": "other", "size": size, "mtime_ns": mtime_ns, "status": "corrupt",
                     "error": f"unexpected error while reading: {type(exc).__name__}: {exc}"}


def _with_gathered_checksums(cat, todo: list[tuple]) -> list[tuple]:
    """Each task with the SHA-256 gather's verified copy recorded for it, for videos only (a photo's bytes
    are read anyway): trusted while the file still has the size gather copied and was not changed after
    the copy (gather keeps the source's modification time; an edit makes it newer than the copy)."""
    import datetime as _dt

    videos = [t[1] for t in todo if kind_by_extension(Path(t[1]).name) == "video"]
    got = {r["dest"]: (r["sha256"], r["size"], r["copied_at"]) for r in store.gathered_copies(cat.conn, videos)}
    out = []
    for abs_path, rel, size, mtime_ns, max_pixels in todo:
        digest = None
        if rel in got:
            sha, gsize, copied_at = got[rel]
            try:
                copied_ns = int(_dt.datetime.fromisoformat(copied_at).timestamp()) * 10**9
            except ValueError:
                copied_ns = -1
            if gsize == size and mtime_ns is not None and mtime_ns <= copied_ns:
                digest = sha
        out.append((abs_path, rel, size, mtime_ns, max_pixels, digest))
    return out


def index_library(library, *, workers: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                  progress: bool = True, force: bool = False, paths=None) -> IndexReport:
    """Index (or re-index) every file of a library.

    Args:
        library: a :class:`~photolab.core.library.Library` or its folder.
        workers: threads reading files (default: cores, at most 4; 0 or 1 reads in this thread).
        max_pixels: larger images are refused as ``too_large``.
        progress: show a progress bar.
        force: read every file again, even unchanged ones.
        paths: only these files (relative to the library; a watched import's new files): no walk of
            the library, catalog rows read by name, and only these can be found missing.

    Returns:
        An :class:`IndexReport`; the same report is stored in the catalog's ``runs`` table.
    """
    from tqdm.auto import tqdm

    lib = open_library(library)
    cat = lib.catalog
    recover(lib)   # a killed move leaves a file under two names for a moment: settle it first
    cat.backup("before-index", files=0)   # an index can be redone from the files: a recent after-batch generation serves
    run_id = cat.start_run("index")
    report = IndexReport()
    odd: list[tuple[str, str]] = []
    if paths is None:
        on_disk = walk_library(lib.root, odd)
        known = {r["path"]: (r["size"], r["mtime_ns"], r["status"])
                 for r in photo_store.file_stamps(cat.conn)}
    else:
        on_disk = _stat_paths(lib, paths)
        paths = sorted(set(paths))
        known = {r[0]: (r[1], r[2], r[3]) for r in store.rows_by_path(cat.conn, paths, "path, size, mtime_ns, status")}
    report.scanned = len(on_disk)
    # a move a running process is making: the new name is the same file as the cataloged old one
    live = live_moves(lib)
    moving, moved_from = {dst for _, dst in live}, {src for src, _ in live}
    if moving:
        on_disk = [f for f in on_disk if f[0] not in moving]
        report.scanned = len(on_disk)
    # verdicts a passing read failure gave (a file moved or unreadable for a moment while the
    # labeling pass ran): not the file's fault, so it is read again
    passing = photo_store.passing_failures(cat.conn)

    todo = []
    for rel, size, mtime_ns in on_disk:
        prev = known.get(rel)
        if not force and prev and prev[0] == size and prev[1] == mtime_ns and prev[2] != "missing" \
                and rel not in passing:
            report.unchanged += 1
            continue
        todo.append((str(lib.abs(rel)), rel, size, mtime_ns, max_pixels))
    todo = _with_gathered_checksums(cat, todo)
    disk_paths = {rel for rel, _, _ in on_disk}
    gone = [p for p, v in known.items() if p not in disk_paths and p not in moved_from
            and v[2] not in ("missing", "quarantined")
            and not p.startswith(STATE_DIR + "/")]

    now = utcnow()
    if gone:
        with cat.write() as db:
            photo_store.mark_missing(db, gone, now)
    report.missing = len(gone)
    gone_set = set(gone)

    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    # Threads, not processes: hashing and decoding release the GIL, and worker
    # processes would re-import a user's unguarded __main__ script.
    pool = cf.ThreadPoolExecutor(max_workers=workers) if workers > 1 and len(todo) > 16 else None
    results = pool.map(_inspect_task, todo) if pool else map(_inspect_task, todo)

    batch: list[tuple] = []

    # a file that moved without photolab (or while its catalog was restored from a backup) is
    # recognised by its content: its row, with everything a person added to it, follows it
    lost: dict[str, str | None] = {}
    for r in photo_store.missing_with_hash(cat.conn):
        lost[r["sha256"]] = None if r["sha256"] in lost else r["path"]
    renames: list[tuple[str, str]] = []

    def flush():
        if batch:
            with cat.write() as db:
                photo_store.follow_renames(db, renames)
                photo_store.upsert(db, _COLUMNS, batch)
            batch.clear()
            renames.clear()

    with tqdm(total=len(todo), desc="index", unit="file", disable=not progress or not todo) as bar, \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # decoder complaints become each file's status instead
        for rel, row in results:
            row["path"] = rel
            if rel not in known and lost.get(row.get("sha256")):
                renames.append((rel, lost.pop(row["sha256"])))
                log.info("%s: the file cataloged as %s, moved", rel, renames[-1][1])
                if renames[-1][1] in gone_set:
                    report.missing -= 1
            batch.append(tuple(row.get(c) for c in _COLUMNS) + (now,))
            report.read += 1
            if len(batch) >= 500:
                flush()
            bar.update(1)
    flush()
    if pool:
        pool.shutdown()
    _mark_live_companions(cat, on_disk, scoped=paths is not None)

    for r in (photo_store.statuses(cat.conn) if paths is None
              else store.rows_by_path(cat.conn, paths, "path, status, error")):
        report.by_status[r["status"]] += 1
        if r["status"] != "ok":
            report.problems.append((r["path"], r["status"], r["error"] or ""))
    report.problems += [(path, "unreadable", why) for path, why in odd]
    cat.finish_run(run_id, report.as_dict())
    log.info("index %s: %s", lib.root, report.summary())
    return report


def _mark_live_companions(cat, on_disk, *, scoped: bool = False) -> None:
    """A video beside a photo of the same name (``IMG_1.HEIC`` + ``IMG_1.MOV``) is that live photo's
    motion half: kind ``live``, which travels with its photo and is not a clip of its own.

    ``scoped``: ``on_disk`` is only some files (a watched import's): the names beside them are taken from the
    catalog rows of their folders, and only clips in those folders are looked at."""
    names: dict[str, set[str]] = {}
    for rel, _, _ in on_disk:
        folder, _, name = rel.rpartition("/")
        names.setdefault(folder, set()).add(name)
    if scoped:
        rows = store.in_folders(cat.conn, names, "path, kind, status, id")
        for r in rows:
            folder, _, name = r["path"].rpartition("/")
            names[folder].add(name)
        rows = [r for r in rows if r["kind"] in ("video", "live") and r["status"] != "missing"]
    else:
        rows = photo_store.clips(cat.conn)
    stems = {folder: photo_stems(found) for folder, found in names.items()}
    changes = []
    for r in rows:
        folder, _, name = r["path"].rpartition("/")
        kind = "live" if live_companion(name, stems.get(folder, set())) else "video"
        if kind != r["kind"]:
            changes.append((kind, r["path"], r["id"]))
    if changes:
        with cat.write() as db:
            photo_store.set_kinds(db, [(k, p) for k, p, _ in changes])
            # a motion half is not a clip of its own: no poster-frame features or tag scores (a pass that
            # ran before this index, on a catalog from before live companions were told apart, made them)
            photo_store.drop_clip_data(db, [i for k, _, i in changes if k == "live"])


def photos(library, *, usable_only: bool = True, kinds: tuple[str, ...] = ("photo", "raw")):
    """The catalog's photos as a DataFrame indexed by photo id."""
    lib = open_library(library)
    return photo_store.photo_table(lib.catalog.conn, tuple(kinds), USABLE if usable_only else None)
