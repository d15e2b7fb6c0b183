"""The demo page's pictures, without gradio: patch maps drawn over an image, on fixed scales, and their legends.

Every map is drawn on an absolute scale (0 and 1 have the same colour in every image), so two
images' maps can be compared by eye. :mod:`temu.plots` (and torch) is imported on first use.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: The map opacity the page starts with: the share of the map's colour in each pixel.
DEFAULT_OPACITY = 0.45

# patch weights: light (counts little) -> dark blue (counts much), for weights in [0, 1]
_WEIGHT_STOPS = np.array([[0.97, 0.97, 0.92], [0.13, 0.25, 0.60]], dtype=np.float32)


def map_over(preview: np.ndarray, values: np.ndarray, opacity: float) -> Image.Image:
    """A score-like map ``[h, w]`` in [0, 1] (quality or an attribute) over ``preview`` ``[H, W, 3]`` uint8,
    red (0) -> yellow -> green (1); returns an RGB image of the preview's size."""
    from ..plots import quality_overlay

    return quality_overlay(Image.fromarray(preview), values, alpha=float(opacity))


def weights_over(preview: np.ndarray, weights: np.ndarray, opacity: float) -> Image.Image:
    """The patch-weight map ``[h, w]`` in [0, 1] over a grey copy of ``preview`` ``[H, W, 3]`` uint8,
    light (0) -> dark blue (1); returns an RGB image of the preview's size."""
    height, width = preview.shape[:2]
    grey = np.asarray(Image.fromarray(preview).convert("L").convert("RGB"), dtype=np.float32) / 255.0
    smooth = Image.fromarray(np.asarray(weights, dtype=np.float32), mode="F").resize((width, height), Image.BILINEAR)
    t = np.clip(np.asarray(smooth), 0.0, 1.0)[..., None]
    color = _WEIGHT_STOPS[0] * (1 - t) + _WEIGHT_STOPS[1] * t
    out = (1 - opacity) * grey + opacity * color
    return Image.fromarray((out * 255 + 0.5).astype(np.uint8), mode="RGB")


def _css(rgb: np.ndarray) -> str:
    r, g, b = (int(round(float(c) * 255)) for c in rgb)
    return f"rgb({r}, {g}, {b})"


def legend_html() -> str:
    """HTML of the two colour scales the page uses (quality and attribute maps; patch weights), 0 to 1."""
    from ..plots import colorize

    quality = ", ".join(_css(c) for c in colorize(np.linspace(0.0, 1.0, 5)))
    weight = ", ".join(_css(c) for c in _WEIGHT_STOPS)
    bar = "display:inline-block;width:12em;height:0.9em;vertical-align:middle;border-radius:2px;margin:0 0.4em"
    return (
        '<div id="temu-legend" style="font-size:0.9em">'
        f'Quality and attribute maps: 0<span style="{bar};background:linear-gradient(to right, {quality})"></span>1'
        " (red: poor or little of the positive prompt, green: good). &nbsp; "
        f'Patch weights: 0<span style="{bar};background:linear-gradient(to right, {weight})"></span>1'
        " (how much a patch counts in the score). The same colours mean the same values in every image.</div>"
    )
