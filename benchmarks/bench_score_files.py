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
from pathlib import Path

import numpy as np
import torch
from common import Timing, autocast_for, environment, table, temu_models, time_interleaved


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


def files_timings(
    model: torch.nn.Module,
    folder: Path,
    paths: list[Path],
    *,
    batch: int,
    workers: int | None,
    precision: str,
    repeats: int,
) -> dict[str, Timing]:
    """Interleaved timings of the model on decoded tensors and of ``temu.iter_scores`` over ``folder``'s JPEGs."""
    import temu

    device = next(model.parameters()).device
    decoded = torch.stack([model.input_size(temu.read_image(p)) for p in paths[:batch]]).to(device)
    autocast = autocast_for(device, precision)

    def model_only():
        with torch.inference_mode(), autocast:
            for _ in range(0, len(paths), batch):
                out = model(decoded, check_input=False)
        return out.float().cpu()

    def end_to_end():
        results = list(
            temu.iter_scores(folder, model, batch_size=batch, num_workers=workers, precision=precision, progress=False)
        )
        if len(results) != len(paths) or any(r.score is None for r in results):
            raise RuntimeError(f"iter_scores scored {len(results)} of {len(paths)} files")
        return results

    return time_interleaved(
        {"model only (decoded tensors)": model_only, "temu.iter_scores from JPEG files": end_to_end},
        device=device,
        items=len(paths),
        repeats=repeats,
    )


def files_rows(timings: dict[str, Timing]) -> list[list[str]]:
    """Rows ``[pipeline, images/s, seconds, ratio to model only]``."""
    base = timings["model only (decoded tensors)"].per_second
    return [
        [t.name, f"{t.per_second:,.1f}", f"{t.median:,.2f}", f"{t.per_second / base:.3f}"] for t in timings.values()
    ]


FILES_HEADER = ["pipeline", "images/s", "seconds", "ratio to model only"]


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

    (model,) = temu_models(args.backbone, args.image_size, ["S"], device).values()
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_folder(Path(tmp), args.images)
        timings = files_timings(
            model, Path(tmp), paths, batch=args.batch, workers=args.workers, precision=precision, repeats=args.repeats
        )
    workers = args.workers if args.workers is not None else "auto"
    print(
        f"# {args.backbone} @ {args.image_size}, {args.images} JPEGs 1024x768, batch {args.batch}, workers {workers}, {precision}, {os.cpu_count()} CPUs"
    )
    print(f"# {environment(device)}")
    print(table(files_rows(timings), FILES_HEADER))


if __name__ == "__main__":
    main()
