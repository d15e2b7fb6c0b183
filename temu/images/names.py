"""Which file names are images and which are videos: the lists for folders scored by ``temu score``
and for corpus inputs.

Imports nothing heavy, so readers of a corpus (Ray's reader tasks) do not load torch.
"""

from __future__ import annotations

import posixpath

#: File name endings (lower case) treated as images when a folder is expanded. HEIC/HEIF are
#: listed although Pillow reads them only with a plugin (pillow-heif): a phone's photos are
#: images, and an error naming the plugin says more than leaving them out.
IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".avif",
        ".ppm", ".pgm", ".pnm", ".ico", ".tga", ".jp2", ".j2k", ".heic", ".heif",
    }
)  # fmt: skip

#: File name endings (lower case) treated as videos when a folder is expanded (read with PyAV,
#: the extra ``temu-iqa[video]``; a file with such a name that Pillow reads is scored as an image).
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi"})


def is_image_name(name: str) -> bool:
    """Whether the file name or ``/``-separated path ``name`` ends in one of :data:`IMAGE_EXTENSIONS`,
    in any case (``.JPG`` too); a dot file's name is not an ending (``.png`` is not an image name)."""
    return posixpath.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def is_video_name(name: str) -> bool:
    """Whether ``name`` ends in one of :data:`VIDEO_EXTENSIONS`, in any case (as :func:`is_image_name`)."""
    return posixpath.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def is_media_name(name: str) -> bool:
    """Whether ``name`` is an image or a video name: what a folder's expansion keeps."""
    return posixpath.splitext(name)[1].lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
