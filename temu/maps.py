"""Quality maps a person can look at: the patch-score map blended over the image."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    import PIL.Image

#: Long side, in pixels, of the image copy a quality map is drawn over (see :func:`read_preview`).
PREVIEW_MAX_SIDE = 1024

# red (poor) -> yellow -> green (good), for patch scores in [0, 1]
_STOPS = np.array([[0.84, 0.10, 0.11], [1.00, 0.85, 0.20], [0.10, 0.60, 0.25]], dtype=np.float32)


def colorize(values: np.ndarray) -> np.ndarray:
    """``[h, w]`` scores in [0, 1] -> ``[h, w, 3]`` RGB floats in [0, 1] (red = poor, green = good)."""
    v = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0) * (len(_STOPS) - 1)
    lo = np.minimum(v.astype(np.int64), len(_STOPS) - 2)
    t = (v - lo)[..., None]
    return _STOPS[lo] * (1 - t) + _STOPS[lo + 1] * t


def quality_overlay(
    image: PIL.Image.Image | torch.Tensor, score_map: np.ndarray, *, alpha: float = 0.45
) -> PIL.Image.Image:
    """Blend a patch-score map ``[h, w]`` (values in [0, 1]) over an image; returns an RGB PIL image of the image's size.

    ``image`` is a PIL image or a ``[3, H, W]`` tensor in [0, 1]. Colours are absolute (the same
    score has the same colour in every image), not stretched per image.
    """
    from PIL import Image

    if isinstance(image, torch.Tensor):
        rgb = image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    else:
        rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    height, width = rgb.shape[:2]
    smooth = Image.fromarray(np.asarray(score_map, dtype=np.float32), mode="F").resize((width, height), Image.BILINEAR)
    color = colorize(np.asarray(smooth))
    out = (1 - alpha) * rgb + alpha * color
    return Image.fromarray((out * 255 + 0.5).astype(np.uint8), mode="RGB")


def read_preview(path: str | os.PathLike[str], max_side: int = PREVIEW_MAX_SIDE) -> torch.Tensor:
    """An image file as a bounded-size copy to draw a map over: ``[3, h, w]`` float32 in [0, 1], long side
    at most ``max_side`` (smaller images keep their size), EXIF orientation applied.

    The file is decoded once, at reduced size where the format allows it (JPEG: Pillow's ``draft``,
    1/2 to 1/8 scale), then shrunk (bicubic), so a 48 MP photo is never held at full size as floats.
    Every failure is an :class:`~temu.ImageReadError` naming the file.
    """
    from PIL import Image

    from .errors import ImageReadError, InvalidInputError
    from .images.decode import exif_transpose, pil_to_tensor

    name = os.fspath(path)
    try:
        with Image.open(path) as img:
            img.thumbnail((max_side, max_side), Image.BICUBIC)  # draft() first for JPEG, then resize
            return pil_to_tensor(exif_transpose(img, name))
    except InvalidInputError as err:
        raise ImageReadError(name, str(err)) from None
    except Exception as err:  # noqa: BLE001 (one image's map must not end a run: its error names the file)
        raise ImageReadError(name, f"cannot be read for its map ({type(err).__name__}: {err})") from err
