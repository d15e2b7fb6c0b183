"""Local Distortion Guidance (LDG): locally distorted training images and their targets.

From a training image I, a random rectangle (width and height uniform in
[40, 150] px for 448 x 448 inputs) is distorted with RandAugment (N = 6 ops,
magnitude M = 18 of 31 bins) and pasted back, giving Ĩ. Its fidelity
f = CW-SSIM(I, Ĩ) scales the image's normalised MOS y into the target f * y.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..inputs import check_batch
from .augment import apply_op_sequences, sample_op_sequences
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
    """Random boxes for local distortion: int64 [n, 4] as (top, left, h, w).

    ``w`` is uniform over the integers of ``size_range`` scaled by
    ``width / reference_size`` and ``h`` over ``size_range`` scaled by
    ``height / reference_size`` (bounds rounded half up, then clamped to
    [1, width] / [1, height]). So at 448 x 448 sides are in [40, 150] px (the
    paper's Eq. 8) and other sizes keep the same proportions, e.g. [20, 75] px
    at 224. The position is uniform among those that keep the box inside the
    image. Drawn on the generator's device (CPU if ``generator`` is None).
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


def _canvas_indices(boxes: Tensor, height: int, width: int) -> tuple[Tensor, Tensor, int, int]:
    """Gather indices of each box into a centred canvas of the largest box size.

    Returns (flat source index into the image [N, Hc*Wc], canvas mask
    [N, 1, Hc, Wc], Hc, Wc).
    """
    top, left, h, w = boxes.unbind(dim=1)
    hc, wc = int(h.max()), int(w.max())
    off_y, off_x = (hc - h) // 2, (wc - w) // 2
    r = torch.arange(hc, device=boxes.device)[None, :]
    c = torch.arange(wc, device=boxes.device)[None, :]
    valid_r = (r >= off_y[:, None]) & (r < (off_y + h)[:, None])
    valid_c = (c >= off_x[:, None]) & (c < (off_x + w)[:, None])
    src_r = (top[:, None] + r - off_y[:, None]).clamp(0, height - 1)
    src_c = (left[:, None] + c - off_x[:, None]).clamp(0, width - 1)
    index = (src_r[:, :, None] * width + src_c[:, None, :]).flatten(1)
    mask = (valid_r[:, :, None] & valid_c[:, None, :]).unsqueeze(1)
    return index, mask, hc, wc


def _paste_indices(boxes: Tensor, height: int, width: int, hc: int, wc: int) -> tuple[Tensor, Tensor]:
    """For every image pixel: flat index into the canvas [N, H*W] and whether it lies in the box [N, 1, H, W]."""
    top, left, h, w = boxes.unbind(dim=1)
    off_y, off_x = (hc - h) // 2, (wc - w) // 2
    y = torch.arange(height, device=boxes.device)[None, :]
    x = torch.arange(width, device=boxes.device)[None, :]
    in_r = (y >= top[:, None]) & (y < (top + h)[:, None])
    in_c = (x >= left[:, None]) & (x < (left + w)[:, None])
    cy = (y - top[:, None] + off_y[:, None]).clamp(0, hc - 1)
    cx = (x - left[:, None] + off_x[:, None]).clamp(0, wc - 1)
    index = (cy[:, :, None] * wc + cx[:, None, :]).flatten(1)
    return index, (in_r[:, :, None] & in_c[:, None, :]).unsqueeze(1)


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
    """Distort one random rectangle per image with its own RandAugment op sequence.

    Each image's box (see :func:`sample_boxes`) is gathered into a centred
    canvas of the batch's largest box size, augmented there with
    :func:`temu.train.augment.apply_op_sequences` under the box mask (so every op
    acts as torchvision's op on the crop alone) and pasted back into a copy of
    the image. Fully batched: no loop over images. From ``generator`` the
    boxes are drawn first, then the op sequences
    (:func:`temu.train.augment.sample_op_sequences`).

    Args:
        images: [N, 3, H, W] floats in [0, 1].
        num_ops, magnitude, num_bins: RandAugment parameters (paper: 6, 18, 31).
        size_range, reference_size: box side range at the reference image size.
        generator: torch.Generator; fixes boxes and ops.

    Returns:
        (distorted [N, 3, H, W] same dtype/device, pixels outside the box
        bit-identical to ``images``; boxes int64 [N, 4] (top, left, h, w) on
        the images' device).
    """
    check_batch(images, name="images", values=False)
    n, _, height, width = images.shape
    boxes = sample_boxes(
        n, height, width, size_range=size_range, reference_size=reference_size, generator=generator
    ).to(images.device)
    op_index, negative = sample_op_sequences(n, num_ops, generator=generator)
    if n == 0:
        return images.clone(), boxes

    index, mask, hc, wc = _canvas_indices(boxes, height, width)
    flat = images.flatten(2)
    canvas = flat.gather(2, index[:, None].expand(-1, 3, -1)).view(n, 3, hc, wc)
    canvas = canvas * mask.to(canvas.dtype)
    canvas = apply_op_sequences(canvas, op_index, negative, mask, magnitude=magnitude, num_bins=num_bins)

    back, in_box = _paste_indices(boxes, height, width, hc, wc)
    pasted = canvas.flatten(2).gather(2, back[:, None].expand(-1, 3, -1)).view(n, 3, height, width)
    return torch.where(in_box, pasted, images), boxes


@torch.no_grad()
def ldg_fidelity(images: Tensor, distorted: Tensor) -> Tensor:
    """Fidelity f = CW-SSIM(images, distorted) clamped to [0, 1]: [N], dtype of ``images``.

    Both [N, 3, H, W] floats in [0, 1] with min(H, W) >= 64 (see :func:`temu.train.cwssim.cw_ssim`).
    """
    check_batch(images, name="images", values=False)
    check_batch(distorted, name="distorted", values=False)
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
