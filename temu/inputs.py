"""Inputs -> image tensors ``[3, H, W]`` float32 in [0, 1], and every bad-input error.

Accepted: a path (str or Path), a directory (its images, sorted by name), a PIL image, a numpy
array (HW or HWC; uint8, uint16, or floats in [0, 1]), a tensor ``[3, H, W]`` or ``[N, 3, H, W]``
of floats in [0, 1], or a list / iterable of these.

Files are decoded with Pillow. Its decompression-bomb guard stays on, and EXIF orientation is
applied, to files and to PIL images alike. Grayscale, palette, CMYK and RGBA images become RGB;
alpha is dropped, as Pillow's ``convert("RGB")`` does, as open_clip and pyiqa do. 16-bit images
keep their full range. Float tensors and arrays of any precision are scored as their float32 value.

Nothing that one input holds may end a run: every problem with one input, expected or not,
becomes that input's :class:`InvalidInputError` (:class:`ImageReadError` for files), raised when
that input is loaded, so :func:`temu.iter_scores` can report it and go on.

Folders are expanded by file name: the entries whose names end in one of
:data:`IMAGE_EXTENSIONS` are images (an unreadable one gets its error like any other file), and
everything else is a :class:`SkippedEntry`, collected so the caller can say what was left out
(:func:`describe_skipped`). Hidden entries (names starting with ".") inside a folder are skipped
(and counted): a hidden file or folder given explicitly is read. With ``recursive=True``
sub-folders are searched too, symbolic links to folders included; a folder reached a second time
(a symlink loop) is skipped.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Union

import numpy as np
import torch

from .errors import ImageReadError, InvalidInputError, TeMuWarning
from .image_files import is_image_name

#: Why a folder entry was not scored (:attr:`SkippedEntry.reason`).
NOT_AN_IMAGE = "not an image"
HIDDEN = "hidden"
SUBFOLDER = "sub-folder"
REVISITED = "folder already searched"

#: How :func:`describe_skipped` words each reason (count, what).
_SKIP_WORDS = {
    NOT_AN_IMAGE: ("file", "files", "without an image extension"),
    HIDDEN: ("hidden entry", "hidden entries", "(name starting with '.')"),
    SUBFOLDER: ("sub-folder", "sub-folders", "(recursive is off)"),
    REVISITED: ("folder", "folders", "already searched (a symbolic link loop)"),
}

ImageLike = Union[str, os.PathLike, "PIL.Image.Image", np.ndarray, torch.Tensor]  # noqa: F821


@dataclass(frozen=True)
class Source:
    """One image to score: a file path, encoded bytes (``data``), or an image already in memory. ``name`` labels results.

    ``error``: a problem already known when the inputs were expanded (an unreadable folder, an
    empty path, a batch tensor of the wrong shape); :meth:`load` raises it.
    """

    name: str
    path: Path | None = None
    image: Any = None
    error: InvalidInputError | None = None
    data: bytes | None = None

    def load(self, *, keep_uint8: bool = False) -> torch.Tensor:
        """``[3, H, W]`` float32 in [0, 1]. Raises :class:`ImageReadError` / :class:`InvalidInputError`,
        also for an unexpected exception (it names the exception), so one input never ends a run.

        ``keep_uint8``: an 8-bit file or encoded image comes back as its ``[3, H, W]`` uint8 pixels
        (0-255, not yet divided by 255: see :func:`pixels_to_float`); in-memory inputs are float32 as always.
        """
        if self.error is not None:
            raise self.error
        try:
            if self.path is not None:
                return read_image(self.path, keep_uint8=keep_uint8)
            if self.data is not None:
                return decode_image(self.data, self.name, keep_uint8=keep_uint8)
            return to_image_tensor(self.image, name=self.name)
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


@dataclass(frozen=True)
class SkippedEntry:
    """A folder entry that was neither scored nor an error: ``path`` and ``reason``
    (:data:`NOT_AN_IMAGE`, :data:`HIDDEN`, :data:`SUBFOLDER` or :data:`REVISITED`)."""

    path: str
    reason: str


def describe_skipped(skipped: Iterable[SkippedEntry], *, examples: int = 3) -> list[str]:
    """One line per reason, for a run's summary, e.g. ``"skipped 4 files without an image
    extension: a.txt, b.cr2, c and 1 more"``, naming the first ``examples`` entries."""
    by_reason: dict[str, list[str]] = {}
    for entry in skipped:
        by_reason.setdefault(entry.reason, []).append(entry.path)
    lines = []
    for reason, paths in by_reason.items():
        one, many, what = _SKIP_WORDS.get(reason, ("entry", "entries", f"({reason})"))
        names = ", ".join(Path(p).name or p for p in paths[:examples])
        more = f" and {len(paths) - examples} more" if len(paths) > examples else ""
        lines.append(f"skipped {len(paths)} {one if len(paths) == 1 else many} {what}: {names}{more}")
    return lines


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
            f"{name}: values must lie in [0, 1], found min {_digits(float(lo))} and max {_digits(float(hi))}. "
            "temu does not clamp silently: rescale the input (e.g. divide 8-bit values by 255)."
        )


def _digits(value: float) -> str:
    """``value`` with 4 significant digits, or as many more as show that it lies outside [0, 1] (1.0000001, not 1)."""
    for digits in range(4, 18):
        text = f"{value:.{digits}g}"
        if (0.0 <= float(text) <= 1.0) == (0.0 <= value <= 1.0):
            return text
    return repr(value)


def to_image_tensor(obj: Any, *, name: str = "image") -> torch.Tensor:
    """A PIL image, numpy array (HW/HWC) or ``[3, H, W]`` tensor -> ``[3, H, W]`` float32 in [0, 1]."""
    from PIL import Image

    if isinstance(obj, Image.Image):
        return _pil_image_to_tensor(obj, name)
    if isinstance(obj, np.ndarray):
        return _array_to_tensor(obj, name)
    if isinstance(obj, torch.Tensor):
        if obj.is_meta:
            raise InvalidInputError(f"{name}: a tensor on the 'meta' device holds no values to score")
        if obj.dim() != 3 or obj.shape[0] != 3:
            raise InvalidInputError(f"{name}: expected a [3, H, W] image tensor, got shape {tuple(obj.shape)}")
        if obj.numel() == 0:
            raise InvalidInputError(f"{name}: the image tensor has no pixels (shape {tuple(obj.shape)})")
        if torch.is_floating_point(obj) and obj.dtype != torch.float32:
            obj = obj.float()  # fp16, bf16, fp64: scored as their float32 value
        _check_values(obj, name)
        return obj
    if isinstance(obj, (bytes, bytearray)):
        raise InvalidInputError(f"{name}: raw bytes are not accepted; wrap them: PIL.Image.open(io.BytesIO(data))")
    raise InvalidInputError(
        f"{name}: unsupported input type {type(obj).__name__}; expected a path, a directory, a PIL image, "
        "a numpy array, a tensor [3, H, W] or [N, 3, H, W], or a list of these"
    )


def _pil_image_to_tensor(img: PIL.Image.Image, name: str) -> torch.Tensor:  # noqa: F821
    """A PIL image made or opened by the caller: EXIF orientation applied, as for files."""
    if img.width == 0 or img.height == 0:
        raise InvalidInputError(f"{name}: the PIL image has no pixels (size {img.width}x{img.height})")
    try:
        return pil_to_tensor(apply_exif_orientation(img, name))
    except InvalidInputError:
        raise
    except Exception as err:  # noqa: BLE001 (a closed image raises ValueError, a lazy one anything)
        raise InvalidInputError(f"{name}: cannot read this PIL image ({type(err).__name__}: {err})") from err


def _array_to_tensor(a: np.ndarray, name: str) -> torch.Tensor:
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise InvalidInputError(
            f"{name}: expected a numpy image HW or HWC with 1, 3 or 4 channels, got shape {a.shape}"
        )
    if a.size == 0:
        raise InvalidInputError(f"{name}: the array has no pixels (shape {a.shape})")
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
    return pixels_to_float(pil_to_pixels(img))


def pixels_to_float(x: torch.Tensor) -> torch.Tensor:
    """Pixels from :func:`pil_to_pixels` (``[..., 3, H, W]``, on any device) -> float32 in [0, 1]:
    uint8 divided by 255, float32 as it is. The one conversion of 8-bit pixels, wherever it runs."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def pil_to_pixels(img: PIL.Image.Image) -> torch.Tensor:  # noqa: F821
    """Any PIL mode -> ``[3, H, W]`` RGB pixels: uint8 (0-255) for 8-bit modes, float32 in [0, 1] for
    16- and 32-bit grayscale (their range kept). The uint8 tensor is a channel-first view of
    height-width-channel memory (strides ``(1, 3W, 3)``), as Pillow lays pixels out."""
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


#: EXIF orientation (tag 0x0112) -> the transpose that shows the image upright (as Pillow's exif_transpose).
_ORIENTATION_TRANSPOSE = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
                          6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}  # fmt: skip


def apply_exif_orientation(img: PIL.Image.Image, name: str) -> PIL.Image.Image:  # noqa: F821
    """``img`` turned upright as its EXIF (or XMP) orientation says; ``img`` itself when upright.

    Only the pixels are turned: the metadata is not rewritten, so a malformed tag elsewhere in the
    EXIF (which makes ``ImageOps.exif_transpose`` raise ``struct.error``) does not matter. An
    orientation that cannot be read or is not 1-8 leaves the image as stored, with a
    :class:`~temu.errors.TeMuWarning` naming ``name``.
    """
    from PIL import Image

    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception as err:  # noqa: BLE001 (malformed metadata must not cost the pixels)
        warnings.warn(
            f"{name}: its EXIF metadata cannot be read ({type(err).__name__}: {err}); scored with the "
            "orientation as stored",
            TeMuWarning,
            stacklevel=2,
        )
        return img
    if isinstance(orientation, tuple) and orientation:  # a tag with several values: Pillow reads the first
        orientation = orientation[0]
    if orientation in (0, 1, None):  # 0 = "unknown", written by some cameras
        return img
    method = _ORIENTATION_TRANSPOSE.get(orientation) if isinstance(orientation, int) else None
    if method is None:
        warnings.warn(
            f"{name}: EXIF orientation {orientation!r} is not one of 1-8; scored with the orientation as stored",
            TeMuWarning,
            stacklevel=2,
        )
        return img
    return img.transpose(Image.Transpose[method])


def decode_file(fp: str | os.PathLike[str] | IO[bytes], name: str, *, keep_uint8: bool = False) -> torch.Tensor:
    """Decode an image from a file path or a binary file object to ``[3, H, W]`` float32 in [0, 1].

    Pillow opens it (decompression-bomb guard on), EXIF orientation is applied, and every failure,
    expected or not, is an :class:`ImageReadError` naming ``name``: one bad file never ends a run.
    ``keep_uint8``: 8-bit images come back as their uint8 pixels (:func:`pil_to_pixels`), for
    :func:`pixels_to_float` to convert later (on the GPU, say); the result is then exactly this one's.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(fp) as img:
            img.load()
            pixels = pil_to_pixels(apply_exif_orientation(img, name))
            return pixels if keep_uint8 else pixels_to_float(pixels)
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
    except PermissionError:
        raise ImageReadError(name, "permission denied: the file cannot be opened for reading") from None
    except OSError as err:
        if err.errno is not None:  # the system could not read the file (I/O error, ...), not a bad image
            raise ImageReadError(name, f"cannot read the file ({err.strerror or err})") from None
        raise ImageReadError(name, f"truncated or corrupt image ({err})") from None
    except (SyntaxError, ValueError) as err:
        raise ImageReadError(name, f"truncated or corrupt image ({err})") from None
    except Exception as err:  # noqa: BLE001 (Pillow's plugins raise struct.error, IndexError, ...)
        raise ImageReadError(name, f"cannot be decoded ({type(err).__name__}: {err})") from err


def decode_image(data: bytes | bytearray | memoryview, name: str, *, keep_uint8: bool = False) -> torch.Tensor:
    """Decode an encoded image (the bytes of a JPEG, PNG, ... file) to ``[3, H, W]`` float32 in [0, 1].

    The same decoder as :func:`read_image` (:func:`decode_file`: EXIF orientation, mode conversion,
    the decompression-bomb guard), so the bytes of a file give exactly the tensor the file gives.
    ``name`` labels errors; ``keep_uint8`` as for :func:`decode_file`.
    """
    if len(data) == 0:
        raise ImageReadError(name, "the image data is empty (0 bytes)")
    return decode_file(io.BytesIO(data), name, keep_uint8=keep_uint8)


def _plugin_hint(name: str) -> str:
    if Path(name).suffix.lower() in (".heic", ".heif"):
        return " (HEIC/HEIF needs a plugin: pip install pillow-heif, then pillow_heif.register_heif_opener())"
    return ""


_NOT_REGULAR = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def read_image(path: str | os.PathLike[str], *, keep_uint8: bool = False) -> torch.Tensor:
    """Decode an image file to ``[3, H, W]`` float32 in [0, 1]; errors name the file and the cause.

    Only regular files are opened (a named pipe would block); see :func:`decode_file` (and its ``keep_uint8``).
    """
    if os.fspath(path) == "":
        raise InvalidInputError("an empty path ('') names no image file")
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ImageReadError(path, _missing(path)) from None
    except ValueError as err:  # "embedded null byte"
        raise ImageReadError(path, f"not a usable path ({err})") from None
    except OSError as err:
        raise ImageReadError(path, f"cannot access the file ({err.strerror or err})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageReadError(path, "is a directory, not an image file")
    if not stat.S_ISREG(info.st_mode):
        kind = _NOT_REGULAR.get(stat.S_IFMT(info.st_mode), "not a regular file")
        raise ImageReadError(path, f"is {kind}, not an image file")
    if info.st_size == 0:
        raise ImageReadError(path, "the file is empty (0 bytes)")
    return decode_file(path, str(path), keep_uint8=keep_uint8)


def _missing(path: Path) -> str:
    try:
        if path.is_symlink():
            return f"broken symbolic link (its target {os.readlink(path)} does not exist)"
    except OSError:
        pass
    return "no such file"


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows symbolic links
    except OSError:
        return False


def _folder_sources(directory: Path, *, recursive: bool, skipped: list[SkippedEntry] | None) -> list[Source]:
    """One :class:`Source` per image-named entry of ``directory`` (and of its sub-folders when
    ``recursive``), sorted by path; a folder that cannot be listed is an error source naming it."""
    found: list[Source] = []
    passed: list[SkippedEntry] = []
    visited: set[tuple[int, int]] = set()
    stack = [directory]
    while stack:
        folder = stack.pop()
        try:
            info = folder.stat()
            if (info.st_dev, info.st_ino) in visited:
                passed.append(SkippedEntry(str(folder), REVISITED))
                continue
            visited.add((info.st_dev, info.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            found.append(
                Source(str(folder), path=folder, error=ImageReadError(folder, f"cannot list the folder ({_why(err)})"))
            )
            continue
        subfolders = []
        for entry in entries:
            path = Path(entry.path)
            if entry.name.startswith("."):
                passed.append(SkippedEntry(str(path), HIDDEN))
            elif _is_dir(entry):
                if recursive:
                    subfolders.append(path)
                elif is_image_name(path.name):  # a folder named like an image: that entry's error
                    found.append(Source(str(path), path=path))
                else:
                    passed.append(SkippedEntry(str(path), SUBFOLDER))
            elif is_image_name(path.name):  # broken links, pipes, unreadable files: read_image says why
                found.append(Source(str(path), path=path))
            else:
                passed.append(SkippedEntry(str(path), NOT_AN_IMAGE))
        stack.extend(reversed(subfolders))
    if skipped is not None:
        skipped.extend(sorted(passed, key=lambda e: Path(e.path)))
    return sorted(found, key=lambda s: s.path)  # type: ignore[arg-type,return-value]


def _why(err: OSError) -> str:
    return "permission denied" if isinstance(err, PermissionError) else (err.strerror or str(err))


def list_images(
    directory: str | os.PathLike[str], *, recursive: bool = False, skipped: list[SkippedEntry] | None = None
) -> list[Path]:
    """Image files in a folder (by file name ending, see :data:`IMAGE_EXTENSIONS`), sorted by path.

    Raises :class:`ImageReadError` naming a folder that cannot be listed. ``skipped``, if given,
    receives the entries left out (see :class:`SkippedEntry`).
    """
    sources = _folder_sources(Path(directory), recursive=recursive, skipped=skipped)
    for source in sources:
        if source.error is not None:
            raise source.error
    return [source.path for source in sources if source.path is not None]


def expand_sources(inputs: Any, *, recursive: bool = False, skipped: list[SkippedEntry] | None = None) -> list[Source]:
    """Flatten ``inputs`` into one :class:`Source` per image, in order.

    Folders are expanded here (their image files, sorted; ``skipped``, if given, receives the
    entries left out: see :class:`SkippedEntry` and :func:`describe_skipped`); files are not opened
    yet (that happens batch by batch). A ``[N, 3, H, W]`` tensor gives N sources. Nothing here
    raises for a bad input: an empty or invalid path, a folder that cannot be listed or a batch
    tensor of the wrong shape becomes a source whose :meth:`Source.load` raises its error.
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
            out.append(Source(f"<{type(item).__name__} {len(out)}>", image=item))
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
        return _folder_sources(path, recursive=recursive, skipped=skipped)
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
    unsupported object fails on its own when loaded, with an error naming it, not the whole run."""
    from PIL import Image

    if isinstance(inputs, (str, os.PathLike, np.ndarray, torch.Tensor, Image.Image, bytes, bytearray, dict)):
        yield inputs
    elif isinstance(inputs, Iterable):
        for item in inputs:
            yield from _flatten(item)
    else:
        yield inputs
