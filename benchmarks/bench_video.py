"""Videos: frames scored per second and peak memory, for clips made here with PyAV, with a tiny model.

Two clips are generated in a temporary folder (H.264, 1920x1080, 30 fps):

- a 60 s clip of a photograph panning across the frame (x264 ``veryfast``, CRF 23), scored at
  ``fps=1``, at every frame (``frames="all"``) and at ``frames=8`` (sparse: the reader seeks);
- a 10-minute clip of a simple moving pattern (x264 ``ultrafast``, 1 Mbit/s: quick to make on two
  cores), scored at ``fps=1``: the issue asks for a peak RSS under 1.5 GB.

Every run is a fresh subprocess (``--child``), so its peak RSS (``ru_maxrss``) is its own; decoding
runs in that process (``num_workers=0``, the default on a CPU). The baseline, run the same way,
decodes every frame of the clip with plain PyAV to rgb24 arrays and drops them: the ratio is a
run's time over the baseline's (fps=1 decodes every frame too: the reader seeks only over gaps
longer than ``SEEK_GAP``). RSS over the model: peak RSS less the RSS once torch, PyAV and the model
are loaded (for the baseline: torch and PyAV).

    python benchmarks/bench_video.py                 # both clips, 2 interleaved repeats of the 60 s runs
    python benchmarks/bench_video.py --long-minutes 0 --repeats 1   # the 60 s clip only
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
TINY_CONFIG = REPO / "tests" / "assets" / "tiny-clip.json"
W, H, RATE = 1920, 1080, 30
BASELINE = "PyAV decode only (every frame to rgb24)"
#: the runs on the 60 s clip: name -> child arguments
RUNS = {
    BASELINE: ["decode"],
    "temu fps=1": ["score", "--fps", "1"],
    "temu frames=8 (seeks)": ["score", "--frames", "8"],
    "temu frames=all": ["score", "--frames", "all"],
}
LIMIT_BYTES = 1.5e9


def make_photo_clip(path: Path, seconds: int) -> None:
    """A photograph (scikit-image's astronaut, upscaled) panning right and down, veryfast CRF 23."""
    import av
    from PIL import Image
    from skimage import data

    big = np.asarray(Image.fromarray(data.astronaut()).resize((W + 2 * seconds * RATE, H + seconds * RATE)))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=RATE, options={"preset": "veryfast", "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(seconds * RATE):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(big[i // 2 : i // 2 + H, 2 * i : 2 * i + W]))
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_pattern_clip(path: Path, seconds: int) -> None:
    """Grey stripes with a bright bar moving across, ultrafast at 1 Mbit/s: minutes of 1080p made quickly."""
    import av

    luma = np.tile((np.arange(W) // 64 % 4 * 40 + 40).astype(np.uint8), (H, 1))
    planes = np.concatenate([luma, np.full((H // 2, W), 128, np.uint8)])  # yuv420p: Y, then U and V
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=RATE, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.bit_rate = 1_000_000
        for i in range(seconds * RATE):
            x = (8 * i) % (W - 80)
            saved = planes[:H, x : x + 80].copy()
            planes[:H, x : x + 80] = 235
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            planes[:H, x : x + 80] = saved
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def rss_now() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def child(args: argparse.Namespace) -> None:
    """One run in this process; prints a JSON line: frames, seconds, peak and loaded RSS in bytes."""
    import resource
    import warnings

    import av
    import torch

    torch.set_num_threads(args.threads)
    loaded = rss_now()
    if args.mode == "decode":
        start = time.perf_counter()
        frames = 0
        with av.open(args.clip) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                frame.to_ndarray(format="rgb24")
                frames += 1
    else:
        import temu

        warnings.filterwarnings("ignore", message="TeMuIQA backbone .* has random weights")
        model = temu.TeMuIQA(backbone=str(TINY_CONFIG), pretrained=None, image_size=args.image_size).eval()
        frames_arg = None if args.frames is None else ("all" if args.frames == "all" else int(args.frames))
        loaded = rss_now()
        start = time.perf_counter()
        result = temu.score_video(
            args.clip, model=model, fps=args.fps, frames=frames_arg, batch_size=args.batch, num_workers=0
        )
        frames = result.frames
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"frames": frames, "seconds": seconds, "peak": peak, "loaded": loaded}))


def run_child(clip: Path, extra: list[str], args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", str(clip), "--threads", str(args.threads)]
    command += ["--image-size", str(args.image_size), "--batch", str(args.batch), "--mode", *extra]
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=60, help="length of the photo clip")
    parser.add_argument("--long-minutes", type=float, default=10, help="length of the pattern clip (0: skip it)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds of the photo clip's runs")
    parser.add_argument("--image-size", type=int, default=64, help="the tiny model's input size (as in the tests)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="torch threads in each run")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--fps", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--frames", default=None, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child is not None:
        args.clip = args.child
        return child(args)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import av
    import torch
    from common import table

    import temu

    print(
        f"# {time.strftime('%Y-%m-%d')} | {torch.get_num_threads()}-thread CPU | torch {torch.__version__} | "
        f"av {av.__version__} | temu {temu.__version__} | tiny backbone (tests/assets/tiny-clip.json), "
        f"image_size={args.image_size}, batch {args.batch}, {args.threads} torch threads per run"
    )
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo-60s.mp4"
        start = time.perf_counter()
        make_photo_clip(photo, args.seconds)
        print(
            f"\nmade a {args.seconds} s 1080p clip in {time.perf_counter() - start:.0f} s ({photo.stat().st_size / 1e6:.1f} MB)"
        )
        results: dict[str, list[dict]] = {name: [] for name in RUNS}
        for _ in range(args.repeats):
            for name, extra in RUNS.items():
                results[name].append(run_child(photo, extra, args))
        base = statistics.median(r["seconds"] for r in results[BASELINE])
        rows = []
        for name, runs in results.items():
            seconds = statistics.median(r["seconds"] for r in runs)
            peak = max(r["peak"] for r in runs)
            over = max(r["peak"] - r["loaded"] for r in runs)
            frames = runs[0]["frames"]
            rows.append(
                [name, frames, f"{seconds:.1f}", f"{frames / seconds:.1f}", f"{args.seconds / seconds:.2f}",
                 mib(peak), mib(over), f"{seconds / base:.2f}"]
            )  # fmt: skip
        print(f"\n## {args.seconds} s 1080p H.264 clip, 30 fps ({args.repeats} interleaved runs, median time)\n")
        header = ["run", "frames", "seconds", "frames/s", "clip s per s", "peak RSS MiB", "RSS over model MiB"]
        print(table(rows, [*header, "time / decode only"]))

        if args.long_minutes > 0:
            seconds = round(args.long_minutes * 60)
            long = Path(tmp) / "pattern-long.mp4"
            start = time.perf_counter()
            make_pattern_clip(long, seconds)
            made = time.perf_counter() - start
            print(f"\nmade a {seconds} s 1080p clip in {made:.0f} s ({long.stat().st_size / 1e6:.1f} MB)")
            runs = {name: run_child(long, RUNS[name], args) for name in (BASELINE, "temu fps=1")}
            rows = []
            for name, r in runs.items():
                verdict = "yes" if r["peak"] < LIMIT_BYTES else "NO"
                rows.append(
                    [name, r["frames"], f"{r['seconds']:.1f}", f"{r['frames'] / r['seconds']:.1f}", mib(r["peak"]),
                     mib(r["peak"] - r["loaded"]), verdict, f"{r['seconds'] / runs[BASELINE]['seconds']:.2f}"]
                )  # fmt: skip
            print(f"\n## {seconds / 60:g}-minute 1080p H.264 clip, 30 fps, low complexity\n")
            header = ["run", "frames", "seconds", "frames/s", "peak RSS MiB", "RSS over model MiB"]
            print(table(rows, [*header, "peak < 1.5 GB", "time / decode only"]))


if __name__ == "__main__":
    main()
