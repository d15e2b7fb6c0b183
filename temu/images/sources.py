"""What users pass as images -> one :class:`Source` per image, and the checks of in-memory images.

Accepted: a path (str or Path), a folder (its images, sorted by path), a PIL image, a numpy array
(HW or HWC; uint8, uint16, or floats in [0, 1]), a tensor ``[3, H, W]`` or ``[N, 3, H, W]`` of
uint8 (0-255, torchvision's convention) or floats in [0, 1], or a list / iterable of these.

Nothing that one input holds may end a run: every problem with one input, expected or not,
becomes that input's :class:`~temu.errors.InvalidInputError` (:class:`~temu.errors.ImageReadError`
for files), raised when that input is loaded, so :func:`temu.iter_scores` can report it and go on.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ImageReadError, InvalidInputError
from .decode import decode_pixels, orient, pil_to_pixels, read_orientation, read_pixels
from .folders import SkippedEntry, folder_entries


@dataclass(frozen=True)
class Source:
    """One image to score: a file ``path``, encoded bytes (``data``), or an ``image`` in memory.

    ``name`` labels results. ``error``: a problem already known when the inputs were expanded (an
    unreadable folder, an empty path, a batch tensor of the wrong shape); :meth:`load` raises it.
    """

    name: str
    path: Path | None = None
    image: Any = None
    error: InvalidInputError | None = None
    data: bytes | None = None

    def load(self) -> torch.Tensor:
        """``[3, H, W]`` pixels: uint8 for 8-bit images, else float32 in [0, 1] (see :mod:`temu.images.decode`).

        Raises :class:`~temu.errors.ImageReadError` / :class:`~temu.errors.InvalidInputError`, also for an
        unexpected exception (it names the exception), so one input never ends a run.
        """
        if self.error is not None:
            raise self.error
        try:
            if self.path is not None:
                return read_pixels(self.path)
            if self.data is not None:
                return decode_pixels(self.data, self.name)
            return to_pixels(self.image, name=self.name)
        except InvalidInputError:
            raise
        except Exception as err:  # noqa: BLE001 (one input's failure is that input's error)
            raise self.unexpected(err) from err

    def unexpected(self, err: BaseException) -> InvalidInputError:
        """``err``, raised while this input was read or resized, as this input's error."""
        what = f"unexpected {type(err).__name__}: {err}"
        if self.path is not None:
            return ImageReadError(self.path, f"cannot be read ({what})")
        return InvalidInputError(f"{self.name}: cannot be used ({what})")


def dtype_problem(dtype: torch.dtype, name: str) -> str | None:
    """Why a tensor of ``dtype`` is not an image (only floats in [0, 1] and uint8 are), or None."""
    if dtype == torch.uint8 or dtype.is_floating_point:
        return None
    if dtype == torch.bool:
        hint = "convert it: x.to(torch.uint8) * 255 for a mask"
    else:
        hint = "for 8-bit values convert with x.to(torch.uint8) (or divide by 255: x.float() / 255)"
    return f"{name}: expected floats in [0, 1] or uint8 pixels (0-255), got dtype {dtype}; {hint}"


def check_batch(x: Any, *, name: str = "input tensor", values: bool = True, allow_uint8: bool = True) -> None:
    """Raise :class:`~temu.errors.InvalidInputError` unless ``x`` is an image batch ``[N, 3, H, W]``:
    uint8 (0-255; unless ``allow_uint8=False``), or floats with finite values in [0, 1].

    ``values=False`` checks type, shape and dtype only (no pass over the data, no host-device sync).
    """
    if not isinstance(x, torch.Tensor):
        raise InvalidInputError(
            f"{name}: expected a torch.Tensor [N, 3, H, W] of floats in [0, 1] or uint8, got {type(x).__name__}"
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
    if (problem := dtype_problem(x.dtype, name)) is not None:
        raise InvalidInputError(problem)
    if x.dtype == torch.uint8 and not allow_uint8:
        raise InvalidInputError(
            f"{name}: expected floats in [0, 1], got dtype torch.uint8; convert it: x.float() / 255"
        )
    if values:
        check_values(x, name)


def check_values(x: torch.Tensor, name: str) -> None:
    """Raise :class:`~temu.errors.InvalidInputError` if a float tensor holds NaN/Inf or values outside [0, 1]."""
    if not x.is_floating_point() or x.numel() == 0:
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
            f"{name}: values must lie in [0, 1], found min {_digits(float(lo))} and max {_digits(float(hi))}. "
            "temu does not clamp silently: rescale the input (e.g. pass 8-bit values as uint8, or divide them by 255)."
        )


def _digits(value: float) -> str:
    """``value`` with 4 significant digits, or as many more as show that it lies outside [0, 1] (1.0000001, not 1)."""
    for digits in range(4, 18):
        text = f"{value:.{digits}g}"
        if (0.0 <= float(text) <= 1.0) == (0.0 <= value <= 1.0):
            return text
    return repr(value)


def to_pixels(obj: Any, *, name: str = "image") -> torch.Tensor:
    """A PIL image, numpy array (HW/HWC) or ``[3, H, W]`` tensor -> ``[3, H, W]`` pixels.

    uint8 stays uint8 (0-255); uint16 arrays become float32 / 65535; floats must lie in [0, 1] and
    become float32 (fp16, bf16 and fp64 score as their float32 value). PIL images are turned
    upright by their EXIF orientation, as files are.
    """
    from PIL import Image

    if isinstance(obj, Image.Image):
        return _pil_pixels(obj, name)
    if isinstance(obj, np.ndarray):
        return _array_pixels(obj, name)
    if isinstance(obj, torch.Tensor):
        if obj.is_meta:
            raise InvalidInputError(f"{name}: a tensor on the 'meta' device holds no values to score")
        if obj.dim() != 3 or obj.shape[0] != 3:
            raise InvalidInputError(
                f"{name}: expected an image tensor [3, H, W] or a batch [N, 3, H, W], got shape {tuple(obj.shape)}"
            )
        if obj.numel() == 0:
            raise InvalidInputError(f"{name}: the image tensor has no pixels (shape {tuple(obj.shape)})")
        if (problem := dtype_problem(obj.dtype, name)) is not None:
            raise InvalidInputError(problem)
        if obj.dtype != torch.uint8:
            obj = obj.float()
            check_values(obj, name)
        return obj
    raise type_problem(obj, name) or InvalidInputError(
        f"{name}: unsupported input type {type(obj).__name__}; expected a PIL image, a numpy array or a [3, H, W] tensor"
    )


def type_problem(obj: Any, name: str) -> InvalidInputError | None:
    """Why ``obj`` can never be an image (raw bytes, an open file or stream, an unsupported type), else None.

    Known without reading anything, so :func:`expand_sources` records it up front and
    ``on_error="raise"`` raises it before the model loads.
    """
    from PIL import Image

    if isinstance(obj, (str, os.PathLike, np.ndarray, torch.Tensor, Image.Image)):
        return None
    if isinstance(obj, (bytes, bytearray)):
        return InvalidInputError(f"{name}: raw bytes are not accepted; wrap them: PIL.Image.open(io.BytesIO(data))")
    if isinstance(obj, io.IOBase):
        file = getattr(obj, "name", None)
        if isinstance(file, (str, bytes, os.PathLike)):  # an open file: it has a path
            return InvalidInputError(
                f"{name}: an open file object ({os.fsdecode(file)!r}) is not an image; pass its path "
                f"({os.fsdecode(file)!r}), or PIL.Image.open(file) for an image file"
            )
        if isinstance(obj, io.TextIOBase):
            return InvalidInputError(
                f"{name}: a text stream ({type(obj).__name__}) is not an image; to score the paths it lists, "
                "pass them as a list: stream.read().splitlines()"
            )
        return InvalidInputError(
            f"{name}: an open file object ({type(obj).__name__}) is not an image; for encoded image bytes pass "
            "PIL.Image.open(stream)"
        )
    return InvalidInputError(
        f"{name}: unsupported input type {type(obj).__name__}; expected a path, a directory, a PIL image, "
        "a numpy array, a tensor [3, H, W] or [N, 3, H, W], or a list of these"
    )


def _pil_pixels(img: Any, name: str) -> torch.Tensor:
    """A PIL image made or opened by the caller: EXIF orientation applied, as for files."""
    if img.width == 0 or img.height == 0:
        raise InvalidInputError(f"{name}: the PIL image has no pixels (size {img.width}x{img.height})")
    try:
        return orient(pil_to_pixels(img), read_orientation(img, name))
    except InvalidInputError:
        raise
    except Exception as err:  # noqa: BLE001 (a closed image raises ValueError, a lazy one anything)
        raise InvalidInputError(f"{name}: cannot read this PIL image ({type(err).__name__}: {err})") from err


def _array_pixels(a: np.ndarray, name: str) -> torch.Tensor:
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise InvalidInputError(
            f"{name}: expected a numpy image HW or HWC with 1, 3 or 4 channels, got shape {a.shape}"
        )
    if a.size == 0:
        raise InvalidInputError(f"{name}: the array has no pixels (shape {a.shape})")
    a = a[:, :, :3]  # alpha dropped
    if a.dtype == np.uint8:
        t = torch.from_numpy(np.array(a, copy=True))  # a copy: writable, never the caller's memory
    elif a.dtype == np.uint16:
        t = torch.from_numpy(a.astype(np.float32)) / 65535.0
    elif np.issubdtype(a.dtype, np.floating):
        t = torch.from_numpy(a.astype(np.float32))
        check_values(t, name)
    else:
        raise InvalidInputError(
            f"{name}: numpy dtype {a.dtype} is not supported; use uint8, uint16 or floats in [0, 1]"
        )
    t = t.permute(2, 0, 1)
    return t.expand(3, -1, -1).contiguous() if t.shape[0] == 1 else t


def expand_sources(inputs: Any, *, recursive: bool = False, skipped: list[SkippedEntry] | None = None) -> list[Source]:
    """Flatten ``inputs`` into one :class:`Source` per image, in order.

    Folders are expanded here (their image files, sorted; ``skipped``, if given, receives the
    entries left out, see :func:`temu.images.folders.describe_skipped`); files are not opened yet.
    A ``[N, 3, H, W]`` tensor gives N sources. Nothing here raises for a bad input: an empty or
    invalid path, a folder that cannot be listed, a batch tensor of the wrong shape or an object
    that is no image at all (raw bytes, an open file or text stream) becomes a source whose
    :attr:`Source.error` is set and whose :meth:`Source.load` raises it.
    """
    out: list[Source] = []
    for item in _flatten(inputs):
        if isinstance(item, (str, os.PathLike)):
            out.extend(_path_sources(item, recursive=recursive, skipped=skipped))
        elif isinstance(item, torch.Tensor) and item.dim() == 4:
            base = len(out)
            try:
                check_batch(item, name=f"<tensor {base}>", values=False)
            except InvalidInputError as err:
                out.append(Source(f"<tensor {base}>", error=err))
                continue
            out.extend(Source(f"<tensor {base + i}>", image=item[i]) for i in range(item.shape[0]))
        else:
            name = f"<{type(item).__name__} {len(out)}>"
            problem = type_problem(item, name)  # an open file is not kept: DataLoader workers could not take it
            out.append(Source(name, error=problem) if problem is not None else Source(name, image=item))
    return out


def _path_sources(item: str | os.PathLike, *, recursive: bool, skipped: list[SkippedEntry] | None) -> list[Source]:
    try:
        text = os.fsdecode(item)
    except (TypeError, ValueError) as err:
        return [Source(repr(item), error=InvalidInputError(f"{item!r}: not a usable path ({err})"))]
    if text == "":
        return [
            Source(
                text,
                error=InvalidInputError("an empty path ('') names no image or folder; use '.' for the current folder"),
            )
        ]
    try:
        path = Path(text).expanduser()
        is_dir = path.is_dir()
    except (OSError, ValueError, RuntimeError) as err:  # NUL byte, name too long, unknown ~user
        why = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        return [Source(text, error=ImageReadError(text, f"not a usable path ({why})"))]
    if is_dir:
        entries = folder_entries(path, recursive=recursive, skipped=skipped)
        return [Source(str(e.path), path=e.path, error=e.error) for e in entries]
    return [Source(text, path=path)]


def is_single_image(inputs: Any) -> bool:
    """True when ``inputs`` is one image (a file path, PIL image, array or ``[3, H, W]`` tensor), not a collection.

    A path that cannot even be looked at (empty, a NUL byte, too long) counts as one image: a bad one.
    """
    if isinstance(inputs, (str, os.PathLike)):
        try:
            return os.fspath(inputs) == "" or not Path(inputs).expanduser().is_dir()
        except (OSError, ValueError, RuntimeError, TypeError):
            return True
    if isinstance(inputs, torch.Tensor):
        return inputs.dim() == 3
    if isinstance(inputs, np.ndarray):
        return True
    from PIL import Image

    return isinstance(inputs, Image.Image)


def _flatten(inputs: Any) -> Iterator[Any]:
    """Yield images from nested lists/iterables. Anything else is yielded as it is, so an
    unsupported object fails on its own when loaded, with an error naming it, not the whole run.
    An open file or text stream is one (unsupported) input, never iterated line by line."""
    from PIL import Image

    if isinstance(inputs, (str, os.PathLike, np.ndarray, torch.Tensor, Image.Image, bytes, bytearray, dict, io.IOBase)):
        yield inputs
    elif isinstance(inputs, Iterable):
        for item in inputs:
            yield from _flatten(item)
    else:
        yield inputs
