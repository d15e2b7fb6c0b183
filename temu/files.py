"""Writing files so that a reader, or a run killed half-way, never sees a partial file."""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to a temporary name in the same folder (created if needed), then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
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
