"""The model cache: the only global state in temu, and the two ways to get a model.

:func:`load` always builds a new model that the caller owns. :func:`cached_model` (what
``temu.score(model="temu-iqa-s")`` uses) builds a model once and keeps it in :data:`MODEL_CACHE`
for the rest of the process; :func:`clear_model_cache` empties it.

A cache entry is keyed by what the model *is*, not how it was named: a head folder by its
resolved path and its files' modification times (config.json, model.safetensors and
calibration.json: so ``"runs/x"``, ``"runs/x/"`` and ``"./runs/x"`` are one entry, and a head
retrained or calibrated in place is loaded again), a Hub repo by its
id and revision, then the device (``"cuda"`` is ``"cuda:0"`` when that is the current device),
the config overrides and whether the backbone is compiled. Building is thread-safe: concurrent
calls for one model build it once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import torch

from .model import TeMuIQA
from .model.calibration import CALIBRATION_NAME
from .model.hub import CONFIG_NAME, WEIGHTS_NAME, list_presets, preset_root
from .runtime import resolve_device

DEFAULT_MODEL = "temu-iqa-s"

#: cache key (see the module docstring) -> model built by :func:`score` / :func:`iter_scores`.
MODEL_CACHE: dict[Hashable, TeMuIQA] = {}
_CACHE_LOCK = threading.Lock()
_BUILD_LOCKS: dict[Hashable, threading.Lock] = {}


def clear_model_cache() -> None:
    """Forget every model that :func:`score` has built (frees their memory once unreferenced)."""
    with _CACHE_LOCK:
        MODEL_CACHE.clear()
        _BUILD_LOCKS.clear()


def load(
    source: str | os.PathLike[str] = DEFAULT_MODEL, *, device: str | torch.device | None = None, **overrides: Any
) -> TeMuIQA:
    """A new model, in eval mode, that the caller owns (never cached; see :func:`cached_model` for the shared one).

    Args:
        source: a preset name, a head directory or a Hub repo id (see :meth:`TeMuIQA.from_pretrained`).
        device: where to put it; None leaves it on the CPU.
        **overrides: config fields to change (``image_size=``, ``pretrained=`` a local checkpoint, ...).
    """
    model = TeMuIQA.from_pretrained(source, **overrides).eval()
    return model.to(resolve_device(device)) if device is not None else model


def _source_key(source: str | os.PathLike[str], revision: str | None) -> tuple:
    text = os.fspath(source)
    folder = preset_root() / text if text in list_presets() else Path(text).expanduser()
    if folder.is_dir():
        folder = folder.resolve()
        stamps = tuple(_mtime(folder / name) for name in (CONFIG_NAME, WEIGHTS_NAME, CALIBRATION_NAME))
        return ("folder", str(folder), stamps)
    return ("hub", text, revision)


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def model_cache_key(
    source: str | os.PathLike[str],
    device: str | torch.device | None = None,
    *,
    revision: str | None = None,
    compile: bool = False,
    overrides: Mapping[str, Any] | None = None,
) -> Hashable:
    """The :data:`MODEL_CACHE` key of a model (see the module docstring).

    Args:
        source, device, revision, compile, overrides: as for :func:`cached_model`.

    Returns:
        A hashable tuple: the source (a folder's resolved path with its files' modification times, or a
        repo id and revision), the device, the overrides and ``compile``.
    """
    frozen = tuple(sorted((k, repr(v)) for k, v in (overrides or {}).items()))
    return (_source_key(source, revision), str(resolve_device(device)), frozen, bool(compile))


def cached_model(
    model: TeMuIQA | str | os.PathLike[str] | None,
    device: str | torch.device | None = None,
    *,
    compile: bool = False,
    revision: str | None = None,
    **overrides: Any,
) -> TeMuIQA:
    """The shared model :func:`temu.score` uses, built once per process (see the module docstring).

    Args:
        model: a :class:`TeMuIQA` (used as given: moved to ``device`` if one is given, compiled in
            place with ``compile=True``), or a preset name, head directory or Hub repo id, built once
            per :func:`model_cache_key` and kept in :data:`MODEL_CACHE`; None: the default preset.
        device: e.g. ``"cuda"``; None: CUDA when available.
        compile: ``torch.compile`` the backbone's blocks; a separate cache entry, so the shared
            uncompiled model is never changed.
        revision: the Hub revision of a repo id.
        **overrides: config fields for :func:`load` (part of the cache key).

    Returns:
        The model, in eval mode on ``device``. :func:`load` builds a new one instead.
    """
    if isinstance(model, TeMuIQA):
        if compile:
            model.compile_backbone()
        return model.to(resolve_device(device)) if device is not None else model
    source = model if model is not None else DEFAULT_MODEL
    dev = resolve_device(device)
    key = model_cache_key(source, dev, revision=revision, compile=compile, overrides=overrides)
    with _CACHE_LOCK:
        cached = MODEL_CACHE.get(key)
        if cached is not None:
            return cached
        build_lock = _BUILD_LOCKS.setdefault(key, threading.Lock())
    with build_lock:  # one build per key; other keys build in parallel
        with _CACHE_LOCK:
            cached = MODEL_CACHE.get(key)
        if cached is None:
            cached = load(source, device=dev, revision=revision, **overrides)
            if compile:
                cached.compile_backbone()
            with _CACHE_LOCK:
                MODEL_CACHE[key] = cached
    return cached
