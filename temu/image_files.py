"""Which file names are images: the one list, for folders scored by ``temu score`` and for corpus inputs.

Imports nothing heavy, so readers of a corpus (Ray's reader tasks) do not load torch.
"""

from __future__ import annotations

#: File name endings treated as images when a directory is expanded.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm", ".jfif", ".avif"}
)
