"""LDG's fidelity: temu's batched CW-SSIM against pyiqa's cw_ssim, same images, same process.

A batch of random images and their locally distorted copies (temu.train.ldg.local_distortion).

    python benchmarks/bench_cwssim.py --batch 32 --size 448
"""

from __future__ import annotations

import argparse
import warnings

import torch
from common import environment, table, time_interleaved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=448)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    warnings.filterwarnings("ignore")

    import pyiqa

    from temu.train.cwssim import cw_ssim
    from temu.train.ldg import local_distortion

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=gen)
    y, _ = local_distortion(x, generator=gen)
    x, y = x.to(device), y.to(device)
    reference = pyiqa.create_metric("cw_ssim", device=device)
    diff = (cw_ssim(y, x).double().cpu() - reference(y, x).flatten().double().cpu()).abs().max().item()
    timings = time_interleaved(
        {"pyiqa cw_ssim": lambda: reference(y, x), "temu cw_ssim (float64)": lambda: cw_ssim(y, x)},
        device=device,
        items=args.batch,
        repeats=args.repeats,
    )
    base = timings["pyiqa cw_ssim"].median
    rows = [
        [t.name, f"{t.median:,.2f}", f"{min(t.seconds):,.2f}..{max(t.seconds):,.2f}", f"{base / t.median:,.1f}"]
        for t in timings.values()
    ]
    print(
        f"# {args.batch} images {args.size}x{args.size} and their locally distorted copies, {args.repeats} repeats (median)"
    )
    print(f"# {environment(device)} | pyiqa {pyiqa.__version__}")
    print(table(rows, ["", "seconds", "min..max s", "speed-up vs pyiqa"]))
    print(f"# max |temu - pyiqa|: {diff:.2e}")


if __name__ == "__main__":
    main()
