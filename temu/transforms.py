"""The one rule that brings an image to the model's input size, shared by the model and the loaders.

Run in DataLoader workers or in the model's forward, the same function gives the same pixels,
so an image scores the same whether it was resized by the loader or by the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class InputSize:
    """image_size: square side (inputs are resized, bicubic with antialiasing), or None for the
    input's own size, centre-cropped down to a multiple of ``patch`` (an image smaller than one
    patch is upsampled to one patch instead). patch: the backbone's patch size (height, width)."""

    image_size: int | None
    patch: tuple[int, int]

    def target(self, height: int, width: int) -> tuple[int, int]:
        """The ``(height, width)`` an image of this size is brought to."""
        if self.image_size is not None:
            return self.image_size, self.image_size
        ph, pw = self.patch
        return max(ph, height // ph * ph), max(pw, width // pw * pw)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``[3, H, W]`` or ``[N, 3, H, W]`` floats in [0, 1] -> the same at :meth:`target` size.

        An input already at the target size is returned as it is (no resampling).
        """
        height, width = x.shape[-2:]
        th, tw = self.target(height, width)
        if (th, tw) == (height, width):
            return x
        if self.image_size is None and height >= self.patch[0] and width >= self.patch[1]:
            top, left = (height - th) // 2, (width - tw) // 2
            return x[..., top : top + th, left : left + tw]
        batched = x if x.dim() == 4 else x.unsqueeze(0)
        out = F.interpolate(batched.float(), size=(th, tw), mode="bicubic", align_corners=False, antialias=True)
        return out if x.dim() == 4 else out.squeeze(0)
