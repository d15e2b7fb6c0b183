"""Decoding and resizing images for the model in DataLoader workers, and batching them by size.

Shared by scoring (:func:`temu.iter_scores`), evaluation and fine-tuning: the same reader and the
same resize rule everywhere, so an image scores the same whichever way it reaches the model.

Two places to resize: in the loader (workers decode, convert to float and resize; the CPU path),
or on the model's device (workers only decode, 8-bit pixels stay uint8, and
:func:`resize_on_device` converts and resizes whole groups there: the GPU path, which leaves the
CPU cores to decoding). Both apply :class:`~temu.transforms.InputSize` to the same float pixels.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal, TypeVar

import torch
from torch.utils.data import DataLoader, Dataset

from .errors import InvalidInputError
from .inputs import Source, pixels_to_float
from .transforms import InputSize

T = TypeVar("T")

#: Most DataLoader workers a default picks (more rarely helps one GPU and costs memory).
MAX_DEFAULT_WORKERS = 8

#: Where images may be brought to the model's input size (see :func:`resizes_on_device`).
ResizeOn = Literal["auto", "loader", "device"]
RESIZE_ON: tuple[str, ...] = ("auto", "loader", "device")


def resizes_on_device(resize_on: str) -> bool:
    """Whether ``resize_on`` means resizing on the model's device (:func:`resize_on_device`) rather than in the loader.

    ``"loader"``: where images are decoded (DataLoader workers or threads); ``"device"``: on the
    model's device, the loader only decodes; ``"auto"``: the loader, on every device for now. The
    device path is built and tested for equal scores, but its speed on a GPU is not measured yet
    (``benchmarks/bench_score_files.py`` times both in one process); ``"auto"`` will pick it where
    that measurement shows it faster. Raises ValueError for any other value.
    """
    if resize_on not in RESIZE_ON:
        raise ValueError(f"resize_on must be one of {', '.join(map(repr, RESIZE_ON))}, got {resize_on!r}")
    return resize_on == "device"


def available_cpus() -> int:
    """CPU cores this process may run on: its affinity mask (as ``taskset``, Slurm or a container
    set it) where the system has one, else ``os.cpu_count()``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


def default_num_workers(device: torch.device, *, world_size: int = 1) -> int:
    """DataLoader workers per process when the user gives none: 0 on the CPU (decoding would
    compete with the model for the same cores), else the CPU cores (:func:`available_cpus`) shared
    out over the ``world_size`` processes, less one core for each process itself (it collates,
    pins and feeds the GPU), at least 1 and at most :data:`MAX_DEFAULT_WORKERS`."""
    if device.type != "cuda":
        return 0
    return max(1, min(MAX_DEFAULT_WORKERS, available_cpus() // max(1, world_size) - 1))


class ImageLoader:
    """``Source`` or path -> ``[3, H, W]`` float32 in [0, 1] at the model's input size.

    ``resize=False``: the decoded pixels at their own size instead (``Source.load(keep_uint8=True)``:
    uint8 for 8-bit files), for :func:`resize_on_device` to convert and resize.
    A plain class (not a lambda) so that it pickles into DataLoader worker processes.
    """

    def __init__(self, input_size: InputSize, *, resize: bool = True) -> None:
        self.input_size = input_size
        self.resize = resize

    def __call__(self, item: Source | str | os.PathLike[str]) -> torch.Tensor:
        """Raises :class:`~temu.errors.InvalidInputError` naming the input for any failure, expected or not."""
        source = item if isinstance(item, Source) else Source(str(item), path=Path(item))
        try:
            if not self.resize:
                return source.load(keep_uint8=True)
            return self.input_size(source.load(), name=source.name).contiguous()
        except InvalidInputError:
            raise
        except Exception as err:  # noqa: BLE001 (one input's failure is that input's error)
            raise source.unexpected(err) from err


class SourceDataset(Dataset):
    """``i -> (i, image or None, error or None)``: a bad input comes back as its error, not a crash.

    Any exception while one input is read or resized, expected or not, is that input's error
    (an :class:`~temu.errors.InvalidInputError` naming it), in DataLoader workers too.
    ``resize``: as for :class:`ImageLoader` (False: decoded pixels, for :func:`resize_on_device`).
    """

    def __init__(self, sources: Sequence[Source], input_size: InputSize, *, resize: bool = True) -> None:
        self.sources = sources
        self.load = ImageLoader(input_size, resize=resize)

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, Exception | None]:
        source = self.sources[i]
        try:
            return i, self.load(source), None
        except InvalidInputError as err:  # ImageLoader turns every failure into one
            return i, None, err


def group_by_size(items: Sequence[T], image_of: Callable[[T], torch.Tensor]) -> list[list[T]]:
    """Items split into groups of equal image shape (and dtype), in order of first appearance (one
    group unless the model keeps each image's own size, ``image_size=None``, or the images are not
    resized yet)."""
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        image = image_of(item)
        groups.setdefault((tuple(image.shape), image.dtype), []).append(item)
    return list(groups.values())


def stack_images(images: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[B, 3, H, W]`` from B images ``[3, H, W]`` of one shape and dtype.

    Pixels laid out height-width-channel (:func:`temu.inputs.pil_to_pixels`) are stacked in that
    layout, a plain copy, and come back as a channel-first view of it: no transpose on the CPU.
    """
    hwc = [image.permute(1, 2, 0) for image in images]
    if all(image.is_contiguous() for image in hwc):
        return torch.stack(hwc).permute(0, 3, 1, 2)
    return torch.stack(list(images))


def collate_sources(
    items: list[tuple[int, torch.Tensor | None, Exception | None]],
) -> tuple[list[tuple[list[int], torch.Tensor]], list[tuple[int, Exception]]]:
    """Collate :class:`SourceDataset` items: ``([(indices, [B, 3, H, W]) per image size], [(index, error)])``."""
    failed = [(i, err) for i, img, err in items if err is not None]
    good = [item for item in items if item[2] is None]
    groups = group_by_size(good, lambda item: item[1])
    return [([i for i, _, _ in g], stack_images([img for _, img, _ in g])) for g in groups], failed


#: Most pixels (images x height x width) that :func:`to_input_size` converts to float at once:
#: bounds the device memory that full-size photographs take before they are resized (768 MiB).
DEVICE_CHUNK_PIXELS = 64 * 2**20


def to_input_size(
    pixels: torch.Tensor, input_size: InputSize, device: torch.device, *, names: Sequence[str] = ()
) -> torch.Tensor:
    """``[B, 3, H, W]`` decoded pixels of one size (uint8 0-255, or floats in [0, 1]; on the CPU,
    pinned for an asynchronous copy) -> ``[B, 3, h, w]`` float32 in [0, 1] at the model's input size
    on ``device``, contiguous. The same float pixels and the same :class:`InputSize` rule as the
    loader's path; at most :data:`DEVICE_CHUNK_PIXELS` pixels are converted at a time. ``names``
    (one per image) label the warning given when ``max_pixels`` downscales an image."""
    batch, _, height, width = pixels.shape
    capped = input_size.capped(height, width) != (height, width)
    step = max(1, DEVICE_CHUNK_PIXELS // max(1, height * width))
    out = []
    for start in range(0, batch, step):
        x = pixels_to_float(pixels[start : start + step].to(device, non_blocking=True))
        if capped:  # one warning per image, naming it
            out.extend(input_size(x[k : k + 1], name=names[start + k] if names else None) for k in range(len(x)))
        else:
            out.append(input_size(x))
    return (torch.cat(out) if len(out) > 1 else out[0]).contiguous()


def resize_on_device(
    groups: Iterable[tuple[list[int], torch.Tensor]],
    input_size: InputSize,
    device: torch.device,
    source_of: Callable[[int], Source],
) -> tuple[list[tuple[list[int], torch.Tensor]], list[tuple[int, Exception]]]:
    """Groups of decoded pixels (``(indices, [B, 3, H, W])``, as :func:`collate_sources` gives them
    with ``resize=False``) -> ``([(indices, [B, 3, h, w]) per input size], [(index, error)])``:
    float32 in [0, 1] on ``device`` (see :func:`to_input_size`), groups that reach the same size merged.

    An exception while a group is resized is retried image by image; an image that still fails is
    that image's error (``source_of(index).unexpected(err)``), as in the loader's path.
    """
    by_size: dict[tuple[int, ...], tuple[list[int], list[torch.Tensor]]] = {}
    failed: list[tuple[int, Exception]] = []
    for indices, pixels in groups:
        try:
            done = [(indices, to_input_size(pixels, input_size, device, names=_names(indices, source_of)))]
        except Exception:  # noqa: BLE001 (find the image that fails; the others are scored)
            done = []
            for i, one in zip(indices, pixels):
                try:
                    done.append(
                        ([i], to_input_size(one.unsqueeze(0), input_size, device, names=_names([i], source_of)))
                    )
                except Exception as err:  # noqa: BLE001 (one input's failure is that input's error)
                    failed.append((i, source_of(i).unexpected(err)))
        for ids, x in done:
            merged = by_size.setdefault(tuple(x.shape[1:]), ([], []))
            merged[0].extend(ids)
            merged[1].append(x)
    return [(ids, xs[0] if len(xs) == 1 else torch.cat(xs)) for ids, xs in by_size.values()], failed


def device_batches(
    sources: Sequence[Source],
    input_size: InputSize,
    device: torch.device,
    *,
    batch_size: int,
    num_workers: int,
    on_device: bool,
) -> Iterator[tuple[list[tuple[list[int], torch.Tensor]], list[tuple[int, Exception]]]]:
    """``sources`` read by a DataLoader (``num_workers`` workers) in batches of ``batch_size``, on
    ``device``: per batch ``([(indices, [B, 3, h, w]) per input size], [(index, error)])``, the
    images float32 in [0, 1] at the model's input size, resized in the loader or (``on_device``)
    by :func:`resize_on_device`. The input pipeline of :func:`temu.iter_scores`; a batch is read
    only when asked for, and nothing is left switched on (inference mode) between batches."""
    loader = DataLoader(
        SourceDataset(sources, input_size, resize=not on_device),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_sources,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    for groups, failed in loader:
        if on_device:
            with torch.inference_mode():
                groups, failed_here = resize_on_device(groups, input_size, device, sources.__getitem__)
            failed = failed + failed_here
        else:
            groups = [(indices, x.to(device, non_blocking=True)) for indices, x in groups]
        yield groups, failed


def _names(indices: Sequence[int], source_of: Callable[[int], Source]) -> list[str]:
    return [source_of(i).name for i in indices]
