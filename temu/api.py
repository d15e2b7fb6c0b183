"""``temu.score`` / ``temu.iter_scores`` / ``temu.load``, and the model cache.

The model cache is the only global state in temu: ``score(model="temu-iqa-s")`` builds
the model once per (source, device) and keeps it in :data:`MODEL_CACHE` for the rest of the
process. :func:`clear_model_cache` empties it. :func:`load` always builds a new model
that the caller owns.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .errors import InvalidInputError
from .inputs import Source, expand_sources, is_single_image
from .model import TeMuIQA
from .transforms import InputSize

DEFAULT_MODEL = "temu-iqa-s"
Precision = Literal["auto", "fp32", "bf16", "fp16"]

#: (source, device) -> model built by :func:`score` / :func:`iter_scores` for a preset, directory or repo id.
MODEL_CACHE: dict[tuple[str, str], TeMuIQA] = {}


def clear_model_cache() -> None:
    """Forget every model that :func:`score` has built (frees their memory once unreferenced)."""
    MODEL_CACHE.clear()


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load(source: str | os.PathLike[str] = DEFAULT_MODEL, *, device: str | torch.device | None = None, **overrides: Any) -> TeMuIQA:
    """A new model, in eval mode, from a preset name, a directory or a Hub repo id (see :meth:`TeMuIQA.from_pretrained`)."""
    model = TeMuIQA.from_pretrained(source, **overrides).eval()
    return model.to(torch.device(device)) if device is not None else model


def get_model(model: TeMuIQA | str | os.PathLike[str] | None, device: str | torch.device | None = None) -> TeMuIQA:
    """The model :func:`score` uses: a :class:`TeMuIQA` as given (moved to ``device`` if one is given),
    or a preset / directory / repo id built once per (source, device) and kept in :data:`MODEL_CACHE`."""
    if isinstance(model, TeMuIQA):
        return model.to(torch.device(device)) if device is not None else model
    dev = torch.device(device) if device is not None else default_device()
    key = (os.fspath(model if model is not None else DEFAULT_MODEL), str(dev))
    if key not in MODEL_CACHE:
        MODEL_CACHE[key] = load(key[0], device=dev)
    return MODEL_CACHE[key]


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


class _SourceDataset(Dataset):
    """Decodes and resizes in DataLoader workers; a failure comes back as the exception, not a crash."""

    def __init__(self, sources: Sequence[Source], input_size: InputSize) -> None:
        self.sources = sources
        self.input_size = input_size

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, Exception | None]:
        try:
            return i, self.input_size(self.sources[i].load()).contiguous(), None
        except InvalidInputError as err:
            return i, None, err


def _collate(items: list) -> tuple[list[tuple[list[int], torch.Tensor]], list[tuple[int, Exception]]]:
    """Stack images of equal size into groups (one group unless ``image_size=None``); keep failures apart."""
    groups: dict[tuple[int, ...], tuple[list[int], list[torch.Tensor]]] = {}
    failed = []
    for i, img, err in items:
        if err is not None:
            failed.append((i, err))
        else:
            idx, imgs = groups.setdefault(tuple(img.shape), ([], []))
            idx.append(i)
            imgs.append(img)
    return [(idx, torch.stack(imgs)) for idx, imgs in groups.values()], failed


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast for ``precision``: ``"auto"`` (bf16 on CUDA, fp16 where bf16 is unsupported; fp32 elsewhere),
    ``"fp32"``, ``"bf16"`` or ``"fp16"``; a ValueError for anything else."""
    if precision == "auto":
        if device.type != "cuda":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    elif precision == "fp32":
        return contextlib.nullcontext()
    elif precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    else:
        raise ValueError(f"precision must be 'auto', 'fp32', 'bf16' or 'fp16', got {precision!r}")
    return torch.autocast(device_type=device.type, dtype=dtype)


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
    ``precision``: ``"auto"`` is bf16 autocast on CUDA (fp16 where bf16 is unsupported), fp32 on CPU.
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
    net = get_model(model, device)
    if compile:
        net.compile_backbone()
    dev = next(net.parameters()).device
    autocast = autocast_context(dev, precision)  # validates precision before any work
    if num_workers is None:
        num_workers = 0 if dev.type == "cpu" or len(sources) <= batch_size else min(8, os.cpu_count() or 1)
    loader = DataLoader(
        _SourceDataset(sources, net.input_size),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=_collate,
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
                        outputs.append((idx, net(x.to(dev, non_blocking=True), return_maps=with_maps, check_input=False)))
                if pending is not None:  # finish the previous batch while this one runs on the device
                    yield from _finish(pending, sources, on_error, bar)
                pending = (outputs, failed)
            if pending is not None:
                yield from _finish(pending, sources, on_error, bar)
    finally:
        bar.close()


def _finish(pending, sources: Sequence[Source], on_error: str, bar) -> Iterator[ScoreResult]:
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
                    i, sources[i].name, scores[j], None,
                    smaps[j] if smaps is not None else None, wmaps[j] if wmaps is not None else None,
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
            inputs, model, batch_size=batch_size, device=device, progress=progress,
            num_workers=num_workers, precision=precision, compile=compile,
        )
    ]
    return results[0] if single and len(results) == 1 else results  # type: ignore[return-value]
