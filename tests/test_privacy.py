"""Nothing leaves the machine: no telemetry files, no connection to an outside address, no news feed."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, SAMPLE

PYTHON = sys.executable


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORT_", "XDG_CACHE"))}
    env.update(HOME=str(home), PYTHONPATH=str(REPO))
    env.pop("DO_NOT_TRACK", None)
    env.pop("HF_HUB_DISABLE_TELEMETRY", None)
    return env


def _written_under_microsoft(home: Path) -> list[str]:
    ms = home / ".cache" / "Microsoft"
    return sorted(str(p.relative_to(home)) for p in ms.rglob("*") if p.is_file()) if ms.exists() else []


def test_onnxruntime_is_loaded_with_its_telemetry_off(tmp_path):
    """A session made the way photolab makes one records nothing under ~/.cache/Microsoft."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    home = tmp_path / "home"
    home.mkdir()
    script = (
        "import onnx, onnx.helper as h\n"
        "from onnx import TensorProto\n"
        "g = h.make_graph([h.make_node('Relu', ['x'], ['y'])], 'g',\n"
        "    [h.make_tensor_value_info('x', TensorProto.FLOAT, [1])], [h.make_tensor_value_info('y', TensorProto.FLOAT, [1])])\n"
        "m = h.make_model(g, opset_imports=[h.make_opsetid('', 17)]); m.ir_version = 8\n"
        f"onnx.save(m, {str(tmp_path / 'relu.onnx')!r})\n"
        "from photolab.core.privacy import onnxruntime\n"
        "ort = onnxruntime()\n"
        f"s = ort.InferenceSession({str(tmp_path / 'relu.onnx')!r}, providers=['CPUExecutionProvider'])\n"
        "import numpy as np; print(s.run(None, {'x': np.array([-1.0], dtype=np.float32)})[0])\n")
    out = subprocess.run([PYTHON, "-c", script], env=_env(home), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "[0.]" in out.stdout
    assert _written_under_microsoft(home) == []


def test_importing_photolab_sets_the_telemetry_opt_outs(tmp_path):
    code = "import os, photolab; print(os.environ.get('ORT_DISABLE_TELEMETRY'), os.environ.get('HF_HUB_DISABLE_TELEMETRY'))"
    out = subprocess.run([PYTHON, "-c", code], env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["1", "1"], out.stderr


# -- a whole pass under strace -------------------------------------------------------------
_SOCKADDR = re.compile(r"\{sa_family=(AF_INET6?)[^}]*\}")
_V4 = re.compile(r'inet_addr\("([0-9.]+)"\)')
_V6 = re.compile(r'inet_pton\(AF_INET6, "([0-9a-fA-F:.]+)"')
_PORT = re.compile(r"sin6?_port=htons\((\d+)\)")


def outside_calls(trace: str) -> list[str]:
    """strace lines (connect/sendto/sendmsg) that reach an address other than this machine's loopback,
    or the DNS port anywhere."""
    bad = []
    for line in trace.splitlines():
        if not re.search(r"\b(connect|sendto|sendmsg)\(", line):
            continue
        for m in _SOCKADDR.finditer(line):
            addr = m.group(0)
            port = _PORT.search(addr)
            if port and port.group(1) == "53":
                bad.append(line)
                break
            v4, v6 = _V4.search(addr), _V6.search(addr)
            host = (v4 or v6).group(1) if (v4 or v6) else ""
            local = host.startswith("127.") or host in ("::1", "0.0.0.0", "::") or host.startswith("::ffff:127.")
            if not local:
                bad.append(line)
                break
    return bad


def test_outside_calls_are_recognised():
    lines = [
        '11 connect(15, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.255.255.53")}, 16) = 0',
        '12 connect(3, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("13.69.109.130")}, 16) = 0',
        '13 connect(4, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), '
        'inet_pton(AF_INET6, "2603:1020::1", &sin6_addr), sin6_scope_id=0}, 28) = 0',
        '14 connect(5, {sa_family=AF_INET, sin_port=htons(8888), sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
        '15 connect(6, {sa_family=AF_UNIX, sun_path="/run/x"}, 110) = 0',
        '16 sendto(7, "x", 1, 0, {sa_family=AF_INET6, sin6_port=htons(9), sin6_flowinfo=htonl(0), '
        'inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = 1',
    ]
    assert [l.split()[0] for l in outside_calls("\n".join(lines))] == ["11", "12", "13"]


def _strace_usable() -> str | None:
    if not shutil.which("strace"):
        return "strace is not installed (Debian package strace; .ci/run installs it)"
    probe = subprocess.run(["strace", "-f", "-qq", "-e", "trace=connect", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"strace cannot trace here (ptrace not permitted?): {probe.stderr.strip()[:200]}"
    return None


@pytest.mark.slow
def test_a_whole_pass_makes_no_outside_connection_and_writes_no_telemetry(tmp_path):
    """init, gather, index and the labeling pass (ONNX Runtime) under strace: no connect/sendto/sendmsg
    to anything but loopback or a local socket, no DNS query, nothing under ~/.cache/Microsoft."""
    why = _strace_usable()
    if why:
        pytest.skip(why)
    home = tmp_path / "home"
    home.mkdir()
    src = tmp_path / "card"
    src.mkdir()
    for p in sorted(SAMPLE.glob("kde_*.jpg"))[:3]:
        shutil.copy2(p, src / p.name)
    lib = tmp_path / "library"
    script = (
        "import photolab, sys\n"
        "from photolab.stages.tagging import tag_library\n"
        f"lib = photolab.init_library({str(lib)!r})\n"
        f"photolab.gather([{str(src)!r}], lib, progress=False)\n"
        "photolab.index_library(lib, progress=False)\n"
        "r = tag_library(lib, progress=False)\n"
        "print('tagged', r.tagged, getattr(r, 'runtime', ''))\n")
    trace = tmp_path / "trace.txt"
    cmd = ["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(trace), PYTHON, "-c", script]
    out = subprocess.run(cmd, env=_env(home), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "tagged 3" in out.stdout, out.stdout + out.stderr[-2000:]
    assert outside_calls(trace.read_text(errors="replace")) == []
    assert _written_under_microsoft(home) == []


# -- JupyterLab as `make lab` starts it ------------------------------------------------------
def _lab_command() -> list[str]:
    """The `jupyter lab` command of the Makefile's lab target, with this venv's jupyter."""
    text = (REPO / "Makefile").read_text()
    recipe = text.split("\nlab:", 1)[1].split("\n", 2)[1]
    args = shlex.split(recipe.strip())
    assert args[0].endswith("/jupyter") and args[1] == "lab", recipe
    return [str(Path(PYTHON).with_name("jupyter"))] + args[1:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_make_lab_turns_off_news_and_update_checks(tmp_path):
    jupyter = Path(PYTHON).with_name("jupyter")
    if not jupyter.exists():
        pytest.skip("jupyter is not installed in this environment")
    port, token = _free_port(), "photolab-test"
    cmd = _lab_command() + [f"--ServerApp.port={port}", f"--IdentityProvider.token={token}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    env = _env(tmp_path)
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "jupyter-config")   # no user settings of this machine
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "jupyter-runtime")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def get(path: str):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read().decode()

    try:
        for _ in range(240):
            try:
                page = get("/lab")
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"jupyter lab exited: {proc.stderr.read().decode()[-2000:]}")
                time.sleep(0.25)
        else:
            pytest.fail("jupyter lab did not start within 60 s")
        assert '"news": {"disabled": true}' in page        # the server fetches no feed
        assert json.loads(get("/lab/api/news")) == {"news": []}
        assert json.loads(get("/lab/api/update")) == {"notification": None}
        settings = json.loads(get("/lab/api/settings/@jupyterlab/apputils-extension:notification"))
        defaults = {k: v.get("default") for k, v in settings["schema"]["properties"].items()}
        # "Never" instead of "Ask": the lab does not ask to fetch news, nor check for updates
        assert defaults["fetchNews"] == "false"
        assert defaults["checkForUpdates"] is False
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
