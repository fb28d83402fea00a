"""Things beyond the taxonomy: any English noun WordNet places over the ImageNet classes.

``photolab/data/thing_words.json`` (built once by ``scripts/build_thing_words.py``
from WordNet 3.0) maps about 3,300 nouns ("pizza", "guitar", "lighthouse",
"dessert", "musical instrument", "dog") to the ImageNet classes under the synsets
they name. A photo's score for a word is the summed softmax probability of those
classes, from the photo's cached embedding through the backbone's own classifier
(the 1000 x 1280 layer, read from the converted safetensors with numpy): no file
is decoded again.

The class probabilities of every photo are computed once and cached as float16 in
``.photolab/features/find-probs.npz``, stamped per row as the dedupe cache is, so a
later query reads only rows that are new or were recomputed since.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import zlib
from importlib import resources
from pathlib import Path

import numpy as np

from photolab.core.errors import PhotolabError
from photolab.store import find as store

log = logging.getLogger(__name__)

CACHE_FILE = "find-probs.npz"
CACHE_VERSION = 1
THING_MIN = 0.2            # a photo matches a thing word when the word's classes hold this much probability


class ThingError(PhotolabError, RuntimeError):
    """Things cannot be scored (no classifier for the model that made the embeddings)."""


@functools.cache
def vocabulary() -> dict:
    """``{"words": {word: [wnid, ...]}, "synsets": {wnid: [name, [class index, ...]]}}``."""
    text = resources.files("photolab").joinpath("data", "thing_words.json").read_text(encoding="utf-8")
    return json.loads(text)


def normalize(text: str) -> str:
    return re.sub(r"[\s_]+", " ", text.strip().lower().replace("-", " "))


def _singulars(word: str) -> list[str]:
    """WordNet's regular noun endings (morphy), most specific first."""
    out = []
    for suffix, repl in (("ies", "y"), ("ches", "ch"), ("shes", "sh"), ("xes", "x"), ("ses", "s"), ("zes", "z"),
                         ("men", "man"), ("s", "")):
        if word.endswith(suffix) and len(word) > len(suffix) + 1:
            out.append(word[: -len(suffix)] + repl)
    return out


def resolve(text: str) -> tuple[str, list[str]] | None:
    """(the known word, its synsets) for ``text`` or its singular; None when WordNet names no ImageNet class."""
    words = vocabulary()["words"]
    w = normalize(text)
    if w in words:
        return w, words[w]
    head, _, last = w.rpartition(" ")
    for s in _singulars(last):
        cand = f"{head} {s}".strip()
        if cand in words:
            return cand, words[cand]
    return None


def known(text: str) -> bool:
    return resolve(text) is not None


def nearest(text: str, n: int = 5) -> list[str]:
    """The known words closest in spelling to ``text`` (difflib)."""
    import difflib

    return difflib.get_close_matches(normalize(text), vocabulary()["words"].keys(), n=n, cutoff=0.7)


def classes(wnids: list[str]) -> np.ndarray:
    """Sorted ImageNet class indices under the synsets ``wnids``."""
    syn = vocabulary()["synsets"]
    return np.array(sorted({i for w in wnids for i in syn[w][1]}), dtype=np.int64)


def describe(wnids: list[str]) -> str:
    syn = vocabulary()["synsets"]
    return ", ".join(syn[w][0] for w in wnids)


# -- the classifier ---------------------------------------------------------------------------------
def classifier(lib, model: str) -> tuple[np.ndarray, np.ndarray]:
    """(weight 1000 x D float32, bias 1000 float32) of the backbone ``model`` (a features.model version),
    read from its converted safetensors in the user model cache (or a library's ``.photolab/models/backbone/``)."""
    from safetensors.numpy import load_file

    from photolab.features.backbone import DEFAULT_MODEL, _convert_lite0, model_cache, user_cache_dir

    name, _, digest = model.partition(":")
    file = f"{name}-{digest}.safetensors"
    places = [user_cache_dir() / file, lib.state / "models" / "backbone" / file, Path.home() / ".cache" / "photolab" / file]
    path = next((p for p in places if p.is_file()), None)
    if path is None:
        if name == DEFAULT_MODEL:
            made = _convert_lite0(model_cache(lib.state / "models" / "backbone"))
            if made.name == file:
                path = made
    if path is None:
        raise ThingError(f"{places[0]}: the classifier of {model}, which made this library's embeddings, is not "
                         "there; run `photolab tag --force LIBRARY` to redo the embeddings with the packaged model")
    return _load_classifier(str(path), load_file)


@functools.lru_cache(maxsize=2)
def _load_classifier(path: str, load_file) -> tuple[np.ndarray, np.ndarray]:
    tensors = load_file(path)
    keys = [k for k in tensors if tensors[k].ndim == 2 and tensors[k].shape[0] == 1000]
    if not keys:
        raise ThingError(f"{path}: no 1000-class classifier in these weights; things cannot be scored with them")
    key = "classifier.weight" if "classifier.weight" in keys else keys[-1]
    bias = tensors.get(key.rsplit(".", 1)[0] + ".bias")
    w = tensors[key].astype(np.float32)
    b = bias.astype(np.float32) if bias is not None else np.zeros(1000, np.float32)
    return w, b


def probabilities(emb: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Softmax class probabilities (N x 1000 float32) of pre-logit embeddings (N x D)."""
    logits = emb.astype(np.float32) @ weight.T + bias
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits


def class_probabilities(lib, *, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(photo ids, N x 1000 float16 class probabilities) for every photo with features, from the cache
    (only new or recomputed rows are scored).

    Checking every row's stamp reads the whole features table (a second at 100,000 photos), so it is
    done only when a tagging pass (the one writer of embeddings) has run since the cache was written;
    within one process the arrays are kept until anyone commits to the catalog."""
    cat = lib.catalog
    change = store.change_stamp(cat.conn)
    memo = getattr(cat, "_find_probs", None)
    if memo is not None and memo[0] == change:
        return memo[1]
    out = _class_probabilities(lib, chunk)
    cat._find_probs = (change, out)
    return out


def _class_probabilities(lib, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    conn = lib.catalog.conn
    run = store.last_tag_run(conn)
    done = run[0] if run is not None and run[1] else -1
    path = lib.state / "features" / CACHE_FILE
    if done >= 0 and path.is_file():
        try:
            with np.load(path) as z:
                if int(z["version"]) == CACHE_VERSION and int(z["tag_run"]) == done:
                    return z["ids"], z["probs"]
        except Exception as exc:   # noqa: BLE001 - a damaged cache is only a cache: rebuilt below
            log.warning("%s: unreadable (%s); rebuilding", path, exc)
    stamps = store.feature_stamps(conn)
    ids = np.array([r[0] for r in stamps], dtype=np.int64)
    st = np.array([zlib.crc32(r[1].encode()) for r in stamps], dtype=np.uint32)
    path = lib.state / "features" / CACHE_FILE
    n = len(ids)
    probs = np.zeros((n, 1000), np.float16)
    fresh = np.ones(n, dtype=bool)
    if path.is_file():
        try:
            with np.load(path) as z:
                if int(z["version"]) == CACHE_VERSION and len(z["ids"]):
                    cids, cst = z["ids"], z["stamps"]
                    pos = np.clip(np.searchsorted(cids, ids), 0, len(cids) - 1)
                    hit = (cids[pos] == ids) & (cst[pos] == st)
                    if hit.all() and len(cids) == n:
                        probs = z["probs"]
                    elif hit.any():
                        probs[hit] = z["probs"][pos[hit]]
                    fresh = ~hit
        except Exception as exc:   # noqa: BLE001 - a damaged cache is only a cache: rebuilt below
            log.warning("%s: unreadable (%s); rebuilding", path, exc)
    todo = ids[fresh]
    if len(todo) or done >= 0:
        from tqdm.auto import tqdm

        where = np.flatnonzero(fresh)
        bar = tqdm(total=len(todo), desc="things", unit="img", disable=len(todo) < 20000)
        if len(todo) == n:   # everything: one ordered pass over the table
            chunks = store.iter_embeddings(conn, chunk)
        else:
            chunks = (store.embeddings(conn, todo[k:k + chunk].tolist()) for k in range(0, len(todo), chunk))
        k = 0
        for rows in chunks:
            _score_rows(lib, rows, probs, where[k:k + len(rows)], ids)
            k += len(rows)
            bar.update(len(rows))
        bar.close()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        try:
            np.savez(tmp, version=np.array(CACHE_VERSION), ids=ids, stamps=st, probs=probs, tag_run=np.array(done))
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("%s: cannot write the class-probability cache (%s)", path, exc)
            tmp.unlink(missing_ok=True)
    return ids, probs


def _score_rows(lib, rows, probs, at, ids) -> None:
    got = np.array([r[0] for r in rows], dtype=np.int64)
    if not np.array_equal(got, ids[at]):
        raise ThingError(f"{lib.catalog.path}: the features changed while being read; run the query again")
    by_model: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_model.setdefault(r[1], []).append(i)
    for model, idx in by_model.items():
        w, b = classifier(lib, model)
        emb = np.frombuffer(b"".join(rows[i][2] for i in idx), dtype=np.float16).reshape(len(idx), -1)
        if emb.shape[1] != w.shape[1]:
            raise ThingError(f"{model}: embeddings of {emb.shape[1]} values do not fit its classifier "
                             f"({w.shape[1]}); run `photolab tag --force LIBRARY`")
        probs[at[idx]] = probabilities(emb, w, b).astype(np.float16)


def scores(probs: np.ndarray, cls: np.ndarray, *, chunk: int = 20000) -> np.ndarray:
    """Summed probability of the classes ``cls`` for every row (float32)."""
    out = np.empty(len(probs), np.float32)
    for k in range(0, len(probs), chunk):
        out[k:k + chunk] = probs[k:k + chunk][:, cls].sum(axis=1, dtype=np.float32)
    return np.minimum(out, 1.0)


__all__ = ["THING_MIN", "ThingError", "class_probabilities", "classes", "classifier", "describe", "known", "nearest",
           "probabilities", "resolve", "scores", "vocabulary"]
