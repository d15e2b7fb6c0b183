"""The one rule that brings an image to the model's input size, shared by the model and the loaders.

Run in DataLoader workers or in the model's forward, the same function gives the same pixels,
so an image scores the same whether it was resized by the loader or by the model. uint8 pixels
are resized as uint8 (torchvision's bicubic antialiased kernel, rounded to 0-255 as Pillow's
uint8 resize is); float pixels as float32 (``F.interpolate``, no clamping).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import TeMuWarning


@dataclass(frozen=True)
class InputSize:
    """image_size: square side (inputs are resized, bicubic with antialiasing), or None for the
    input's own size, centre-cropped down to a multiple of ``patch`` (an image smaller than one
    patch is upsampled to one patch instead). patch: the backbone's patch size (height, width).
    max_pixels: with ``image_size=None``, an input with more pixels is first downscaled (bicubic,
    antialiased, aspect ratio kept) to at most that many, with a :class:`~temu.errors.TeMuWarning`;
    None = no cap."""

    image_size: int | None
    patch: tuple[int, int]
    max_pixels: int | None = None

    def capped(self, height: int, width: int) -> tuple[int, int]:
        """``(height, width)`` scaled down to at most ``max_pixels`` pixels (native size only), else as given."""
        if self.image_size is not None or self.max_pixels is None or height * width <= self.max_pixels:
            return height, width
        scale = math.sqrt(self.max_pixels / (height * width))
        h, w = max(1, math.floor(height * scale)), max(1, math.floor(width * scale))
        while h * w > self.max_pixels:  # float rounding
            h, w = (h - 1, w) if h >= w else (h, w - 1)
        return h, w

    def target(self, height: int, width: int) -> tuple[int, int]:
        """The ``(height, width)`` an image of this size is brought to."""
        if self.image_size is not None:
            return self.image_size, self.image_size
        height, width = self.capped(height, width)
        ph, pw = self.patch
        return max(ph, height // ph * ph), max(pw, width // pw * pw)

    def __call__(self, x: torch.Tensor, *, name: str | None = None) -> torch.Tensor:
        """``[3, H, W]`` or ``[N, 3, H, W]`` pixels (uint8, or floats in [0, 1]) -> the same at :meth:`target` size.

        uint8 stays uint8, floats become float32. An input already at the target size is returned
        as it is (no resampling; a centre crop is a view). ``name`` labels the warning given when
        ``max_pixels`` downscales the input.
        """
        height, width = x.shape[-2:]
        th, tw = self.target(height, width)
        if (th, tw) == (height, width):
            return x
        if self.image_size is None:
            ch, cw = self.capped(height, width)
            if (ch, cw) != (height, width):
                warnings.warn(
                    f"{name or 'input'}: {width}x{height} pixels exceed max_pixels={self.max_pixels:,}; scored "
                    f"downscaled to {cw}x{ch} (raise max_pixels to keep more detail, at a quadratic cost in time)",
                    TeMuWarning,
                    stacklevel=2,
                )
                x, height, width = _resize(x, ch, cw), ch, cw
            if height >= self.patch[0] and width >= self.patch[1]:
                top, left = (height - th) // 2, (width - tw) // 2
                return x[..., top : top + th, left : left + tw]
        return _resize(x, th, tw)


def _resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bicubic, antialiased; uint8 in -> uint8 out, anything else -> float32."""
    if x.dtype == torch.uint8:
        from torchvision.transforms.v2.functional import InterpolationMode, resize

        return resize(x, [height, width], interpolation=InterpolationMode.BICUBIC, antialias=True)
    batched = x if x.dim() == 4 else x.unsqueeze(0)
    out = F.interpolate(batched.float(), size=(height, width), mode="bicubic", align_corners=False, antialias=True)
    return out if x.dim() == 4 else out.squeeze(0)
