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
import warnings

import torch
from common import autocast_for, environment, mib, table, time_interleaved


def build(args: argparse.Namespace, device: torch.device):
    import open_clip

    from temu import TeMuIQA
    from temu.backbone import resolve_backbone

    warnings.filterwarnings("ignore", message="TeMuIQA backbone .* has random weights")
    # the architecture OpenAI's weights need (QuickGELU), for both sides, with random weights
    name = args.backbone
    if name in open_clip.list_models() and resolve_backbone(name, "openai", load_weights=False).force_quick_gelu:
        name = f"{name}-quickgelu"
    bare = open_clip.create_model(name, pretrained=None, force_image_size=args.image_size)
    bare = bare.to(device).eval()
    models = {}
    for variant in args.variants:
        m = TeMuIQA(backbone=name, pretrained=None, variant=variant, image_size=args.image_size)
        models[variant] = m.to(device).eval()
    return bare, models


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
    torch.manual_seed(0)

    bare, models = build(args, device)
    any_model = next(iter(models.values()))
    x = torch.rand(args.batch, 3, args.image_size, args.image_size, device=device)
    x_norm = any_model.prepare(x)
    autocast = autocast_for(device, precision)

    def run_bare():
        with torch.inference_mode(), autocast:
            return bare.encode_image(x_norm)

    def runner(m):
        def run():
            with torch.inference_mode(), autocast:
                return m(x, check_input=False)

        return run

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
        **{f"temu {v}": runner(m) for v, m in models.items()},
    }
    timings = time_interleaved(fns, device=device, items=args.batch, repeats=args.repeats)
    base = timings["open_clip encode_image"].median
    pure = timings["open_clip encode_image, MHA fast path off"].median
    rows = [
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
    print(f"# {args.backbone} @ {args.image_size}, batch {args.batch}, {precision}, {args.repeats} repeats (median)")
    print(f"# {environment(device)}")
    print(
        table(
            rows,
            [
                "model",
                "images/s",
                "ms/batch (median)",
                "min..max ms",
                "peak MiB",
                "time / encode_image",
                "time / encode_image (fast path off)",
            ],
        )
    )
    for v, m in models.items():
        print(f"# temu {v}: {m.num_head_parameters:,} trainable head parameters")

    if args.layer_sweep:
        if device.type != "cuda":
            raise SystemExit("--layer-sweep measures CUDA peak memory; run it with --device cuda")
        from temu import TeMuIQA

        depth = any_model.backbone.depth
        rows = []
        for k in sorted({1, depth // 4, depth // 2, depth}):
            m = TeMuIQA(
                backbone=any_model.config.backbone,
                pretrained=None,
                layers=list(range(depth - k + 1, depth + 1)),
                image_size=args.image_size,
            )
            m = m.to(device).eval()
            t = time_interleaved({"s": runner(m)}, device=device, items=args.batch, repeats=3)["s"]
            rows.append([k, mib(t.peak_bytes), f"{t.median * 1000:,.1f}"])
            del m
        print("\n# peak memory against the number of aggregated layers (the last k layers, all blocks run)")
        print(table(rows, ["layers", "peak MiB", "ms/batch"]))


if __name__ == "__main__":
    main()
