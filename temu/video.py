"""Videos scored by their frames: the reductions, :class:`VideoScore`, and frame results -> one result per input.

A video's frames are sampled by one rule (:mod:`temu.images.video`), scored like images in
batches shared with other inputs (:func:`temu.images.loading.load_frame_batches`), and reduced to
one score once all of them are scored (:class:`ResultAssembler`). The reductions:

- ``"mean"`` (default): the arithmetic mean, as VBench's ``imaging_quality``;
- ``"min"``: the worst frame;
- ``"median"``: the middle value (the mean of the two middle values for an even count);
- ``"p10"``: the 10th percentile by numpy's default (``"linear"``) definition: the value at rank
  ``0.1 * (n - 1)`` of the sorted scores, interpolated linearly between its neighbours.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from .errors import NonFiniteScoreError, VideoOptionsError
from .images.loading import FrameBatch, InputEnd
from .inference import Predictor, ScoreResult

Reduction = Literal["mean", "min", "median", "p10"]
#: The reductions of frame scores to a clip's score, by name.
REDUCTIONS: tuple[str, ...] = ("mean", "min", "median", "p10")


def check_reduce(reduce: str) -> None:
    """Raise :class:`~temu.errors.VideoOptionsError` unless ``reduce`` is one of :data:`REDUCTIONS`."""
    if reduce not in REDUCTIONS:
        raise VideoOptionsError(f"reduce must be one of {', '.join(map(repr, REDUCTIONS))}, got {reduce!r}")


def reduce_scores(scores: Sequence[float], reduce: Reduction = "mean") -> float:
    """One clip's score from its frames' scores (see the module docstring for each reduction).

    Raises:
        VideoOptionsError: an unknown ``reduce``, or no scores.
    """
    check_reduce(reduce)
    if len(scores) == 0:
        raise VideoOptionsError("no frame scores to reduce: a clip has at least one sampled frame")
    values = np.asarray(scores, dtype=np.float64)
    if reduce == "mean":
        return float(values.mean())
    if reduce == "min":
        return float(values.min())
    if reduce == "median":
        return float(np.median(values))
    return float(np.percentile(values, 10))  # numpy's default method, "linear"


@dataclass(frozen=True)
class VideoScore:
    """One video's score (:func:`temu.score_video`).

    Attributes:
        name: the video's path.
        score: the frames' scores reduced by ``reduce``, in [0, 1].
        frame_scores: each sampled frame's score, in time order.
        timestamps: each sampled frame's presentation time, seconds from the first frame.
        reduce: the reduction used (:data:`REDUCTIONS`).
        mos, percentile: ``score`` calibrated, when ``scale`` asked for it (:mod:`temu.model.calibration`).
    """

    name: str
    score: float
    frame_scores: list[float] = field(repr=False)
    timestamps: list[float] = field(repr=False)
    reduce: str = "mean"
    mos: float | None = None
    percentile: float | None = None

    @property
    def frames(self) -> int:
        """How many frames were sampled and scored."""
        return len(self.frame_scores)


@dataclass
class _Pending:
    frames: list[tuple[int, float | None, ScoreResult]] = field(default_factory=list)
    end: InputEnd | None = None


class ResultAssembler:
    """Scores :class:`~temu.images.loading.FrameBatch` es and gathers their frames' results into one
    :class:`~temu.inference.ScoreResult` per input, handed out in input order.

    An image's result is its one frame's. A video's is made once its last frame is scored: its
    frames' scores reduced by ``reduce``; an error of any frame (a non-finite score) is the video's.

    Args:
        predictor: scores the pixels.
        name_of: input index -> its name.
        reduce: the reduction of a video's frame scores (and of each attribute).
        keep_frames: keep each frame's own result in ``frame_results`` (for maps and attributes).
    """

    def __init__(
        self,
        predictor: Predictor,
        name_of: Callable[[int], str],
        *,
        reduce: Reduction = "mean",
        keep_frames: bool = False,
    ) -> None:
        check_reduce(reduce)
        self.predictor, self.name_of, self.reduce, self.keep_frames = predictor, name_of, reduce, keep_frames
        self.pending: dict[int, _Pending] = {}
        self.finished: dict[int, ScoreResult] = {}
        self.errors: dict[int, Exception] = {}
        self.next = 0

    def add(self, batch: FrameBatch) -> list[ScoreResult]:
        """Score ``batch``; returns the results that are now complete and next in input order."""

        def row_name(j: int) -> str:
            i, _, time = batch.rows[j]
            return self.name_of(i) if time is None else f"{self.name_of(i)} at {time:.3f} s"

        for result in self.predictor.results(batch.batch, row_name):
            i, sample, time = batch.rows[result.index]
            self.pending.setdefault(i, _Pending()).frames.append((sample, time, result))
        for end in batch.ends:
            entry = self.pending.pop(end.index, _Pending())
            entry.end = end
            self.finished[end.index] = self._finish(end.index, entry)
        ready = []
        while self.next in self.finished:
            ready.append(self.finished.pop(self.next))
            self.next += 1
        return ready

    def exception(self, index: int) -> Exception | None:
        """The exception behind input ``index``'s error (its read error, or a NonFiniteScoreError)."""
        return self.errors.get(index)

    def idle(self) -> bool:
        """Whether every input seen so far has been handed out."""
        return not self.pending and not self.finished

    def _finish(self, index: int, entry: _Pending) -> ScoreResult:
        end, name = entry.end, self.name_of(index)
        if end.error is not None:
            self.errors[index] = end.error
            return ScoreResult(index, name, None, str(end.error))
        frames = sorted(entry.frames, key=lambda item: item[0])
        if len(frames) != end.samples:  # the pipeline's promise; never a silent partial score
            raise RuntimeError(f"{name}: {end.samples} frames read but {len(frames)} scored")
        if not end.video:
            result = replace(frames[0][2], index=index, name=name)
            if result.error is not None:
                self.errors[index] = NonFiniteScoreError(result.error)
            return result
        bad = next((r for _, _, r in frames if r.error is not None), None)
        if bad is not None:
            self.errors[index] = NonFiniteScoreError(bad.error)
            return ScoreResult(index, name, None, bad.error)
        scores = [r.score for _, _, r in frames]
        result = ScoreResult(
            index,
            name,
            reduce_scores(scores, self.reduce),
            frames=len(frames),
            frame_scores=scores,
            timestamps=[time for _, time, _ in frames],
        )
        if frames[0][2].attributes is not None:
            names = list(frames[0][2].attributes)
            result.attributes = {a: reduce_scores([r.attributes[a] for _, _, r in frames], self.reduce) for a in names}
        if self.keep_frames:
            result.frame_results = [replace(r, index=sample) for sample, _, r in frames]
        return result
