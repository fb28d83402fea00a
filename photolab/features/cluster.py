"""Beyond one machine: the labeling pass and the face scan on a Dask cluster.

``tag_library(lib, cluster=ADDRESS)`` and ``scan_faces(lib, cluster=ADDRESS)`` (the CLI's ``--cluster``)
send the pixel work to Dask distributed workers: ``ADDRESS`` is a scheduler (``tcp://host:8786``,
``tls://host:8786``), ``local:N`` for a cluster of N worker processes on this machine (bound to
127.0.0.1 only, its dashboard too), or a ``distributed.Client`` already connected.

The client (the process that owns the library) plans the batches and stays the catalog's only writer.
Workers read the photos through a path mapping (``worker_root``: where the library's folder is mounted on
them), decode, run the image model (loaded once per worker process and kept, keyed by model version),
hash, measure and make thumbnails, or find and describe faces, and send back plain data. They never
write into the library; the only files a worker writes are its own model cache (converted weights, the
checked ONNX export: :func:`photolab.features.backbone.user_cache_dir` on that machine).

Fault tolerance is Dask's: the tasks of a worker that dies are run again on another one (and a task that
raises is retried ``RETRIES`` times); each batch's results are written as they come, so what was written
stays and an interrupted pass resumes where it stopped, as the local pass does.

Dask is an optional dependency (``pip install 'photolab[cluster]'``): nothing imports it unless a
cluster is asked for.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from pathlib import Path, PurePosixPath

from photolab.core.errors import PhotolabError

log = logging.getLogger(__name__)

RETRIES = 3                 # a task that raises is run again this many times (a worker's death is not counted)
WORKER_WAIT_S = 60.0        # how long a pass waits for a first worker to join a remote scheduler
FACE_CHUNK = 4              # photos per face-scan task
INSTALL_HINT = "pip install 'photolab[cluster]' (Dask distributed)"


class ClusterError(PhotolabError, RuntimeError):
    """The cluster cannot be reached or used; the message says what to do."""


def parse_address(address: str) -> tuple[str, object]:
    """``("local", N)`` for ``local:N``, ``("scheduler", address)`` for ``tcp://``/``tls://``/``ucx://``
    addresses (a bare ``host:port`` means ``tcp://host:port``); otherwise a :class:`ClusterError`."""
    text = str(address).strip()
    m = re.fullmatch(r"local:(\d+)", text)
    if m:
        n = int(m.group(1))
        if not 1 <= n <= 256:
            raise ClusterError(f"--cluster {text}: a local cluster needs 1 to 256 worker processes")
        return "local", n
    if re.fullmatch(r"(tcp|tls|ucx)://[^\s/:]+(:\d+)?", text):
        return "scheduler", text
    if re.fullmatch(r"[^\s/:]+:\d+", text):
        return "scheduler", f"tcp://{text}"
    raise ClusterError(f"--cluster {text!r}: give a Dask scheduler (tcp://host:8786, tls://host:8786) or "
                       "local:N for N worker processes on this machine")


def _distributed():
    try:
        import distributed
    except ImportError as exc:
        raise ClusterError(f"--cluster needs Dask distributed, which is not installed: {INSTALL_HINT}") from exc
    if logging.getLogger().getEffectiveLevel() > logging.INFO:
        # Dask's start-up and shutdown chatter (INFO) only when photolab itself logs INFO (-v)
        for name in ("distributed", "tornado"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # its note on the dashboard's websocket origins: the local dashboard listens on 127.0.0.1 only
        logging.getLogger("bokeh").setLevel(logging.ERROR)
    return distributed


@contextlib.contextmanager
def _worker_env(quiet: bool):
    """Environment for worker processes started here: their Dask logs at WARNING unless photolab logs INFO."""
    if not quiet or "DASK_LOGGING__DISTRIBUTED" in os.environ:
        yield
        return
    os.environ["DASK_LOGGING__DISTRIBUTED"] = "warning"
    try:
        yield
    finally:
        os.environ.pop("DASK_LOGGING__DISTRIBUTED", None)


def dashboard_link(client) -> str | None:
    """The scheduler's dashboard URL, or None when it runs without one (bokeh not installed there)."""
    try:
        info = client.scheduler_info(n_workers=0) if _takes_n_workers(client) else client.scheduler_info()
        if "dashboard" not in info.get("services", {}):
            return None
        return client.dashboard_link
    except Exception:  # noqa: BLE001 - a link is a convenience
        return None


def _takes_n_workers(client) -> bool:
    import inspect

    try:
        return "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):
        return False


@contextlib.contextmanager
def connect(cluster, *, progress: bool = True):
    """A ``distributed.Client`` for ``cluster`` (an address, ``local:N``, a cluster object or a client),
    with at least one worker; closed afterwards when it was opened here."""
    if cluster is None:
        raise ClusterError("no cluster given")
    distributed = _distributed()
    if isinstance(cluster, distributed.Client):
        name = str(cluster.scheduler.address if cluster.scheduler else cluster)
        _wait_for_workers(cluster, name)
        _announce(cluster, name, progress)
        yield cluster
        return
    if not isinstance(cluster, str) and hasattr(cluster, "scheduler_address"):   # a LocalCluster, a deployed one
        with distributed.Client(cluster) as client:
            _wait_for_workers(client, str(cluster.scheduler_address))
            _announce(client, str(cluster.scheduler_address), progress)
            yield client
        return
    kind, where = parse_address(cluster)
    if kind == "local":
        # worker processes on this machine only: scheduler, workers and dashboard listen on 127.0.0.1
        # (a free port for the dashboard, so two passes on one machine do not collide)
        quiet = logging.getLogger().getEffectiveLevel() > logging.INFO
        try:
            with _worker_env(quiet):
                lc = distributed.LocalCluster(n_workers=where, threads_per_worker=1, processes=True,
                                              host="127.0.0.1", protocol="tcp://", dashboard_address="127.0.0.1:0",
                                              silence_logs=logging.WARNING if quiet else False)
        except RuntimeError as exc:   # typically a script without a main guard, re-run by each spawned worker
            raise ClusterError(f"--cluster local:{where}: the worker processes did not start ({exc}); a Python "
                               "script that starts a local cluster needs `if __name__ == \"__main__\":` around "
                               "its work") from exc
        with lc, distributed.Client(lc) as client:
            _announce(client, f"local:{where}", progress)
            yield client
        return
    try:
        client = distributed.Client(where)   # Dask's connect timeout (distributed.comm.timeouts.connect)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"--cluster {where}: no Dask scheduler answers there ({exc}); start one with "
                           "`dask scheduler --host ADDRESS` on that machine, or use local:N") from exc
    try:
        _wait_for_workers(client, where)
        _announce(client, where, progress)
        yield client
    finally:
        client.close()


def _wait_for_workers(client, where: str) -> None:
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except (TimeoutError, OSError) as exc:
        raise ClusterError(f"--cluster {where}: the scheduler has no workers after {WORKER_WAIT_S:g} s; start "
                           f"one with `dask worker {where}` on a machine that has photolab installed") from exc


def _announce(client, name: str, progress: bool) -> None:
    link = dashboard_link(client)
    workers = client.scheduler_info(**({"n_workers": -1} if _takes_n_workers(client) else {}))["workers"]
    threads = sum(w.get("nthreads", 1) for w in workers.values())
    line = (f"Dask cluster {name}: {len(workers)} worker{'s' if len(workers) != 1 else ''}, {threads} "
            f"thread{'s' if threads != 1 else ''}; dashboard "
            + (link or "off (install bokeh on the scheduler's machine for it)"))
    log.info(line)
    if progress:
        print(line, flush=True)


def total_threads(client) -> int:
    workers = client.scheduler_info(**({"n_workers": -1} if _takes_n_workers(client) else {}))["workers"]
    return max(1, sum(w.get("nthreads", 1) for w in workers.values()))


def worker_path(root: str, rel: str) -> Path:
    """A catalog path (relative, POSIX) under the library's folder as a worker sees it."""
    return Path(root).joinpath(*PurePosixPath(rel).parts)


def probe_photo(lib, rels, limit: int = 50) -> str | None:
    """The first of ``rels`` (catalog paths) that is on disk here: the photo :func:`check_root` asks workers
    for (a photo removed since the index is the pass's to report, not a sign of a wrong mount)."""
    import itertools

    for rel in itertools.islice(rels, limit):
        if lib.abs(rel).is_file():
            return rel
    return None


def check_root(client, root: str, rel: str | None) -> None:
    """Every worker sees the photo ``rel`` under ``root``, or a :class:`ClusterError` naming the worker."""
    if rel is None:
        return
    seen = client.run(_sees, root, rel)
    missing = [addr for addr, ok in seen.items() if not ok]
    if missing:
        raise ClusterError(f"worker {missing[0]} does not see {worker_path(root, rel)}: mount the library's "
                           f"folder there on every worker, or pass --worker-root with where it is mounted "
                           f"({len(missing)} of {len(seen)} workers)")


def _sees(root: str, rel: str) -> bool:
    return worker_path(root, rel).is_file()


def worker_info(runtime: str = "auto", device: str = "auto") -> dict:
    """What a worker is: its process id, photolab version, and the runtime and device its model will use."""
    from photolab import __version__
    from photolab.features.backbone import model_device

    rt, dev = model_device(runtime, device)
    return {"pid": os.getpid(), "photolab": __version__, "runtime": rt, "device": dev}


def workers(client, runtime: str = "auto", device: str = "auto") -> dict[str, dict]:
    """:func:`worker_info` of every worker, by address; a worker with another photolab is an error."""
    from photolab import __version__

    info = client.run(worker_info, runtime, device)
    other = {a: i["photolab"] for a, i in info.items() if i["photolab"] != __version__}
    if other:
        addr, ver = next(iter(other.items()))
        raise ClusterError(f"worker {addr} runs photolab {ver}, this machine {__version__}: install the same "
                           "version on every worker")
    return info


def run_batches(client, fn, batches, *args, window: int | None = None, retries: int = RETRIES):
    """Submit ``fn(batch, *args)`` for each batch, at most ``window`` in flight (bounded memory on the
    client), and yield ``(batch, result)`` as they complete. A task whose worker dies is run again
    elsewhere by Dask; one that keeps failing raises a :class:`ClusterError`."""
    distributed = _distributed()
    window = window or 2 * total_threads(client) + 2
    it = iter(batches)
    pending = distributed.as_completed()
    of = {}

    def submit(batch):
        fut = client.submit(fn, batch, *args, retries=retries, pure=False)
        of[fut.key] = batch
        pending.add(fut)

    for batch in it:
        submit(batch)
        if len(of) >= window:
            break
    for fut in pending:
        batch = of.pop(fut.key)
        try:
            result = fut.result()
        except distributed.KilledWorker as exc:
            raise ClusterError(f"workers died {retries} times running one batch (its first photo: "
                               f"{_first(batch)}); results written so far are kept: run the pass again") from exc
        except (PhotolabError, OSError):
            raise
        except Exception as exc:  # noqa: BLE001 - the worker's own error, said once with its batch
            raise ClusterError(f"a worker failed on a batch (its first photo: {_first(batch)}): "
                               f"{type(exc).__name__}: {exc}") from exc
        finally:
            fut.release()
        yield batch, result
        nxt = next(it, None)
        if nxt is not None:
            submit(nxt)


def _first(batch) -> str:
    try:
        return str(batch[0][1])
    except (IndexError, TypeError, KeyError):
        return "?"


# -- on the workers ----------------------------------------------------------------------------------------
_LOCK = threading.Lock()
_MODELS: dict = {}


def model_spec(bb, runtime: str = "auto", device: str = "auto", threads: int = 1) -> dict:
    """What a worker needs to load the same model: its name, version and where its weights come from."""
    return {"name": bb.name, "version": bb.version, "checkpoint": bb.meta.get("checkpoint"),
            "hub_cache": bool(bb.meta.get("hub_cache")), "runtime": runtime, "device": device, "threads": threads}


def worker_model(spec: dict):
    """(backbone, engine) for ``spec``, loaded once per worker process and kept (keyed by model version,
    runtime and device); a worker whose weights make another version is an error."""
    key = (spec["version"], spec["runtime"], spec["device"], spec["threads"])
    with _LOCK:
        if key not in _MODELS:
            from photolab.features.backbone import engine, load_backbone

            bb = load_backbone(name=spec["name"], checkpoint=spec["checkpoint"], hub_cache=spec["hub_cache"])
            if bb.version != spec["version"]:
                raise ClusterError(f"this worker's model is {bb.version}, the pass uses {spec['version']}: install "
                                   "the same photolab and weights on every worker (or copy the checkpoint file to "
                                   f"{spec['checkpoint']} there)")
            _MODELS[key] = (bb, engine(bb, threads=spec["threads"], runtime=spec["runtime"], device=spec["device"]))
            log.info("worker %s: model %s on %s (%s)", os.getpid(), bb.version, _MODELS[key][1].device,
                     _MODELS[key][1].runtime)
        return _MODELS[key]


def warm(spec: dict) -> dict:
    """Load the model on this worker now (``client.run(warm, spec)``), so a timed pass does not include it:
    its version, runtime and device."""
    bb, run = worker_model(spec)
    return {"version": bb.version, "runtime": run.runtime, "device": run.device}


__all__ = ["ClusterError", "check_root", "probe_photo", "connect", "dashboard_link", "model_spec", "parse_address", "run_batches",
           "warm", "worker_info", "worker_model", "worker_path", "workers"]
