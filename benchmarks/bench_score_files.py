"""End to end from files: temu.iter_scores over a folder of JPEGs against model-only throughput.

The folder is made from scikit-image's photographs (re-encoded JPEGs at about 1024x768, random
crops so every file differs). Model-only = the same model on tensors already decoded, resized and
on the device. Ratio = end-to-end images/s / model-only images/s (goal: >= 0.8 on a 16-core GPU host).

    python benchmarks/bench_score_files.py --backbone ViT-L-14 --image-size 448 --images 512 --batch 64 --workers 12
"""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from common import autocast_for, environment, table, time_interleaved


def make_folder(folder: Path, n: int, seed: int = 0) -> list[Path]:
    from PIL import Image
    from skimage import data

    rng = np.random.default_rng(seed)
    photos = [
        Image.fromarray(getattr(data, name)()).convert("RGB").resize((1280, 960))
        for name in ("astronaut", "coffee", "chelsea", "rocket")
    ]
    paths = []
    for i in range(n):
        img = photos[i % len(photos)]
        left, top = int(rng.integers(0, 256)), int(rng.integers(0, 192))
        path = folder / f"img_{i:06d}.jpg"
        img.crop((left, top, left + 1024, top + 768)).save(path, quality=90)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--backbone",
        default="ViT-B-16-quickgelu",
        help="open_clip name (random weights); -quickgelu names match OpenAI's weights",
    )
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: temu's choice)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")

    import temu

    warnings.filterwarnings("ignore", message="TeMuIQA backbone .* has random weights")
    model = temu.TeMuIQA(backbone=args.backbone, pretrained=None, image_size=args.image_size).to(device).eval()
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_folder(Path(tmp), args.images)
        decoded = torch.stack([model.input_size(temu.read_image(p)) for p in paths[: args.batch]]).to(device)
        autocast = autocast_for(device, precision)

        def model_only():
            with torch.inference_mode(), autocast:
                for _ in range(0, args.images, args.batch):
                    out = model(decoded, check_input=False)
            return out.float().cpu()

        def end_to_end():
            return [
                r.score
                for r in temu.iter_scores(
                    tmp, model, batch_size=args.batch, num_workers=args.workers, precision=precision, progress=False
                )
            ]

        timings = time_interleaved(
            {"model only (decoded tensors)": model_only, "temu.iter_scores from JPEG files": end_to_end},
            device=device,
            items=args.images,
            repeats=args.repeats,
        )
    base = timings["model only (decoded tensors)"].per_second
    rows = [
        [t.name, f"{t.per_second:,.1f}", f"{t.median:,.2f}", f"{t.per_second / base:.3f}"] for t in timings.values()
    ]
    workers = args.workers if args.workers is not None else "auto"
    print(
        f"# {args.backbone} @ {args.image_size}, {args.images} JPEGs 1024x768, batch {args.batch}, workers {workers}, {precision}, {os.cpu_count()} CPUs"
    )
    print(f"# {environment(device)}")
    print(table(rows, ["pipeline", "images/s", "seconds", "ratio to model only"]))


if __name__ == "__main__":
    main()
