"""Local paths and remote URIs (``s3://``, ``gs://``, ``hdfs://``, ``file://`` ...) through pyarrow's filesystems."""

from __future__ import annotations

import os
import threading
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

    def read_bytes(self, location: str) -> bytes:
        """The whole file at ``location``; :class:`~temu.ImageReadError` naming it when it cannot be read."""
        try:
            fs, path = self.resolve(location)
            with fs.open_input_stream(path) as stream:
                return stream.read()
        except FileNotFoundError:
            raise ImageReadError(location, "no such file") from None
        except OSError as err:
            raise ImageReadError(location, f"cannot read it ({err})") from None
        except ValueError as err:  # pyarrow.ArrowInvalid: a scheme pyarrow has no filesystem for
            raise ImageReadError(location, f"cannot open this URI ({err})") from None
