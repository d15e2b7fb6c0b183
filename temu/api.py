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
from typing import Any, Literal, NamedTuple

import numpy as np
import torch

from .attributes import AttributeSpec, resolve_attributes
from .errors import non_finite_score
from .hub import CONFIG_NAME, WEIGHTS_NAME, list_presets, preset_root
from .inputs import SkippedEntry, Source, expand_sources, is_single_image
from .loading import ResizeOn, default_num_workers, device_batches, resizes_on_device
from .model import AttributeMaps, QualityMaps, TeMuIQA
from .precision import Precision, autocast_context, check_precision

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
    ``attributes`` (name -> score in [0, 1]) when attributes were asked for, and with maps also
    ``attribute_maps`` (name -> ``[h, w]``); see :func:`temu.explain`.
    """

    index: int
    name: str
    score: float | None
    error: str | None = None
    score_map: np.ndarray | None = None
    weight_map: np.ndarray | None = None
    attributes: dict[str, float] | None = None
    attribute_maps: dict[str, np.ndarray] | None = None


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
    skipped: list[SkippedEntry] | None = None,
    attributes: AttributeSpec | Literal[False] = False,
    resize_on: ResizeOn = "auto",
) -> Iterator[ScoreResult]:
    """Score images batch by batch and yield one :class:`ScoreResult` per image, in input order.

    Accepts the inputs of :func:`score`. With ``on_error="report"`` an input that cannot be
    scored (unreadable file or folder, bad array, non-finite score, ...) gives a result with
    ``error`` set and scoring goes on; with ``"raise"`` it raises
    :class:`~temu.ImageReadError` / :class:`~temu.InvalidInputError` /
    :class:`~temu.NonFiniteScoreError` (inputs known to be bad from the start, such as an empty
    path, raise before the model is loaded). A batch's results are yielded as soon as it is
    scored, before the next batch is read.
    ``num_workers``: DataLoader workers that decode and resize; None = 0 on CPU, else up to 8.
    ``precision``: see :mod:`temu.precision` (``"auto"``: bf16 autocast on CUDA and on CPUs with native bf16,
    else fp32; ``"fp32"`` turns autocast off).
    ``compile``: compile the backbone's blocks with ``torch.compile`` first (see
    :meth:`TeMuIQA.compile_backbone`; pays off for long runs on GPU).
    ``skipped``: a list that receives the folder entries that were not scored because they are
    not images (or hidden, ...; see :class:`temu.inputs.SkippedEntry`), filled when iteration
    starts, before the first result; :func:`temu.inputs.describe_skipped` words them for a summary.
    ``attributes``: False (none), or what :func:`temu.explain` takes (None = the default set):
    each result then has ``attributes`` too, from the same backbone pass (:meth:`TeMuIQA.explain`).
    ``resize_on``: where images are brought to the model's input size (the same rule and the same
    scores either way, within float rounding): ``"loader"``, where they are decoded (DataLoader
    workers, or this process with ``num_workers=0``); ``"device"``, on the model's device: the
    loader only decodes (8-bit images stay uint8, a quarter of the bytes), and whole groups are
    converted to float and resized there (:func:`temu.loading.resize_on_device`), which leaves the
    CPU cores to decoding; ``"auto"``: ``"loader"`` for now (:func:`temu.loading.resizes_on_device`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if on_error not in ("raise", "report"):
        raise ValueError(f"on_error must be 'raise' or 'report', got {on_error!r}")
    check_precision(precision)  # these three are checked before any work
    on_device = resizes_on_device(resize_on)
    pairs = None if attributes is False else resolve_attributes(attributes)  # checked before any work
    sources = expand_sources(inputs, recursive=recursive, skipped=skipped)
    if on_error == "raise":
        known = next((s.error for s in sources if s.error is not None), None)
        if known is not None:
            raise known
    if not sources:
        return
    net = get_model(model, device, compile=compile)
    dev = next(net.parameters()).device
    autocast = autocast_context(dev, precision)
    if num_workers is None:
        num_workers = 0 if len(sources) <= batch_size else default_num_workers(dev)
    batches = device_batches(
        sources, net.input_size, dev, batch_size=batch_size, num_workers=num_workers, on_device=on_device
    )
    show = progress if progress is not None else (sys.stderr.isatty() and len(sources) > batch_size)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(sources), unit="img", disable=not show, desc="temu")
    try:
        # One batch at a time: its results are copied to the host (the device synchronises) and
        # yielded before the loader is asked for the next batch, so no result waits for the next
        # files to be decoded. DataLoader workers (if any) decode the next batches meanwhile. Inference
        # mode and autocast are entered around the model only, not around the caller's code.
        for groups, failed in batches:
            with torch.inference_mode():
                outputs = []
                for idx, x in groups:
                    with autocast:
                        if pairs is None:
                            out = net(x, return_maps=with_maps, check_input=False)
                        else:
                            out = net.explain(x, pairs, check_input=False)
                    outputs.append((idx, _to_host(out, with_maps)))
            for result, err in _batch_results(outputs, failed, sources):
                if err is not None and on_error == "raise":
                    raise err
                bar.update(1)
                yield result
    finally:
        bar.close()


class _HostOutput(NamedTuple):
    """One group's outputs on the host: scores, and (when asked for) maps ``[B, h, w]``, attributes
    ``[B][A]`` and attribute maps ``[B, A, h, w]`` with the attribute ``names``."""

    scores: list[float]
    score_maps: np.ndarray | None = None
    weight_maps: np.ndarray | None = None
    attributes: list[list[float]] | None = None
    attribute_maps: np.ndarray | None = None
    names: tuple[str, ...] = ()


def _to_host(out: torch.Tensor | QualityMaps | AttributeMaps, with_maps: bool) -> _HostOutput:
    """The model's outputs copied to the host (waits for the device)."""
    if isinstance(out, torch.Tensor):
        return _HostOutput(out.float().cpu().tolist())
    host = _HostOutput(out.score.float().cpu().tolist())
    if with_maps:
        host = host._replace(
            score_maps=out.score_map.float().cpu().numpy(), weight_maps=out.weight_map.float().cpu().numpy()
        )
    if isinstance(out, AttributeMaps):
        host = host._replace(attributes=out.attributes.float().cpu().tolist(), names=tuple(out.names))
        if with_maps:
            host = host._replace(attribute_maps=out.attribute_maps.float().cpu().numpy())
    return host


def _batch_results(
    outputs: list[tuple[list[int], _HostOutput]],
    failed: list[tuple[int, Exception]],
    sources: list[Source],
) -> list[tuple[ScoreResult, Exception | None]]:
    """One batch's ``(result, error or None)`` pairs, in input order. A NaN or infinite score is
    that image's error (:class:`~temu.NonFiniteScoreError`), never a score."""
    results: list[tuple[ScoreResult, Exception | None]] = []
    for i, err in failed:
        results.append((ScoreResult(i, sources[i].name, None, str(err)), err))
    for idx, host in outputs:
        for j, i in enumerate(idx):
            name, value = sources[i].name, host.scores[j]
            if (bad := non_finite_score(name, value)) is not None:
                results.append((ScoreResult(i, name, None, str(bad)), bad))
                continue
            result = ScoreResult(i, name, value, None)
            if host.score_maps is not None:
                result.score_map, result.weight_map = host.score_maps[j], host.weight_maps[j]
            if host.attributes is not None:
                result.attributes = dict(zip(host.names, host.attributes[j]))
            if host.attribute_maps is not None:
                result.attribute_maps = dict(zip(host.names, host.attribute_maps[j]))
            results.append((result, None))
    results.sort(key=lambda pair: pair[0].index)
    return results


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
    resize_on: ResizeOn = "auto",
) -> float | list[float]:
    """Quality scores in [0, 1] (higher is better).

    inputs: a path (str or Path), a directory (its images, sorted), a PIL image, a numpy HWC
        array (uint8, or floats in [0, 1]), a tensor ``[3, H, W]`` or ``[N, 3, H, W]`` in [0, 1],
        or a list / iterable of these.
    model: a :class:`TeMuIQA`, a preset name, a directory or a Hub repo id; default the
        ``temu-iqa-s`` preset, built once per process (see :data:`MODEL_CACHE`).
    Returns a float for one image, else a list of floats in input order (``[]`` for no input).
    Raises :class:`~temu.ImageReadError` naming the file for an unreadable image (and
    :class:`~temu.InvalidInputError` for a bad array, tensor or path, such as ``""``); use
    :func:`iter_scores` with ``on_error="report"`` to score the rest anyway. The other
    arguments are :func:`iter_scores`'s.
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
            resize_on=resize_on,
        )
    ]
    return results[0] if single and len(results) == 1 else results  # type: ignore[return-value]
