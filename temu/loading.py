"""Decoding and resizing images for the model in DataLoader workers, and batching them by size.

Shared by scoring (:func:`temu.iter_scores`), evaluation and fine-tuning: the same reader and the
same resize rule everywhere, so an image scores the same whichever way it reaches the model.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import TypeVar

import torch
from torch.utils.data import Dataset

from .errors import InvalidInputError
from .inputs import Source
from .transforms import InputSize

T = TypeVar("T")

#: Most DataLoader workers a default picks (more rarely helps one GPU and costs memory).
MAX_DEFAULT_WORKERS = 8


def default_num_workers(device: torch.device, *, world_size: int = 1) -> int:
    """DataLoader workers per process when the user gives none: 0 on the CPU (decoding would
    compete with the model for the same cores), else the CPU cores shared out over the
    ``world_size`` processes, at most :data:`MAX_DEFAULT_WORKERS`."""
    if device.type != "cuda":
        return 0
    return max(1, min(MAX_DEFAULT_WORKERS, (os.cpu_count() or 1) // max(1, world_size)))


class ImageLoader:
    """``Source`` or path -> ``[3, H, W]`` float32 in [0, 1] at the model's input size.

    A plain class (not a lambda) so that it pickles into DataLoader worker processes.
    """

    def __init__(self, input_size: InputSize) -> None:
        self.input_size = input_size

    def __call__(self, item: Source | str | os.PathLike[str]) -> torch.Tensor:
        source = item if isinstance(item, Source) else Source(str(item), path=Path(item))
        return self.input_size(source.load(), name=source.name).contiguous()


class SourceDataset(Dataset):
    """``i -> (i, image or None, error or None)``: a bad input comes back as its error, not a crash.

    Any exception while one input is read or resized, expected or not, is that input's error
    (an :class:`~temu.errors.InvalidInputError` naming it), in DataLoader workers too.
    """

    def __init__(self, sources: Sequence[Source], input_size: InputSize) -> None:
        self.sources = sources
        self.load = ImageLoader(input_size)

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, Exception | None]:
        source = self.sources[i]
        try:
            return i, self.load(source), None
        except InvalidInputError as err:
            return i, None, err
        except Exception as err:  # noqa: BLE001 (one input's failure is that input's error)
            return i, None, source.unexpected(err)


def group_by_size(items: Sequence[T], image_of: Callable[[T], torch.Tensor]) -> list[list[T]]:
    """Items split into groups of equal image shape, in order of first appearance (one group
    unless the model keeps each image's own size, ``image_size=None``)."""
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(tuple(image_of(item).shape), []).append(item)
    return list(groups.values())


def collate_sources(
    items: list[tuple[int, torch.Tensor | None, Exception | None]],
) -> tuple[list[tuple[list[int], torch.Tensor]], list[tuple[int, Exception]]]:
    """Collate :class:`SourceDataset` items: ``([(indices, [B, 3, H, W]) per image size], [(index, error)])``."""
    failed = [(i, err) for i, img, err in items if err is not None]
    good = [item for item in items if item[2] is None]
    groups = group_by_size(good, lambda item: item[1])
    return [([i for i, _, _ in g], torch.stack([img for _, img, _ in g])) for g in groups], failed
