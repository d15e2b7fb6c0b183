"""Inputs -> image tensors ``[3, H, W]`` float32 in [0, 1], and every bad-input error.

Accepted: a path (str or Path), a directory (its images, sorted by name), a PIL image, a numpy
array (HW or HWC; uint8, uint16, or floats in [0, 1]), a tensor ``[3, H, W]`` or ``[N, 3, H, W]``
of floats in [0, 1], or a list / iterable of these.

Files are decoded with Pillow. Its decompression-bomb guard stays on, and EXIF orientation is
applied. Grayscale, palette, CMYK and RGBA images become RGB; alpha is dropped, as Pillow's
``convert("RGB")`` does, as open_clip and pyiqa do. 16-bit images keep their full range.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from .errors import ImageReadError, InvalidInputError
from .image_files import IMAGE_EXTENSIONS

ImageLike = Union[str, os.PathLike, "PIL.Image.Image", np.ndarray, torch.Tensor]  # noqa: F821


@dataclass(frozen=True)
class Source:
    """One image to score: a file path, encoded bytes (``data``), or an image already in memory. ``name`` labels results."""

    name: str
    path: Path | None = None
    image: Any = None
    data: bytes | None = None

    def load(self) -> torch.Tensor:
        """``[3, H, W]`` float32 in [0, 1]. Raises :class:`ImageReadError` / :class:`InvalidInputError`."""
        if self.path is not None:
            return read_image(self.path)
        if self.data is not None:
            return decode_image(self.data, self.name)
        return to_image_tensor(self.image, name=self.name)


def check_batch(x: Any, *, name: str = "input tensor", values: bool = True) -> None:
    """Raise :class:`InvalidInputError` unless ``x`` is a ``[N, 3, H, W]`` float tensor with finite values in [0, 1].

    ``values=False`` checks type, shape and dtype only (no pass over the data, no host-device sync).
    """
    if not isinstance(x, torch.Tensor):
        raise InvalidInputError(
            f"{name}: expected a torch.Tensor [N, 3, H, W] of floats in [0, 1], got {type(x).__name__}"
        )
    if x.dim() != 4:
        hint = " (a single image: add a batch dimension with x.unsqueeze(0))" if x.dim() == 3 else ""
        raise InvalidInputError(
            f"{name}: expected 4 dimensions [N, 3, H, W], got {x.dim()} with shape {tuple(x.shape)}{hint}"
        )
    if x.shape[1] != 3:
        raise InvalidInputError(
            f"{name}: expected 3 (RGB) channels in dimension 1 of [N, 3, H, W], got shape {tuple(x.shape)}"
            + ("; for grayscale repeat the channel: x.expand(-1, 3, -1, -1)" if x.shape[1] == 1 else "")
        )
    if values:
        _check_values(x, name)
    elif not torch.is_floating_point(x):
        raise InvalidInputError(f"{name}: expected floats in [0, 1], got dtype {x.dtype}")


def _check_values(x: torch.Tensor, name: str) -> None:
    if not torch.is_floating_point(x):
        hint = (
            "; for 8-bit images divide by 255: x.float() / 255"
            if x.dtype == torch.uint8
            else "; convert to float in [0, 1]"
        )
        raise InvalidInputError(f"{name}: expected floats in [0, 1], got dtype {x.dtype}{hint}")
    if x.numel() == 0:
        return
    with torch.no_grad():
        finite = torch.isfinite(x).all()  # NaN/Inf also make lo/hi NaN or infinite; `finite` catches them
        lo, hi = torch.aminmax(x.detach())
        bad = (~finite) | (lo < 0) | (hi > 1)
        if not bool(bad):  # one host-device sync for the whole check
            return
        if not bool(finite):
            raise InvalidInputError(f"{name}: contains NaN or Inf values; expected finite floats in [0, 1]")
        raise InvalidInputError(
            f"{name}: values must lie in [0, 1], found min {float(lo):.4g} and max {float(hi):.4g}. "
            "temu does not clamp silently: rescale the input (e.g. divide 8-bit values by 255)."
        )


def to_image_tensor(obj: Any, *, name: str = "image") -> torch.Tensor:
    """A PIL image, numpy array (HW/HWC) or ``[3, H, W]`` tensor -> ``[3, H, W]`` float32 in [0, 1]."""
    from PIL import Image

    if isinstance(obj, Image.Image):
        return pil_to_tensor(obj)
    if isinstance(obj, np.ndarray):
        return _array_to_tensor(obj, name)
    if isinstance(obj, torch.Tensor):
        if obj.dim() != 3 or obj.shape[0] != 3:
            raise InvalidInputError(f"{name}: expected a [3, H, W] image tensor, got shape {tuple(obj.shape)}")
        _check_values(obj, name)
        return obj
    if isinstance(obj, (bytes, bytearray)):
        raise InvalidInputError(f"{name}: raw bytes are not accepted; wrap them: PIL.Image.open(io.BytesIO(data))")
    raise InvalidInputError(
        f"{name}: unsupported input type {type(obj).__name__}; expected a path, a directory, a PIL image, "
        "a numpy array, a tensor [3, H, W] or [N, 3, H, W], or a list of these"
    )


def _array_to_tensor(a: np.ndarray, name: str) -> torch.Tensor:
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise InvalidInputError(
            f"{name}: expected a numpy image HW or HWC with 1, 3 or 4 channels, got shape {a.shape}"
        )
    if a.shape[2] == 4:
        a = a[:, :, :3]
    # astype copies, so read-only arrays (np.asarray of a PIL image) are fine and never aliased
    if a.dtype == np.uint8:
        t = torch.from_numpy(a.astype(np.float32)) / 255.0
    elif a.dtype == np.uint16:
        t = torch.from_numpy(a.astype(np.float32)) / 65535.0
    elif np.issubdtype(a.dtype, np.floating):
        t = torch.from_numpy(a.astype(np.float32))
        _check_values(t, name)
    else:
        raise InvalidInputError(
            f"{name}: numpy dtype {a.dtype} is not supported; use uint8, uint16 or floats in [0, 1]"
        )
    t = t.permute(2, 0, 1)
    return t.expand(3, -1, -1).contiguous() if t.shape[0] == 1 else t.contiguous()


def pil_to_tensor(img: PIL.Image.Image) -> torch.Tensor:  # noqa: F821
    """Any PIL mode -> ``[3, H, W]`` float32 RGB in [0, 1]; 16- and 32-bit grayscale keep their range."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(img).astype(np.float32)
        scale = 65535.0 if img.mode.startswith("I;16") or a.max(initial=0) <= 65535 else float(2**32 - 1)
        t = torch.from_numpy(a / scale).clamp_(0, 1)
        return t.unsqueeze(0).expand(3, -1, -1).contiguous()
    if img.mode == "F":
        raise InvalidInputError(
            "32-bit float images (PIL mode 'F') have no defined range; convert them to 8 or 16 bits"
        )
    if img.mode != "RGB":
        img = img.convert("RGB")
    a = np.asarray(img)
    return torch.from_numpy(a.copy()).permute(2, 0, 1).float().div_(255.0)


def read_image(path: str | os.PathLike[str]) -> torch.Tensor:
    """Decode an image file to ``[3, H, W]`` float32 in [0, 1]; errors name the file and the cause."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except OSError as err:
        raise ImageReadError(path, f"cannot access the file ({err.strerror or err})") from None
    if path.is_dir():
        raise ImageReadError(path, "is a directory, not an image file")
    if size == 0:
        raise ImageReadError(path, "the file is empty (0 bytes)")
    return _decode(path, str(path))


def decode_image(data: bytes | bytearray | memoryview, name: str) -> torch.Tensor:
    """Decode an encoded image (the bytes of a JPEG, PNG, ... file) to ``[3, H, W]`` float32 in [0, 1].

    The same decoder as :func:`read_image` (EXIF orientation, mode conversion, the decompression-bomb
    guard), so the bytes of a file give exactly the tensor the file gives. ``name`` labels errors.
    """
    if len(data) == 0:
        raise ImageReadError(name, "the image data is empty (0 bytes)")
    return _decode(io.BytesIO(data), name)


def _decode(fp: Path | io.BytesIO, name: str) -> torch.Tensor:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(fp) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            return pil_to_tensor(img)
    except Image.DecompressionBombError as err:
        raise ImageReadError(
            name,
            f"refused as a possible decompression bomb ({err}). If you trust the file, raise "
            "PIL.Image.MAX_IMAGE_PIXELS before scoring it.",
        ) from None
    except UnidentifiedImageError:
        raise ImageReadError(name, "not an image file Pillow can read") from None
    except InvalidInputError as err:
        raise ImageReadError(name, str(err)) from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(name, f"truncated or corrupt image ({err})") from None


def _is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_images(directory: str | os.PathLike[str], *, recursive: bool = False) -> list[Path]:
    """Image files in a directory (by file name ending), sorted by path."""
    directory = Path(directory)
    found = directory.rglob("*") if recursive else directory.iterdir()
    return sorted(p for p in found if p.is_file() and _is_image_file(p))


def expand_sources(inputs: Any, *, recursive: bool = False) -> list[Source]:
    """Flatten ``inputs`` into one :class:`Source` per image, in order.

    Directories are expanded here (their image files, sorted); files are not opened yet (that
    happens batch by batch). A ``[N, 3, H, W]`` tensor is checked here and gives N sources.
    """
    out: list[Source] = []
    for item in _flatten(inputs):
        if isinstance(item, (str, os.PathLike)):
            path = Path(item).expanduser()
            if path.is_dir():
                out.extend(Source(str(p), path=p) for p in list_images(path, recursive=recursive))
            else:
                out.append(Source(str(item), path=path))
        elif isinstance(item, torch.Tensor) and item.dim() == 4:
            check_batch(item)
            base = len(out)
            out.extend(Source(f"<tensor {base + i}>", image=item[i]) for i in range(item.shape[0]))
        else:
            out.append(Source(f"<{type(item).__name__} {len(out)}>", image=item))
    return out


def is_single_image(inputs: Any) -> bool:
    """True when ``inputs`` is one image (a file path, PIL image, array or ``[3, H, W]`` tensor), not a collection."""
    if isinstance(inputs, (str, os.PathLike)):
        return not Path(inputs).expanduser().is_dir()
    if isinstance(inputs, torch.Tensor):
        return inputs.dim() == 3
    if isinstance(inputs, np.ndarray):
        return True
    from PIL import Image

    return isinstance(inputs, Image.Image)


def _flatten(inputs: Any) -> Iterator[Any]:
    """Yield images from nested lists/iterables. Anything else is yielded as it is, so an
    unsupported object fails on its own when loaded, with an error naming it, not the whole run."""
    from PIL import Image

    if isinstance(inputs, (str, os.PathLike, np.ndarray, torch.Tensor, Image.Image, bytes, bytearray, dict)):
        yield inputs
    elif isinstance(inputs, Iterable):
        for item in inputs:
            yield from _flatten(item)
    else:
        yield inputs
