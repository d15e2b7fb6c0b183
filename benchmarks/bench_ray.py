"""``temu score --engine ray`` against ``temu score`` on the same JPEG files, end to end, as a user runs them.

Each run is a fresh ``temu`` process, timed from start to exit (Python start, imports, model
load, Ray start, scoring, writing). Three ways over the same folder:

- ``temu score DIR --output x.csv``: one file, DataLoader workers (the baseline);
- ``temu score DIR --output out/``: corpus mode, this process (shards, decoding on threads);
- ``temu score DIR --output out/ --engine ray``: Ray Data on a local Ray (readers, one scoring actor per
  GPU or one CPU actor).

Each runs on ``--small`` and on ``--images`` files; the difference gives the steady-state rate
(images/s between the two sizes) and the fixed start-up cost (the small run's time less its
images at that rate). The backbone has random weights, saved once so every run uses the same
ones; the scores of the three ways are compared at the end.

    python benchmarks/bench_ray.py                                  # tiny backbone at 64 px, CPU
    python benchmarks/bench_ray.py --backbone ViT-B-32-quickgelu --image-size 224 --device cuda
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from common import environment, table

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "tests" / "assets" / "tiny-clip.json"


def make_images(folder: Path, n: int, size: tuple[int, int], seed: int = 0) -> None:
    """``n`` JPEGs (quality 90) cropped at random from scikit-image's photographs, every file different."""
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    photos = [
        Image.fromarray(getattr(data, name)()).convert("RGB").resize((w * 5 // 4, h * 5 // 4))
        for name in ("astronaut", "coffee", "chelsea", "rocket")
    ]
    for i in range(n):
        left, top = int(rng.integers(0, w // 4)), int(rng.integers(0, h // 4))
        photos[i % 4].crop((left, top, left + w, top + h)).save(folder / f"img_{i:06d}.jpg", quality=90)


def make_head(folder: Path, backbone: str, image_size: int) -> Path:
    """A head folder whose backbone is a saved random-weight checkpoint (same weights in every process)."""
    import open_clip
    from safetensors.torch import save_file

    import temu

    name = backbone
    if backbone.endswith(".json"):
        open_clip.add_model_config(backbone)
        name = Path(backbone).stem
    torch.manual_seed(0)
    clip = open_clip.create_model(name, pretrained=None)
    checkpoint = folder / "backbone.safetensors"
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(checkpoint))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = temu.TeMuIQA(backbone=backbone, pretrained=str(checkpoint), image_size=image_size)
    return model.save_pretrained(folder / "head")


def run(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "temu.cli", *argv], cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: temu {' '.join(argv)}\n{proc.stderr[-3000:]}")
    return seconds


def read_scores(path: Path) -> dict[str, float]:
    if path.suffix == ".csv":
        with path.open() as f:
            return {Path(r["path"]).name: float(r["score"]) for r in csv.DictReader(f)}
    import pyarrow.parquet as pq

    rows = pq.read_table(path).to_pylist()
    return {Path(r["id"]).name: r["score"] for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default=str(TINY), help="open_clip name or model-config JSON (random weights)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--small", type=int, default=200, help="images of the small run (start-up cost)")
    parser.add_argument("--jpeg-size", default="640x480", help="WxH of the JPEG files")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    w, h = (int(v) for v in args.jpeg_size.split("x"))
    device = torch.device(args.device)
    gpu = ["--gpus-per-worker", "1"] if args.device == "cuda" else ["--gpus-per-worker", "0"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        head = make_head(tmp, args.backbone, args.image_size)
        make_images(tmp / "all", args.images, (w, h))
        (tmp / "small").mkdir()
        for p in sorted((tmp / "all").iterdir())[: args.small]:
            (tmp / "small" / p.name).symlink_to(p)
        common = ["--model", str(head), "--batch-size", str(args.batch), "-q"]
        ways = {
            "temu score --output x.csv (baseline)": lambda d, o: [
                "score",
                d,
                "--output",
                f"{o}.csv",
                "--device",
                args.device,
                *common,
            ],
            "temu score --output DIR/ (corpus, this process)": lambda d, o: [
                "score",
                d,
                "--output",
                f"{o}-local/",
                "--device",
                args.device,
                *common,
            ],
            "temu score --output DIR/ --engine ray": lambda d, o: [
                "score",
                d,
                "--output",
                f"{o}-ray/",
                "--engine",
                "ray",
                *gpu,
                *common,
            ],
        }
        seconds: dict[tuple[str, str], float] = {}
        for size in ("small", "all"):
            for name, argv in ways.items():  # interleaved: load drift hits every way alike
                seconds[name, size] = run(argv(str(tmp / size), str(tmp / f"out-{size}")), tmp)
                print(f"# {name}, {size}: {seconds[name, size]:.1f} s", file=sys.stderr)
        scores = [read_scores(tmp / p) for p in ("out-all.csv", "out-all-local", "out-all-ray")]
    n1, n2 = args.small, args.images
    rows = []
    base_rate = None
    for name in ways:
        t1, t2 = seconds[name, "small"], seconds[name, "all"]
        rate = (n2 - n1) / (t2 - t1)
        base_rate = base_rate or rate
        fixed = t1 - n1 / rate
        rows.append(
            [name, f"{t1:.1f}", f"{t2:.1f}", f"{n2 / t2:.1f}", f"{fixed:.1f}", f"{rate:.1f}", f"{rate / base_rate:.2f}"]
        )
    diff = max(abs(scores[0][k] - s[k]) for s in scores[1:] for k in scores[0])
    print(
        f"# {Path(args.backbone).stem} @ {args.image_size}, JPEGs {w}x{h}, batch {args.batch}, {args.device}, "
        f"{os.cpu_count()} CPUs; {n1} and {n2} images"
    )
    print(f"# {environment(device)}")
    print(
        table(
            rows,
            [
                "way",
                f"s, {n1} images",
                f"s, {n2} images",
                f"images/s over {n2}",
                "fixed start-up s",
                "steady images/s",
                "steady / baseline",
            ],
        )
    )
    print(f"# largest score difference between the ways: {diff:.2e}")


if __name__ == "__main__":
    main()
