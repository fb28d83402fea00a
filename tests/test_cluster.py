"""The labeling pass and the face scan on a real Dask cluster (LocalCluster, 2 worker processes): the same
features, scores and faces as the local pass, each photo written once by this process, a worker killed
mid-pass costing nothing; without a cluster Dask is never imported."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import photolab
from photolab.stages.index import USABLE
from photolab.stages.tagging import tag_library

from conftest import REPO, SAMPLE, copy_tree

pytestmark = pytest.mark.slow
distributed = pytest.importorskip("distributed", reason="Dask distributed is not installed (pip install "
                                                        "'photolab[cluster]')")


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """The bundled sample gathered and indexed, not tagged (copy it before use)."""
    root = tmp_path_factory.mktemp("cluster")
    src = copy_tree(SAMPLE, root / "src")
    lib = photolab.init_library(root / "lib")
    photolab.gather([src], lib, progress=False)
    photolab.index_library(lib, progress=False)
    lib.close()
    return root / "lib"


@pytest.fixture(scope="module")
def local_pass(indexed, tmp_path_factory):
    """The same library tagged by the local pass, for comparison."""
    root = tmp_path_factory.mktemp("local") / "lib"
    shutil.copytree(indexed, root)
    report = tag_library(root, progress=False)
    assert report.failed == [] and report.tagged > 10
    return root


@pytest.fixture
def untagged(indexed, tmp_path):
    root = tmp_path / "lib"
    shutil.copytree(indexed, root)
    return root


def new_cluster():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address="127.0.0.1:0")
    return cluster, distributed.Client(cluster)


def features(root: Path) -> dict:
    conn = sqlite3.connect(root / ".photolab" / "catalog.sqlite")
    conn.row_factory = sqlite3.Row
    out = {}
    for r in conn.execute("SELECT p.path, f.* FROM features f JOIN photos p ON p.id = f.photo_id"):
        out[r["path"]] = dict(r)
    conn.close()
    return out


def scores(root: Path) -> dict:
    conn = sqlite3.connect(root / ".photolab" / "catalog.sqlite")
    out = {(p, t): (s, src) for p, t, s, src in conn.execute(
        "SELECT p.path, s.tag, s.score, s.source FROM scores s JOIN photos p ON p.id = s.photo_id")}
    conn.close()
    return out


def assert_same_as_local(root: Path, local: Path) -> None:
    mine, ref = features(root), features(local)
    assert sorted(mine) == sorted(ref)
    for path, r in ref.items():
        m = mine[path]
        for col in ("model", "sha256", "phash", "dhash", "phash8", "dhash8", "thumb"):
            assert m[col] == r[col], (path, col)
        for col in ("sharpness", "brightness", "dark_frac", "clipped_frac", "colorfulness", "warm_frac",
                    "blue_frac", "saturation", "top_lift"):
            assert m[col] == pytest.approx(r[col], rel=1e-9, abs=1e-12), (path, col)
        a = np.frombuffer(m["embedding"], dtype=np.float16).astype(np.float32)
        b = np.frombuffer(r["embedding"], dtype=np.float16).astype(np.float32)
        # within float16 rounding: one step of float16 at each value (2**-10 of it), or 1e-3 near zero
        assert np.all(np.abs(a - b) <= np.maximum(np.abs(b) * 2.0 ** -9, 1e-3)), path
        assert [c for c, _ in json.loads(m["top5"])][:3] == [c for c, _ in json.loads(r["top5"])][:3], path
        assert (root / ".photolab" / "features" / m["thumb"]).read_bytes() == \
            (local / ".photolab" / "features" / r["thumb"]).read_bytes(), path
    s_mine, s_ref = scores(root), scores(local)
    assert s_mine.keys() == s_ref.keys()
    for key, (value, source) in s_ref.items():
        assert s_mine[key][1] == source, key
        if value is None:
            assert s_mine[key][0] is None, key
        else:
            assert s_mine[key][0] == pytest.approx(value, abs=2e-3), key


def once_each(root: Path) -> int:
    conn = sqlite3.connect(root / ".photolab" / "catalog.sqlite")
    n, distinct = conn.execute("SELECT count(*), count(DISTINCT photo_id) FROM features").fetchone()
    usable = conn.execute("SELECT count(*) FROM photos WHERE kind IN ('photo', 'raw', 'video') "
                          f"AND status IN {USABLE!r}").fetchone()[0]
    conn.close()
    assert n == distinct
    return n if n == usable else -1


def test_cluster_pass_equals_the_local_pass(untagged, local_pass, capsys):
    report = tag_library(untagged, cluster="local:2", progress=True)
    out = capsys.readouterr().out
    assert "Dask cluster local:2: 2 workers" in out and "dashboard http://127.0.0.1:" in out
    assert report.failed == [] and report.tagged == len(features(local_pass))
    assert report.cluster.startswith("cluster (2 workers: onnxruntime/cpu")
    assert once_each(untagged) == report.tagged
    assert_same_as_local(untagged, local_pass)
    again = tag_library(untagged, cluster="local:2", progress=False)   # resumable: nothing left, no cluster
    assert again.tagged == 0 and again.skipped == report.tagged


def test_a_worker_killed_mid_pass_loses_nothing(untagged, local_pass):
    cluster, client = new_cluster()
    try:
        pids = client.run(os.getpid)
        assert len(pids) == 2
        done: dict = {}
        # batches of 2 photos: the pass has many tasks in flight when a worker dies
        thread = threading.Thread(target=lambda: done.update(report=tag_library(
            untagged, cluster=client, batch_size=2, progress=False)))
        thread.start()
        db = untagged / ".photolab" / "catalog.sqlite"
        before = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and thread.is_alive():
            try:
                conn = sqlite3.connect(db, timeout=5)
                before = dict(conn.execute("SELECT photo_id, computed_at FROM features").fetchall())
                conn.close()
            except sqlite3.OperationalError:
                before = {}
            if before:
                break
            time.sleep(0.02)
        victim = sorted(pids.values())[0]
        os.kill(victim, signal.SIGKILL)
        thread.join(300)
        assert not thread.is_alive()
        total = len(features(local_pass))
        assert 0 < len(before) < total, "the worker was not killed mid-pass"
        report = done["report"]
        assert report.failed == [] and report.tagged == total
        assert once_each(untagged) == total
        conn = sqlite3.connect(db)
        after = dict(conn.execute("SELECT photo_id, computed_at FROM features").fetchall())
        conn.close()
        assert all(after[pid] == at for pid, at in before.items())   # what was written stays as it was
        assert victim not in client.run(os.getpid).values()
        assert_same_as_local(untagged, local_pass)
    finally:
        client.close()
        cluster.close()


FACES = ["train__obama__obama.jpg", "train__biden__biden.jpg", "test__obama1.jpg", "two_people.jpg",
         "test__obama_and_biden.jpg", "test__kit_with_rose.jpg", "lin-manuel-miranda.png"]


def faces_by_file(root: Path):
    from photolab.stages.faces import faces

    lib = photolab.open_library(root)
    df = faces(lib)
    conn = sqlite3.connect(root / ".photolab" / "catalog.sqlite")
    emb = {i: np.frombuffer(e, dtype=np.float32) for i, e in conn.execute("SELECT id, embedding FROM faces")}
    scans = dict(conn.execute("SELECT p.path, s.faces FROM face_scans s JOIN photos p ON p.id = s.photo_id"))
    conn.close()
    out = {}
    for fid, r in df.sort_values(["path", "x"]).iterrows():
        out.setdefault(r["path"], []).append(((r["x"], r["y"], r["w"], r["h"]), r["score"], emb[fid]))
    lib.close()
    return out, scans


def test_face_scan_on_the_cluster_finds_the_same_faces(shared_data, tmp_path):
    from photolab.stages.faces import scan_faces

    src = shared_data / "faces" / "images"
    names = sorted(p.name for p in src.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    roots = []
    for label in ("local", "cluster"):
        root = tmp_path / label
        root.mkdir()
        for name in names:
            shutil.copyfile(src / name, root / name)
        photolab.init_library(root).close()
        photolab.index_library(root, progress=False)
        roots.append(root)
    local = scan_faces(roots[0], progress=False, workers=2)
    remote = scan_faces(roots[1], progress=False, cluster="local:2")
    assert remote.scanned == local.scanned == len(names) and remote.failed == local.failed == []
    assert remote.faces == local.faces > len(names)
    (a, scans_a), (b, scans_b) = faces_by_file(roots[0]), faces_by_file(roots[1])
    assert scans_a == scans_b and a.keys() == b.keys()
    for path in a:
        assert len(a[path]) == len(b[path]), path
        for (box1, s1, e1), (box2, s2, e2) in zip(a[path], b[path]):
            assert np.allclose(box1, box2, atol=1e-9) and s1 == pytest.approx(s2, abs=1e-4), path
            assert np.allclose(e1, e2, atol=1e-5), path


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "photolab.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, timeout=600)


def test_cli_faces_on_a_cluster_through_a_worker_root(shared_data, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in FACES[:4]:
        shutil.copyfile(shared_data / "faces" / "images" / name, lib / name)
    photolab.init_library(lib).close()
    photolab.index_library(lib, progress=False)
    mount = tmp_path / "mnt-photos"        # the library as the workers see it: mounted elsewhere
    mount.symlink_to(lib)
    wrong = run_cli("-q", "faces", str(lib), "--cluster", "local:2", "--worker-root", str(tmp_path / "nowhere"))
    assert wrong.returncode == 2
    assert "does not see" in wrong.stderr and str(tmp_path / "nowhere") in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1
    ok = run_cli("faces", str(lib), "--cluster", "local:2", "--worker-root", str(mount))
    assert ok.returncode == 0, ok.stderr
    assert "Dask cluster local:2" in ok.stdout and "4 photos scanned" in ok.stdout
    conn = sqlite3.connect(lib / ".photolab" / "catalog.sqlite")
    assert conn.execute("SELECT count(*) FROM face_scans").fetchone()[0] == 4
    assert conn.execute("SELECT count(*) FROM faces").fetchone()[0] >= 4
    conn.close()


def test_bad_addresses_are_one_line_errors(tmp_path):
    from photolab.features.cluster import ClusterError, parse_address

    assert parse_address("local:2") == ("local", 2)
    assert parse_address("tcp://192.168.1.10:8786") == ("scheduler", "tcp://192.168.1.10:8786")
    assert parse_address("nas:8786") == ("scheduler", "tcp://nas:8786")
    for bad in ("local:0", "local:x", "http://nas:8786", "nas"):
        with pytest.raises(ClusterError):
            parse_address(bad)
    lib = tmp_path / "lib"
    shutil.copytree(SAMPLE, lib, ignore=shutil.ignore_patterns("*.heic", "*.png", "[a-j]*", "kde_[A-K]*"))
    photolab.init_library(lib).close()
    photolab.index_library(lib, progress=False)
    out = run_cli("-q", "tag", str(lib), "--cluster", "local:zero")
    assert out.returncode == 2 and "local:N" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    # nothing listens on this port: a clear error naming what to start, not a hang
    out = run_cli("-q", "tag", str(lib), "--cluster", "tcp://127.0.0.1:9",
                  env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s"})
    assert out.returncode == 2 and "dask scheduler" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_without_a_cluster_dask_is_never_imported(tmp_path):
    lib = tmp_path / "lib"
    shutil.copytree(SAMPLE, lib, ignore=shutil.ignore_patterns("*.heic", "*.png", "[a-j]*", "kde_[A-K]*"))
    code = f"""
import sys
import photolab
from photolab import cli
assert 'dask' not in sys.modules and 'distributed' not in sys.modules, 'import photolab imported dask'
photolab.init_library({str(lib)!r}).close()
photolab.index_library({str(lib)!r}, progress=False)
assert cli.main(['-q', 'tag', {str(lib)!r}]) == 0
cli.main(['-q', 'check', {str(lib)!r}])
from photolab.stages.faces import scan_faces
scan_faces({str(lib)!r}, progress=False, workers=1)
print('DASK', sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    assert "DASK []" in out.stdout
    assert "Dask (optional)" in out.stdout and "device: tag model" in out.stdout


def test_the_model_runs_on_the_cpu_here_and_says_so(tmp_path):
    from photolab.features.backbone import engine, load_backbone, model_device, nvidia_gpu_present

    if nvidia_gpu_present():
        pytest.skip("this machine has an NVIDIA GPU: the CPU-only behaviour is not what runs here")
    # this machine has no GPU: the pass runs on the CPU, with the CPU batch size, and check says so
    assert model_device() == ("onnxruntime", "cpu")
    run = engine(load_backbone(), device="auto")
    assert run.device == "cpu" and run.runtime == "onnxruntime"
    from photolab.features.backbone import BackboneError

    with pytest.raises(BackboneError, match="no GPU"):
        engine(load_backbone(), device="cuda")


def test_a_local_cluster_listens_on_127_0_0_1_only_and_check_lists_its_workers(untagged, capsys):
    from photolab import cli
    from photolab.features.cluster import connect

    with connect("local:2", progress=False) as client:
        info = client.scheduler_info()
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        assert len(info["workers"]) == 2 and all(a.startswith("tcp://127.0.0.1:") for a in info["workers"])
        assert client.dashboard_link.startswith("http://127.0.0.1:")
    cli.main(["check", str(untagged), "--cluster", "local:2"])
    out = capsys.readouterr().out
    assert "device: tag model" in out and "device: decoding" in out and "device: faces" in out
    workers = [line for line in out.splitlines() if line.strip().startswith("ok   worker tcp://127.0.0.1:")]
    assert len(workers) == 2 and all("tag model on CPU through onnxruntime" in w for w in workers)


def test_a_photo_workers_cannot_read_is_reported_by_path_as_in_the_local_pass(tmp_path):
    roots = []
    for label in ("local", "cluster"):
        root = tmp_path / label
        shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns("*.heic", "*.png", "[a-j]*", "kde_[A-K]*"))
        photolab.init_library(root).close()
        photolab.index_library(root, progress=False)
        data = (root / "mate_Dune.jpg").read_bytes()     # damaged after the index read it
        (root / "mate_Dune.jpg").write_bytes(data[:len(data) // 3])
        roots.append(root)
    local = tag_library(roots[0], progress=False)
    remote = tag_library(roots[1], progress=False, cluster="local:2")
    assert remote.failed == local.failed and [p for p, _ in remote.failed] == ["mate_Dune.jpg"]
    assert "changed since it was indexed" in remote.failed[0][1]
    assert remote.tagged == local.tagged == 5
    with photolab.open_library(roots[1]) as lib:   # tried again after the next index, not marked corrupt
        assert lib.catalog.query("SELECT status FROM photos WHERE path = 'mate_Dune.jpg'")[0][0] == "ok"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_scheduler_and_a_worker_started_as_the_readme_says(tmp_path):
    """`dask scheduler` and `dask worker tcp://…` in processes of their own (as on other machines), then
    `photolab tag LIBRARY --cluster tcp://…`."""
    lib = tmp_path / "lib"
    shutil.copytree(SAMPLE, lib, ignore=shutil.ignore_patterns("*.heic", "*.png", "[a-j]*", "kde_[A-K]*"))
    photolab.init_library(lib).close()
    photolab.index_library(lib, progress=False)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "dask", "worker", address, "--host", "127.0.0.1",
                                       "--nworkers", "1", "--nthreads", "2", "--no-dashboard"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        out = run_cli("tag", str(lib), "--cluster", address)
        assert out.returncode == 0, out.stderr
        assert f"Dask cluster {address}: 1 worker, 2 threads" in out.stdout
        assert "tag: 6 tagged" in out.stdout and "0 failed" in out.stdout
        assert "on a Dask cluster (1 worker: onnxruntime/cpu)" in out.stdout
        assert once_each(lib) == 6
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
