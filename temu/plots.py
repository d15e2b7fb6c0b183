"""Every picture temu draws: quality maps over images (Pillow), attribute panels
(``temu score --maps --attributes``), training curves and the ``temu eval`` scatter plot (matplotlib).

Scoring never imports this module. matplotlib is an optional extra (``temu-iqa[plots]``); it is
imported only when a panel or plot is drawn, and only its object-oriented API with the Agg canvas is
used: no pyplot, no window, no global state, so the caller's backend (e.g. a notebook's) is left alone.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .extras import import_extra
from .files import atomic_write

if TYPE_CHECKING:
    import PIL.Image

__all__ = [
    "MAX_SIDE",
    "PREVIEW_MAX_SIDE",
    "colorize",
    "draw_panel",
    "plot_curves",
    "plot_scatter",
    "quality_overlay",
    "read_preview",
    "thumbnail",
]


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


#: Long side, in pixels, of each tile of a panel.
MAX_SIDE = 256
#: Tiles per row at most (the photo, the quality map and the 7 default attributes make 2 rows of 5 and 4).
MAX_COLUMNS = 5


def thumbnail(image, max_side: int = MAX_SIDE) -> np.ndarray:
    """A ``[3, H, W]`` tensor in [0, 1] (or a PIL image) as a ``[h, w, 3]`` uint8 copy, long side at most ``max_side``."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        rgb = image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
        image = Image.fromarray((rgb * 255 + 0.5).astype(np.uint8), mode="RGB")
    image = image.convert("RGB")
    image.thumbnail((max_side, max_side), Image.BICUBIC)
    return np.asarray(image)


def draw_panel(
    photo: np.ndarray,
    title: str,
    maps: Mapping[str, tuple[float, np.ndarray]],
    path: str | os.PathLike[str],
    *,
    alpha: float = 0.6,
) -> Path:
    """Write one panel PNG (atomically): the photo, then each map over it.

    Tiles are placed at fixed pixel positions (one photo pixel = one panel pixel), several times
    faster than a layout engine. Each map is drawn per patch (nearest neighbour).

    Args:
        photo: ``[H, W, 3]`` uint8, already bounded in size (see :func:`thumbnail`).
        title: the photo tile's title (e.g. its file name).
        maps: name -> (image-level value in [0, 1], ``[h, w]`` patch map in [0, 1]), in drawing order
            (the quality map first).
        path: the PNG to write.
        alpha: the maps' opacity.

    Returns:
        ``path``.
    """
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    cmap = ListedColormap(colorize(np.linspace(0.0, 1.0, 256)), name="temu")
    height, width = photo.shape[:2]
    n = 1 + len(maps)
    rows = math.ceil(n / MAX_COLUMNS)
    cols = math.ceil(n / rows)
    dpi, pad, gap, title_h, bar_w = 100, 6, 6, 20, 90  # pixels; bar_w: colour bar, ticks and its label
    slot_w = max(width, 140)  # room for a title under narrow photos
    fig_w = pad + cols * (slot_w + gap) + bar_w
    fig_h = pad + rows * (title_h + height + gap)
    fig = Figure(figsize=(fig_w / dpi, fig_h / dpi), dpi=dpi)
    FigureCanvasAgg(fig)

    def tile(i: int):
        r, c = divmod(i, cols)
        left = pad + c * (slot_w + gap) + (slot_w - width) / 2
        top = pad + r * (title_h + height + gap) + title_h
        ax = fig.add_axes((left / fig_w, 1 - (top + height) / fig_h, width / fig_w, height / fig_h))
        ax.set_axis_off()
        ax.imshow(photo, extent=(0, width, height, 0), interpolation="nearest")
        return ax

    tile(0).set_title(_shorten(title), fontsize=9)
    image = None
    for i, (name, (value, patch_map)) in enumerate(maps.items(), start=1):
        ax = tile(i)
        image = ax.imshow(
            np.asarray(patch_map, dtype=np.float32),
            cmap=cmap,
            vmin=0.0,
            vmax=1.0,
            alpha=alpha,
            interpolation="nearest",
            extent=(0, width, height, 0),
        )
        ax.set_title(f"{name} {value:.3f}", fontsize=9)
    if image is not None:
        top, bottom = pad + title_h, fig_h - gap
        cax = fig.add_axes(((fig_w - bar_w + 8) / fig_w, 1 - bottom / fig_h, 14 / fig_w, (bottom - top) / fig_h))
        bar = fig.colorbar(image, cax=cax)
        bar.solids.set_alpha(1.0)
        bar.set_label("patch score: 0 = negative prompt, 1 = positive prompt", fontsize=8)
        bar.ax.tick_params(labelsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    path = Path(path)
    atomic_write(path, buffer.getvalue())
    return path


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else "..." + text[-(limit - 3) :]


def _matplotlib() -> None:
    import_extra("matplotlib", "plots", "drawing panels and plots")


def _figure(width: float, height: float):
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike[str]) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    path = Path(path)
    atomic_write(path, buffer.getvalue())
    return path


def plot_curves(
    history: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *, best_epoch: int | None = None
) -> Path:
    """Training curves: the loss parts per epoch (left) and validation SRCC/PLCC/KRCC (right)."""
    fig = _figure(10, 4)
    left, right = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.91, wspace=0.25)
    epochs = [row["epoch"] for row in history]
    for key, label in (
        ("train_loss", "total"),
        ("train_mse", "MSE"),
        ("train_plcc", "1 - PLCC"),
        ("train_ldg", "LDG MSE"),
    ):
        values = [row.get(key, math.nan) for row in history]
        if any(v for v in values if not math.isnan(v)):
            left.plot(epochs, values, marker="o", ms=3, label=label)
    left.set(xlabel="epoch", ylabel="training loss (mean over the epoch)", title="training loss")
    left.legend(loc="best", fontsize=8)
    for key, label in (("val_srcc", "SRCC"), ("val_plcc", "PLCC"), ("val_krcc", "KRCC")):
        right.plot(epochs, [row.get(key, math.nan) for row in history], marker="o", ms=3, label=label)
    if best_epoch:
        right.axvline(best_epoch, color="grey", ls="--", lw=1, label=f"best epoch ({best_epoch})")
    right.set(xlabel="epoch", ylabel="correlation", title="validation")
    right.legend(loc="best", fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        if epochs:
            ax.set_xlim(0.5, max(epochs) + 0.5)
    return _save(fig, path)


def plot_scatter(
    pred: Sequence[float] | np.ndarray,
    target: Sequence[float] | np.ndarray,
    path: str | os.PathLike[str],
    *,
    title: str = "",
    metrics: Mapping[str, float] | None = None,
) -> Path:
    """Scatter of predicted score (y) against normalised MOS (x), with the diagonal.

    Args:
        pred, target: ``[N]`` scores and normalised MOS, both in [0, 1].
        path: the PNG to write.
        title: the plot's title.
        metrics: name -> value, printed in the corner.

    Returns:
        ``path``.
    """
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    fig = _figure(5, 5)
    ax = fig.subplots()
    fig.subplots_adjust(left=0.14, right=0.96, bottom=0.11, top=0.88)
    ax.scatter(target, pred, s=6 if len(pred) > 2000 else 12, alpha=0.5 if len(pred) > 500 else 0.8, edgecolors="none")
    low = float(min(0.0, np.nanmin(target, initial=0), np.nanmin(pred, initial=0)))
    high = float(max(1.0, np.nanmax(target, initial=1), np.nanmax(pred, initial=1)))
    ax.plot([low, high], [low, high], color="grey", lw=1, ls="--")
    ax.set(xlim=(low, high), ylim=(low, high), xlabel="MOS (normalised to [0, 1])", ylabel="predicted score")
    text = title
    if metrics:
        text += ("\n" if text else "") + "  ".join(f"{k.upper()} {v:.4f}" for k, v in metrics.items())
    ax.set_title(text, fontsize=9)
    ax.grid(alpha=0.3)
    return _save(fig, path)
