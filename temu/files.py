"""Writing files so that a reader, or a run killed half-way, never sees a partial file.

Every file temu writes goes to a hidden temporary name in its folder (:func:`temporary_name`) and
is renamed into place when complete: whole files by :func:`atomic_write`, files written row by row
by :class:`AtomicFile`, and corpus outputs on any pyarrow filesystem by
:class:`temu.corpus.plan.OutputFolder`, which takes its temporary names from here.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from pathlib import Path
from typing import IO


def temporary_name(name: str) -> str:
    """The hidden temporary name ``name`` is written under: ``dir/.base.tmp-<pid>-<random>`` (``/``-separated)."""
    folder, base = posixpath.split(name)
    return posixpath.join(folder, f".{base}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def is_temporary(name: str) -> bool:
    """Whether a file's base name is one of :func:`temporary_name`'s (left behind by a killed run)."""
    base = posixpath.basename(name)
    return base.startswith(".") and ".tmp-" in base


def atomic_write(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to a temporary name in the same folder (created if needed), then rename it over ``path``.

    Raises:
        OSError: the folder or the file cannot be written (a full disk); its ``filename`` is ``path``.
    """
    path = Path(path)
    tmp = Path(temporary_name(path.as_posix()))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as err:
        if err.filename is not None and err.filename != str(tmp):
            raise
        raise type(err)(err.errno, err.strerror or str(err), str(path)) from err
    finally:
        tmp.unlink(missing_ok=True)
    return path


def place_new(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """Give the finished file ``tmp`` the name ``path`` unless that exists; False (``tmp`` left as it
    is) if it did. Atomic where the file system has hard links; elsewhere check, then rename."""
    try:
        os.link(tmp, path)  # fails if the name exists
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links
        if os.path.exists(path):
            return False
        os.replace(tmp, path)
        return True
    os.unlink(tmp)
    return True


class AtomicFile:
    """A text file written row by row under a temporary name in its folder, and put in place at the end.

    :meth:`open` creates it; :meth:`commit` renames it to ``path`` (without ``overwrite``, a file
    that appeared at ``path`` meanwhile is never replaced: the rows go to ``fallback`` instead);
    :meth:`keep_as` renames it elsewhere (the rows of an interrupted run); :meth:`discard` removes it.
    """

    def __init__(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        self.temporary = Path(temporary_name(self.path.as_posix()))

    def open(self, *, encoding: str = "utf-8", errors: str = "strict") -> IO[str]:
        """Create the temporary file (and missing parent folders); OSError if that place is not writable."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self.temporary.open("w", encoding=encoding, errors=errors, newline="")

    def commit(self, fallback: Path) -> Path:
        """Put the finished file in place; returns where it is (``path``, or ``fallback``, see above)."""
        if self.overwrite:
            os.replace(self.temporary, self.path)
            return self.path
        return self.path if place_new(self.temporary, self.path) else self.keep_as(fallback)

    def keep_as(self, target: Path) -> Path:
        os.replace(self.temporary, target)
        return target

    def discard(self) -> None:
        self.temporary.unlink(missing_ok=True)
