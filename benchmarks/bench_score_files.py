"""End to end from files: temu.iter_scores over a folder of JPEGs against model-only throughput, in one process.

The folder is made from scikit-image's photographs (re-encoded JPEGs at 1024x768, random crops so
every file differs). Rows, all timed interleaved in one process:

- model only: the same model on pixels already decoded, resized (uint8) and on the device;
- input only: the input pipeline ``temu.iter_scores`` builds (``temu.images.loading.load_frame_batches``:
  decode, turn upright, resize as uint8, batch, move to the device), without the model;
- temu.iter_scores from JPEG files: both.

Ratio = images/s / model-only images/s. Goals: >= 0.75 on a CPU (tiny backbone at 448, one thread,
no workers: ``--tiny --image-size 448 --threads 1 --workers 0``), >= 0.8 on a GPU host with 8 workers.
``--sweep-workers`` adds a table of the input-only row by worker count.

    python benchmarks/bench_score_files.py --tiny --image-size 448 --images 48 --batch 16 --workers 0 --threads 1
    python benchmarks/bench_score_files.py --backbone ViT-L-14-quickgelu --image-size 448 --images 512 --batch 64 \\
        --workers 8 --device cuda --sweep-workers 4 8 15 16
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from common import Timing, autocast_for, environment, synchronize, table, temu_models, time_interleaved

MODEL_ONLY = "model only (decoded uint8 pixels on the device)"
INPUT_ONLY = "input only (decode, resize, batch, to the device)"
END_TO_END = "temu.iter_scores from JPEG files"
TINY_CONFIG = Path(__file__).resolve().parent.parent / "tests" / "assets" / "tiny-clip.json"


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


def input_only(model: torch.nn.Module, paths: list[Path], *, batch: int, workers: int) -> Callable[[], int]:
    """A function that runs ``temu.iter_scores``' input pipeline over ``paths`` without the model."""
    from temu.images.loading import load_frame_batches
    from temu.images.sources import Source
    from temu.images.video import VideoSampling

    device = next(model.parameters()).device
    sources = [Source(str(p), path=p) for p in paths]

    def run() -> int:
        n = 0
        batches = load_frame_batches(
            sources, model.input_size, device, batch_size=batch, num_workers=workers, sampling=VideoSampling()
        )
        for frames in batches:
            failed = [end for end in frames.ends if end.error is not None]
            if failed:
                raise RuntimeError(f"{len(failed)} files failed: {failed[0].error}")
            n += sum(len(idx) for idx, _ in frames.batch.groups)
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
) -> dict[str, Timing]:
    """Interleaved timings of the model on decoded pixels, of the input pipeline alone and of
    ``temu.iter_scores`` over ``folder``'s JPEGs."""
    import temu
    from temu.images.loading import ImageLoader

    device = next(model.parameters()).device
    load = ImageLoader(model.input_size)
    decoded = torch.stack([load(p) for p in paths[:batch]]).to(device)
    autocast = autocast_for(device, precision)
    n_workers = resolve_workers(workers, len(paths), batch, device)

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

    fns = {
        MODEL_ONLY: model_only,
        INPUT_ONLY: input_only(model, paths, batch=batch, workers=n_workers),
        END_TO_END: end_to_end,
    }
    return time_interleaved(fns, device=device, items=len(paths), repeats=repeats)


def files_rows(timings: dict[str, Timing]) -> list[list[str]]:
    """Rows ``[pipeline, images/s, seconds, ratio to model only]``."""
    base = timings[MODEL_ONLY].per_second
    return [
        [t.name, f"{t.per_second:,.1f}", f"{t.median:,.2f}", f"{t.per_second / base:.3f}"] for t in timings.values()
    ]


FILES_HEADER = ["pipeline", "images/s", "seconds", "ratio to model only"]


def sweep_rows(
    model: torch.nn.Module, paths: list[Path], *, batch: int, workers: list[int], repeats: int
) -> list[list[str]]:
    """Input-only images/s by worker count: rows ``[workers, images/s]``."""
    device = next(model.parameters()).device
    rows = []
    for n in workers:
        t = time_interleaved(
            {"input": input_only(model, paths, batch=batch, workers=n)},
            device=device,
            items=len(paths),
            repeats=repeats,
        )
        rows.append([str(n), f"{t['input'].per_second:,.1f}"])
    synchronize(device)
    return rows


SWEEP_HEADER = ["workers", "input only (images/s)"]


def defaults_rows(
    model: torch.nn.Module,
    folder: Path,
    n: int,
    *,
    workers: list[int],
    batches: list[int],
    threads: list[int],
    precision: str,
    repeats: int,
) -> list[list[str]]:
    """``temu.iter_scores`` images/s for every (torch threads, workers, batch) combination, interleaved, and
    the ratio to the first combination: how temu's defaults compare with the alternatives."""
    import itertools

    import temu

    device = next(model.parameters()).device
    combos = list(itertools.product(threads, workers, batches))

    def scorer(t: int, w: int, b: int) -> Callable[[], object]:
        def run():
            before = torch.get_num_threads()
            torch.set_num_threads(t)
            try:
                results = list(
                    temu.iter_scores(folder, model, batch_size=b, num_workers=w, precision=precision, progress=False)
                )
            finally:
                torch.set_num_threads(before)
            if len(results) != n:
                raise RuntimeError(f"iter_scores scored {len(results)} of {n} files")
            return results

        return run

    fns = {f"{t} threads, {w} workers, batch {b}": scorer(t, w, b) for t, w, b in combos}
    timings = time_interleaved(fns, device=device, items=n, repeats=repeats)
    base = next(iter(timings.values())).per_second
    return [[name, f"{t.per_second:,.2f}", f"{t.per_second / base:.3f}"] for name, t in timings.items()]


DEFAULTS_HEADER = ["torch threads, DataLoader workers, batch size", "images/s", "ratio to the first row"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--backbone",
        default="ViT-B-16-quickgelu",
        help="open_clip name (random weights); -quickgelu names match OpenAI's weights",
    )
    parser.add_argument(
        "--tiny", action="store_true", help="the test suite's tiny backbone (tests/assets/tiny-clip.json)"
    )
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: temu's choice)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sweep-workers", type=int, nargs="*", default=[], metavar="N", help="input-only by workers")
    parser.add_argument(
        "--defaults",
        nargs=3,
        metavar=("THREADS", "WORKERS", "BATCHES"),
        default=None,
        help="end to end for every combination, e.g. '2,1' '0,1,2' '8,32' (the first combination is the baseline)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")
    backbone = str(TINY_CONFIG) if args.tiny else args.backbone

    (model,) = temu_models(backbone, args.image_size, ["S"], device).values()
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_folder(Path(tmp), args.images)
        timings = files_timings(
            model, Path(tmp), paths, batch=args.batch, workers=args.workers, precision=precision, repeats=args.repeats
        )
        sweep = sweep_rows(model, paths, batch=args.batch, workers=args.sweep_workers, repeats=args.repeats)
        defaults = None
        if args.defaults:
            threads, workers_, batches = ([int(v) for v in text.split(",")] for text in args.defaults)
            defaults = defaults_rows(
                model,
                Path(tmp),
                len(paths),
                workers=workers_,
                batches=batches,
                threads=threads,
                precision=precision,
                repeats=args.repeats,
            )
    workers = resolve_workers(args.workers, args.images, args.batch, device)
    name = "tiny backbone (tests/assets/tiny-clip.json)" if args.tiny else args.backbone
    print(
        f"# {name} @ {args.image_size}, {args.images} JPEGs 1024x768, batch {args.batch}, "
        f"{workers} workers{' (temu default)' if args.workers is None else ''}, {precision}, "
        f"{os.cpu_count()} CPUs, {args.repeats} repeats (median)"
    )
    print(f"# {environment(device)}")
    print(table(files_rows(timings), FILES_HEADER))
    if sweep:
        print()
        print(table(sweep, SWEEP_HEADER))
    if defaults:
        print()
        print(table(defaults, DEFAULTS_HEADER))


if __name__ == "__main__":
    main()
