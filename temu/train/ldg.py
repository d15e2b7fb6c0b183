"""Local Distortion Guidance (LDG): locally distorted training images and their targets.

From a training image I, a random rectangle (width and height uniform in
[40, 150] px for 448 x 448 inputs) is distorted with RandAugment (N = 6 ops,
magnitude M = 18 of 31 bins; torchvision's, run on the crop alone) and pasted
back, giving Ĩ. Its fidelity f = CW-SSIM(I, Ĩ) scales the image's normalised
MOS y into the target f * y.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchvision.transforms import v2

from ..images.sources import check_batch
from .cwssim import cw_ssim

__all__ = ["ldg_fidelity", "ldg_targets", "local_distortion", "sample_boxes"]


def _scaled_range(size_range: tuple[int, int], size: int, reference_size: int) -> tuple[int, int]:
    """size_range scaled by size / reference_size, rounded half up, clamped to [1, size]."""
    lo, hi = (math.floor(s * size / reference_size + 0.5) for s in size_range)
    hi = min(max(hi, 1), size)
    return min(max(lo, 1), hi), hi


def sample_boxes(
    n: int,
    height: int,
    width: int,
    *,
    size_range: tuple[int, int] = (40, 150),
    reference_size: int = 448,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Random boxes for local distortion (docs/method.md, "Local Distortion Guidance").

    Sides are uniform over the integers of ``size_range`` scaled by ``width / reference_size``
    (``w``) and ``height / reference_size`` (``h``), bounds rounded half up, then clamped to the
    image: at 448 x 448 sides are in [40, 150] px (the paper's Eq. 8), at 224 in [20, 75]. The
    position is uniform among those that keep the box inside the image.

    Args:
        n: the number of boxes.
        height, width: the image's size.
        size_range: the side range at ``reference_size``.
        reference_size: the image side ``size_range`` is given for.
        generator: the random generator; the boxes are drawn on its device (CPU if None).

    Returns:
        int64 ``[n, 4]`` as ``(top, left, h, w)``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1, got {height} and {width}")
    if len(size_range) != 2 or not 0 < size_range[0] <= size_range[1]:
        raise ValueError(f"size_range must be (low, high) with 0 < low <= high, got {size_range}")
    if reference_size <= 0:
        raise ValueError(f"reference_size must be > 0, got {reference_size}")
    device = generator.device if generator is not None else torch.device("cpu")
    lo_h, hi_h = _scaled_range(size_range, height, reference_size)
    lo_w, hi_w = _scaled_range(size_range, width, reference_size)
    h = torch.randint(lo_h, hi_h + 1, (n,), generator=generator, device=device)
    w = torch.randint(lo_w, hi_w + 1, (n,), generator=generator, device=device)
    u = torch.rand(n, 2, generator=generator, device=device, dtype=torch.float64)
    top = torch.minimum((u[:, 0] * (height - h + 1)).floor().long(), height - h)
    left = torch.minimum((u[:, 1] * (width - w + 1)).floor().long(), width - w)
    return torch.stack([top, left, h, w], dim=1)


@torch.no_grad()
def local_distortion(
    images: Tensor,
    *,
    num_ops: int = 6,
    magnitude: int = 18,
    num_bins: int = 31,
    size_range: tuple[int, int] = (40, 150),
    reference_size: int = 448,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Distort one random rectangle per image with torchvision's RandAugment, run on the crop alone.

    Each image's box (see :func:`sample_boxes`) is cut out, given to
    ``torchvision.transforms.v2.RandAugment(num_ops, magnitude, num_bins)`` (nearest
    interpolation, fill 0: its defaults) as a float crop, and pasted back into a copy of
    the image, so every image draws its own op sequence. RandAugment draws from torch's
    global CPU generator; to make the result a function of ``generator`` alone, the boxes
    and then one seed are drawn from ``generator``, and the crops are augmented in order
    inside ``torch.random.fork_rng`` seeded with that seed. The caller's global random
    state is left as it was. (temu's own batched, masked RandAugment was slower on the
    CPU: ``benchmarks/bench_randaugment.py``.)

    Args:
        images: [N, 3, H, W] floats in [0, 1].
        num_ops, magnitude, num_bins: RandAugment parameters (paper: 6, 18, 31).
        size_range, reference_size: box side range at the reference image size.
        generator: torch.Generator; fixes boxes and ops. None: the global generator of
            the CPU.

    Returns:
        (distorted [N, 3, H, W] same dtype/device, floats in [0, 1], pixels outside the
        box bit-identical to ``images``; boxes int64 [N, 4] (top, left, h, w) on the
        images' device).
    """
    check_batch(images, name="images", values=False, allow_uint8=False)
    if num_ops < 0 or num_bins < 2 or not 0 <= magnitude < num_bins:
        raise ValueError(
            f"Need num_ops >= 0, num_bins >= 2 and 0 <= magnitude < num_bins, got {num_ops}, {num_bins} and {magnitude}"
        )
    n, _, height, width = images.shape
    boxes = sample_boxes(n, height, width, size_range=size_range, reference_size=reference_size, generator=generator)
    device = generator.device if generator is not None else torch.device("cpu")
    seed = int(torch.randint(2**62, (), generator=generator, device=device))
    augment = v2.RandAugment(num_ops=num_ops, magnitude=magnitude, num_magnitude_bins=num_bins)
    distorted = images.clone()
    with torch.random.fork_rng(devices=[]):  # RandAugment draws on the CPU only, whatever the images' device
        torch.manual_seed(seed)
        for i, (top, left, h, w) in enumerate(boxes.tolist()):
            box = (i, slice(None), slice(top, top + h), slice(left, left + w))
            distorted[box] = augment(images[box])
    return distorted, boxes.to(images.device)


@torch.no_grad()
def ldg_fidelity(images: Tensor, distorted: Tensor) -> Tensor:
    """Fidelity f = CW-SSIM(images, distorted) clamped to [0, 1]: [N], dtype of ``images``.

    Both [N, 3, H, W] floats in [0, 1] with min(H, W) >= 64 (see :func:`temu.train.cwssim.cw_ssim`).
    """
    check_batch(images, name="images", values=False, allow_uint8=False)
    check_batch(distorted, name="distorted", values=False, allow_uint8=False)
    return cw_ssim(distorted, images).clamp(0.0, 1.0).to(images.dtype)


def ldg_targets(mos: Tensor, fidelity: Tensor) -> Tensor:
    """Targets f * y of the distorted images: [N] from normalised MOS ``mos`` [N] and ``fidelity`` [N]."""
    for name, t in (("mos", mos), ("fidelity", fidelity)):
        if not isinstance(t, Tensor):
            raise TypeError(f"Expected {name} to be a torch.Tensor, got {type(t).__name__}")
    if mos.shape != fidelity.shape:
        raise ValueError(
            f"mos and fidelity must have the same shape, got {tuple(mos.shape)} and {tuple(fidelity.shape)}"
        )
    return fidelity.to(mos.dtype) * mos
