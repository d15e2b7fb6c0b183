"""``temu.score``, ``temu.iter_scores`` and ``temu.explain``: images in, scores (and why) out.

The three take the same keyword arguments. Inputs go through one pipeline
(:mod:`temu.images.loading`: decoded, turned upright and resized, 8-bit images as uint8) and one
inference core (:class:`temu.inference.Predictor`).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from .cache import cached_model
from .images.folders import SkippedEntry
from .images.loading import load_batches
from .images.sources import expand_sources, is_single_image
from .inference import Predictor, ScoreResult
from .model import TeMuIQA
from .model.attributes import AttributeSpec, resolve_attributes
from .model.calibration import SCALES, Scale, check_scales, scaled_columns
from .precision import Precision, check_precision
from .runtime import default_num_workers

ModelLike = TeMuIQA | str | os.PathLike[str] | None
OnError = Literal["raise", "report"]
ScaleSpec = Scale | Sequence[Scale]


def _scales(scale: Any) -> tuple[str, ...]:
    """``scale=`` as a tuple of scale names (checked), raw first if asked for."""
    names = (scale,) if isinstance(scale, str) else tuple(scale)
    bad = [s for s in names if s not in SCALES]
    if bad or not names:
        raise ValueError(f"scale must be one of {', '.join(map(repr, SCALES))} or a list of them, got {scale!r}")
    return names


def iter_scores(
    inputs: Any,
    model: ModelLike = None,
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    num_workers: int | None = None,
    precision: Precision = "auto",
    compile: bool = False,
    recursive: bool = False,
    on_error: OnError = "raise",
    skipped: list[SkippedEntry] | None = None,
    with_maps: bool = False,
    attributes: AttributeSpec | Literal[False] = False,
    scale: ScaleSpec = "raw",
) -> Iterator[ScoreResult]:
    """Score images batch by batch and yield one :class:`ScoreResult` per image, in input order.

    Each batch's results are yielded as soon as it is scored, before the next batch is read.

    Args:
        inputs: what :func:`score` takes.
        model: a :class:`TeMuIQA`, a preset name, a head directory or a Hub repo id; default the
            ``temu-iqa-s`` preset, built once per process (:func:`temu.cache.cached_model`).
        batch_size: images per forward pass.
        device: e.g. ``"cuda"``, ``"cpu"``; None: CUDA when available.
        progress: a progress bar on stderr; None: when stderr is a terminal and there is more than one batch.
        num_workers: DataLoader worker processes that decode and resize; None: 0 on the CPU, else up to 8
            (:func:`temu.runtime.default_num_workers`).
        precision: the backbone's autocast, see :mod:`temu.precision` (``"auto"``: bf16 on CUDA and on
            CPUs with native bf16, else fp32; ``"fp32"`` turns it off).
        compile: ``torch.compile`` the backbone's blocks first (:meth:`TeMuIQA.compile_backbone`).
        recursive: search folders' sub-folders too.
        on_error: ``"raise"``: an input that cannot be scored raises its
            :class:`~temu.errors.ImageReadError` / :class:`~temu.errors.InvalidInputError` /
            :class:`~temu.errors.NonFiniteScoreError` (inputs known to be bad from the start, such as
            ``""``, before the model loads); ``"report"``: its result has ``error`` set and scoring goes on.
        skipped: a list that receives the folder entries not scored because they are not images (or
            hidden, ...; :class:`temu.images.folders.SkippedEntry`), before the first result.
        with_maps: fill each result's ``[h, w]`` patch maps.
        attributes: False (none), or what :func:`explain` takes (None: the default set): each result
            then has ``attributes`` too, from the same backbone pass.
        scale: ``"raw"`` (the score in [0, 1]), ``"mos"`` (the MOS of the dataset the head was calibrated
            on, in its units) or ``"percentile"`` (better than P % of the head's reference corpus, 0-100),
            or a list of them: each result's ``mos`` / ``percentile`` is filled; ``score`` stays the raw
            score. A head without that calibration raises :class:`~temu.errors.CalibrationError` naming
            the ``temu calibrate`` command that makes one (:mod:`temu.model.calibration`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if on_error not in ("raise", "report"):
        raise ValueError(f"on_error must be 'raise' or 'report', got {on_error!r}")
    check_precision(precision)  # checked before any work
    pairs = None if attributes is False else resolve_attributes(attributes)
    scales = _scales(scale)
    sources = expand_sources(inputs, recursive=recursive, skipped=skipped)
    if on_error == "raise":
        known = next((s.error for s in sources if s.error is not None), None)
        if known is not None:
            raise known
    if not sources:
        return
    net = cached_model(model, device, compile=compile)
    check_scales(net.calibration, scales, source=net.name_or_path)
    scaled = [s for s in scales if s != "raw"]
    predictor = Predictor(net, precision=precision, attributes=pairs, with_maps=with_maps)
    if num_workers is None:
        num_workers = 0 if len(sources) <= batch_size else default_num_workers(predictor.device)
    batches = load_batches(sources, net.input_size, predictor.device, batch_size=batch_size, num_workers=num_workers)
    show = progress if progress is not None else (sys.stderr.isatty() and len(sources) > batch_size)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(sources), unit="img", disable=not show, desc="temu")
    try:
        for batch in batches:
            results = predictor.results(batch, lambda i: sources[i].name)
            if scaled:
                _add_scales(results, net, scaled)
            for result in results:
                if result.error is not None and on_error == "raise":
                    failed = next((err for i, err in batch.failed if i == result.index), None)
                    raise failed if failed is not None else _score_error(result)
                bar.update(1)
                yield result
    finally:
        bar.close()


def _add_scales(results: list[ScoreResult], model: TeMuIQA, scales: list[str]) -> None:
    """Fill each scored result's ``mos`` / ``percentile`` from its raw score (one vectorised call per batch)."""
    raw = [math.nan if r.score is None else r.score for r in results]
    columns = scaled_columns(model.calibration, raw, scales, source=model.name_or_path)
    for j, result in enumerate(results):
        if result.score is not None:
            for name, values in columns.items():
                setattr(result, name, float(values[j]))


def _score_error(result: ScoreResult) -> Exception:
    from .errors import NonFiniteScoreError

    return NonFiniteScoreError(result.error)


def score(
    inputs: Any,
    model: ModelLike = None,
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    num_workers: int | None = None,
    precision: Precision = "auto",
    compile: bool = False,
    recursive: bool = False,
    on_error: OnError = "raise",
    skipped: list[SkippedEntry] | None = None,
    scale: Scale = "raw",
) -> float | None | list[float | None]:
    """Quality scores: in [0, 1], higher is better (``scale="raw"``), or calibrated (``"mos"``, ``"percentile"``).

    Args:
        inputs: a path (str or Path), a folder (its images, sorted), a PIL image, a numpy array (HW or
            HWC; uint8, uint16 or floats in [0, 1]), a tensor ``[3, H, W]`` or ``[N, 3, H, W]`` (uint8
            0-255, or floats in [0, 1]), or a list of these.
        model, batch_size, device, progress, num_workers, precision, compile, recursive, on_error,
            skipped: as for :func:`iter_scores`.
        scale: which value to return: ``"raw"``, ``"mos"`` or ``"percentile"`` (one of them; see
            :func:`iter_scores`).

    Returns:
        A float for one image, else a list in input order (``[]`` for no input). With
        ``on_error="report"`` an image that could not be scored is None (:func:`iter_scores` says why).
    """
    if not isinstance(scale, str) or scale not in SCALES:
        raise ValueError(
            f"score returns one value per image: scale must be one of {', '.join(map(repr, SCALES))}, got {scale!r}"
        )
    single = is_single_image(inputs)
    results = [
        getattr(r, "score" if scale == "raw" else scale)
        for r in iter_scores(
            inputs,
            model,
            batch_size=batch_size,
            device=device,
            progress=progress,
            num_workers=num_workers,
            precision=precision,
            compile=compile,
            recursive=recursive,
            on_error=on_error,
            skipped=skipped,
            scale=scale,
        )
    ]
    return results[0] if single and len(results) == 1 else results


@dataclass(frozen=True)
class Explanation:
    """One image's score and what it is made of.

    Attributes:
        name: the image's path (or a description of an in-memory input).
        score: the quality score in [0, 1], as :func:`score` gives it (None with ``error``).
        attributes: attribute name -> score in [0, 1] (higher = more of the positive prompt).
        maps: name -> ``[h, w]`` patch map (float32 numpy): ``"quality"`` (patch quality scores),
            ``"weight"`` (patch weights in the score's average) and one per attribute.
        error: why the image could not be scored (only with ``on_error="report"``), else None.
        mos, percentile: the calibrated score when ``scale`` asked for it (see :func:`iter_scores`), else None.
    """

    name: str
    score: float | None
    attributes: Mapping[str, float]
    maps: Mapping[str, np.ndarray] = field(repr=False)
    error: str | None = None
    mos: float | None = None
    percentile: float | None = None


def explain(
    inputs: Any,
    model: ModelLike = None,
    attributes: AttributeSpec = None,
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    num_workers: int | None = None,
    precision: Precision = "auto",
    compile: bool = False,
    recursive: bool = False,
    on_error: OnError = "raise",
    skipped: list[SkippedEntry] | None = None,
    scale: ScaleSpec = "raw",
) -> Explanation | list[Explanation]:
    """Quality score, attribute scores and patch maps of each image, from one backbone pass per batch.

    Attributes are zero-shot CLIP judgements (docs/method.md, "Attributes"): each token's softmax
    over the attribute's two prompts, on the plain mean over the model's layers, averaged over the
    tokens. They do not depend on a trained head.

    Args:
        inputs, model: as for :func:`score`.
        attributes: None (the default set, :data:`temu.DEFAULT_ATTRIBUTES`), a list of its names, or a
            dict name -> (positive prompt, negative prompt).
        batch_size, device, progress, num_workers, precision, compile, recursive, on_error,
            skipped, scale: as for :func:`iter_scores`.

    Returns:
        One :class:`Explanation` for one image, else a list in input order.

    Raises:
        InvalidAttributesError: unusable attributes. ImageReadError: an unreadable image (with the
            default ``on_error="raise"``).
    """
    single = is_single_image(inputs)
    results = [
        Explanation(
            r.name,
            r.score,
            dict(r.attributes or {}),
            {} if r.error else {"quality": r.score_map, "weight": r.weight_map, **(r.attribute_maps or {})},
            r.error,
            r.mos,
            r.percentile,
        )
        for r in iter_scores(
            inputs,
            model,
            batch_size=batch_size,
            device=device,
            progress=progress,
            num_workers=num_workers,
            precision=precision,
            compile=compile,
            recursive=recursive,
            on_error=on_error,
            skipped=skipped,
            with_maps=True,
            attributes=attributes,
            scale=scale,
        )
    ]
    return results[0] if single and len(results) == 1 else results
