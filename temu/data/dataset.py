"""The torch side of a labelled dataset: records -> ``(image, normalised MOS, index)`` batches."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..errors import DataError
from ..images.loading import ImageLoader, group_by_size
from ..images.transforms import InputSize
from ..model.scale import MOSScale
from .records import IQARecord

__all__ = ["IQADataset", "collate_by_size", "collate_same_size", "make_loader"]


class IQADataset(Dataset):
    """Records -> ``(image, normalised_mos, index)`` for a DataLoader.

    Holds only the records and the scale; each item calls ``load(path)`` (which
    returns the image tensor, e.g. ``(3, H, W)`` float) so no decoded image is
    kept. :meth:`for_model` makes one that decodes and resizes as a model's input
    (temu's own reader and resize rule). ``normalised_mos`` is a float32 scalar tensor in [0, 1] for the
    training set (1 = best); ``index`` is the item's position in ``records``.
    """

    def __init__(
        self,
        records: Sequence[IQARecord],
        load: Callable[[Path], torch.Tensor],
        scale: MOSScale,
    ) -> None:
        if not callable(load):
            raise TypeError(f"load must be a function Path -> Tensor, got {type(load).__name__}")
        if not isinstance(scale, MOSScale):
            raise TypeError(f"scale must be a MOSScale, got {type(scale).__name__}")
        records = tuple(records)
        for position, record in enumerate(records):
            if not isinstance(record, IQARecord):
                raise TypeError(f"records[{position}] is a {type(record).__name__}, expected IQARecord")
            if not math.isfinite(record.mos):
                raise ValueError(
                    f"record from CSV row {record.row} ({record.path}) has score {record.mos}; "
                    f"remove the rows reported by check_records before building the dataset"
                )
        self.records = records
        self.load = load
        self.scale = scale

    @classmethod
    def for_model(cls, records: Sequence[IQARecord], input_size: InputSize, scale: MOSScale) -> IQADataset:
        """A dataset whose images are read and resized to ``input_size`` (a model's ``input_size``) in the workers."""
        return cls(records, ImageLoader(input_size), scale)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        if index < 0:
            index += len(self.records)
        record = self.records[index]
        image = self.load(record.path)
        if not isinstance(image, torch.Tensor):
            raise TypeError(f"load({record.path}) returned {type(image).__name__}; it must return a torch.Tensor")
        target = torch.tensor(self.scale.normalise(record.mos), dtype=torch.float32)
        return image, target, index


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _stack(items: list[tuple[torch.Tensor, torch.Tensor, int]]) -> Batch:
    images = torch.stack([img for img, _, _ in items])
    targets = torch.stack([t for _, t, _ in items]).float()
    indices = torch.tensor([i for _, _, i in items], dtype=torch.long)
    return images, targets, indices


def collate_same_size(items: list[tuple[torch.Tensor, torch.Tensor, int]]) -> Batch:
    """Stack ``(image, target, index)`` items into ``([B, 3, H, W], [B], [B])``; every image must have one size."""
    groups = group_by_size(items, lambda item: item[0])
    if len(groups) > 1:
        shapes = sorted(tuple(g[0][0].shape) for g in groups)
        raise DataError(
            f"a batch holds images of different sizes {shapes}: with image_size=None every training image keeps "
            "its own size, so they must all have the same one. Pass image_size=448 (or another size) to resize them"
        )
    return _stack(items)


def collate_by_size(items: list[tuple[torch.Tensor, torch.Tensor, int]]) -> list[Batch]:
    """Like :func:`collate_same_size`, but one ``(images, targets, indices)`` group per image size."""
    return [_stack(group) for group in group_by_size(items, lambda item: item[0])]


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    drop_last: bool,
    num_workers: int,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
    by_size: bool = False,
) -> DataLoader:
    """A DataLoader that shards ``dataset`` over processes, with an order fixed by the seed and the epoch.

    A :class:`~torch.utils.data.DistributedSampler` is used for one process too, so the order
    depends only on ``(seed, epoch)`` (call ``loader.sampler.set_epoch``): a resumed run sees the
    same batches.

    Args:
        dataset: the records' Dataset.
        batch_size: images per batch and process.
        shuffle: draw a new order each epoch.
        seed: the order's seed.
        drop_last: drop the last incomplete batch; without it the shards are padded to equal
            length by repeating items.
        num_workers: DataLoader worker processes.
        rank, world_size: this process and the number of processes.
        pin_memory: page-locked host batches (for CUDA).
        by_size: group images of one size per batch (native-size models).

    Returns:
        A DataLoader of ``(images, targets, indices)`` batches; with ``by_size`` each batch is a list
        of them, one per image size.
    """
    sampler = DistributedSampler(
        dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
    )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        collate_fn=collate_by_size if by_size else collate_same_size,
    )
