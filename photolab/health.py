"""Is everything in place? A short check before the first run (the start-here notebook, ``photolab check``)."""

from __future__ import annotations

import shutil

from .library import open_library

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
        n = lib.catalog.query("SELECT count(*) FROM photos")[0][0]
        rows.append(("catalog", True, f"{lib.root}: schema {lib.catalog.version}, {n} files cataloged"))
    except Exception as exc:  # noqa: BLE001 - reported, not raised: this is a check
        rows.append(("catalog", False, str(exc)))
    try:
        from .backbone import packaged_weights

        weights = packaged_weights()
        rows.append(("model weights", weights.is_file(), f"{weights} (offline, from an installed package)"))
    except Exception as exc:  # noqa: BLE001
        rows.append(("model weights", False, f"{exc}"))
    try:
        from .faces import model_files

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
    where = lib.root if lib is not None else "."
    free = shutil.disk_usage(where).free / 1e9
    rows.append(("free disk", free >= MIN_FREE_GB, f"{free:.1f} GB free at {where} (keep {MIN_FREE_GB:g} GB or more: "
                                                  "quarantine and metadata versions keep copies)"))
    rows.append(_backup_row(lib))
    exiftool = shutil.which("exiftool")
    rows.append(("ExifTool (optional)", True, exiftool or "not installed: only needed to check metadata independently"))
    return pd.DataFrame(rows, columns=["check", "ok", "detail"])


BACKUP_STALE_DAYS = 7.0


def _backup_row(lib) -> tuple[str, bool, str]:
    """The age of the last snapshot; a configured backup with none in a week fails (the nightly timer stopped?)."""
    if lib is None:
        return ("backup", False, "no library")
    try:
        from .backup import borg_binary, status

        st = status(lib)
        detail = st.summary()
        if not st.configured:
            return ("backup", True, detail)
        borg_binary()
        ok = st.age_hours is not None and st.age_hours <= BACKUP_STALE_DAYS * 24
        return ("backup", ok, detail if ok else f"{detail} (older than {BACKUP_STALE_DAYS:g} days)")
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return ("backup", False, str(exc))


__all__ = ["check"]
