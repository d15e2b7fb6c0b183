"""Batched RandAugment on float images, with per-image op sequences and crop masks.

Follows ``torchvision.transforms.RandAugment`` (same 14 ops, magnitude table and
random sign for signed ops, nearest interpolation, fill 0), but

* every image of the batch draws its own sequence of ``num_ops`` ops;
* images are float tensors in [0, 1]: the 8-bit ops (Posterize, Solarize's
  threshold, Equalize) act on ``round(255 * x)`` and return multiples of 1/255,
  the other ops stay in float arithmetic like torchvision's float path;
* each image may be an axis-aligned rectangular crop inside a larger canvas,
  given by a boolean ``mask``. Every op then behaves as torchvision's op run on
  the crop alone: statistics (Contrast mean, AutoContrast min/max, Equalize
  histogram) use only the crop's pixels, geometric ops use the crop's
  coordinate frame and size, pixels brought in from outside the crop are 0,
  and pixels outside the mask are returned unchanged.

Geometry follows torchvision exactly: Rotate turns about the crop centre,
ShearX / ShearY pivot on the crop's top-left corner (RandAugment passes
``center=[0, 0]``), translations are 150/331 of the crop's size at the top bin.
Nearest-neighbour source positions are computed in float32 in torchvision's
operation order; only at exact half-pixel ties (shear bins 4, 12, 20, 28 of 31,
never bin 18) can torchvision's BLAS rounding pick the other neighbour
(~1e-5 of the pixels in our checks).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..inputs import check_batch

__all__ = ["OPS", "apply_op", "apply_op_sequences", "op_magnitudes", "rand_augment", "sample_op_sequences"]

OPS: tuple[str, ...] = (
    "Identity",
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Rotate",
    "Brightness",
    "Color",
    "Contrast",
    "Sharpness",
    "Posterize",
    "Solarize",
    "AutoContrast",
    "Equalize",
)
"""RandAugment ops, in torchvision's order (the index drawn selects from this tuple)."""

_SIGNED = frozenset(
    {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast", "Sharpness"}
)
_GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
_GREY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale


# --------------------------------------------------------------------------- validation / masks


def _check_mask(mask: Tensor | None, images: Tensor) -> Tensor:
    """Validated boolean mask [N, 1, H, W] (all True when ``mask`` is None)."""
    n, _, h, w = images.shape
    if mask is None:
        return torch.ones(n, 1, h, w, dtype=torch.bool, device=images.device)
    if not isinstance(mask, Tensor):
        raise TypeError(f"Expected mask to be a torch.Tensor or None, got {type(mask).__name__}")
    if mask.shape != (n, 1, h, w):
        raise ValueError(f"Expected mask of shape {(n, 1, h, w)}, got {tuple(mask.shape)}")
    return mask.to(device=images.device, dtype=torch.bool)


def _runs(flags: Tensor) -> Tensor:
    """Number of maximal runs of True along the last dim of a bool tensor [N, L]."""
    return flags[:, :1].sum(1) + (flags[:, 1:] & ~flags[:, :-1]).sum(1)


def _mask_boxes(mask: Tensor) -> Tensor:
    """Boxes [N, 4] (top, left, height, width) of rectangular masks [N, 1, H, W]; raises if not rectangles."""
    rows = mask.any(dim=-1)[:, 0]  # [N, H]
    cols = mask.any(dim=-2)[:, 0]  # [N, W]
    h, w = rows.sum(dim=1), cols.sum(dim=1)
    top, left = rows.to(torch.uint8).argmax(dim=1), cols.to(torch.uint8).argmax(dim=1)
    count = mask.flatten(1).sum(dim=1)
    # the True pixels fill rows x cols exactly, and rows and cols are contiguous
    ok = (h > 0) & (count == h * w) & (_runs(rows) == 1) & (_runs(cols) == 1)
    if not bool(ok.all()):
        raise ValueError("Each mask must be a non-empty axis-aligned rectangle of True values")
    return torch.stack([top, left, h, w], dim=1)


# --------------------------------------------------------------------------- magnitudes


def _linspace_at(start: float, end: float, num_bins: int, index: int) -> float:
    """``torch.linspace(start, end, num_bins)[index]`` as torchvision evaluates it (float32)."""
    return float(torch.linspace(start, end, num_bins)[index].item())


def op_magnitudes(op: str, magnitude: int, num_bins: int, crop_height: Tensor, crop_width: Tensor) -> Tensor:
    """Unsigned magnitudes [N] (float64) of ``op`` at bin ``magnitude``, as in torchvision's RandAugment.

    Translations depend on the crop size (150/331 of the crop's width / height at
    the top bin); the other ops do not. Posterize gives bits, Solarize a threshold
    in [0, 255], the enhancement ops the factor minus 1, Rotate degrees, shears
    the shear coefficient.
    """
    n, device = crop_width.shape[0], crop_width.device
    if op in ("TranslateX", "TranslateY"):
        sizes = crop_width if op == "TranslateX" else crop_height
        out = torch.empty(n, dtype=torch.float64)
        sizes_cpu = sizes.cpu()
        for s in torch.unique(sizes_cpu).tolist():  # loop over distinct sizes, not images
            out[sizes_cpu == s] = _linspace_at(0.0, 150.0 / 331.0 * s, num_bins, magnitude)
        return out.to(device)
    if op in ("ShearX", "ShearY"):
        value = _linspace_at(0.0, 0.3, num_bins, magnitude)
    elif op == "Rotate":
        value = _linspace_at(0.0, 30.0, num_bins, magnitude)
    elif op in ("Brightness", "Color", "Contrast", "Sharpness"):
        value = _linspace_at(0.0, 0.9, num_bins, magnitude)
    elif op == "Posterize":
        value = float(8 - int((torch.arange(num_bins) / ((num_bins - 1) / 4)).round().int()[magnitude]))
    elif op == "Solarize":
        value = _linspace_at(255.0, 0.0, num_bins, magnitude)
    elif op in ("Identity", "AutoContrast", "Equalize"):
        value = 0.0
    else:
        raise ValueError(f"Unknown op {op!r}; expected one of {OPS}")
    return torch.full((n,), value, dtype=torch.float64, device=device)


# --------------------------------------------------------------------------- geometric ops


def _inverse_affine(
    angle: Tensor, shear_x: Tensor, shear_y: Tensor, tx: Tensor, ty: Tensor, cx: Tensor, cy: Tensor
) -> Tensor:
    """Inverse affine matrices [N, 2, 3] (float64) in torchvision's convention.

    Output pixel (x, y), measured from the image centre, samples the input at
    ``theta @ (x, y, 1)``. ``angle``/``shear_*`` in degrees, ``(cx, cy)`` the
    transform's centre relative to the image centre, ``(tx, ty)`` the
    post-transform translation in pixels; scale 1.
    """
    rot, sx, sy = torch.deg2rad(angle), torch.deg2rad(shear_x), torch.deg2rad(shear_y)
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -torch.cos(rot - sy) * torch.tan(sx) / torch.cos(sy) - torch.sin(rot)
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = -torch.sin(rot - sy) * torch.tan(sx) / torch.cos(sy) + torch.cos(rot)
    # inverse of the rotation/shear block (determinant 1), then undo translation and centre
    m00, m01, m10, m11 = d, -b, -c, a
    # same operation order as torchvision, so float64 rounding agrees
    m02 = (m00 * (-cx - tx) + m01 * (-cy - ty)) + cx
    m12 = (m10 * (-cx - tx) + m11 * (-cy - ty)) + cy
    return torch.stack([torch.stack([m00, m01, m02], -1), torch.stack([m10, m11, m12], -1)], dim=-2)


def _geometric_matrices(op: str, value: Tensor, boxes: Tensor) -> Tensor:
    """Inverse matrices [N, 2, 3] for a geometric op with signed magnitudes ``value`` [N]."""
    z = torch.zeros_like(value)
    h, w = boxes[:, 2].to(value.dtype), boxes[:, 3].to(value.dtype)
    if op == "ShearX":  # torchvision shears about the top-left corner (center=[0, 0])
        return _inverse_affine(z, torch.rad2deg(torch.atan(value)), z, z, z, -0.5 * w, -0.5 * h)
    if op == "ShearY":
        return _inverse_affine(z, z, torch.rad2deg(torch.atan(value)), z, z, -0.5 * w, -0.5 * h)
    if op == "TranslateX":
        return _inverse_affine(z, z, z, torch.trunc(value), z, z, z)
    if op == "TranslateY":
        return _inverse_affine(z, z, z, z, torch.trunc(value), z, z)
    if op == "Rotate":  # torchvision.rotate: counter-clockwise, i.e. affine angle -value
        return _inverse_affine(-value, z, z, z, z, z, z)
    raise ValueError(f"{op!r} is not a geometric op")


def _warp(images: Tensor, theta: Tensor, boxes: Tensor) -> Tensor:
    """Nearest-neighbour affine warp of each image's crop within its own frame, fill 0.

    ``theta`` [N, 2, 3] are inverse matrices about the crop centre. Source
    positions are computed in float32 like torchvision's ``affine_grid`` +
    ``grid_sample(align_corners=False)`` path so that rounding ties resolve the
    same way. Returns [N, C, H, W]; values outside the crops are 0.
    """
    n, c, height, width = images.shape
    device = images.device
    top, left, h, w = (boxes[:, k].to(device) for k in range(4))
    hf, wf = h.to(torch.float32)[:, None, None], w.to(torch.float32)[:, None, None]
    # output pixel centres relative to the crop centre (exact half-integers)
    ys = torch.arange(height, device=device)[None, :, None] - top[:, None, None]
    xs = torch.arange(width, device=device)[None, None, :] - left[:, None, None]
    x = xs.to(torch.float32) - 0.5 * wf + 0.5
    y = ys.to(torch.float32) - 0.5 * hf + 0.5
    t = theta.to(device=device, dtype=torch.float32)
    # normalised grid coordinates, as torchvision: theta rescaled by the half sizes
    rx = t[:, 0, :] / (0.5 * w.to(torch.float32))[:, None]
    ry = t[:, 1, :] / (0.5 * h.to(torch.float32))[:, None]
    gx = x * rx[:, 0, None, None] + y * rx[:, 1, None, None] + rx[:, 2, None, None]
    gy = x * ry[:, 0, None, None] + y * ry[:, 1, None, None] + ry[:, 2, None, None]
    # grid_sample's un-normalisation (align_corners=False), then nearest (half to even)
    sx = torch.round((gx + 1.0) * (0.5 * wf) - 0.5).to(torch.long)
    sy = torch.round((gy + 1.0) * (0.5 * hf) - 0.5).to(torch.long)
    valid = (sx >= 0) & (sx < w[:, None, None]) & (sy >= 0) & (sy < h[:, None, None])
    src = (sy + top[:, None, None]) * width + (sx + left[:, None, None])
    src = torch.where(valid, src, torch.zeros_like(src)).reshape(n, 1, -1).expand(n, c, -1)
    out = images.reshape(n, c, -1).gather(2, src).reshape(n, c, height, width)
    return out * valid[:, None].to(images.dtype)


# --------------------------------------------------------------------------- colour / 8-bit ops


def _blend(img1: Tensor, img2: Tensor, ratio: Tensor) -> Tensor:
    """clamp(ratio * img1 + (1 - ratio) * img2, 0, 1) with per-image ``ratio`` [N] (float64)."""
    r = ratio.to(img1.dtype).view(-1, 1, 1, 1)
    r_inv = (1.0 - ratio).to(img1.dtype).view(-1, 1, 1, 1)
    return (r * img1 + r_inv * img2).clamp(0.0, 1.0)


def _grey(images: Tensor) -> Tensor:
    r, g, b = images.unbind(dim=1)
    return (_GREY_WEIGHTS[0] * r + _GREY_WEIGHTS[1] * g + _GREY_WEIGHTS[2] * b).unsqueeze(1)


def _sharpness_degenerate(images: Tensor, mask: Tensor) -> Tensor:
    """3x3 smoothing (centre weight 5) inside each crop; the crop's border pixels are kept."""
    c = images.shape[1]
    kernel = torch.ones(3, 3, dtype=images.dtype, device=images.device)
    kernel[1, 1] = 5.0
    kernel = (kernel / kernel.sum()).expand(c, 1, 3, 3)
    blurred = F.conv2d(images, kernel, padding=1, groups=c)
    # erode the mask by one pixel; the zero padding makes pixels on the canvas edge non-interior
    padded = F.pad(mask.to(images.dtype), (1, 1, 1, 1), value=0.0)
    interior = -F.max_pool2d(-padded, 3, stride=1) > 0.5
    return torch.where(interior, blurred, images)


def _to_levels(images: Tensor) -> Tensor:
    """[0, 1] floats -> nearest 8-bit levels (int64 in [0, 255])."""
    return torch.round(images.clamp(0.0, 1.0) * 255.0).to(torch.long)


def _equalize(images: Tensor, mask: Tensor) -> Tensor:
    """Per-channel histogram equalisation of the masked pixels (torchvision's 8-bit algorithm)."""
    n, c, h, w = images.shape
    levels = _to_levels(images).reshape(n * c, h * w)
    inside = mask.expand(n, c, h, w).reshape(n * c, h * w)
    hist = torch.zeros(n * c, 256, dtype=torch.long, device=images.device)
    hist.scatter_add_(1, levels, inside.to(torch.long))
    top_level = torch.where(inside, levels, torch.full_like(levels, -1)).amax(dim=1, keepdim=True)
    total = inside.sum(dim=1, keepdim=True)
    # step: pixel count without the brightest occupied level, over 255
    step = torch.div(total - hist.gather(1, top_level.clamp_min(0)), 255, rounding_mode="floor")
    safe = step.clamp_min(1)
    lut = torch.div(hist.cumsum(1) + torch.div(safe, 2, rounding_mode="floor"), safe, rounding_mode="floor")
    lut = F.pad(lut, (1, 0))[:, :-1].clamp(0, 255)
    out = lut.gather(1, levels).to(images.dtype) / 255.0
    out = torch.where(step > 0, out, images.reshape(n * c, h * w))
    return out.reshape(n, c, h, w)


def _autocontrast(images: Tensor, mask: Tensor) -> Tensor:
    inf = torch.tensor(float("inf"), dtype=images.dtype, device=images.device)
    low = torch.where(mask, images, inf).amin(dim=(-2, -1), keepdim=True)
    high = torch.where(mask, images, -inf).amax(dim=(-2, -1), keepdim=True)
    scale = 1.0 / (high - low)
    flat = ~torch.isfinite(scale)
    low = torch.where(flat, torch.zeros_like(low), low)
    scale = torch.where(flat, torch.ones_like(scale), scale)
    return ((images - low) * scale).clamp(0.0, 1.0)


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    m = mask.to(values.dtype)
    return (values * m).sum(dim=(-3, -2, -1), keepdim=True) / m.sum(dim=(-3, -2, -1), keepdim=True)


# --------------------------------------------------------------------------- public API


def apply_op(images: Tensor, op: str, magnitudes: Tensor, mask: Tensor | None = None) -> Tensor:
    """Apply one RandAugment op to every image, with per-image signed magnitudes.

    Args:
        images: [N, 3, H, W] floats in [0, 1].
        op: one of :data:`OPS`.
        magnitudes: [N] signed magnitudes in torchvision's units (shear
            coefficient, translation in pixels (truncated to int), rotation in
            degrees counter-clockwise, enhancement factor minus 1, Posterize
            bits, Solarize threshold in [0, 255]); ignored for ops without one.
        mask: optional [N, 1, H, W] bool, True on one axis-aligned rectangle per
            image (the crop the op acts on). None means the whole image.

    Returns:
        [N, 3, H, W] in [0, 1]; pixels outside the mask equal the input.
    """
    check_batch(images, name="images", values=False)
    mask = _check_mask(mask, images)
    if op not in OPS:
        raise ValueError(f"Unknown op {op!r}; expected one of {OPS}")
    n = images.shape[0]
    magnitudes = torch.as_tensor(magnitudes, dtype=torch.float64).to(images.device)
    if magnitudes.shape != (n,):
        raise ValueError(f"Expected magnitudes of shape ({n},), got {tuple(magnitudes.shape)}")
    if n == 0 or op == "Identity":
        return images.clone()

    if op in _GEOMETRIC:
        boxes = _mask_boxes(mask)
        out = _warp(images, _geometric_matrices(op, magnitudes, boxes), boxes)
    elif op == "Brightness":
        out = _blend(images, torch.zeros_like(images), 1.0 + magnitudes)
    elif op == "Color":
        out = _blend(images, _grey(images), 1.0 + magnitudes)
    elif op == "Contrast":
        out = _blend(images, _masked_mean(_grey(images), mask), 1.0 + magnitudes)
    elif op == "Sharpness":
        boxes = _mask_boxes(mask)
        out = _blend(images, _sharpness_degenerate(images, mask), 1.0 + magnitudes)
        tiny = (boxes[:, 2] <= 2) | (boxes[:, 3] <= 2)  # torchvision leaves such images unchanged
        out = torch.where(tiny.to(images.device).view(-1, 1, 1, 1), images, out)
    elif op == "Posterize":
        bits = magnitudes.to(torch.long).clamp(0, 8)
        keep = (-(2 ** (8 - bits))).view(-1, 1, 1, 1)  # two's complement mask clearing the low bits
        out = (_to_levels(images) & keep).to(images.dtype) / 255.0
    elif op == "Solarize":
        threshold = (magnitudes / 255.0).to(images.dtype).view(-1, 1, 1, 1)
        out = torch.where(images >= threshold, 1.0 - images, images)
    elif op == "AutoContrast":
        out = _autocontrast(images, mask)
    else:  # Equalize
        out = _equalize(images, mask)
    return torch.where(mask, out, images)


def sample_op_sequences(n: int, num_ops: int, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Draw an independent RandAugment op sequence per image.

    Returns ``op_index`` [n, num_ops] (int64 indices into :data:`OPS`, uniform)
    and ``negative`` [n, num_ops] (bool, fair coin; used by signed ops only),
    drawn on the generator's device (CPU when ``generator`` is None).
    """
    if n < 0 or num_ops < 0:
        raise ValueError(f"n and num_ops must be >= 0, got {n} and {num_ops}")
    device = generator.device if generator is not None else torch.device("cpu")
    op_index = torch.randint(len(OPS), (n, num_ops), generator=generator, device=device)
    negative = torch.randint(2, (n, num_ops), generator=generator, device=device).bool()
    return op_index, negative


def apply_op_sequences(
    images: Tensor,
    op_index: Tensor,
    negative: Tensor,
    mask: Tensor | None = None,
    *,
    magnitude: int = 18,
    num_bins: int = 31,
) -> Tensor:
    """Apply per-image op sequences (from :func:`sample_op_sequences`) slot by slot.

    Args:
        images: [N, 3, H, W] floats in [0, 1].
        op_index: [N, K] int indices into :data:`OPS`.
        negative: [N, K] bool, negate the magnitude of signed ops.
        mask: optional [N, 1, H, W] bool rectangle per image (see :func:`apply_op`).
        magnitude: magnitude bin in [0, num_bins - 1].
        num_bins: number of magnitude bins (>= 2).

    Each slot loops over the op types and applies each to the subset of images
    that drew it (no loop over images). Returns [N, 3, H, W] in [0, 1].
    """
    check_batch(images, name="images", values=False)
    mask = _check_mask(mask, images)
    n = images.shape[0]
    if op_index.ndim != 2 or op_index.shape[0] != n or negative.shape != op_index.shape:
        raise ValueError(
            f"Expected op_index and negative of shape [{n}, K], got {tuple(op_index.shape)} and {tuple(negative.shape)}"
        )
    if num_bins < 2 or not 0 <= magnitude < num_bins:
        raise ValueError(f"Need num_bins >= 2 and 0 <= magnitude < num_bins, got {magnitude} and {num_bins}")
    op_index = op_index.to(images.device)
    negative = negative.to(device=images.device, dtype=torch.bool)
    if n == 0 or op_index.shape[1] == 0:
        return images.clone()
    boxes = _mask_boxes(mask)
    out = images
    for slot in range(op_index.shape[1]):
        for k, op in enumerate(OPS):
            if op == "Identity":
                continue
            idx = (op_index[:, slot] == k).nonzero().flatten()
            if idx.numel() == 0:
                continue
            value = op_magnitudes(op, magnitude, num_bins, boxes[idx, 2], boxes[idx, 3])
            if op in _SIGNED:
                value = torch.where(negative[idx, slot], -value, value)
            out = out.index_copy(0, idx, apply_op(out[idx], op, value, mask[idx]))
    return out


def rand_augment(
    images: Tensor,
    mask: Tensor | None = None,
    *,
    num_ops: int = 6,
    magnitude: int = 18,
    num_bins: int = 31,
    generator: torch.Generator | None = None,
) -> Tensor:
    """RandAugment with an independent op sequence per image (torchvision semantics).

    Each image draws ``num_ops`` ops uniformly from :data:`OPS` (with
    replacement) and, for signed ops, a random sign; all use magnitude bin
    ``magnitude`` of ``num_bins`` (torchvision's table). Equivalent to
    :func:`sample_op_sequences` followed by :func:`apply_op_sequences`.

    Args:
        images: [N, 3, H, W] floats in [0, 1].
        mask: optional [N, 1, H, W] bool, True on one axis-aligned rectangle per
            image: the crop to augment, as if it were cut out and passed to
            torchvision alone. None means the whole image.
        num_ops: ops per image (>= 0).
        magnitude: magnitude bin in [0, num_bins - 1].
        num_bins: number of magnitude bins (>= 2).
        generator: torch.Generator for the random draws (drawn on its device,
            default the global CPU generator); fixes the result.

    Returns:
        [N, 3, H, W] in [0, 1], same dtype and device; outside the mask equal to the input.
    """
    check_batch(images, name="images", values=False)
    op_index, negative = sample_op_sequences(images.shape[0], num_ops, generator=generator)
    return apply_op_sequences(images, op_index, negative, mask, magnitude=magnitude, num_bins=num_bins)
