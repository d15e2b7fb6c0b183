"""Images as encoded bytes, paths or URIs -> scores, decoding the next batch on threads while the model runs.

The engine under both corpus engines (this process, and each Ray actor through
:class:`temu.ray.TeMuScorer`). An image is decoded by temu's own reader (:func:`temu.decode_image`
/ :func:`temu.read_image`: EXIF orientation, modes, the decompression-bomb guard) and resized by
the model's own rule (:class:`temu.loading.ImageLoader`), so it scores as :func:`temu.score` scores
the same file. With ``resize_on="device"`` the threads only decode and the device resizes
(:func:`temu.loading.resize_on_device`), as in :func:`temu.iter_scores`. An image that cannot
be read gives its error message and scoring goes on; any other exception (CUDA out of memory, a
bug) is raised.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

import torch

from ..errors import ImageReadError, InvalidInputError, non_finite_score
from ..inputs import Source
from ..loading import ImageLoader, ResizeOn, group_by_size, resize_on_device, resizes_on_device, stack_images
from ..model import TeMuIQA
from ..precision import Precision, autocast_context
from .uris import Filesystems, is_uri

#: One result: ``(score in [0, 1], None)`` or ``(None, error message)``.
Result = tuple["float | None", "str | None"]


class BatchScorer:
    """Score ``(image, name)`` pairs batch by batch; ``image`` is encoded bytes, a local path, a URI or None.

    batch_size: images per forward pass. threads: decoding threads (default: the CPU count, at
    most 8). The thread pool decodes batch k+1 while the model scores batch k.
    resize_on: where images are resized, as for :func:`temu.iter_scores`
    (:func:`temu.loading.resizes_on_device`).
    """

    def __init__(
        self,
        model: TeMuIQA,
        *,
        batch_size: int = 32,
        precision: Precision = "auto",
        threads: int | None = None,
        filesystems: Filesystems | None = None,
        resize_on: ResizeOn = "auto",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.autocast = autocast_context(self.device, precision)
        self.batch_size = batch_size
        self.on_device = resizes_on_device(resize_on)
        self.loader = ImageLoader(model.input_size, resize=not self.on_device)
        self.filesystems = filesystems or Filesystems()
        self.threads = threads or min(8, os.cpu_count() or 1)
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="temu-decode")

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def load(self, image: Any, name: str) -> torch.Tensor:
        """One image at the model's input size, ``[3, H, W]`` float32 in [0, 1] (decoded pixels at their
        own size when resizing on the device); :class:`~temu.InvalidInputError` if unreadable."""
        if image is None:
            raise ImageReadError(name, "no image (null)")
        if isinstance(image, (bytes, bytearray, memoryview)):
            return self.loader(Source(name, data=bytes(image)))
        if isinstance(image, str):
            try:
                if is_uri(image):
                    return self.loader(Source(name, data=self.filesystems.read_bytes(image)))
                return self.loader(Source(name, path=Path(image)))
            except ImageReadError as err:  # name the image as the caller knows it, not the absolute path
                raise ImageReadError(name, err.reason) from None
        raise InvalidInputError(f"{name}: expected encoded image bytes, a path or a URI, got {type(image).__name__}")

    def score(self, items: Iterable[tuple[Any, str]]) -> Iterator[Result]:
        """One :data:`Result` per ``(image, name)`` pair, in order. ``items`` is read lazily, a batch ahead."""
        batches = _batched(iter(items), self.batch_size)
        ahead = self._submit(next(batches, None))
        while ahead is not None:
            current = ahead
            ahead = self._submit(next(batches, None))  # decode the next batch while this one runs
            yield from self._run(current)

    def _submit(self, batch: list[tuple[Any, str]] | None) -> list[tuple[Future, str]] | None:
        if batch is None:
            return None
        return [(self.pool.submit(self.load, image, name), name) for image, name in batch]

    def _run(self, futures: list[tuple[Future, str]]) -> list[Result]:
        results: list[Result] = [(None, None)] * len(futures)
        loaded: list[tuple[int, torch.Tensor]] = []
        for i, (future, _) in enumerate(futures):
            try:
                loaded.append((i, future.result()))
            except InvalidInputError as err:  # a bad image; anything else is raised
                results[i] = (None, str(err))
        groups = [
            ([i for i, _ in group], stack_images([t for _, t in group]))
            for group in group_by_size(loaded, lambda item: item[1])
        ]
        with torch.inference_mode():
            if self.on_device:
                groups, failed = resize_on_device(
                    groups, self.model.input_size, self.device, lambda i: Source(futures[i][1])
                )
                for i, err in failed:
                    results[i] = (None, str(err))
            for indices, x in groups:
                with self.autocast:
                    scores = self.model(x.to(self.device, non_blocking=True), check_input=False).float().cpu().tolist()
                for i, s in zip(indices, scores):
                    bad = non_finite_score(futures[i][1], s)
                    results[i] = (s, None) if bad is None else (None, str(bad))
        return results


def _batched(items: Iterator[tuple[Any, str]], n: int) -> Iterator[list[tuple[Any, str]]]:
    while batch := list(islice(items, n)):
        yield batch
