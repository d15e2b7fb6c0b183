"""Local paths and remote URIs (``s3://``, ``gs://``, ``hdfs://``, ``file://`` ...) through pyarrow's filesystems."""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from ..errors import ImageReadError
from .names import is_uri


class Filesystems:
    """Location (local path or URI) -> (pyarrow filesystem, path inside it).

    One filesystem per scheme and host, made on first use (making an S3 filesystem asks the
    bucket's region); thread-safe. Local paths go to the local filesystem, made absolute.
    """

    def __init__(self) -> None:
        self._local = pafs.LocalFileSystem()
        self._remote: dict[tuple[str, str], tuple[pafs.FileSystem, int]] = {}
        self._lock = threading.Lock()

    def resolve(self, location: str) -> tuple[pafs.FileSystem, str]:
        """The filesystem and path of ``location``; a ValueError (pyarrow's) for an unknown scheme."""
        if not is_uri(location):
            return self._local, os.path.abspath(location)
        parts = urlsplit(location)
        key = (parts.scheme.lower(), parts.netloc)
        with self._lock:
            known = self._remote.get(key)
        if known is not None and not parts.query:
            fs, strip = known
            return fs, location[strip:]
        fs, path = pafs.FileSystem.from_uri(location)
        if location.endswith(path) and not parts.query:  # the path is the URI's tail: reuse the filesystem
            with self._lock:
                self._remote.setdefault(key, (fs, len(location) - len(path)))
        return fs, path

    def uri_prefix(self, location: str) -> str:
        """What turns a path of ``location``'s filesystem back into a location (``s3://`` for S3, ``""`` locally)."""
        if not is_uri(location):
            return ""
        _, path = self.resolve(location)
        return location[: len(location) - len(path)] if location.endswith(path) else ""

    def read_bytes(self, location: str, limit: int | None = None) -> bytes:
        """The whole file at ``location``; :class:`~temu.ImageReadError` naming it when it cannot be
        read, or when it holds more than ``limit`` bytes (never read then)."""
        try:
            fs, path = self.resolve(location)
            with fs.open_input_file(path) as stream:
                size = stream.size()
                if limit is not None and size > limit:
                    raise ImageReadError(location, too_large(size, limit))
                return stream.read(size)
        except ImageReadError:
            raise
        except UnicodeEncodeError:  # a URI holding bytes that are not UTF-8
            raise ImageReadError(location, "a URI must be UTF-8 text") from None
        except FileNotFoundError:
            raise ImageReadError(location, "no such file") from None
        except OSError as err:
            raise ImageReadError(location, f"cannot read it ({err})") from None
        except ValueError as err:  # pyarrow.ArrowInvalid: a scheme pyarrow has no filesystem for
            raise ImageReadError(location, f"cannot open this URI ({err})") from None


#: How many bytes of a list or table :meth:`stamp` hashes at each of its start, middle and end.
SAMPLE_BYTES = 1 << 16


def stamp(filesystems: Filesystems, location: str) -> dict[str, Any]:
    """What identifies the contents of the file at ``location`` cheaply: its ``size``, its
    modification time (``mtime_ns``, None where the filesystem has none) and ``sample``, a SHA-256
    of three :data:`SAMPLE_BYTES` blocks (start, middle, end). OSError / ValueError if it cannot be read."""
    fs, path = filesystems.resolve(location)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"{location}: no such file")
    size = info.size
    digest = hashlib.sha256()
    with fs.open_input_file(path) as stream:
        for offset in sorted({0, max(0, size // 2 - SAMPLE_BYTES // 2), max(0, size - SAMPLE_BYTES)}):
            digest.update(stream.read_at(min(SAMPLE_BYTES, size - offset), offset) if size else b"")
    return {"size": size, "mtime_ns": info.mtime_ns, "sample": digest.hexdigest()[:32]}


def file_stat(filesystems: Filesystems, location: str) -> dict[str, Any]:
    """``size`` and ``mtime_ns`` of the file at ``location`` (a tar: one request, no reading)."""
    fs, path = filesystems.resolve(location)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"{location}: no such file")
    return {"size": info.size, "mtime_ns": info.mtime_ns}


def stamp_change(then: dict[str, Any], now: dict[str, Any]) -> str | None:
    """How a file changed between two :func:`stamp` s (or :func:`file_stat` s), or None."""
    for key, what in (("size", "size"), ("mtime_ns", "modification time"), ("sample", "contents")):
        if key in then and key in now and then[key] != now[key]:
            if key == "size":
                return f"its size was {then[key]} bytes then, {now[key]} now"
            return f"its {what} differs"
    return None


def too_large(size: int, limit: int) -> str:
    """The reason of an image bigger than the ``max_member_size`` limit."""
    return (
        f"{size:,} bytes, more than max_member_size ({limit:,} bytes); "
        "an image this large is not read (raise the limit to score it)"
    )
