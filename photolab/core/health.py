"""Is everything in place? A short check before the first run (the start-here notebook, ``photolab check``)."""

from __future__ import annotations

import shutil

from photolab.core.library import open_library
from photolab.store.meta import count_photos, quick_check

MIN_FREE_GB = 2.0


def check(library):
    """A DataFrame, one row per check: ``check``, ``ok`` (bool), ``detail``. Nothing is changed and nothing is
    downloaded: the model weights must already be on this machine (an installed package or a
    converted copy in the library)."""
    import pandas as pd

    rows = []
    lib = None
    try:
        lib = open_library(library)
        n = count_photos(lib.catalog.conn)
        rows.append(("catalog", True, f"{lib.root}: schema {lib.catalog.version}, {n} files cataloged"))
    except Exception as exc:  # noqa: BLE001 - reported, not raised: this is a check
        rows.append(("catalog", False, str(exc)))
        lib = None
    if lib is not None:
        rows += _leftover_rows(lib)
    try:
        from photolab.features.backbone import packaged_weights

        weights = packaged_weights()
        rows.append(("model weights", weights.is_file(), f"{weights} (offline, from an installed package)"))
    except Exception as exc:  # noqa: BLE001
        rows.append(("model weights", False, f"{exc}"))
    try:
        from photolab.stages.faces import model_files

        files = model_files()
        import dlib  # noqa: F401

        rows.append(("face model", True, f"dlib {dlib.__version__}; weights in {files['descriptor'].parent} (offline)"))
    except Exception as exc:  # noqa: BLE001
        rows.append(("face model", False, f"{exc}"))
    import importlib.util

    if importlib.util.find_spec("onnxruntime"):
        rows.append(("ONNX Runtime", True, "installed: the labeling pass runs through it"))
    else:
        rows.append(("ONNX Runtime", True, "not installed: the labeling pass runs with torch (slower)"))
    rows += device_rows()
    where = lib.root if lib is not None else "."
    free = shutil.disk_usage(where).free / 1e9
    rows.append(("free disk", free >= MIN_FREE_GB, f"{free:.1f} GB free at {where} (keep {MIN_FREE_GB:g} GB or more: "
                                                  "quarantine and metadata versions keep copies)"))
    rows.append(_backup_row(lib))
    exiftool = shutil.which("exiftool")
    rows.append(("ExifTool (optional)", True, exiftool or "not installed: only needed to check metadata independently"))
    return pd.DataFrame(rows, columns=["check", "ok", "detail"])


def not_ready(status) -> str:
    """The failed checks of :func:`check`'s table as one line (``check: detail; ...``), or "" when all passed."""
    bad = status[~status["ok"].astype(bool)]
    return "; ".join(f"{c}: {d}" for c, d in zip(bad["check"], bad["detail"]))


def _leftover_rows(lib) -> list[tuple[str, bool, str]]:
    """The catalog's own integrity, and what a killed process can leave (see :mod:`photolab.core.repair`)."""
    from photolab.store.catalog import list_backups
    from photolab.core.repair import find_leftovers

    fix = f"run `photolab repair {lib.root}`"
    rows = []
    try:
        bad = quick_check(lib.catalog.conn)
        ok = bad == ["ok"]
        rows.append(("catalog file", ok, "SQLite quick_check: ok" if ok else
                     f"{lib.catalog.path} is damaged ({bad[0]}); restore a backup with "
                     f"`photolab repair {lib.root} --restore-catalog`"))
    except Exception as exc:  # noqa: BLE001
        rows.append(("catalog file", False, str(exc)))
        return rows
    try:
        found = find_leftovers(lib)
    except Exception as exc:  # noqa: BLE001
        return rows + [("journal", False, str(exc))]
    dead = sum(found.dead_batches.values())
    live = f"; {sum(found.live_batches.values())} moves being applied by a running photolab" if found.live_batches else ""
    rows.append(("journal", not dead, (f"{dead} interrupted moves in {len(found.dead_batches)} batches; {fix}"
                                       if dead else "no interrupted moves") + live))
    rows.append(("catalog paths", not found.duplicate_rows,
                 f"{len(found.duplicate_rows)} paths cataloged twice (e.g. {found.duplicate_rows[0]}); {fix}"
                 if found.duplicate_rows else "every path cataloged once"))
    note = f"; {len(found.other_links)} hard links photolab did not make are left as they are" if found.other_links else ""
    rows.append(("hard links", not found.linked,
                 (f"{len(found.linked)} files under two names (e.g. {' = '.join(found.linked[0])}); {fix}"
                  if found.linked else "no file under two names") + note))
    rows.append(("temp files", not found.temp_files,
                 f"{len(found.temp_files)} temporary files of stopped processes (e.g. {found.temp_files[0]}); {fix}"
                 if found.temp_files else "none left behind"))
    backups = list_backups(lib.root)
    rows.append(("catalog backup", True, f"{len(backups)} generations, newest {backups[0].name}" if backups else
                 "none yet (one is made before the first bulk change and daily)"))
    return rows

def device_rows() -> list[tuple[str, bool, str]]:
    """Which device each stage of the labeling pass and the face scan will use on this machine, and whether
    ``--cluster`` can be used (Dask is looked up, not imported)."""
    import importlib.metadata
    import importlib.util
    import os

    from photolab.features.backbone import BATCH_SIZE_NOTE, model_device

    rows = [("device: decoding", True, f"CPU, {(os.cpu_count() or 1) + 1} threads (photos are always decoded on "
                                       "CPU threads)")]
    try:
        runtime, device = model_device()
        where = "GPU (CUDA)" if device == "cuda" else "CPU"
        rows.append(("device: tag model", True, f"{where} through {runtime}; {BATCH_SIZE_NOTE[device]}"))
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        rows.append(("device: tag model", False, str(exc)))
    try:
        import dlib

        cuda = bool(getattr(dlib, "DLIB_USE_CUDA", False))
        rows.append(("device: faces", True, "GPU (CUDA) through dlib" if cuda else
                     "CPU through dlib (HOG detector; up to 4 processes)"))
    except Exception as exc:  # noqa: BLE001
        rows.append(("device: faces", False, f"dlib cannot be loaded: {exc}"))
    if importlib.util.find_spec("distributed") is not None:
        rows.append(("Dask (optional)", True, f"distributed {importlib.metadata.version('distributed')}: "
                                              "--cluster local:N or tcp://host:8786 can be used"))
    else:
        rows.append(("Dask (optional)", True, "not installed: only needed for --cluster "
                                              "(pip install 'photolab[cluster]')"))
    return rows


BACKUP_STALE_DAYS = 7.0


def _backup_row(lib) -> tuple[str, bool, str]:
    """The age of the last snapshot; a configured backup with none in a week fails (the nightly timer stopped?)."""
    if lib is None:
        return ("backup", False, "no library")
    try:
        from photolab.core.backup import borg_binary, status

        st = status(lib)
        detail = st.summary()
        if not st.configured:
            return ("backup", True, detail)
        borg_binary()
        ok = st.age_hours is not None and st.age_hours <= BACKUP_STALE_DAYS * 24
        return ("backup", ok, detail if ok else f"{detail} (older than {BACKUP_STALE_DAYS:g} days)")
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return ("backup", False, str(exc))


__all__ = ["check", "not_ready"]
