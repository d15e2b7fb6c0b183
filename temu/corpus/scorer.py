"""Images as encoded bytes, paths or URIs -> results, decoding the next batch on threads while the model runs.

The engine under both corpus engines (this process, and each Ray actor through
:class:`temu.corpus.ray.TeMuScorer`). An image is decoded by temu's own reader and brought to the
model's input size by the model's own rule (:class:`temu.images.loading.ImageLoader`), and scored by
the inference core (:class:`temu.inference.Predictor`), so it scores as :func:`temu.score` scores
the same file. An image that cannot be read gives its error and scoring goes on; any other
exception (CUDA out of memory, a bug) is raised.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

import torch

from ..errors import ImageReadError, InvalidInputError
from ..images.loading import Batch, ImageLoader, group_by_size
from ..images.sources import Source
from ..inference import Predictor, ScoreResult
from ..model import TeMuIQA
from ..precision import Precision
from ..runtime import default_decode_threads
from .uris import Filesystems, is_uri, too_large


class BatchScorer:
    """Score ``(image, name)`` pairs batch by batch; ``image`` is encoded bytes, a local path, a URI or None.

    Args:
        model: the model, on the device to score on.
        batch_size: images per forward pass.
        precision: the backbone's autocast (:mod:`temu.precision`).
        threads: decoding threads (default: the CPU cores, at most 8). The pool decodes batch k+1
            while the model scores batch k.
        filesystems: where URIs are read from.
        attributes: None, or resolved attribute prompt pairs to judge in the same pass.
        max_bytes: an image of more bytes (encoded bytes, a file, a URI) is an error, never read
            (None: no limit).
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
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.max_bytes = max_bytes
        self.predictor = Predictor(model.eval(), precision=precision, attributes=attributes)
        self.device = self.predictor.device
        self.batch_size = batch_size
        self.loader = ImageLoader(model.input_size)
        self.filesystems = filesystems or Filesystems()
        self.threads = threads or default_decode_threads()
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="temu-decode")

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def load(self, image: Any, name: str) -> torch.Tensor:
        """One image at the model's input size (:class:`~temu.images.loading.ImageLoader`);
        :class:`~temu.errors.InvalidInputError` if unreadable."""
        if image is None:
            raise ImageReadError(name, "no image (null)")
        limit = self.max_bytes
        if isinstance(image, (bytes, bytearray, memoryview)):
            if limit is not None and len(image) > limit:
                raise ImageReadError(name, too_large(len(image), limit))
            return self.loader(Source(name, data=bytes(image)))
        if isinstance(image, str):
            try:
                if is_uri(image):
                    return self.loader(Source(name, data=self.filesystems.read_bytes(image, limit)))
                if limit is not None and (size := _size(image)) > limit:
                    raise ImageReadError(name, too_large(size, limit))
                return self.loader(Source(name, path=Path(image)))
            except ImageReadError as err:  # name the image as the caller knows it, not the absolute path
                raise ImageReadError(name, err.reason) from None
        raise InvalidInputError(f"{name}: expected encoded image bytes, a path or a URI, got {type(image).__name__}")

    def score(self, items: Iterable[tuple[Any, str]]) -> Iterator[ScoreResult]:
        """One :class:`~temu.inference.ScoreResult` per ``(image, name)`` pair, in order (``index``: the
        position in ``items``). ``items`` is read lazily, a batch ahead."""
        batches = _batched(iter(items), self.batch_size)
        ahead = self._submit(next(batches, None))
        offset = 0
        while ahead is not None:
            current = ahead
            ahead = self._submit(next(batches, None))  # decode the next batch while this one runs
            for result in self._run(current):
                result.index += offset
                yield result
            offset += len(current)

    def _submit(self, batch: list[tuple[Any, str]] | None) -> list[tuple[Future, str]] | None:
        if batch is None:
            return None
        return [(self.pool.submit(self.load, image, name), name) for image, name in batch]

    def _run(self, futures: list[tuple[Future, str]]) -> list[ScoreResult]:
        loaded: list[tuple[int, torch.Tensor]] = []
        failed: list[tuple[int, Exception]] = []
        for i, (future, _) in enumerate(futures):
            try:
                loaded.append((i, future.result()))
            except InvalidInputError as err:  # a bad image; anything else is raised
                failed.append((i, err))
        groups = [
            ([i for i, _ in group], torch.stack([t for _, t in group]))
            for group in group_by_size(loaded, lambda item: item[1])
        ]
        batch = Batch(groups, failed)
        if self.device.type == "cuda":
            batch = batch.pin_memory()
        return self.predictor.results(batch.to(self.device), lambda i: futures[i][1])


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except (OSError, ValueError):
        return 0  # the reader says why it cannot be read


def _batched(items: Iterator[tuple[Any, str]], n: int) -> Iterator[list[tuple[Any, str]]]:
    while batch := list(islice(items, n)):
        yield batch
