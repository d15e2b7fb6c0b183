"""Images read and brought to the model's input size, batched by size: the one input pipeline.

Shared by scoring (:func:`temu.iter_scores`), the corpus engines, evaluation and fine-tuning: the
same reader and the same resize rule everywhere, so an image scores the same whichever way it
reaches the model. 8-bit images stay uint8 from the decoder to the batch (decoded, turned upright
and resized as uint8); the model converts each batch to float once, on its device.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import InvalidInputError
from .sources import Source
from .transforms import InputSize

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
    size and dtype, and the inputs that ``failed`` to load, ``(index, error)``."""

    groups: list[tuple[list[int], torch.Tensor]] = field(default_factory=list)
    failed: list[tuple[int, Exception]] = field(default_factory=list)

    def to(self, device: torch.device) -> Batch:
        """The same batch with its pixels on ``device`` (copied asynchronously from pinned memory)."""
        groups = [(indices, x.to(device, non_blocking=True)) for indices, x in self.groups]
        return Batch(groups, self.failed)

    def pin_memory(self) -> Batch:
        """Called by a DataLoader with ``pin_memory=True``: the pixels in page-locked memory."""
        return Batch([(indices, x.pin_memory()) for indices, x in self.groups], self.failed)


class SourceDataset(Dataset):
    """``i -> (i, pixels or None, error or None)``: a bad input comes back as its error, not a crash."""

    def __init__(self, sources: Sequence[Source], input_size: InputSize) -> None:
        self.sources = sources
        self.load = ImageLoader(input_size)

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, Exception | None]:
        try:
            return i, self.load(self.sources[i]), None
        except InvalidInputError as err:  # ImageLoader turns every failure into one
            return i, None, err


def group_by_size(items: Sequence[T], image_of: Callable[[T], torch.Tensor]) -> list[list[T]]:
    """Items split into groups of equal image shape and dtype, in order of first appearance (one
    group unless the model keeps each image's own size, ``image_size=None``, or dtypes differ)."""
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        image = image_of(item)
        groups.setdefault((tuple(image.shape), image.dtype), []).append(item)
    return list(groups.values())


def collate_sources(items: list[tuple[int, torch.Tensor | None, Exception | None]]) -> Batch:
    """Collate :class:`SourceDataset` items into a :class:`Batch`."""
    failed = [(i, err) for i, img, err in items if err is not None]
    good = [(i, img) for i, img, err in items if err is None]
    groups = group_by_size(good, lambda item: item[1])
    return Batch([([i for i, _ in g], torch.stack([img for _, img in g])) for g in groups], failed)


def load_batches(
    sources: Sequence[Source], input_size: InputSize, device: torch.device, *, batch_size: int, num_workers: int
) -> Iterator[Batch]:
    """``sources`` read in batches of ``batch_size`` by a DataLoader (``num_workers`` worker processes;
    0: this process), each batch on ``device``. A batch is read only when asked for."""
    loader = DataLoader(
        SourceDataset(sources, input_size),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_sources,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    for batch in loader:
        yield batch.to(device)
