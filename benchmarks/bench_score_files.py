"""End to end from files: temu.iter_scores over a folder of JPEGs against model-only throughput,
with images resized in the loader (the CPU path) and on the device (the GPU path), in one process.

The folder is made from scikit-image's photographs (re-encoded JPEGs at about 1024x768, random
crops so every file differs). Rows, all timed interleaved in one process:

- model only: the same model on tensors already decoded, resized and on the device;
- input only, resized in the loader / on the device: the DataLoader that ``temu.iter_scores``
  builds, and the move to the device (plus the device resize), without the model;
- temu.iter_scores from JPEG files, resized in the loader / on the device (``resize_on``).

Ratio = images/s / model-only images/s (goal for iter_scores: >= 0.8 on a 16-core GPU host).
A second table gives one image's CPU time in one thread, as a DataLoader worker spends it:
decoding alone (uint8), plus the float conversion, plus the resize. ``--sweep-workers`` adds a
table of the input-only rows by worker count.

    python benchmarks/bench_score_files.py --backbone ViT-L-14-quickgelu --image-size 448 --images 512 --batch 64 \\
        --workers 16 --device cuda --sweep-workers 4 8 15 16
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from common import Timing, autocast_for, environment, synchronize, table, temu_models, time_interleaved

#: ``resize_on`` values timed, and how the rows name them.
WHERE = {"loader": "resized in the loader", "device": "resized on the device"}
MODEL_ONLY = "model only (decoded tensors)"


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


def resolve_workers(workers: int | None, images: int, batch: int, device: torch.device) -> int:
    """The DataLoader workers ``temu.iter_scores`` uses for ``workers`` (None: its default)."""
    from temu.runtime import default_num_workers

    if workers is not None:
        return workers
    return 0 if images <= batch else default_num_workers(device)


def input_only(
    model: torch.nn.Module, paths: list[Path], *, batch: int, workers: int, resize_on: str
) -> Callable[[], int]:
    """A function that runs ``temu.iter_scores``' input pipeline over ``paths`` without the model
    (:func:`temu.loading.device_batches`: its DataLoader, the move to the device and, with
    ``resize_on="device"``, the device resize)."""
    from temu.images.loading import device_batches, resizes_on_device
    from temu.images.sources import Source

    device = next(model.parameters()).device
    sources = [Source(str(p), path=p) for p in paths]
    on_device = resizes_on_device(resize_on)

    def run() -> int:
        n = 0
        batches = device_batches(
            sources, model.input_size, device, batch_size=batch, num_workers=workers, on_device=on_device
        )
        for groups, failed in batches:
            if failed:
                raise RuntimeError(f"{len(failed)} files failed: {failed[0][1]}")
            n += sum(len(idx) for idx, _ in groups)
        if n != len(paths):
            raise RuntimeError(f"the loader gave {n} of {len(paths)} images")
        return n

    return run


def files_timings(
    model: torch.nn.Module,
    folder: Path,
    paths: list[Path],
    *,
    batch: int,
    workers: int | None,
    precision: str,
    repeats: int,
    resize_on: tuple[str, ...] = ("loader", "device"),
) -> dict[str, Timing]:
    """Interleaved timings of the model on decoded tensors, of the input pipeline alone and of
    ``temu.iter_scores`` over ``folder``'s JPEGs, for each ``resize_on``."""
    import temu

    device = next(model.parameters()).device
    decoded = torch.stack([model.input_size(temu.images.decode.read_image(p)) for p in paths[:batch]]).to(device)
    autocast = autocast_for(device, precision)
    n_workers = resolve_workers(workers, len(paths), batch, device)

    def model_only():
        with torch.inference_mode(), autocast:
            for _ in range(0, len(paths), batch):
                out = model(decoded, check_input=False)
        return out.float().cpu()

    def end_to_end(where: str):
        def run():
            results = list(
                temu.iter_scores(
                    folder,
                    model,
                    batch_size=batch,
                    num_workers=workers,
                    precision=precision,
                    progress=False,
                    resize_on=where,
                )
            )
            if len(results) != len(paths) or any(r.score is None for r in results):
                raise RuntimeError(f"iter_scores scored {len(results)} of {len(paths)} files")
            return results

        return run

    fns = {MODEL_ONLY: model_only}
    for where in resize_on:
        fns[f"input only, {WHERE[where]}"] = input_only(model, paths, batch=batch, workers=n_workers, resize_on=where)
    for where in resize_on:
        fns[f"temu.iter_scores from JPEG files, {WHERE[where]}"] = end_to_end(where)
    return time_interleaved(fns, device=device, items=len(paths), repeats=repeats)


def files_rows(timings: dict[str, Timing]) -> list[list[str]]:
    """Rows ``[pipeline, images/s, seconds, ratio to model only]``."""
    base = timings[MODEL_ONLY].per_second
    return [
        [t.name, f"{t.per_second:,.1f}", f"{t.median:,.2f}", f"{t.per_second / base:.3f}"] for t in timings.values()
    ]


FILES_HEADER = ["pipeline", "images/s", "seconds", "ratio to model only"]


def worker_costs(model: torch.nn.Module, paths: list[Path], *, images: int = 16, repeats: int = 3) -> list[list[str]]:
    """One image's CPU time in one torch thread, as a DataLoader worker spends it: rows
    ``[step, ms/image (median), ratio to decoding alone]``."""
    from temu.images.decode import pixels_to_float, read_image

    size = model.input_size
    steps = {
        "decode to uint8 (resize on the device)": lambda p: read_image(p, keep_uint8=True),
        "decode, to float": lambda p: pixels_to_float(read_image(p, keep_uint8=True)),
        "decode, to float, resize (resize in the loader)": lambda p: size(read_image(p), name=str(p)).contiguous(),
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for fn in steps.values():  # warm-up
            fn(paths[0])
        times: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(repeats):
            for name, fn in steps.items():
                start = time.perf_counter()
                for p in paths[:images]:
                    fn(p)
                times[name].append((time.perf_counter() - start) / min(images, len(paths)))
    finally:
        torch.set_num_threads(threads)
    base = statistics.median(next(iter(times.values())))
    return [
        [name, f"{1e3 * statistics.median(t):.1f}", f"{statistics.median(t) / base:.2f}"] for name, t in times.items()
    ]


COSTS_HEADER = ["one image, 1 thread", "ms/image (median)", "ratio to decoding alone"]


def sweep_rows(
    model: torch.nn.Module, paths: list[Path], *, batch: int, workers: list[int], repeats: int
) -> list[list[str]]:
    """Input-only images/s by worker count, for both places to resize: rows ``[workers, loader, device, device/loader]``."""
    device = next(model.parameters()).device
    rows = []
    for n in workers:
        fns = {where: input_only(model, paths, batch=batch, workers=n, resize_on=where) for where in WHERE}
        t = time_interleaved(fns, device=device, items=len(paths), repeats=repeats)
        loader, dev = t["loader"].per_second, t["device"].per_second
        rows.append([str(n), f"{loader:,.1f}", f"{dev:,.1f}", f"{dev / loader:.2f}"])
    synchronize(device)
    return rows


SWEEP_HEADER = ["workers", "input only, resized in the loader (images/s)", "resized on the device (images/s)", "ratio"]


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
    parser.add_argument("--sweep-workers", type=int, nargs="*", default=[], metavar="N", help="input-only by workers")
    args = parser.parse_args()
    device = torch.device(args.device)
    precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")

    (model,) = temu_models(args.backbone, args.image_size, ["S"], device).values()
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_folder(Path(tmp), args.images)
        timings = files_timings(
            model, Path(tmp), paths, batch=args.batch, workers=args.workers, precision=precision, repeats=args.repeats
        )
        costs = worker_costs(model, paths, repeats=args.repeats)
        sweep = sweep_rows(model, paths, batch=args.batch, workers=args.sweep_workers, repeats=args.repeats)
    workers = resolve_workers(args.workers, args.images, args.batch, device)
    print(
        f"# {args.backbone} @ {args.image_size}, {args.images} JPEGs 1024x768, batch {args.batch}, "
        f"{workers} workers{' (temu default)' if args.workers is None else ''}, {precision}, "
        f"{os.cpu_count()} CPUs, {args.repeats} repeats (median)"
    )
    print(f"# {environment(device)}")
    print(table(files_rows(timings), FILES_HEADER))
    print()
    print(table(costs, COSTS_HEADER))
    if sweep:
        print()
        print(table(sweep, SWEEP_HEADER))


if __name__ == "__main__":
    main()
