"""A small labelled IQA dataset for tests: real photographs with graded synthetic distortions.

Each photograph (skimage.data) gives 10 images: the pristine one, and Gaussian blur, Gaussian
noise and JPEG compression at levels 1-3. The MOS is defined by the distortion level:
``90 - 20 * level``, shifted by a per-distortion offset (noise a little worse, JPEG a little
better), so it is on a 0-100 scale with higher = better.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

KINDS = ("blur", "noise", "jpeg")
LEVELS = (1, 2, 3)
_BLUR_RADIUS = {1: 0.8, 2: 1.6, 3: 3.2}
_NOISE_SIGMA = {1: 10.0, 2: 25.0, 3: 50.0}
_JPEG_QUALITY = {1: 30, 2: 12, 3: 4}
_OFFSET = {"blur": 0.0, "noise": -3.0, "jpeg": 3.0}


def mos_of(kind: str | None, level: int) -> float:
    """The score the dataset gives a distortion ``kind`` at ``level`` (0 = pristine)."""
    if kind is None or level == 0:
        return 90.0
    return 90.0 - 20.0 * level + _OFFSET[kind]


def make_dataset(root: Path, photos: dict[str, np.ndarray], *, size: tuple[int, int] = (80, 64), seed: int = 0) -> Path:
    """Write ``10 * len(photos)`` images under ``root/images`` and ``root/labels.csv`` (columns image, mos).

    size: (width, height) every photograph is resized to before it is distorted.
    Returns the CSV path; image paths in it are relative to ``root``.
    """
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, float]] = []
    for name, array in sorted(photos.items()):
        base = Image.fromarray(array).convert("RGB").resize(size, Image.BICUBIC)
        rel = f"images/{name}_pristine.png"
        base.save(root / rel)
        rows.append((rel, mos_of(None, 0)))
        for kind in KINDS:
            for level in LEVELS:
                if kind == "jpeg":
                    rel = f"images/{name}_{kind}{level}.jpg"
                    base.save(root / rel, quality=_JPEG_QUALITY[level])
                else:
                    if kind == "blur":
                        img = base.filter(ImageFilter.GaussianBlur(_BLUR_RADIUS[level]))
                    else:
                        noisy = np.asarray(base, dtype=np.float64) + rng.normal(
                            0.0, _NOISE_SIGMA[level], (size[1], size[0], 3)
                        )
                        img = Image.fromarray(np.clip(noisy, 0, 255).round().astype(np.uint8))
                    rel = f"images/{name}_{kind}{level}.png"
                    img.save(root / rel)
                rows.append((rel, mos_of(kind, level)))
    csv_path = root / "labels.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "mos"])
        writer.writerows(rows)
    return csv_path
