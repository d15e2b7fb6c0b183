"""``temu.score``, ``temu.iter_scores``, ``temu.explain`` and ``temu.score_video``: images and videos in,
scores (and why) out.

They take the same keyword arguments. Inputs go through one pipeline
(:mod:`temu.images.loading`: decoded, turned upright and resized, 8-bit images and frames as uint8;
a video's frames sampled by :mod:`temu.images.video`) and one inference core
(:class:`temu.inference.Predictor`); a video's frame scores are reduced by :mod:`temu.video`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from .cache import cached_model
from .images.folders import SkippedEntry
from .images.loading import load_frame_batches
from .images.names import is_video_name
from .images.sources import expand_sources, is_single_image
from .images.video import VideoSampling
from .inference import Predictor, ScoreResult
from .model import TeMuIQA
from .model.attributes import AttributeSpec, resolve_attributes
from .model.calibration import SCALES, Scale, check_scales, fill_scales, parse_scales
from .precision import Precision, check_precision
from .runtime import default_num_workers
from .video import Reduction, ResultAssembler, VideoScore, check_reduce

ModelLike = TeMuIQA | str | os.PathLike[str] | None
OnError = Literal["raise", "report"]
ScaleSpec = Scale | Sequence[Scale]


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
    fps: float | None = None,
    frames: int | Literal["all"] | None = None,
    reduce: Reduction = "mean",
    max_frames: int | None = None,
    max_side: int | None = None,
    scale: ScaleSpec = "raw",
) -> Iterator[ScoreResult]:
    """Score images and videos batch by batch and yield one :class:`ScoreResult` per input, in input order.

    Each batch's results are yielded as soon as it is scored, before the next batch is read (a
    video's once its last sampled frame is scored; frames of consecutive inputs share batches).

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
            ``""``, raw bytes or an open file or text stream, before the model loads); ``"report"``: its
            result has ``error`` set and scoring goes on.
        skipped: a list that receives the folder entries not scored because they are not images (or
            hidden, ...; :class:`temu.images.folders.SkippedEntry`), before the first result.
        with_maps: fill each result's ``[h, w]`` patch maps.
        attributes: False (none), or what :func:`explain` takes (None: the default set): each result
            then has ``attributes`` too, from the same backbone pass.
        fps: a video's frames sampled per second (the frame shown at each time k / fps from its first
            frame); None: 1.0 unless ``frames`` is given. See README "Video" for the rule.
        frames: N frames per video, shown at the centres of N equal parts of its duration, or ``"all"``.
        reduce: how a video's frame scores become its score: ``"mean"``, ``"min"``, ``"median"`` or
            ``"p10"`` (10th percentile, numpy's linear definition); attributes are reduced alike.
        max_frames: the most frames a video may need under the rule; a video needing more is its error.
        max_side: video frames whose long side is longer are first shrunk to it as VBench does.

    Raises:
        VideoOptionsError: unusable video options, before any work.
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
    sampling = VideoSampling(fps=fps, frames=frames, max_frames=max_frames, max_side=max_side)
    check_reduce(reduce)
    pairs = None if attributes is False else resolve_attributes(attributes)
    scales = parse_scales(scale)
    sources = expand_sources(inputs, recursive=recursive, skipped=skipped)
    if on_error == "raise":
        known = next((s.error for s in sources if s.error is not None), None)
        if known is not None:
            raise known
    if not sources:
        return
    net = cached_model(model, device, compile=compile)
    check_scales(net.calibration, scales, source=net.name_or_path)
    predictor = Predictor(net, precision=precision, attributes=pairs, with_maps=with_maps)
    videos = any(is_video_name(s.name) for s in sources)
    if num_workers is None:
        few = len(sources) <= batch_size and not videos  # one batch of images: workers would only cost
        num_workers = 0 if few else default_num_workers(predictor.device)
    batches = load_frame_batches(
        sources, net.input_size, predictor.device, batch_size=batch_size, num_workers=num_workers, sampling=sampling
    )
    assembler = ResultAssembler(
        predictor, lambda i: sources[i].name, reduce=reduce, keep_frames=with_maps or pairs is not None
    )
    show = progress if progress is not None else (sys.stderr.isatty() and (len(sources) > batch_size or videos))
    from tqdm.auto import tqdm

    bar = tqdm(total=len(sources), unit="input", disable=not show, desc="temu")
    try:
        for batch in batches:
            results = assembler.add(batch)
            fill_scales(results, net.calibration, scales, source=net.name_or_path)
            for result in results:
                if result.error is not None and on_error == "raise":
                    raise assembler.exception(result.index)
                bar.update(1)
                yield result
    finally:
        bar.close()


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
    fps: float | None = None,
    frames: int | Literal["all"] | None = None,
    reduce: Reduction = "mean",
    max_frames: int | None = None,
    max_side: int | None = None,
    scale: Scale = "raw",
) -> float | None | list[float | None]:
    """Quality scores: in [0, 1], higher is better (``scale="raw"``), or calibrated (``"mos"``, ``"percentile"``).

    Args:
        inputs: a path (str or Path) of an image or a video, a folder (its images and videos, sorted),
            a PIL image, a numpy array (HW or HWC; uint8, uint16 or floats in [0, 1]), a tensor
            ``[3, H, W]`` or ``[N, 3, H, W]`` (uint8 0-255, or floats in [0, 1]), or a list of these.
        model, batch_size, device, progress, num_workers, precision, compile, recursive, on_error,
            skipped, fps, frames, reduce, max_frames, max_side: as for :func:`iter_scores`.
        scale: which value to return: ``"raw"``, ``"mos"`` or ``"percentile"`` (one of them; see
            :func:`iter_scores`).

    Returns:
        A float for one image or video (its sampled frames' scores reduced), else a list in input order
        (``[]`` for no input). With ``on_error="report"`` an input that could not be scored is None
        (:func:`iter_scores` says why).
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
            fps=fps,
            frames=frames,
            reduce=reduce,
            max_frames=max_frames,
            max_side=max_side,
            scale=scale,
        )
    ]
    return results[0] if single and len(results) == 1 else results


def score_video(
    path: str | os.PathLike[str],
    model: ModelLike = None,
    *,
    fps: float | None = None,
    frames: int | Literal["all"] | None = None,
    reduce: Reduction = "mean",
    max_frames: int | None = None,
    max_side: int | None = None,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    num_workers: int | None = None,
    precision: Precision = "auto",
    compile: bool = False,
    scale: ScaleSpec = "raw",
) -> VideoScore:
    """One video's score, with its frames' scores and times (README "Video": the sampling rule).

    Args:
        path: the video file.
        model, fps, frames, reduce, max_frames, max_side, batch_size, device, progress, num_workers,
            precision, compile, scale: as for :func:`iter_scores`.

    Returns:
        A :class:`~temu.video.VideoScore`: ``score`` (the frame scores reduced), ``frame_scores``,
        ``timestamps`` (seconds from the first frame), ``reduce`` and ``frames`` (how many).

    Raises:
        VideoReadError: the video cannot be read or sampled. InvalidInputError: ``path`` is an image
            (score it with :func:`score`) or a folder. NonFiniteScoreError: a frame's score is not finite.
    """
    from .errors import InvalidInputError

    if not isinstance(path, (str, os.PathLike)):
        raise InvalidInputError(
            f"score_video takes the path of one video file, got {type(path).__name__}; temu.score takes "
            "other inputs and lists"
        )
    if not is_single_image(path):
        raise InvalidInputError(
            f"{os.fspath(path)}: is a folder; score_video takes one video file (temu.score takes folders)"
        )
    (result,) = iter_scores(
        [path],
        model,
        batch_size=batch_size,
        device=device,
        progress=progress,
        num_workers=num_workers,
        precision=precision,
        compile=compile,
        fps=fps,
        frames=frames,
        reduce=reduce,
        max_frames=max_frames,
        max_side=max_side,
        scale=scale,
    )
    if result.frames is None:
        raise InvalidInputError(f"{result.name}: is an image, not a video; score it with temu.score")
    return VideoScore(
        result.name, result.score, result.frame_scores, result.timestamps, reduce, result.mos, result.percentile
    )


@dataclass(frozen=True)
class Explanation:
    """One image's (or video's) score and what it is made of.

    Attributes:
        name: the image's path (or a description of an in-memory input); for a video's frame, the
            video's path and the frame's time (``"clip.mp4 at 2.000 s"``).
        score: the quality score in [0, 1], as :func:`score` gives it (None with ``error``).
        attributes: attribute name -> score in [0, 1] (higher = more of the positive prompt); for a
            video, each attribute over its sampled frames, reduced as the score is (``reduce``).
        maps: name -> ``[h, w]`` patch map (float32 numpy): ``"quality"`` (patch quality scores),
            ``"weight"`` (patch weights in the score's average) and one per attribute. Empty for a
            video: each of its ``frames`` has its own.
        error: why the image could not be scored (only with ``on_error="report"``), else None.
        frames: for a video, one Explanation per sampled frame, in time order; empty for an image.
        time: for a video's frame, its presentation time in seconds from the video's first frame.
        mos, percentile: the calibrated score when ``scale`` asked for it (see :func:`iter_scores`), else None.
    """

    name: str
    score: float | None
    attributes: Mapping[str, float]
    maps: Mapping[str, np.ndarray] = field(repr=False)
    error: str | None = None
    frames: tuple[Explanation, ...] = field(default=(), repr=False)
    time: float | None = None
    mos: float | None = None
    percentile: float | None = None


def _explanation(r: ScoreResult, time: float | None = None) -> Explanation:
    if r.frames is not None:  # a video: its frames carry the maps
        times = r.timestamps or []
        parts = tuple(_explanation(f, t) for f, t in zip(r.frame_results or [], times))
        return Explanation(
            r.name, r.score, dict(r.attributes or {}), {}, r.error, parts, mos=r.mos, percentile=r.percentile
        )
    maps = {} if r.error else {"quality": r.score_map, "weight": r.weight_map, **(r.attribute_maps or {})}
    return Explanation(
        r.name, r.score, dict(r.attributes or {}), maps, r.error, time=time, mos=r.mos, percentile=r.percentile
    )


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
    fps: float | None = None,
    frames: int | Literal["all"] | None = None,
    reduce: Reduction = "mean",
    max_frames: int | None = None,
    max_side: int | None = None,
    scale: ScaleSpec = "raw",
) -> Explanation | list[Explanation]:
    """Quality score, attribute scores and patch maps of each image, from one backbone pass per batch.

    Attributes are zero-shot CLIP judgements (docs/method.md, "Attributes"): each token's softmax
    over the attribute's two prompts, on the plain mean over the model's layers, averaged over the
    tokens. They do not depend on a trained head.

    A video's Explanation holds its score and attributes reduced over its sampled frames, and one
    Explanation per frame in ``frames`` (each with its maps and ``time``). Every frame's maps are kept:
    for a long video, sample few frames (``fps``, ``frames``).

    Args:
        inputs, model: as for :func:`score`.
        attributes: None (the default set, :data:`temu.DEFAULT_ATTRIBUTES`), a list of its names, or a
            dict name -> (positive prompt, negative prompt).
        batch_size, device, progress, num_workers, precision, compile, recursive, on_error,
            skipped, fps, frames, reduce, max_frames, max_side, scale: as for :func:`iter_scores`.

    Returns:
        One :class:`Explanation` for one image or video, else a list in input order.

    Raises:
        InvalidAttributesError: unusable attributes. ImageReadError: an unreadable image (with the
            default ``on_error="raise"``).
    """
    single = is_single_image(inputs)
    results = [
        _explanation(r)
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
            fps=fps,
            frames=frames,
            reduce=reduce,
            max_frames=max_frames,
            max_side=max_side,
            scale=scale,
        )
    ]
    return results[0] if single and len(results) == 1 else results
