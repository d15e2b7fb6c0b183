"""Encoded images (files, bytes, PIL images) -> pixel tensors, with every decoding error named.

Pixels are ``[3, H, W]`` RGB tensors: ``uint8`` (0-255) for 8-bit images, float32 in [0, 1] for
16- and 32-bit integer images (their full range kept). They stay uint8 until a batch reaches the
model (:func:`pixels_to_float` is the one conversion).

Decoding: Pillow opens every image first (its decompression-bomb guard stays on) and reads its
EXIF orientation. Baseline and progressive JPEGs in RGB or grayscale are then decoded by
torchvision's libjpeg-turbo decoder (the same pixels as Pillow's, 1.6x to 2.5x as fast:
``benchmarks/bench_decode.py``); every other file by Pillow. torchvision 0.29 deprecates its
decoders in favour of TorchCodec (a DeprecationWarning, hidden by default); where a torchvision
has none, Pillow decodes JPEGs too, to the same pixels. Palette, CMYK, LA and RGBA images
become RGB as Pillow's ``convert("RGB")`` makes them (alpha dropped). EXIF orientation is applied
to the pixels; the metadata is never rewritten.
"""

from __future__ import annotations

import os
import stat
import warnings
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import ImageReadError, InvalidInputError, TeMuWarning, os_reason

if TYPE_CHECKING:
    import PIL.Image

#: JPEG modes torchvision decodes to exactly Pillow's RGB pixels (CMYK and others go through Pillow).
_TORCHVISION_JPEG_MODES = frozenset({"RGB", "L"})

#: EXIF orientation (tag 0x0112) -> the PIL transpose that shows the image upright (as Pillow's exif_transpose).
_ORIENTATION_TRANSPOSE = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
                          6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}  # fmt: skip

_NOT_REGULAR = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def pixels_to_float(x: torch.Tensor) -> torch.Tensor:
    """Pixels (``[..., 3, H, W]``, on any device) -> float32 in [0, 1]: uint8 divided by 255, floats as float32.

    The one conversion of 8-bit pixels, wherever it runs (the model calls it once per batch).
    """
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def pil_to_pixels(img: PIL.Image.Image) -> torch.Tensor:
    """Any PIL mode -> ``[3, H, W]`` RGB pixels (see the module docstring); EXIF orientation not applied.

    The uint8 tensor is a channel-first view of height-width-channel memory, as Pillow lays pixels out.
    Raises InvalidInputError for 32-bit float images (mode ``F``: no defined range).
    """
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
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)  # copy: writable, and not Pillow's memory


def pil_to_tensor(img: PIL.Image.Image) -> torch.Tensor:
    """Any PIL mode -> ``[3, H, W]`` float32 RGB in [0, 1] (:func:`pil_to_pixels`, then :func:`pixels_to_float`)."""
    return pixels_to_float(pil_to_pixels(img))


def read_orientation(img: PIL.Image.Image, name: str) -> int:
    """The EXIF (or XMP) orientation of ``img``, 1-8; 1 (as stored) when there is none.

    An orientation that cannot be read or is not 1-8 gives 1, with a :class:`~temu.errors.TeMuWarning`
    naming ``name``: malformed metadata never costs the pixels.
    """
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception as err:  # noqa: BLE001 (malformed metadata must not cost the pixels)
        warnings.warn(
            f"{name}: its EXIF metadata cannot be read ({type(err).__name__}: {err}); scored with the "
            "orientation as stored",
            TeMuWarning,
            stacklevel=3,
        )
        return 1
    if isinstance(orientation, tuple) and orientation:  # a tag with several values: Pillow reads the first
        orientation = orientation[0]
    if orientation in (0, 1, None):  # 0 = "unknown", written by some cameras
        return 1
    if not isinstance(orientation, int) or orientation not in _ORIENTATION_TRANSPOSE:
        warnings.warn(
            f"{name}: EXIF orientation {orientation!r} is not one of 1-8; scored with the orientation as stored",
            TeMuWarning,
            stacklevel=3,
        )
        return 1
    return orientation


def orient(pixels: torch.Tensor, orientation: int) -> torch.Tensor:
    """``[..., H, W]`` pixels turned upright for EXIF ``orientation`` (1-8), as Pillow's ``exif_transpose``."""
    if orientation == 2:
        return pixels.flip(-1)
    if orientation == 3:
        return pixels.flip(-2, -1)
    if orientation == 4:
        return pixels.flip(-2)
    if orientation == 5:
        return pixels.transpose(-2, -1).contiguous()
    if orientation == 6:
        return pixels.transpose(-2, -1).flip(-1)
    if orientation == 7:
        return pixels.transpose(-2, -1).flip(-2, -1)
    if orientation == 8:
        return pixels.transpose(-2, -1).flip(-2)
    return pixels


def exif_transpose(img: PIL.Image.Image, name: str) -> PIL.Image.Image:
    """``img`` turned upright as its EXIF orientation says (:func:`read_orientation`); ``img`` itself when upright."""
    from PIL import Image

    orientation = read_orientation(img, name)
    if orientation == 1:
        return img
    return img.transpose(Image.Transpose[_ORIENTATION_TRANSPOSE[orientation]])


def decode_pixels(data: bytes | bytearray | memoryview, name: str) -> torch.Tensor:
    """An encoded image (the bytes of a JPEG, PNG, ... file) -> ``[3, H, W]`` pixels, upright.

    uint8 for 8-bit images, float32 in [0, 1] for deeper ones (see the module docstring). Every
    failure, expected or not, is an :class:`~temu.errors.ImageReadError` naming ``name``.
    """
    from PIL import Image, UnidentifiedImageError

    if len(data) == 0:
        raise ImageReadError(name, "the image data is empty (0 bytes)")
    try:
        with Image.open(BytesIO(data)) as img:
            if img.format == "JPEG" and img.mode in _TORCHVISION_JPEG_MODES and _torchvision_jpeg():
                orientation = read_orientation(img, name)  # read from the header
                pixels = _decode_jpeg(data, name)
            else:
                img.load()  # first: a truncated file is its error, not unreadable metadata
                orientation = read_orientation(img, name)
                pixels = pil_to_pixels(img)
        return orient(pixels, orientation)
    except ImageReadError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageReadError(
            name,
            f"refused as a possible decompression bomb ({err}). If you trust the file, raise "
            "PIL.Image.MAX_IMAGE_PIXELS before scoring it.",
        ) from None
    except UnidentifiedImageError:
        raise ImageReadError(name, "not an image file Pillow can read" + _plugin_hint(name)) from None
    except InvalidInputError as err:
        raise ImageReadError(name, str(err)) from None
    except OSError as err:
        if err.errno is not None:  # the system could not read the data (I/O error, ...), not a bad image
            raise ImageReadError(name, f"cannot read the file ({os_reason(err)})") from None
        raise ImageReadError(name, f"truncated or corrupt image ({err})") from None
    except (SyntaxError, ValueError) as err:
        raise ImageReadError(name, f"truncated or corrupt image ({err})") from None
    except Exception as err:  # noqa: BLE001 (Pillow's plugins raise struct.error, IndexError, ...)
        raise ImageReadError(name, f"cannot be decoded ({type(err).__name__}: {err})") from err


def _torchvision_jpeg() -> bool:
    import torchvision.io

    return hasattr(torchvision.io, "decode_jpeg")


def _decode_jpeg(data: bytes | bytearray | memoryview, name: str) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_jpeg

    buffer = data if isinstance(data, bytearray) else bytearray(data)  # torch needs a writable buffer
    try:
        return decode_jpeg(torch.frombuffer(buffer, dtype=torch.uint8), mode=ImageReadMode.RGB)
    except RuntimeError as err:  # libjpeg's message follows torchvision's source location
        why = str(err).strip().splitlines()[-1].split(".cpp:", 1)[-1].lstrip("0123456789, ") or str(err)
        raise ImageReadError(name, f"truncated or corrupt image ({why})") from None


def _plugin_hint(name: str) -> str:
    if Path(name).suffix.lower() in (".heic", ".heif"):
        return " (HEIC/HEIF needs a plugin: pip install pillow-heif, then pillow_heif.register_heif_opener())"
    return ""


def read_pixels(path: str | os.PathLike[str]) -> torch.Tensor:
    """An image file -> ``[3, H, W]`` pixels, upright (:func:`decode_pixels`); errors name the file and the cause.

    Only regular files are opened (a named pipe would block).
    """
    size = check_file(path)
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = bytearray(size)  # read straight into a writable buffer (torch's decoders need one)
            del data[f.readinto(data) :]
            data += f.read()  # a file that grew since stat()
    except PermissionError:
        raise ImageReadError(path, "permission denied: the file cannot be opened for reading") from None
    except OSError as err:
        raise ImageReadError(path, f"cannot read the file ({os_reason(err)})") from None
    return decode_pixels(data, str(path))


def check_file(
    path: str | os.PathLike[str], what: str = "an image", error: type[ImageReadError] = ImageReadError
) -> int:
    """The size in bytes of ``path``, a regular, non-empty file; else an ``error`` (an
    :class:`~temu.errors.ImageReadError` or a subclass) that says why (missing, a broken link, a
    folder, a named pipe, ...). ``what``: the file expected ("a video")."""
    if os.fspath(path) == "":
        raise InvalidInputError(f"an empty path ('') names no {what.split(' ', 1)[1]} file")
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise error(path, _missing(path)) from None
    except ValueError as err:  # "embedded null byte"
        raise error(path, f"not a usable path ({err})") from None
    except OSError as err:
        raise error(path, f"cannot access the file ({os_reason(err)})") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(path, f"is a directory, not {what} file")
    if not stat.S_ISREG(info.st_mode):
        kind = _NOT_REGULAR.get(stat.S_IFMT(info.st_mode), "not a regular file")
        raise error(path, f"is {kind}, not {what} file")
    if info.st_size == 0:
        raise error(path, "the file is empty (0 bytes)")
    return info.st_size


def pillow_identifies(data: bytes | bytearray | memoryview | str | os.PathLike[str]) -> bool:
    """Whether Pillow recognises ``data`` (encoded bytes, or a file's path) as an image: only its header is read."""
    from PIL import Image

    try:
        with Image.open(BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data):
            return True
    except Exception:  # noqa: BLE001 (anything Pillow cannot open is not an image to it)
        return False


def read_image(path: str | os.PathLike[str]) -> torch.Tensor:
    """An image file -> ``[3, H, W]`` float32 in [0, 1], upright; errors name the file and the cause."""
    return pixels_to_float(read_pixels(path))


def decode_image(data: bytes | bytearray | memoryview, name: str) -> torch.Tensor:
    """Encoded image bytes -> ``[3, H, W]`` float32 in [0, 1], exactly as the same file reads (:func:`read_image`)."""
    return pixels_to_float(decode_pixels(data, name))


def _missing(path: Path) -> str:
    try:
        if path.is_symlink():
            return f"broken symbolic link (its target {os.readlink(path)} does not exist)"
    except OSError:
        pass
    return "no such file"
