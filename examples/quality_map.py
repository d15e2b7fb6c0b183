"""Draw where an image looks good or bad: the patch-score map blended over the image.

    python examples/quality_map.py IMAGE [--model temu-iqa-s] [--out quality_map.png]

Red patches score low, green ones high. The output shows the image, the overlay and the
patch-weight map (how much each patch counts in the final score) side by side.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image

import temu
import temu.images.decode
from temu.plots import colorize, quality_overlay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image")
    parser.add_argument("--model", default="temu-iqa-s", help="preset, head directory or Hub repo id")
    parser.add_argument("--out", default="quality_map.png")
    args = parser.parse_args()

    model = temu.load(args.model)
    image = temu.images.decode.read_image(args.image)  # [3, H, W] floats in [0, 1]
    with torch.inference_mode():
        out = model(image.unsqueeze(0), return_maps=True)
    score_map, weight_map = out.score_map[0].numpy(), out.weight_map[0].numpy()

    overlay = quality_overlay(image, score_map)
    weights = weight_map / weight_map.max()
    weights_img = Image.fromarray((colorize(weights) * 255).astype(np.uint8)).resize(overlay.size, Image.NEAREST)
    original = Image.fromarray((image.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
    canvas = Image.new("RGB", (overlay.width * 3, overlay.height))
    for i, panel in enumerate([original, overlay, weights_img]):
        canvas.paste(panel, (i * overlay.width, 0))
    canvas.save(args.out)
    print(
        f"score {float(out.score[0]):.4f}; patch scores {score_map.min():.3f}..{score_map.max():.3f}; wrote {args.out}"
    )


if __name__ == "__main__":
    main()
