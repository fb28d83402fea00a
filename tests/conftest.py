"""Shared fixtures: real photos copied into tmp_path, never the originals."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
SHARED = Path(os.environ.get("PHOTOLAB_SHARED_DATA", REPO.parent / "shared" / "data"))

# One model cache for the whole run (converted weights, checked ONNX export), shared by every test, library and
# subprocess, as a user's libraries share theirs; never the user's own ~/.cache.
if "PHOTOLAB_CACHE_DIR" not in os.environ:
    os.environ["PHOTOLAB_CACHE_DIR"] = tempfile.mkdtemp(prefix="photolab-test-models-")
    atexit.register(shutil.rmtree, os.environ["PHOTOLAB_CACHE_DIR"], True)


@contextlib.contextmanager
def refused_connections():
    """Refuse every socket connection while the block runs; yields the addresses that were tried."""
    opened: list = []
    real_connect = socket.socket.connect

    def refuse(self, address):
        opened.append(address)
        raise OSError("photolab must not open network connections")

    socket.socket.connect = refuse
    try:
        yield opened
    finally:
        socket.socket.connect = real_connect


def copy_tree(src: Path, dest: Path) -> Path:
    """Copy a folder and make the copy writable (the shared originals are read-only)."""
    shutil.copytree(src, dest)
    for folder, dirs, files in os.walk(dest):
        for name in dirs + files:
            p = Path(folder) / name
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    return dest


@pytest.fixture
def sample_copy(tmp_path) -> Path:
    """A writable copy of sample_data/ (the bundled photos)."""
    return copy_tree(SAMPLE, tmp_path / "sample")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or a skip that says why."""
    if not (SHARED / "README.md").is_file():
        pytest.skip(f"shared evaluation data not found at {SHARED} (set PHOTOLAB_SHARED_DATA)")
    return SHARED


@pytest.fixture
def library(tmp_path):
    import photolab

    lib = photolab.init_library(tmp_path / "library")
    yield lib
    lib.close()


@pytest.fixture(scope="session")
def tagged_sample(tmp_path_factory):
    """The bundled sample gathered, indexed and tagged once per test run (copy it before changing it)."""
    from photolab.ui.notebook import setup

    root = tmp_path_factory.mktemp("tagged-sample") / "library"
    setup(root, SAMPLE).close()
    return root
