"""Cost of the data checks of ``temu-finetune`` / ``temu eval`` (``temu.data.check_records``), per image.

Baseline, in the same process: what the full check did before it used the loader's reader,
``PIL.Image.open(path).load()`` (decode only). ``check_records(full=True)`` now reads each image
with ``temu.images.decode.read_image`` (decode, EXIF orientation, conversion to a float tensor), so it
refuses exactly what training would. ``check_records()`` (the default, header only) opens each
image and checks its pixel format. Images: JPEGs re-encoded from scikit-image's photographs at
512x384 (KonIQ-10k's size) and 4000x3000 (a phone photo, as in SPAQ).

    python benchmarks/bench_checks.py --images 64 --large 4
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from common import environment, table, time_interleaved


def make_jpegs(folder: Path, n: int, size: tuple[int, int]) -> list[Path]:
    from PIL import Image
    from skimage import data

    photos = [getattr(data, name)() for name in ("astronaut", "coffee", "chelsea", "rocket")]
    paths = []
    for i in range(n):
        path = folder / f"{size[0]}x{size[1]}_{i:05d}.jpg"
        Image.fromarray(photos[i % len(photos)]).convert("RGB").resize(size).save(path, quality=90)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64, help="512x384 JPEGs")
    parser.add_argument("--large", type=int, default=4, help="4000x3000 JPEGs")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from PIL import Image

    from temu.data import IQARecord, check_records

    def decode_only(paths: list[Path]) -> None:
        for path in paths:
            with Image.open(path) as image:
                image.load()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, size in ((args.images, (512, 384)), (args.large, (4000, 3000))):
            if n < 1:
                continue
            paths = make_jpegs(Path(tmp), n, size)
            records = [IQARecord(p, 50.0, i + 2) for i, p in enumerate(paths)]
            timings = time_interleaved(
                {
                    "decode only (old full check)": lambda paths=paths: decode_only(paths),
                    "check_records(full=True)": lambda records=records: check_records(records, full=True),
                    "check_records() (header)": lambda records=records: check_records(records),
                },
                device=torch.device("cpu"),
                items=n,
                repeats=args.repeats,
            )
            base = timings["decode only (old full check)"].median
            for name, timing in timings.items():
                rows.append(
                    (f"{size[0]}x{size[1]}", name, f"{1000 * timing.median / n:.2f}", f"{timing.median / base:.2f}")
                )
    print(environment(torch.device("cpu")))
    print(table(rows, ["images", "check", "ms per image", "time / decode only"]))


if __name__ == "__main__":
    main()
