"""LDG's local distortion: the batched, masked RandAugment against a per-crop loop over torchvision's RandAugment.

Both make what the trainer's step needs: one random box per image (sides in [40, 150] px at 448, as
LDG draws them), RandAugment(num_ops=6, magnitude=18) with its own op sequence per image inside the box,
pasted back into a copy of the batch. Timed interleaved in one process, on the same images:

* batched masked: temu's former ``temu.train.augment`` + ``local_distortion`` (read from git at
  ``--batched-ref``): each box gathered into a canvas of the batch's largest box, the 14 ops applied
  slot by slot to the images that drew them, under the box mask, then pasted back;
* torchvision loop: ``temu.train.ldg.local_distortion`` as it is now: for each image, crop the box,
  ``torchvision.transforms.v2.RandAugment`` on the float crop, paste back; the draws inside
  ``torch.random.fork_rng`` seeded per step.

The batched code was measured slower on the CPU and removed; this script keeps the comparison
runnable (on a GPU too) from git history.

torchvision v2's RandAugment takes float tensors in [0, 1] as they are: Posterize keeps
floor(x * 2^bits) / 2^bits, Solarize's threshold is a fraction of 1.0, Equalize converts to uint8
and back, the other ops stay in float. The batched code does the same ops on round(255 * x), so
both do one op of the same kind per draw on the same float input: a like-for-like comparison.

    python benchmarks/bench_randaugment.py --batch 32 --size 448 --device cpu
    python benchmarks/bench_randaugment.py --batch 32 --size 448 --device cuda
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import torch
from common import environment, table, time_interleaved

REPO = Path(__file__).resolve().parent.parent


def load_batched(ref: str, src: Path | None = None):
    """The batched ``local_distortion`` as of git revision ``ref`` (temu/train/{augment,ldg}.py), as modules of
    temu.train; from the folder ``src`` (holding ``augment.py`` and ``ldg.py`` of that revision) where git is absent."""
    import temu.train

    def source(path: str) -> str:
        if src is not None:
            return (src / Path(path).name).read_text(encoding="utf-8")
        return subprocess.run(
            ["git", "show", f"{ref}:{path}"], cwd=REPO, check=True, capture_output=True, text=True
        ).stdout

    modules = {}
    for name, path in (("_batched_augment", "temu/train/augment.py"), ("_batched_ldg", "temu/train/ldg.py")):
        text = source(path).replace("from .augment import", "from ._batched_augment import")
        spec = importlib.util.spec_from_loader(f"temu.train.{name}", loader=None)
        module = importlib.util.module_from_spec(spec)
        module.__package__ = "temu.train"
        sys.modules[spec.name] = module
        exec(compile(text, f"{ref}:{path}", "exec"), module.__dict__)
        setattr(temu.train, name, module)
        modules[name] = module
    return modules["_batched_ldg"].local_distortion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=448)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batched-ref", default="b4083ca", help="git revision with the batched temu/train/augment.py")
    parser.add_argument(
        "--batched-src",
        type=Path,
        default=None,
        metavar="DIR",
        help="a folder with that revision's augment.py and ldg.py, for machines without the git history "
        "(git show b4083ca:temu/train/augment.py > DIR/augment.py; the same for ldg.py)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)

    from temu.train.ldg import local_distortion

    batched = load_batched(args.batched_ref, args.batched_src)
    images = torch.rand(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)).to(device)
    step = {"n": 0}

    def next_generator() -> torch.Generator:  # a new seed per call, as the trainer's steps draw new boxes and ops
        step["n"] += 1
        return torch.Generator(device=device).manual_seed(step["n"])

    fns = {
        f"batched masked (git {args.batched_ref})": lambda: batched(images, generator=next_generator()),
        "torchvision v2 RandAugment, loop over crops (temu now)": lambda: local_distortion(
            images, generator=next_generator()
        ),
    }
    timings = time_interleaved(fns, device=device, items=args.batch, repeats=args.repeats)
    base = timings[next(iter(fns))].median
    rows = [
        [
            t.name,
            f"{1e3 * t.median:,.1f}",
            f"{1e3 * min(t.seconds):,.1f}..{1e3 * max(t.seconds):,.1f}",
            f"{t.per_second:,.1f}",
            f"{base / t.median:,.2f}",
        ]
        for t in timings.values()
    ]
    print(
        f"# LDG local distortion, batch {args.batch}, {args.size}x{args.size}, boxes [40, 150] px at 448, "
        f"RandAugment N=6 M=18, {args.repeats} repeats interleaved (median)"
    )
    print(f"# {environment(device)}")
    print(table(rows, ["implementation", "ms / batch", "min..max ms", "images/s", "speed-up vs batched"]))


if __name__ == "__main__":
    main()
