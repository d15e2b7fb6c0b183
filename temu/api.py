"""``temu.score`` / ``temu.iter_scores`` / ``temu.load``, and the model cache.

The model cache is the only global state in temu: ``score(model="temu-iqa-s")`` builds the
model once and keeps it in :data:`MODEL_CACHE` for the rest of the process.
:func:`clear_model_cache` empties it; :func:`load` always builds a new model that the caller owns.

A cache entry is keyed by what the model *is*, not how it was named: a head folder by its
resolved path and its files' modification times (so ``"runs/x"``, ``"runs/x/"`` and
``"./runs/x"`` are one entry, and a head retrained in place is loaded again), a Hub repo by its
id and revision, then the device (``"cuda"`` is ``"cuda:0"`` when that is the current device),
the config overrides and whether the backbone is compiled. Building is thread-safe: concurrent
calls for one model build it once.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader

from .hub import CONFIG_NAME, WEIGHTS_NAME, list_presets, preset_root
from .inputs import Source, expand_sources, is_single_image
from .loading import SourceDataset, collate_sources, default_num_workers
from .model import TeMuIQA
from .precision import Precision, autocast_context

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


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def normalise_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a full torch.device: None -> :func:`default_device`; ``"cuda"`` -> the current CUDA device."""
    dev = torch.device(device) if device is not None else default_device()
    if dev.type == "cuda" and dev.index is None and torch.cuda.is_available():
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def load(
    source: str | os.PathLike[str] = DEFAULT_MODEL, *, device: str | torch.device | None = None, **overrides: Any
) -> TeMuIQA:
    """A new model, in eval mode, from a preset name, a directory or a Hub repo id (see :meth:`TeMuIQA.from_pretrained`)."""
    model = TeMuIQA.from_pretrained(source, **overrides).eval()
    return model.to(torch.device(device)) if device is not None else model


def _source_key(source: str | os.PathLike[str], revision: str | None) -> tuple:
    text = os.fspath(source)
    folder = preset_root() / text if text in list_presets() else Path(text).expanduser()
    if folder.is_dir():
        folder = folder.resolve()
        stamps = tuple(_mtime(folder / name) for name in (CONFIG_NAME, WEIGHTS_NAME))
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
    """The :data:`MODEL_CACHE` key of a model (see the module docstring)."""
    frozen = tuple(sorted((k, repr(v)) for k, v in (overrides or {}).items()))
    return (_source_key(source, revision), str(normalise_device(device)), frozen, bool(compile))


def get_model(
    model: TeMuIQA | str | os.PathLike[str] | None,
    device: str | torch.device | None = None,
    *,
    compile: bool = False,
    revision: str | None = None,
    **overrides: Any,
) -> TeMuIQA:
    """The model :func:`score` uses.

    A :class:`TeMuIQA` is used as given (moved to ``device`` if one is given; ``compile=True``
    compiles it in place, as it is the caller's). A preset, directory or repo id is built once
    per :func:`model_cache_key` and kept in :data:`MODEL_CACHE`; with ``compile=True`` that is a
    separate, compiled entry, so the shared uncompiled model is never changed.
    """
    if isinstance(model, TeMuIQA):
        if compile:
            model.compile_backbone()
        return model.to(torch.device(device)) if device is not None else model
    source = model if model is not None else DEFAULT_MODEL
    dev = normalise_device(device)
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


@dataclass
class ScoreResult:
    """One image's outcome: ``score`` in [0, 1], or ``error`` saying why it could not be scored.

    ``score_map`` / ``weight_map`` (``[h, w]`` numpy arrays) are filled when maps were asked for.
    """

    index: int
    name: str
    score: float | None
    error: str | None = None
    score_map: np.ndarray | None = None
    weight_map: np.ndarray | None = None


def iter_scores(
    inputs: Any,
    model: TeMuIQA | str | os.PathLike[str] | None = None,
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    num_workers: int | None = None,
    precision: Precision = "auto",
    with_maps: bool = False,
    on_error: Literal["raise", "report"] = "raise",
    recursive: bool = False,
    compile: bool = False,
) -> Iterator[ScoreResult]:
    """Score images batch by batch and yield one :class:`ScoreResult` per image, in input order.

    Accepts the inputs of :func:`score`. With ``on_error="report"`` an unreadable image gives a
    result with ``error`` set and scoring goes on; with ``"raise"`` it raises
    :class:`~temu.ImageReadError` / :class:`~temu.InvalidInputError`.
    ``num_workers``: DataLoader workers that decode and resize; None = 0 on CPU, else up to 8.
    ``precision``: see :mod:`temu.precision` (``"auto"``: bf16 autocast on CUDA and on CPUs with native bf16,
    else fp32; ``"fp32"`` turns autocast off).
    ``compile``: compile the backbone's blocks with ``torch.compile`` first (see
    :meth:`TeMuIQA.compile_backbone`; pays off for long runs on GPU).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if on_error not in ("raise", "report"):
        raise ValueError(f"on_error must be 'raise' or 'report', got {on_error!r}")
    sources = expand_sources(inputs, recursive=recursive)
    if not sources:
        return
    net = get_model(model, device, compile=compile)
    dev = next(net.parameters()).device
    autocast = autocast_context(dev, precision)  # validates precision before any work
    if num_workers is None:
        num_workers = 0 if len(sources) <= batch_size else default_num_workers(dev)
    loader = DataLoader(
        SourceDataset(sources, net.input_size),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_sources,
        pin_memory=dev.type == "cuda",
        persistent_workers=False,
    )
    show = progress if progress is not None else (sys.stderr.isatty() and len(sources) > batch_size)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(sources), unit="img", disable=not show, desc="temu")
    pending = None
    try:
        with torch.inference_mode():
            for groups, failed in loader:
                outputs = []
                for idx, x in groups:
                    with autocast:
                        outputs.append(
                            (idx, net(x.to(dev, non_blocking=True), return_maps=with_maps, check_input=False))
                        )
                if pending is not None:  # finish the previous batch while this one runs on the device
                    yield from _finish(pending, sources, on_error, bar)
                pending = (outputs, failed)
            if pending is not None:
                yield from _finish(pending, sources, on_error, bar)
    finally:
        bar.close()


def _finish(pending, sources: list[Source], on_error: str, bar) -> Iterator[ScoreResult]:
    outputs, failed = pending
    results: list[ScoreResult] = []
    for i, err in failed:
        if on_error == "raise":
            raise err
        results.append(ScoreResult(i, sources[i].name, None, str(err)))
    for idx, out in outputs:
        if isinstance(out, torch.Tensor):
            scores, smaps, wmaps = out.float().cpu().tolist(), None, None
        else:
            scores = out.score.float().cpu().tolist()
            smaps, wmaps = out.score_map.float().cpu().numpy(), out.weight_map.float().cpu().numpy()
        for j, i in enumerate(idx):
            results.append(
                ScoreResult(
                    i,
                    sources[i].name,
                    scores[j],
                    None,
                    smaps[j] if smaps is not None else None,
                    wmaps[j] if wmaps is not None else None,
                )
            )
    results.sort(key=lambda r: r.index)
    bar.update(len(results))
    yield from results


def score(
    inputs: Any,
    model: TeMuIQA | str | os.PathLike[str] | None = None,
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    num_workers: int | None = None,
    precision: Precision = "auto",
    compile: bool = False,
) -> float | list[float]:
    """Quality scores in [0, 1] (higher is better).

    inputs: a path (str or Path), a directory (its images, sorted), a PIL image, a numpy HWC
        array (uint8, or floats in [0, 1]), a tensor ``[3, H, W]`` or ``[N, 3, H, W]`` in [0, 1],
        or a list / iterable of these.
    model: a :class:`TeMuIQA`, a preset name, a directory or a Hub repo id; default the
        ``temu-iqa-s`` preset, built once per process (see :data:`MODEL_CACHE`).
    Returns a float for one image, else a list of floats in input order (``[]`` for no input).
    Raises :class:`~temu.ImageReadError` naming the file for an unreadable image; use
    :func:`iter_scores` with ``on_error="report"`` to score the rest anyway.
    """
    single = is_single_image(inputs)
    results = [
        r.score
        for r in iter_scores(
            inputs,
            model,
            batch_size=batch_size,
            device=device,
            progress=progress,
            num_workers=num_workers,
            precision=precision,
            compile=compile,
        )
    ]
    return results[0] if single and len(results) == 1 else results  # type: ignore[return-value]
