"""Images and videos as encoded bytes, paths or URIs -> results, decoding the next batch on threads while the model runs.

The engine under both corpus engines (this process, and each Ray actor through
:class:`temu.corpus.ray.TeMuScorer`). An image is decoded by temu's own reader and brought to the
model's input size by the model's own rule, a video's frames are sampled by the one rule
(:class:`temu.images.loading.FrameLoader`), frames of consecutive inputs share forward passes of
the inference core (:class:`temu.inference.Predictor`), and a video's frame scores are reduced
(:class:`temu.video.ResultAssembler`), so each input scores as :func:`temu.iter_scores` scores the
same file. An input that cannot be read gives its error and scoring goes on; any other exception
(CUDA out of memory, a bug) is raised.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

import torch

from ..errors import ImageReadError, InvalidInputError
from ..images.loading import FrameBatch, FrameBatchBuilder, FrameLoader, InputEnd
from ..images.sources import Source
from ..images.video import VideoSampling
from ..inference import Predictor, ScoreResult
from ..model import TeMuIQA
from ..model.calibration import check_scales, fill_scales
from ..precision import Precision
from ..runtime import default_decode_threads
from ..video import Reduction, ResultAssembler, check_reduce
from .uris import Filesystems, is_uri, too_large

Frames = list[tuple[float | None, torch.Tensor]]


class BatchScorer:
    """Score ``(image, name)`` or ``(image, name, video)`` items batch by batch; ``image`` is encoded
    bytes, a local path, a URI or None, ``video`` True to read it as a video whatever its name says.

    Args:
        model: the model, on the device to score on.
        batch_size: inputs decoded together, and frames per forward pass.
        precision: the backbone's autocast (:mod:`temu.precision`).
        threads: decoding threads (default: the CPU cores, at most 8). The pool decodes batch k+1
            while the model scores batch k.
        filesystems: where URIs are read from.
        attributes: None, or resolved attribute prompt pairs to judge in the same pass.
        max_bytes: an input of more bytes (encoded bytes, a file, a URI) is an error, never read
            (None: no limit).
        sampling: which frames of a video are scored (default: one per second).
        reduce: how a video's frame scores (and attributes) become its own (:data:`temu.video.REDUCTIONS`).
        scale: calibrated scales to fill in each result (``"mos"``, ``"percentile"``); the raw score stays.

    A video's sampled frames, at the model's input size, are held until the video is scored: bound
    them with ``sampling.max_frames`` for long videos.

    Raises:
        VideoOptionsError: an unknown ``reduce``. CalibrationError: a scale the model's calibration lacks.
    """

    def __init__(
        self,
        model: TeMuIQA,
        *,
        batch_size: int = 32,
        precision: Precision = "auto",
        threads: int | None = None,
        filesystems: Filesystems | None = None,
        attributes: Mapping[str, tuple[str, str]] | None = None,
        max_bytes: int | None = None,
        sampling: VideoSampling | None = None,
        reduce: Reduction = "mean",
        scale: Sequence[str] = (),
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        check_reduce(reduce)
        self.scales = [s for s in scale if s != "raw"]
        self.source = getattr(model, "name_or_path", None)
        check_scales(model.calibration, self.scales, source=self.source)
        self.calibration = model.calibration
        self.max_bytes = max_bytes
        self.predictor = Predictor(model.eval(), precision=precision, attributes=attributes)
        self.device = self.predictor.device
        self.batch_size = batch_size
        self.reduce = reduce
        self.frames = FrameLoader(model.input_size, sampling or VideoSampling())
        self.filesystems = filesystems or Filesystems()
        self.threads = threads or default_decode_threads()
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="temu-decode")

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def load(self, image: Any, name: str, video: bool = False) -> Frames:
        """One input's frames at the model's input size: ``[(None, pixels)]`` for an image, ``[(time,
        pixels), ...]`` for a video (:class:`~temu.images.loading.FrameLoader`);
        :class:`~temu.errors.InvalidInputError` if unreadable."""
        if image is None:
            raise ImageReadError(name, "no image (null)")
        limit = self.max_bytes
        if isinstance(image, (bytes, bytearray, memoryview)):
            if limit is not None and len(image) > limit:
                raise ImageReadError(name, too_large(len(image), limit))
            return list(self.frames(Source(name, data=bytes(image)), video=video))
        if isinstance(image, str):
            try:
                if is_uri(image):
                    data = self.filesystems.read_bytes(image, limit)
                    return list(self.frames(Source(name, data=data), video=video))
                if limit is not None and (size := _size(image)) > limit:
                    raise ImageReadError(name, too_large(size, limit))
                return list(self.frames(Source(name, path=Path(image)), video=video))
            except ImageReadError as err:  # name the input as the caller knows it, not the absolute path
                raise type(err)(name, err.reason) from None
        raise InvalidInputError(f"{name}: expected encoded image bytes, a path or a URI, got {type(image).__name__}")

    def score(self, items: Iterable[tuple[Any, ...]]) -> Iterator[ScoreResult]:
        """One :class:`~temu.inference.ScoreResult` per item, in order (``index``: the position in
        ``items``; a video's has ``frames``, ``frame_scores`` and ``timestamps``). ``items`` is read
        lazily, a batch ahead."""
        names: list[str] = []
        assembler = ResultAssembler(self.predictor, names.__getitem__, reduce=self.reduce)
        pending = FrameBatchBuilder(self.batch_size)
        batches = _batched(iter(items), self.batch_size)
        ahead = self._submit(next(batches, None), names)
        offset = 0
        while ahead is not None:
            current = ahead
            ahead = self._submit(next(batches, None), names)  # decode the next batch while this one runs
            for k, future in enumerate(current):
                index = offset + k
                try:
                    frames = future.result()
                except InvalidInputError as err:  # a bad input; anything else is raised
                    pending.ends.append(InputEnd(index, 0, err))
                    continue
                for sample, (time, pixels) in enumerate(frames):
                    if pending.full():
                        yield from self._run(pending.take(), assembler)
                    pending.pixels.append(pixels)
                    pending.rows.append((index, sample, time))
                pending.ends.append(InputEnd(index, len(frames), None, frames[0][0] is not None))
                if pending.full():
                    yield from self._run(pending.take(), assembler)
            offset += len(current)
        if pending.rows or pending.ends:
            yield from self._run(pending.take(), assembler)

    def _submit(self, batch: list[tuple[Any, ...]] | None, names: list[str]) -> list[Future] | None:
        if batch is None:
            return None
        futures = []
        for item in batch:
            image, name, *video = item
            names.append(name)
            futures.append(self.pool.submit(self.load, image, name, bool(video and video[0])))
        return futures

    def _run(self, batch: FrameBatch, assembler: ResultAssembler) -> list[ScoreResult]:
        if self.device.type == "cuda":
            batch = batch.pin_memory()
        results = assembler.add(batch.to(self.device))
        fill_scales(results, self.calibration, self.scales, source=self.source)
        return results


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except (OSError, ValueError):
        return 0  # the reader says why it cannot be read


def _batched(items: Iterator[tuple[Any, ...]], n: int) -> Iterator[list[tuple[Any, ...]]]:
    while batch := list(islice(items, n)):
        yield batch
