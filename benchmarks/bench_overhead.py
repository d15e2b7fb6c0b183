"""Head overhead: TeMuIQA (S, I) against the bare open_clip image encoder, in one process.

Same backbone, resolution, batch, dtype and device; random weights (they time the same as
trained ones). Reports images/s, peak memory (CUDA) and the time ratio temu / encode_image.

    python benchmarks/bench_overhead.py --backbone ViT-B-16 --image-size 224 --batch 8
    python benchmarks/bench_overhead.py --backbone ViT-L-14 --image-size 448 --batch 1
    python benchmarks/bench_overhead.py --backbone ViT-L-14 --image-size 448 --batch 64 --device cuda --precision bf16
    python benchmarks/bench_overhead.py ... --layer-sweep   # CUDA: peak memory against the number of layers
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch
from common import Timing, autocast_for, environment, mib, quickgelu_name, table, temu_models, time_interleaved

OVERHEAD_HEADER = [
    "model",
    "images/s",
    "ms/batch (median)",
    "min..max ms",
    "peak MiB",
    "time / encode_image",
    "time / encode_image (fast path off)",
]


def build(backbone: str, image_size: int, variants: Sequence[str], device: torch.device):
    """(bare open_clip model, {variant: TeMuIQA}) on the architecture OpenAI's weights need, random weights."""
    import open_clip

    name = quickgelu_name(backbone)
    bare = open_clip.create_model(name, pretrained=None, force_image_size=image_size)
    return bare.to(device).eval(), temu_models(name, image_size, variants, device)


def temu_runner(model: torch.nn.Module, x: torch.Tensor, precision: str):
    """A call of ``model`` on ``x`` under inference mode and ``precision``'s autocast."""
    autocast = autocast_for(x.device, precision)

    def run():
        with torch.inference_mode(), autocast:
            return model(x, check_input=False)

    return run


def overhead_timings(
    bare: torch.nn.Module, models: dict[str, torch.nn.Module], x: torch.Tensor, precision: str, repeats: int
) -> dict[str, Timing]:
    """Interleaved timings of encode_image (MHA fast path on and off) and each temu variant on ``x``."""
    any_model = next(iter(models.values()))
    x_norm = any_model.prepare(x)
    autocast = autocast_for(x.device, precision)

    def run_bare():
        with torch.inference_mode(), autocast:
            return bare.encode_image(x_norm)

    def run_bare_sdpa():
        # the same encoder with nn.MultiheadAttention's inference fast path off (temu's blocks use SDPA directly)
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            return run_bare()
        finally:
            torch.backends.mha.set_fastpath_enabled(True)

    fns = {
        "open_clip encode_image": run_bare,
        "open_clip encode_image, MHA fast path off": run_bare_sdpa,
        **{f"temu {v}": temu_runner(m, x, precision) for v, m in models.items()},
    }
    return time_interleaved(fns, device=x.device, items=x.shape[0], repeats=repeats)


def overhead_rows(timings: dict[str, Timing]) -> list[list[str]]:
    """Rows under :data:`OVERHEAD_HEADER`."""
    base = timings["open_clip encode_image"].median
    pure = timings["open_clip encode_image, MHA fast path off"].median
    return [
        [
            t.name,
            f"{t.per_second:,.2f}",
            f"{t.median * 1000:,.1f}",
            f"{min(t.seconds) * 1000:,.1f}..{max(t.seconds) * 1000:,.1f}",
            mib(t.peak_bytes),
            f"{t.median / base:.3f}",
            f"{t.median / pure:.3f}",
        ]
        for t in timings.values()
    ]


def layer_sweep_rows(
    backbone: str, depth: int, x: torch.Tensor, precision: str, repeats: int = 3
) -> list[list[object]]:
    """Rows ``[layers, peak MiB, ms/batch]`` for variant S aggregating the last k of ``depth`` layers (all blocks run).

    One model at a time is built and timed, so the peak memory is that model's weights and its forward.
    """
    from temu import TeMuIQA

    rows: list[list[object]] = []
    for k in sorted({1, depth // 4, depth // 2, depth} - {0}):
        m = TeMuIQA(
            backbone=backbone,
            pretrained=None,
            layers=list(range(depth - k + 1, depth + 1)),
            image_size=x.shape[-1],
        )
        m = m.to(x.device).eval()
        t = time_interleaved({"s": temu_runner(m, x, precision)}, device=x.device, items=x.shape[0], repeats=repeats)
        rows.append([k, mib(t["s"].peak_bytes), f"{t['s'].median * 1000:,.1f}"])
        del m
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="ViT-B-16")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--precision", choices=["fp32", "bf16", "fp16"], default=None, help="default: bf16 on CUDA, fp32 on CPU"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variants", nargs="+", default=["S", "I"])
    parser.add_argument(
        "--layer-sweep", action="store_true", help="CUDA only: peak memory of variant S with 1..all layers"
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")
    if args.layer_sweep and device.type != "cuda":
        raise SystemExit("--layer-sweep measures CUDA peak memory; run it with --device cuda")
    torch.manual_seed(0)

    bare, models = build(args.backbone, args.image_size, args.variants, device)
    x = torch.rand(args.batch, 3, args.image_size, args.image_size, device=device)
    timings = overhead_timings(bare, models, x, precision, args.repeats)
    print(f"# {args.backbone} @ {args.image_size}, batch {args.batch}, {precision}, {args.repeats} repeats (median)")
    print(f"# {environment(device)}")
    print(table(overhead_rows(timings), OVERHEAD_HEADER))
    for v, m in models.items():
        print(f"# temu {v}: {m.num_head_parameters:,} trainable head parameters")

    if args.layer_sweep:
        print("\n# peak memory against the number of aggregated layers (the last k layers, all blocks run)")
        any_model = next(iter(models.values()))
        del bare, models  # the sweep's peak memory is one model's
        rows = layer_sweep_rows(any_model.config.backbone, any_model.backbone.depth, x, precision)
        print(table(rows, ["layers", "peak MiB", "ms/batch"]))


if __name__ == "__main__":
    main()
