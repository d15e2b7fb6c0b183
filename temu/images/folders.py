"""Folders -> the image and video files in them, and every entry left out, with the reason.

Folders are expanded by file name: entries whose names end in one of
:data:`~temu.images.names.IMAGE_EXTENSIONS` or :data:`~temu.images.names.VIDEO_EXTENSIONS` are
scored (an unreadable one gets its error like any other file); everything else is a :class:`SkippedEntry`, collected so the caller can say what was
left out (:func:`describe_skipped`). Hidden entries (names starting with ".") inside a folder are
skipped and counted; a hidden file or folder given explicitly is read. With ``recursive=True``
sub-folders are searched too, symbolic links to folders included; a folder reached a second time
(a symbolic link loop) is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ImageReadError, os_reason
from .names import is_media_name

#: Why a folder entry was not scored (:attr:`SkippedEntry.reason`).
NOT_AN_IMAGE = "not an image"
HIDDEN = "hidden"
SUBFOLDER = "sub-folder"
REVISITED = "folder already searched"

#: How :func:`describe_skipped` words each reason (one, many, what).
_SKIP_WORDS = {
    NOT_AN_IMAGE: ("file", "files", "without an image or video extension"),
    HIDDEN: ("hidden entry", "hidden entries", "(name starting with '.')"),
    SUBFOLDER: ("sub-folder", "sub-folders", "(recursive is off)"),
    REVISITED: ("folder", "folders", "already searched (a symbolic link loop)"),
}


@dataclass(frozen=True)
class SkippedEntry:
    """A folder entry that was neither scored nor an error: ``path`` and ``reason``
    (:data:`NOT_AN_IMAGE`, :data:`HIDDEN`, :data:`SUBFOLDER` or :data:`REVISITED`)."""

    path: str
    reason: str


@dataclass(frozen=True)
class FolderEntry:
    """An image- or video-named entry of a folder (``error`` None), or a folder that cannot be listed (``error`` set)."""

    path: Path
    error: ImageReadError | None = None


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


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows symbolic links
    except OSError:
        return False


def folder_entries(directory: Path, *, recursive: bool, skipped: list[SkippedEntry] | None) -> list[FolderEntry]:
    """One :class:`FolderEntry` per image- or video-named entry of ``directory`` (and of its sub-folders when
    ``recursive``), sorted by path; a folder that cannot be listed is an entry with its error."""
    found: list[FolderEntry] = []
    left_out: list[SkippedEntry] = []
    visited: set[tuple[int, int]] = set()
    stack = [directory]
    while stack:
        folder = stack.pop()
        try:
            info = folder.stat()
            if (info.st_dev, info.st_ino) in visited:
                left_out.append(SkippedEntry(str(folder), REVISITED))
                continue
            visited.add((info.st_dev, info.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            found.append(FolderEntry(folder, ImageReadError(folder, f"cannot list the folder ({os_reason(err)})")))
            continue
        subfolders = []
        for entry in entries:
            path = Path(entry.path)
            if entry.name.startswith("."):
                left_out.append(SkippedEntry(str(path), HIDDEN))
            elif _is_dir(entry):
                if recursive:
                    subfolders.append(path)
                elif is_media_name(path.name):  # a folder named like an image: that entry's error
                    found.append(FolderEntry(path))
                else:
                    left_out.append(SkippedEntry(str(path), SUBFOLDER))
            elif is_media_name(path.name):  # broken links, pipes, unreadable files: reading says why
                found.append(FolderEntry(path))
            else:
                left_out.append(SkippedEntry(str(path), NOT_AN_IMAGE))
        stack.extend(reversed(subfolders))
    if skipped is not None:
        skipped.extend(sorted(left_out, key=lambda e: Path(e.path)))
    return sorted(found, key=lambda e: e.path)


def list_images(
    directory: str | os.PathLike[str], *, recursive: bool = False, skipped: list[SkippedEntry] | None = None
) -> list[Path]:
    """Image and video files in a folder (by file name ending), sorted by path.

    Raises :class:`~temu.errors.ImageReadError` naming a folder that cannot be listed. ``skipped``,
    if given, receives the entries left out (see :class:`SkippedEntry`).
    """
    entries = folder_entries(Path(directory), recursive=recursive, skipped=skipped)
    for entry in entries:
        if entry.error is not None:
            raise entry.error
    return [entry.path for entry in entries]
