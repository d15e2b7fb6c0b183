"""Images (and videos' frames) read and brought to the model's input size, batched by size: the one input pipeline.

Shared by scoring (:func:`temu.iter_scores`: :func:`load_frame_batches`, images and videos), the
corpus engines (:class:`FrameLoader`, :class:`FrameBatchBuilder`), evaluation and fine-tuning
(:class:`ImageLoader`, :func:`group_by_size`): the same reader and the same resize rule everywhere,
so an image scores the same whichever way it reaches the model. 8-bit images stay uint8 from the
decoder to the batch (decoded, turned upright and resized as uint8); the model converts each batch
to float once, on its device.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import torch
from torch.utils.data import DataLoader, IterableDataset

from ..errors import ImageReadError, InvalidInputError
from .decode import pillow_identifies
from .names import is_video_name
from .sources import Source
from .transforms import InputSize
from .video import VideoSampling, probe, sample_frames

T = TypeVar("T")


class ImageLoader:
    """``Source`` or path -> ``[3, h, w]`` pixels at the model's input size, contiguous: uint8 for
    8-bit images, float32 in [0, 1] otherwise.

    A plain class (not a lambda) so that it pickles into DataLoader worker processes.
    """

    def __init__(self, input_size: InputSize) -> None:
        self.input_size = input_size

    def __call__(self, item: Source | str | os.PathLike[str]) -> torch.Tensor:
        """Raises :class:`~temu.errors.InvalidInputError` naming the input for any failure, expected or not."""
        source = item if isinstance(item, Source) else Source(str(item), path=Path(item))
        try:
            return self.input_size(source.load(), name=source.name).contiguous()
        except InvalidInputError:
            raise
        except Exception as err:  # noqa: BLE001 (one input's failure is that input's error)
            raise source.unexpected(err) from err


@dataclass
class Batch:
    """A batch read for the model: ``groups`` of ``(indices, [B, 3, h, w] pixels)``, one per input
    size and dtype (inputs that failed to load are reported beside it, e.g. :class:`InputEnd`)."""

    groups: list[tuple[list[int], torch.Tensor]] = field(default_factory=list)

    def to(self, device: torch.device) -> Batch:
        """The same batch with its pixels on ``device`` (copied asynchronously from pinned memory)."""
        return Batch([(indices, x.to(device, non_blocking=True)) for indices, x in self.groups])

    def pin_memory(self) -> Batch:
        """Called by a DataLoader with ``pin_memory=True``: the pixels in page-locked memory."""
        return Batch([(indices, x.pin_memory()) for indices, x in self.groups])


def group_by_size(items: Sequence[T], image_of: Callable[[T], torch.Tensor]) -> list[list[T]]:
    """Items split into groups of equal image shape and dtype, in order of first appearance (one
    group unless the model keeps each image's own size, ``image_size=None``, or dtypes differ)."""
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        image = image_of(item)
        groups.setdefault((tuple(image.shape), image.dtype), []).append(item)
    return list(groups.values())


# ---------------------------------------------------------------------------- images and videos, as frames


class FrameLoader:
    """``Source`` -> its frames at the model's input size: ``(None, pixels)`` once for an image,
    ``(time, pixels)`` per sample for a video (:func:`temu.images.video.sample_frames`).

    A path or bytes named like a video (:data:`~temu.images.names.VIDEO_EXTENSIONS`) is read as a
    video unless Pillow reads it (a JPEG named ``.mp4`` is the image it is); any other input is read
    as an image, and one that Pillow cannot identify but FFmpeg opens as a video is read as a video.
    Raises :class:`~temu.errors.InvalidInputError` (:class:`~temu.errors.VideoReadError` for videos)
    for any failure, also one met after some frames were yielded.
    """

    def __init__(self, input_size: InputSize, sampling: VideoSampling) -> None:
        self.image = ImageLoader(input_size)
        self.input_size = input_size
        self.sampling = sampling

    def __call__(self, source: Source, *, video: bool = False) -> Iterator[tuple[float | None, torch.Tensor]]:
        """``video``: read it as if it were named like a video (a tar member ``000123.mp4`` whose id is
        ``000123``)."""
        if source.error is not None:
            raise source.error
        encoded = source.path if source.path is not None else source.data
        named_video = video or is_video_name(source.name)
        if encoded is not None and named_video and not pillow_identifies(encoded):
            yield from self.video(source, encoded)
            return
        try:
            pixels = self.image(source)
        except ImageReadError:
            if encoded is None or pillow_identifies(encoded) or not probe(encoded):
                raise
            pixels = None  # not an image Pillow knows, but a video FFmpeg opens
        if pixels is None:
            yield from self.video(source, encoded)
        else:
            yield None, pixels

    def video(self, source: Source, encoded: Path | bytes) -> Iterator[tuple[float, torch.Tensor]]:
        try:
            yield from sample_frames(encoded, self.sampling, self.input_size, name=source.name)
        except InvalidInputError:
            raise
        except Exception as err:  # noqa: BLE001 (one input's failure is that input's error)
            raise source.unexpected(err) from err


@dataclass(frozen=True)
class InputEnd:
    """The last word on input ``index``: it gave ``samples`` frames, or failed with ``error`` (frames
    it gave before failing are then void). ``video``: its frames have times (it was read as a video)."""

    index: int
    samples: int
    error: Exception | None = None
    video: bool = False


@dataclass
class FrameBatch:
    """A batch of frames, from one or several inputs: ``batch`` holds the pixels, its indices being
    positions in ``rows``; ``rows[j] = (input index, sample number, time in seconds or None for an
    image)``; ``ends``: the inputs whose every frame is now in this or an earlier batch."""

    batch: Batch
    rows: list[tuple[int, int, float | None]]
    ends: list[InputEnd]

    def to(self, device: torch.device) -> FrameBatch:
        return FrameBatch(self.batch.to(device), self.rows, self.ends)

    def pin_memory(self) -> FrameBatch:
        return FrameBatch(self.batch.pin_memory(), self.rows, self.ends)


class FrameBatchBuilder:
    """Frames gathered into a :class:`FrameBatch` of up to ``batch_size`` frames (``take`` hands it on)."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.pixels: list[torch.Tensor] = []
        self.rows: list[tuple[int, int, float | None]] = []
        self.ends: list[InputEnd] = []

    def full(self) -> bool:
        return len(self.rows) >= self.batch_size

    def take(self) -> FrameBatch:
        groups = group_by_size(range(len(self.rows)), lambda j: self.pixels[j])
        batch = Batch([(group, torch.stack([self.pixels[j] for j in group])) for group in groups])
        out = FrameBatch(batch, self.rows, self.ends)
        self.pixels, self.rows, self.ends = [], [], []
        return out


def input_chunks(sources: Sequence[Source], batch_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` runs of ``sources`` dealt to the loader workers in turn: up to ``batch_size``
    consecutive inputs, or one input named like a video on its own (so clips spread over the workers)."""
    chunks, start = [], 0
    for i, source in enumerate(sources):
        if is_video_name(source.name):
            if start < i:
                chunks.append((start, i))
            chunks.append((i, i + 1))
            start = i + 1
        elif i + 1 - start == batch_size:
            chunks.append((start, i + 1))
            start = i + 1
    if start < len(sources):
        chunks.append((start, len(sources)))
    return chunks


class FrameStream(IterableDataset):
    """The frames of ``sources`` in :class:`FrameBatch` es of ``batch_size`` frames. Each DataLoader
    worker reads every W-th chunk (:func:`input_chunks`); frames of consecutive inputs share batches,
    and a batch is handed on once full, just before more is read (so nothing is read ahead in-process)."""

    def __init__(self, sources: Sequence[Source], input_size: InputSize, sampling: VideoSampling, batch_size: int):
        self.sources = sources
        self.load = FrameLoader(input_size, sampling)
        self.batch_size = batch_size
        self.chunks = input_chunks(sources, batch_size)

    def __iter__(self) -> Iterator[FrameBatch]:
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        pending = FrameBatchBuilder(self.batch_size)
        for chunk in self.chunks[worker::workers]:
            for i in range(*chunk):
                samples, video = 0, False
                try:
                    for time, pixels in self.load(self.sources[i]):
                        if pending.full():
                            yield pending.take()
                        pending.pixels.append(pixels)
                        pending.rows.append((i, samples, time))
                        samples, video = samples + 1, time is not None
                except InvalidInputError as err:  # FrameLoader turns every failure into one
                    pending.ends.append(InputEnd(i, samples, err, video))
                else:
                    pending.ends.append(InputEnd(i, samples, None, video))
                if pending.full():
                    yield pending.take()
        if pending.rows or pending.ends:
            yield pending.take()


def _as_is(batch: FrameBatch) -> FrameBatch:
    return batch


def load_frame_batches(
    sources: Sequence[Source],
    input_size: InputSize,
    device: torch.device,
    *,
    batch_size: int,
    num_workers: int,
    sampling: VideoSampling,
) -> Iterator[FrameBatch]:
    """The frames of images and videos in batches; frames of consecutive inputs share batches.

    Args:
        sources: the inputs (:func:`temu.images.sources.expand_sources`).
        input_size: the model's resize rule.
        device: where each batch goes.
        batch_size: frames per batch.
        num_workers: DataLoader worker processes (0: this process, reading only when asked).
        sampling: which frames of a video (:class:`temu.images.video.VideoSampling`).

    Returns:
        An iterator of :class:`FrameBatch` in input order.
    """
    stream = FrameStream(sources, input_size, sampling, batch_size)
    workers = min(num_workers, len(stream.chunks))
    if workers:
        import gc

        gc.collect()  # FFmpeg objects left in reference cycles are freed here, not in the forked workers
    loader = DataLoader(
        stream,
        batch_size=None,
        num_workers=workers,
        collate_fn=_as_is,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    for batch in loader:
        yield batch.to(device)
