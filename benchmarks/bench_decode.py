"""One image file to a model-ready tensor, stage by stage, in one thread: temu's uint8 pipeline against
the float pipeline it replaced, timed interleaved in one process.

For a 1024x768 JPEG (KonIQ-10k's size) and a 4000x3000 one (a 12 MP phone photo), both made from
scikit-image's astronaut, and a 1024x768 PNG:

- stages of the new path: read the file; Pillow's header and EXIF; decode (torchvision for JPEGs,
  Pillow for the rest); the uint8 bicubic antialiased resize to 448x448 (torchvision);
- the new path end to end (``temu.images.loading.ImageLoader``, exactly what the loader runs);
- the former path: Pillow decode, conversion to float, ``F.interpolate(bicubic, antialias=True)``;
- decoders side by side: Pillow and torchvision on the same file.

    python benchmarks/bench_decode.py --repeats 15
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import environment, table

SIZE = 448


def make_files(folder: Path) -> dict[str, Path]:
    from PIL import Image
    from skimage import data

    photo = Image.fromarray(data.astronaut())
    files = {}
    for label, (w, h), fmt in (
        ("JPEG 1024x768", (1024, 768), "JPEG"),
        ("JPEG 4000x3000 (12 MP)", (4000, 3000), "JPEG"),
        ("PNG 1024x768", (1024, 768), "PNG"),
    ):
        path = folder / f"{w}x{h}.{fmt.lower()}"
        photo.resize((w, h), Image.BICUBIC).save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        files[label] = path
    return files


def stage_functions(path: Path) -> dict[str, Callable[[], object]]:
    from PIL import Image
    from torchvision.io import ImageReadMode, decode_jpeg, decode_png
    from torchvision.transforms.v2.functional import InterpolationMode, resize

    from temu.images.decode import pil_to_pixels, read_orientation, read_pixels
    from temu.images.loading import ImageLoader
    from temu.images.transforms import InputSize

    data = path.read_bytes()
    pixels = read_pixels(path)
    loader = ImageLoader(InputSize(SIZE, (14, 14)))
    tv_decode = decode_jpeg if path.suffix == ".jpeg" else decode_png

    def pillow_decode():
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return pil_to_pixels(img)

    def header():
        with Image.open(io.BytesIO(data)) as img:
            return read_orientation(img, str(path)), img.size

    def former():
        x = pillow_decode().float().div_(255)
        return F.interpolate(x[None], size=(SIZE, SIZE), mode="bicubic", antialias=True, align_corners=False)[0]

    return {
        "read the file": lambda: path.read_bytes(),
        "Pillow header + EXIF orientation": header,
        "decode, Pillow": pillow_decode,
        "decode, torchvision": lambda: tv_decode(
            torch.frombuffer(bytearray(data), dtype=torch.uint8), ImageReadMode.RGB
        ),
        "uint8 resize to 448 (torchvision)": lambda: resize(
            pixels, [SIZE, SIZE], interpolation=InterpolationMode.BICUBIC, antialias=True
        ),
        "temu now: file -> uint8 [3, 448, 448] (ImageLoader)": lambda: loader(path),
        "former: Pillow decode -> float -> F.interpolate": former,
    }


def time_stages(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision")
    torch.set_num_threads(1)
    print(f"# one image to a model-ready tensor, 1 thread, {args.repeats} repeats interleaved (median)")
    print(f"# {environment(torch.device('cpu'))}")
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in make_files(Path(tmp)).items():
            medians = time_stages(stage_functions(path), args.repeats)
            now = medians["temu now: file -> uint8 [3, 448, 448] (ImageLoader)"]
            rows = [[name, f"{1e3 * t:.2f}", f"{t / now:.2f}"] for name, t in medians.items()]
            print(f"\n## {label} ({path.stat().st_size / 1e6:.2f} MB)")
            print(table(rows, ["stage", "ms", "ratio to temu now"]))
    np.random.seed(0)


if __name__ == "__main__":
    main()
