"""What the demo page shows, without gradio: the models on offer, uploaded files scored, the tables and the CSV.

torch and the scoring core are imported on first use, so the page can answer before they load.
"""

from __future__ import annotations

import csv
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DemoError, ImageReadError, TeMuError, VideoReadError
from ..precision import Precision, check_precision

if TYPE_CHECKING:
    import torch

    from ..api import Explanation
    from ..model import TeMuIQA

#: Decimals of the scores and attributes the page shows (tables and CSV keep every digit).
SHOWN_DECIMALS = 4

#: Frames the page scores per video: N spread over its duration (``temu.explain(video, frames=N)``), so the
#: work per video is bounded however long it is.
VIDEO_FRAMES = 8

#: The reductions of a video's frame scores the page offers: :data:`temu.video.REDUCTIONS` (that module imports torch).
REDUCTIONS: tuple[str, ...] = ("mean", "min", "median", "p10")


class ModelChoices:
    """The models a demo page offers, by the name it was given; each is loaded once, on first use.

    Args:
        sources: preset names, head folders or Hub repo ids; at least one, none twice.
        device: where the models run (checked when the first model loads); None: CUDA when
            available, else the CPU.
    """

    def __init__(self, sources: Sequence[str | os.PathLike[str]], device: str | torch.device | None = None) -> None:
        names = [os.fspath(source) for source in sources]
        if not names:
            raise DemoError("model: give at least one preset name, head folder or Hub repo id")
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise DemoError(f"model: {', '.join(repr(name) for name in twice)} given more than once")
        self.names: tuple[str, ...] = tuple(names)
        self.device = device
        self._loaded: dict[str, TeMuIQA] = {}
        self._lock = threading.Lock()  # the page's event handlers run on several threads

    @property
    def default(self) -> str:
        """The first model's name: the page's initial choice."""
        return self.names[0]

    def get(self, name: str) -> TeMuIQA:
        """The model called ``name``, loaded on first use: the errors of :func:`temu.load`, and
        :class:`DemoError` for a name not offered or an unusable device."""
        if name not in self.names:
            raise DemoError(f"model {name!r} is not offered here; the choices are {', '.join(self.names)}")
        with self._lock:
            model = self._loaded.get(name)
            if model is None:
                model = self._loaded[name] = self._load(name)
        return model

    def _load(self, name: str) -> TeMuIQA:
        from ..cache import load
        from ..runtime import resolve_device

        return load(name, device=resolve_device(self.device))


def describe_model(name: str, model: TeMuIQA) -> str:
    """Markdown that says what the page's scores mean: range, direction, the model and whether its head is trained."""
    config = model.config
    size = f"{config.image_size} px" if config.image_size is not None else "each image's own size"
    what = f"`{name}`: backbone {config.backbone} ({config.pretrained or 'random weights'}), variant {config.variant}, {size}"
    if model.mos_scale is not None:
        scale = model.mos_scale
        direction = ", lower is better on that scale" if scale.lower_better else ""
        head = (
            f"**trained** (fine-tuned on opinion scores from {scale.low:g} to {scale.high:g}{direction}; "
            "`model.to_mos(score)` maps a score back to that scale)"
        )
    else:
        head = (
            "**untrained**: zero-shot CLIP, each patch's agreement with "
            f"{config.prompts[0]!r} against {config.prompts[1]!r}, not a model fine-tuned on human ratings"
        )
    return (
        "**Score**: one number per image in [0, 1], **higher is better** (a video's: its frames' scores reduced). "
        "Attributes are zero-shot CLIP judgements in [0, 1] (higher = more of the positive prompt, "
        "e.g. sharp rather than blurry), the same for every head on a backbone.\n\n"
        f"**Model** {what}. **Head**: {head}."
    )


@dataclass(frozen=True)
class ScoredImage:
    """One scored image (or video, or a video's frame) and what the page draws from it.

    Attributes:
        name: the file's name as uploaded (no folder); for a frame, ``"clip.mp4 at 1.25 s"``.
        score: the quality score in [0, 1], as :func:`temu.score` gives it (a video's: its frames' reduced).
        attributes: attribute name -> score in [0, 1] (a video's: its frames' reduced alike).
        maps: ``"quality"``, ``"weight"`` and one per attribute -> ``[h, w]`` float32 patch map in [0, 1];
            empty for a video (each frame has its own).
        preview: the image or frame as ``[H, W, 3]`` uint8, long side at most 1024 px (the maps are drawn
            over it); None for a video.
        frames: a video's sampled frames in time order, each a ScoredImage with ``time``; empty for an image.
        time: a frame's presentation time, seconds from the video's first frame; None otherwise.
    """

    name: str
    score: float
    attributes: dict[str, float]
    maps: dict[str, np.ndarray] = field(repr=False)
    preview: np.ndarray | None = field(repr=False)
    frames: tuple[ScoredImage, ...] = field(default=(), repr=False)
    time: float | None = None

    @property
    def worst_frame(self) -> int | None:
        """A video's frame with the lowest score (the first of equals); None for an image."""
        return min(range(len(self.frames)), key=lambda i: self.frames[i].score) if self.frames else None


@dataclass(frozen=True)
class Scoring:
    """One request's outcome: the model's name, the images and videos scored (in upload order), the files that
    were not, as (file name, reason) pairs, and the reduction of the videos' frame scores (:data:`REDUCTIONS`)."""

    model: str
    images: tuple[ScoredImage, ...] = ()
    errors: tuple[tuple[str, str], ...] = ()
    reduce: str = "mean"

    @property
    def has_videos(self) -> bool:
        """Whether a video is among the files scored."""
        return any(item.frames for item in self.images)


def score_files(
    paths: Sequence[str | os.PathLike[str]],
    model: TeMuIQA,
    name: str,
    precision: Precision,
    reduce: str = "mean",
) -> Scoring:
    """Score each file with :func:`temu.explain` (score, attributes and maps from one pass).

    A file that cannot be read or scored (a video without PyAV too) becomes an error (file name,
    reason) and the others are scored.

    Args:
        paths: the uploaded files.
        model: the model.
        name: the model's name on the page, kept in the result.
        precision: the backbone's autocast.
        reduce: how a video's :data:`VIDEO_FRAMES` frame scores (spread over its duration) become
            its score; one of :data:`REDUCTIONS`.

    Returns:
        A :class:`Scoring`.

    Raises:
        DemoError: an unknown ``reduce``.
    """
    from ..api import explain
    from ..plots import read_preview

    check_precision(precision)
    _check_reduce(reduce)
    images: list[ScoredImage] = []
    errors: list[tuple[str, str]] = []
    for path in paths:
        shown = Path(path).name
        try:
            result = explain(path, model=model, precision=precision, frames=VIDEO_FRAMES, reduce=reduce, num_workers=0)
            if result.frames:
                images.append(_video(path, shown, result))
                continue
            preview = read_preview(path)
        except TeMuError as err:  # this file only: its line says why
            reason = err.reason if isinstance(err, ImageReadError) else str(err)
            errors.append((shown, reason))
            continue
        pixels = (preview.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        images.append(ScoredImage(shown, result.score, dict(result.attributes), dict(result.maps), pixels))
    return Scoring(name, tuple(images), tuple(errors), reduce)


def _check_reduce(reduce: str) -> None:
    if reduce not in REDUCTIONS:
        raise DemoError(f"reduce must be one of {', '.join(map(repr, REDUCTIONS))}, got {reduce!r}")


def _video(path: str | os.PathLike[str], shown: str, result: Explanation) -> ScoredImage:
    """A scored video: ``result`` (from :func:`temu.explain`) and its sampled frames' pictures, decoded again
    by the same rule, each shrunk to a preview."""
    from PIL import Image

    from ..images.video import VideoSampling, sample_frames
    from ..plots import PREVIEW_MAX_SIDE

    previews = []
    for _, pixels in sample_frames(path, VideoSampling(frames=VIDEO_FRAMES), name=os.fspath(path)):
        array = pixels.permute(1, 2, 0).numpy()
        if array.dtype != np.uint8:  # deeper than 8 bits: floats in [0, 1]
            array = (array * 255 + 0.5).astype(np.uint8)
        picture = Image.fromarray(array)
        picture.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE), Image.BICUBIC)
        previews.append(np.asarray(picture))
    if len(previews) != len(result.frames):  # the same rule on the same file: never expected
        raise VideoReadError(path, f"{len(result.frames)} frames scored but {len(previews)} read for the pictures")
    frames = tuple(
        ScoredImage(f"{shown} at {f.time:.2f} s", f.score, dict(f.attributes), dict(f.maps), preview, time=f.time)
        for f, preview in zip(result.frames, previews)
    )
    return ScoredImage(shown, result.score, dict(result.attributes), {}, None, frames)


def reduced(scoring: Scoring, reduce: str) -> Scoring:
    """``scoring`` with each video's score and attributes its frames' reduced by ``reduce`` instead
    (:func:`temu.video.reduce_scores`, what :func:`temu.explain` does): no frame is scored again.

    Raises:
        DemoError: an unknown ``reduce``.
    """
    _check_reduce(reduce)
    if not scoring.has_videos:
        return replace(scoring, reduce=reduce)
    from ..video import reduce_scores

    def again(item: ScoredImage) -> ScoredImage:
        if not item.frames:
            return item
        score = reduce_scores([f.score for f in item.frames], reduce)
        attributes = {a: reduce_scores([f.attributes[a] for f in item.frames], reduce) for a in item.attributes}
        return replace(item, score=score, attributes=attributes)

    return replace(scoring, images=tuple(again(item) for item in scoring.images), reduce=reduce)


def frame_table(item: ScoredImage) -> tuple[list[str], list[list[float]]]:
    """(headers, rows) of a video's frames: ``time (s)`` and ``score``, in time order (no rows for an image)."""
    return ["time (s)", "score"], [[f.time, f.score] for f in item.frames]


def message(scoring: Scoring) -> str:
    """Markdown that lists the files that could not be scored; empty when there are none."""
    if not scoring.errors:
        return ""
    total = len(scoring.errors) + len(scoring.images)
    lines = [f"**Could not score {len(scoring.errors)} of {total} file(s):**", ""]
    lines += [f"- `{name}`: {reason}" for name, reason in scoring.errors]
    return "\n".join(lines)


def table(scoring: Scoring) -> tuple[list[str], list[list[str | float]]]:
    """(headers, rows) of the score table: image, score, (when videos were scored) ``frames`` (how many
    were scored; empty for an image) and one column per attribute, every digit kept."""
    names = list(scoring.images[0].attributes) if scoring.images else []
    videos = scoring.has_videos
    rows: list[list[str | float]] = [
        [item.name, item.score, *([len(item.frames) or ""] if videos else []), *(item.attributes[n] for n in names)]
        for item in scoring.images
    ]
    return ["image", "score", *(["frames"] if videos else []), *names], rows


def comparison(first: ScoredImage, second: ScoredImage) -> tuple[list[str], list[list[str | float]]]:
    """(headers, rows) of two images side by side: the score, then each attribute, and second minus first."""
    rows: list[list[str | float]] = [["score", first.score, second.score, second.score - first.score]]
    rows += [
        [n, first.attributes[n], second.attributes[n], second.attributes[n] - first.attributes[n]]
        for n in first.attributes
    ]
    return ["", first.name, second.name, "difference"], rows


def write_csv(scoring: Scoring, path: Path) -> Path:
    """Write ``model,image,score,[frames,]<attributes...>,error`` rows (scored files, then failed ones) to ``path``;
    returns it."""
    headers, rows = table(scoring)
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["model", *headers, "error"])
        writer.writerows([scoring.model, *row, ""] for row in rows)
        writer.writerows([scoring.model, name, *[""] * (len(headers) - 1), reason] for name, reason in scoring.errors)
    return path
