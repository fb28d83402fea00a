"""Nothing leaves the machine: telemetry of the libraries photolab loads is switched off.

Some dependencies record or send usage data unless told not to:

- ONNX Runtime (the labeling pass) writes a device id and usage rows under
  ``~/.cache/Microsoft/DeveloperTools/.onnxruntime/`` and may send them to an outside
  server. Its native library reads ``ORT_DISABLE_TELEMETRY`` when it is loaded, so the
  variable must be set before the first ``import onnxruntime``; photolab sets it when
  ``photolab`` itself is imported, and :func:`onnxruntime` also calls
  ``disable_telemetry_events()`` before any session is made.
- huggingface_hub (which timm imports) honours ``HF_HUB_DISABLE_TELEMETRY``; the backbone
  loader also forces the hub offline (:func:`photolab.features.backbone.force_offline`).
- ``DO_NOT_TRACK`` is the common opt-out that several other tools read.

JupyterLab's news feed and update check are turned off by the settings ``make lab``
uses (``jupyter/`` in the repository).
"""

from __future__ import annotations

import os

QUIET_ENV = {
    "ORT_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
}


def quiet_environment() -> None:
    """Set the telemetry opt-outs in this process's environment (kept where the user set them already);
    child processes inherit them."""
    for var, value in QUIET_ENV.items():
        os.environ.setdefault(var, value)


def onnxruntime():
    """The ``onnxruntime`` module with its telemetry off: the one way photolab imports it."""
    quiet_environment()
    import onnxruntime as ort

    ort.disable_telemetry_events()
    return ort


__all__ = ["QUIET_ENV", "onnxruntime", "quiet_environment"]
