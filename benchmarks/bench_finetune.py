"""Fine-tuning speed: the trainer's optimisation step with LDG on and off, against an inference forward.

Times ``Trainer._step`` (local distortion + CW-SSIM + one backbone pass over 2N images + head
backward + Adam step) on a batch already on the device, and the inference forward of the same
N images in the same process as the baseline. Data loading is not included. Then estimates a
KonIQ-10k run (7,058 training and 1,000 validation images, 30 epochs) on this device from the
measured step times: 30 x (floor(7058 / B) x t_step + ceil(1000 / B) x t_forward).

    python benchmarks/bench_finetune.py --backbone ViT-B-16 --image-size 224 --batch 8
    python benchmarks/bench_finetune.py --backbone ViT-L-14 --image-size 448 --batch 32 --device cuda
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import numpy as np
import torch
from common import Timing, environment, table, temu_models, time_interleaved


def finetune_timings(
    model: torch.nn.Module, *, batch: int, image_size: int, precision: str, repeats: int
) -> dict[str, Timing]:
    """Interleaved timings of an inference forward of N images and of ``Trainer._step`` with LDG off and on."""
    from PIL import Image

    from temu.data import IQARecord, MOSScale
    from temu.precision import autocast_context
    from temu.train import TrainConfig, Trainer
    from temu.train.distributed import DistInfo

    device = next(model.parameters()).device
    with tempfile.TemporaryDirectory() as tmp:
        # the Trainer wants records on disk; the timed steps use an in-memory batch
        records = []
        for i in range(batch + 2):
            path = Path(tmp) / f"{i}.png"
            Image.fromarray(np.full((8, 8, 3), i * 20 % 255, np.uint8)).save(path)
            records.append(IQARecord(path=path, mos=float(i), row=i + 2))
        scale = MOSScale.fit([r.mos for r in records])
        trainers = {
            ldg: Trainer(
                model,
                records[:-2],
                records[-2:],
                scale,
                TrainConfig(batch_size=batch, ldg=ldg, precision=precision),
                Path(tmp) / f"run-{ldg}",
                info=DistInfo(device=device),  # the Trainer moves the model to its device: keep the model's
                progress=False,
            )
            for ldg in (True, False)
        }
        x = torch.rand(batch, 3, image_size, image_size, generator=torch.Generator().manual_seed(0)).to(device)
        y = torch.rand(batch).to(device)
        autocast = autocast_context(device, precision)

        def step(ldg: bool):
            trainer = trainers[ldg]
            generator = trainer.ldg_generator(0) if ldg else None
            return lambda: trainer._step(x, y, generator, autocast)

        def forward():
            with torch.inference_mode(), autocast:
                return model(x, check_input=False)

        return time_interleaved(
            {
                "inference forward (N)": forward,
                "train step, LDG off (N)": step(False),
                "train step, LDG on (2N)": step(True),
            },
            device=device,
            items=batch,
            repeats=repeats,
        )


FINETUNE_HEADER = ["", "steps/s", "ms/step", "images/s", "time / forward"]


def finetune_rows(timings: dict[str, Timing]) -> list[list[str]]:
    """Rows under :data:`FINETUNE_HEADER`."""
    base = timings["inference forward (N)"].median
    return [
        [t.name, f"{1 / t.median:,.3f}", f"{t.median * 1000:,.0f}", f"{t.per_second:,.2f}", f"{t.median / base:.2f}"]
        for t in timings.values()
    ]


def koniq_lines(timings: dict[str, Timing], batch: int) -> list[str]:
    """The KonIQ-10k 30-epoch time implied by the measured step and forward times, LDG on and off."""
    base = timings["inference forward (N)"].median
    steps = 7058 // batch
    val_batches = math.ceil(1000 / batch)
    lines = []
    for ldg, name in ((True, "train step, LDG on (2N)"), (False, "train step, LDG off (N)")):
        epoch = steps * timings[name].median + val_batches * base
        lines.append(
            f"# KonIQ-10k on this device, LDG {'on' if ldg else 'off'}: {steps} steps x {timings[name].median:.3f} s + "
            f"{val_batches} val batches x {base:.3f} s = {epoch / 60:,.1f} min per epoch, {30 * epoch / 3600:,.2f} h for 30 epochs"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--backbone",
        default="ViT-B-16-quickgelu",
        help="open_clip name (random weights); -quickgelu names match OpenAI's weights",
    )
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--variant", default="S")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)

    torch.manual_seed(0)
    (model,) = temu_models(args.backbone, args.image_size, [args.variant], device).values()
    timings = finetune_timings(
        model, batch=args.batch, image_size=args.image_size, precision=args.precision, repeats=args.repeats
    )
    print(
        f"# {args.backbone} @ {args.image_size}, variant {args.variant}, batch {args.batch}, precision {args.precision}, {args.repeats} repeats (median)"
    )
    print(f"# {environment(device)}")
    print(table(finetune_rows(timings), FINETUNE_HEADER))
    print("\n".join(koniq_lines(timings, args.batch)))


if __name__ == "__main__":
    main()
